//! ICE restart of a session whose client offered (a WHIP publisher or a WHEP player), from the
//! client's new ICE credentials alone: RFC 9725 §4.3.3 has the client send only its new
//! `ice-ufrag`/`ice-pwd` and candidates (a `PATCH`), never a new offer, and both sides keep
//! every other part of the negotiated SDP.
//!
//! str0m restarts ICE when an offer carries remote credentials other than the ones it has
//! (`SdpApi::accept_offer`: new local credentials, the remote candidates and pairs flushed,
//! the local candidates kept), and re-applying an offer it already accepted changes nothing
//! else: the same mids, SSRCs and codecs, and DTLS, already set up, is left alone (no new
//! handshake, the SRTP keys stay). So the session keeps the offer it accepted, and a restart
//! is that offer with the new credentials and without candidates, accepted again. The new
//! local credentials come from str0m's RNG (`rng.rs`: seeded, so a simulation replays).
//!
//! The session's route by server ufrag follows the new ufrag, its remote candidates start
//! again from none (the bound counts afresh), and it must see ICE complete again within the
//! connect timeout or it ends (a client that restarted and vanished is not kept).

use super::sdp_text::{edit_lines, Edit};
use super::*;

/// The client's side of an ICE restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceRestart {
    /// The client's new `ice-ufrag`.
    pub ufrag: String,
    /// The client's new `ice-pwd`.
    pub pwd: String,
    /// The client's new candidates (`candidate:…` lines, with or without `a=`).
    pub candidates: Vec<String>,
}

/// The server's side after an ICE restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceRestarted {
    /// The server's new `ice-ufrag`.
    pub ufrag: String,
    /// The server's new `ice-pwd`.
    pub pwd: String,
    /// The server's candidates (`candidate:…` lines).
    pub candidates: Vec<String>,
    /// The whole answer str0m made to the re-applied offer (its first m-line and mid name the
    /// m-line of an SDP fragment).
    pub answer: String,
}

/// Why an ICE restart was not made. The session is left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceRestartError {
    /// No such session (it ended).
    NoSession,
    /// The session was not made from the client's offer (an SDK player, a room player).
    NotOffered,
    /// The credentials are the session's current remote ones: nothing to restart.
    SameCredentials,
}

impl std::fmt::Display for IceRestartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IceRestartError::NoSession => "no such media session",
            IceRestartError::NotOffered => "the session was not made from the client's offer",
            IceRestartError::SameCredentials => "the ICE credentials did not change",
        })
    }
}

impl Sfu {
    /// Restarts ICE on `session` with the client's new credentials and candidates; returns the
    /// server's new credentials and candidates. Media, SSRCs and DTLS stay; the session's
    /// outputs (STUN, media on the new path) come out of [`Sfu::poll_output`] as usual.
    ///
    /// A restart str0m refuses (it cannot happen with the offer it accepted before) fails the
    /// session like any str0m error, and `Err(NoSession)` is returned.
    pub fn ice_restart(
        &mut self,
        now: Instant,
        session: SessionId,
        restart: &IceRestart,
    ) -> Result<IceRestarted, IceRestartError> {
        let key = *self.ids.get(&session).ok_or(IceRestartError::NoSession)?;
        let s = self.sessions.get(key).ok_or(IceRestartError::NoSession)?;
        let offer = s
            .remote_offer
            .as_deref()
            .ok_or(IceRestartError::NotOffered)?;
        if remote_ufrag(offer) == Some(restart.ufrag.as_str()) {
            return Err(IceRestartError::SameCredentials);
        }
        let text = with_credentials(offer, &restart.ufrag, &restart.pwd);
        let parsed = SdpOffer::from_sdp_string(&text).map_err(|e| {
            debug!(session = %session, "ICE restart offer not parsed: {e}");
            IceRestartError::NotOffered
        })?;
        let mut answer = None;
        self.mutate(key, |rtc| {
            let a = rtc.sdp_api().accept_offer(parsed)?;
            answer = Some(a.to_sdp_string());
            Ok(())
        });
        let answer = answer.ok_or(IceRestartError::NoSession)?;
        let Some(s) = self.sessions.get_mut(key) else {
            return Err(IceRestartError::NoSession);
        };
        s.remote_offer = Some(text);
        s.restart_deadline = Some(now + self.connect_timeout);
        let creds = s.rtc.direct_api().local_ice_credentials();
        self.ufrags.insert(key, creds.ufrag.clone());
        self.candidates.forget(session);
        debug!(session = %session, "ICE restarted");
        for c in &restart.candidates {
            self.remote_candidate(now, session, c);
        }
        self.reschedule(key);
        self.process(now);
        self.flush(now);
        let candidates = answer
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a="))
            .filter(|l| l.starts_with("candidate:"))
            .map(str::to_string)
            .collect();
        Ok(IceRestarted {
            ufrag: creds.ufrag,
            pwd: creds.pass,
            candidates,
            answer,
        })
    }
}

/// The first `a=ice-ufrag` of an SDP.
fn remote_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
}

/// `offer` with every `a=ice-ufrag`/`a=ice-pwd` replaced and its candidates left out.
pub(super) fn with_credentials(offer: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    edit_lines(&mut out, offer.lines().map(str::trim_end), |line| {
        if line.starts_with("a=ice-ufrag:") {
            Edit::Replace(format!("a=ice-ufrag:{ufrag}"))
        } else if line.starts_with("a=ice-pwd:") {
            Edit::Replace(format!("a=ice-pwd:{pwd}"))
        } else if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            Edit::Drop
        } else {
            Edit::Keep
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_replaced_candidates_dropped() {
        let offer =
            "v=0\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                     a=ice-ufrag:old\r\na=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n\
                     a=end-of-candidates\r\na=mid:0\r\n";
        let out = with_credentials(offer, "newu", "newpwd");
        assert_eq!(
            out,
            "v=0\r\na=ice-ufrag:newu\r\na=ice-pwd:newpwd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
             a=ice-ufrag:newu\r\na=mid:0\r\n"
        );
        assert_eq!(remote_ufrag(offer), Some("old"));
        assert_eq!(remote_ufrag(&out), Some("newu"));
    }
}
