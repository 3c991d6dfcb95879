//! Bounds on the paths from the network into sessions.
//!
//! - Datagrams from an address no session has used yet are routed by the STUN USERNAME of a
//!   binding request (`<server ufrag>:<client ufrag>`, RFC 8445 §7.2.2): the server's ufrag
//!   names exactly one session, which then checks the message integrity. Nothing else from an
//!   unknown address reaches any session; it is dropped and counted. No datagram is ever tried
//!   against every session.
//! - Remote ICE candidates are kept per session up to a bound, one per transport address;
//!   duplicates and candidates over the bound are dropped and counted (str0m pairs every new
//!   remote candidate with every local one and scans the candidates it has, so an unbounded
//!   list costs quadratic time).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use proto_core::SessionId;
use str0m::ice::StunMessage;

/// Default bound of remote ICE candidates kept per session (see
/// [`crate::Sfu::set_max_remote_candidates`]).
pub const DEFAULT_MAX_REMOTE_CANDIDATES: usize = 32;

/// Remote addresses cached per session; past this the oldest is forgotten (it can come back
/// through a new STUN binding request).
pub(crate) const MAX_ROUTES_PER_SESSION: usize = 8;

/// What the [`crate::Sfu`] refused, counted since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuCounters {
    /// Datagrams from an unknown address that were not a STUN binding request naming a session.
    pub unknown_source_dropped: u64,
    /// Remote candidates dropped: duplicates of a kept one, or over the per-session bound.
    pub candidates_dropped: u64,
    /// Datagrams that are neither STUN, DTLS, RTP nor RTCP.
    pub unparsable_dropped: u64,
    /// RTP packets written to players (one per player per packet).
    pub forwarded_packets: u64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests: u64,
    /// Relay sessions refused because every relay address was in use.
    pub relays_refused: u64,
    /// Sessions woken by their own timer (`Sfu::handle_timeout`: str0m's NACK, RTCP, ICE and
    /// DTLS timers, stats, connect deadlines): work that grows with the sessions, not with the
    /// packets.
    pub timer_wakeups: u64,
    /// Players woken by a flush to send what was written to them (`Sfu::flush`): work that
    /// grows with the packets.
    pub flush_wakeups: u64,
    /// Players whose RTP took the fast path (`fast.rs`: AES-GCM SRTP sealed by rtc-core).
    pub fast_path_players: u64,
    /// Video packets sent again on the fast path, answering a player's NACK (`fast.rs`).
    pub retransmitted_packets: u64,
    /// SRTCP packets the fast path could not open (a player's, or str0m's report to rewrite).
    pub rtcp_unreadable: u64,
    /// str0m's sender reports given the fast path's RTP time and counts.
    pub sender_reports_rewritten: u64,
}

/// The server ufrag named by a STUN binding request's USERNAME (`<server>:<client>`), if
/// `data` is one.
pub(crate) fn stun_request_ufrag(data: &[u8]) -> Option<&str> {
    let msg = StunMessage::parse(data).ok()?;
    if !msg.is_binding_request() {
        return None;
    }
    let (local, _remote) = msg.username()?.split_once(':')?;
    (!local.is_empty()).then_some(local)
}

/// Server ufrag -> session slab key, for sessions that are alive.
#[derive(Debug, Default)]
pub(crate) struct Ufrags {
    by_ufrag: HashMap<String, usize>,
    by_key: HashMap<usize, String>,
}

impl Ufrags {
    pub(crate) fn insert(&mut self, key: usize, ufrag: String) {
        self.remove(key);
        self.by_key.insert(key, ufrag.clone());
        self.by_ufrag.insert(ufrag, key);
    }

    pub(crate) fn remove(&mut self, key: usize) {
        if let Some(u) = self.by_key.remove(&key) {
            if self.by_ufrag.get(&u) == Some(&key) {
                self.by_ufrag.remove(&u);
            }
        }
    }

    pub(crate) fn get(&self, ufrag: &str) -> Option<usize> {
        self.by_ufrag.get(ufrag).copied()
    }
}

/// Remote candidates accepted so far, per session: their transport addresses.
#[derive(Debug, Default)]
pub(crate) struct CandidateBook {
    kept: HashMap<SessionId, HashSet<SocketAddr>>,
}

impl CandidateBook {
    /// Records `addr` for `session` if it is new and the session is under `max`.
    pub(crate) fn admit(&mut self, session: SessionId, addr: SocketAddr, max: usize) -> bool {
        let kept = self.kept.entry(session).or_default();
        if kept.contains(&addr) || kept.len() >= max {
            return false;
        }
        kept.insert(addr)
    }

    /// Candidates kept for `session`.
    pub(crate) fn count(&self, session: SessionId) -> usize {
        self.kept.get(&session).map_or(0, HashSet::len)
    }

    pub(crate) fn forget(&mut self, session: SessionId) {
        self.kept.remove(&session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::ice::{StunMessageBuilder, TransId};

    /// A binding request as a browser sends it (integrity value irrelevant here).
    pub(crate) fn binding_request(username: &str) -> Vec<u8> {
        let mut buf = vec![0u8; 1500];
        let n = StunMessage::binding_request(username, TransId::new(), true, 1, 100, false)
            .to_bytes(Some(b"password"), &mut buf, |_, _| [7u8; 20])
            .unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn ufrag_of_binding_request_only() {
        assert_eq!(
            stun_request_ufrag(&binding_request("srv1:cli1")),
            Some("srv1")
        );
        assert_eq!(stun_request_ufrag(&binding_request(":cli1")), None);
        assert_eq!(stun_request_ufrag(b""), None);
        assert_eq!(stun_request_ufrag(&[0x16, 0xfe, 0xfd, 0, 0]), None);
        assert_eq!(stun_request_ufrag(&[0u8; 20]), None);
        let reply = StunMessageBuilder::new()
            .binding()
            .indication()
            .build(TransId::new());
        let mut buf = vec![0u8; 1500];
        if let Ok(n) = reply.to_bytes(None, &mut buf, |_, _| [0u8; 20]) {
            assert_eq!(stun_request_ufrag(&buf[..n]), None);
        }
    }

    #[test]
    fn book_bounds_and_dedupes() {
        let mut b = CandidateBook::default();
        let s = SessionId(1);
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(b.admit(s, a, 2));
        assert!(!b.admit(s, a, 2), "duplicate admitted");
        assert!(b.admit(s, "127.0.0.1:2".parse().unwrap(), 2));
        assert!(
            !b.admit(s, "127.0.0.1:3".parse().unwrap(), 2),
            "over the bound"
        );
        assert_eq!(b.count(s), 2);
        b.forget(s);
        assert_eq!(b.count(s), 0);
    }

    #[test]
    fn ufrags_follow_keys() {
        let mut u = Ufrags::default();
        u.insert(3, "abcd".into());
        assert_eq!(u.get("abcd"), Some(3));
        u.remove(3);
        assert_eq!(u.get("abcd"), None);
        assert!(u.by_key.is_empty() && u.by_ufrag.is_empty());
    }
}
