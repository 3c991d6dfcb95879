//! WHIP (RFC 9725) and WHEP over HTTP, without IO: the request head, the bounds on the body,
//! the resource table and the responses. The decisions about streams are signalling's
//! (`proto_core::Signalling::handle_whip_publish` and friends); [`crate::Node`] joins the
//! two (`node/whip.rs`).
//! (About 600 lines: the resource table, its bounds and its answers; a fifth is unit tests.)
//!
//! Routes (AMS's paths):
//! - `POST /<App>/whip/<streamId>[?mainTrack=<room>]`, `POST /<App>/whep/<streamId>`: an SDP
//!   offer (`Content-Type: application/sdp`) in, `201 Created` with the answer, `Location` of
//!   the resource, `ETag`, and a `Link` to the ICE servers if any are configured;
//! - `PATCH <resource>` (`application/trickle-ice-sdpfrag`, RFC 9725 §4.3): trickled
//!   candidates (§4.3.2, `204`), or an ICE restart (§4.3.3: a new `a=ice-ufrag` and
//!   `a=ice-pwd`): `200` with the server's new credentials and candidates as an sdpfrag and a
//!   new `ETag`; the media session, its SSRCs and DTLS stay. `If-Match` (§4.3.1): other than
//!   `*` or the resource's current `ETag` is `412` (a tag from before a restart is stale); a
//!   restart without it is `428` (§4.3.3 has the client send `If-Match: "*"`); more than
//!   [`MAX_RESTARTS_PER_MINUTE`] restarts a minute is `429`; a refused restart leaves the
//!   session as it was;
//! - `DELETE <resource>`: ends the publish or play (`200`);
//! - `OPTIONS` on either: the CORS preflight (`204`), so a page on another origin can publish
//!   or play; every response carries `Access-Control-Allow-Origin: *` (the bearer token, not
//!   the origin, is the credential, as for the WebSocket).
//!
//! The credential is `Authorization: Bearer <token>` (or AMS's `?token=`): the publish or play
//! token, JWT or hash token of the stream, checked by the same access policy as the
//! WebSocket. Refusals ([`status_for`]): no credential where one is needed `401`, a wrong one
//! `403`, an unknown stream (WHEP) `404`, a stream published elsewhere `409`, a malformed offer
//! `400`, a wrong content type `415`, too many resources from one address `429`.
//!
//! Bounds: the body ([`MAX_SDP_LEN`], else `413`), m-lines ([`MAX_M_LINES`]) and candidates
//! ([`MAX_CANDIDATES`]) per offer or patch (else `400`), resources per client address
//! ([`DEFAULT_MAX_RESOURCES_PER_IP`], else `429`) and in all ([`MAX_RESOURCES`], else `503`).
//! A resource whose media does not come up is ended by the cores' own timers (the publish
//! start timeout, the media layer's connect timeout, the no-packet timeout), so an abandoned
//! resource does not outlive them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use proto_core::{ConnId, SignalError};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::http_text::{reason, response};

/// Largest offer or patch body.
pub const MAX_SDP_LEN: usize = 32 * 1024;
/// Most m-lines in an offer (audio, video, data and a few more).
pub const MAX_M_LINES: usize = 8;
/// Most candidates in an offer or a patch.
pub const MAX_CANDIDATES: usize = 32;
/// Default bound on live resources per client address.
pub const DEFAULT_MAX_RESOURCES_PER_IP: usize = 16;
/// Bound on live resources in all.
pub const MAX_RESOURCES: usize = 4096;
/// Most ICE restarts of one resource within [`RESTART_WINDOW`] (more: `429`).
pub const MAX_RESTARTS_PER_MINUTE: usize = 6;
/// The window of [`MAX_RESTARTS_PER_MINUTE`].
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The connection ids of HTTP resources start here (the runtime's WebSocket ids are mio
/// tokens, far below).
pub const RESOURCE_CONN_BASE: u64 = 1 << 48;

/// WHIP (publish) or WHEP (play).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Ingest.
    Whip,
    /// Egress.
    Whep,
}

impl Kind {
    /// The path segment.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }
}

/// The methods that reach [`crate::node::Node::handle_http_media`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Create a resource.
    Post,
    /// Trickle candidates to a resource.
    Patch,
    /// End a resource.
    Delete,
}

/// A WHIP/WHEP request head that passed the checks made before the body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaHead {
    /// The method.
    pub method: Method,
    /// WHIP or WHEP.
    pub kind: Kind,
    /// The application.
    pub app: String,
    /// The stream id.
    pub stream: String,
    /// The resource id (PATCH, DELETE).
    pub resource: Option<String>,
    /// The bearer token (`Authorization: Bearer`, else `?token=`).
    pub token: Option<String>,
    /// `?mainTrack=` (WHIP).
    pub main_track: Option<String>,
    /// `If-Match` (PATCH).
    pub if_match: Option<String>,
    /// Body length.
    pub content_length: usize,
}

const CORS: [(&str, &str); 2] = [
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Expose-Headers",
        "Location, ETag, Link, Accept-Patch",
    ),
];

/// A complete response with the CORS headers and `extra`.
pub fn reply(status: u16, content_type: &str, body: &[u8], extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = CORS.to_vec();
    headers.extend_from_slice(extra);
    response(status, reason(status), content_type, body, false, &headers)
}

/// A plain-text refusal with the CORS headers.
pub fn refusal(status: u16, why: &str) -> Vec<u8> {
    let extra: &[(&str, &str)] = if status == 401 {
        &[("WWW-Authenticate", "Bearer")]
    } else {
        &[]
    };
    reply(
        status,
        "text/plain; charset=utf-8",
        format!("{why}\n").as_bytes(),
        extra,
    )
}

/// What an offer passed to the cores looks like: text, an SDP, within the bounds. Returns the
/// offer and its ICE ufrag (kept to tell trickle from an ICE restart).
pub fn check_offer(body: &[u8]) -> Result<(&str, Option<String>), &'static str> {
    let sdp = std::str::from_utf8(body).map_err(|_| "the offer is not UTF-8")?;
    if !sdp.starts_with("v=0") {
        return Err("the offer is not an SDP (no v=0 line)");
    }
    let m_lines = sdp.lines().filter(|l| l.starts_with("m=")).count();
    if m_lines == 0 {
        return Err("the offer has no m-line");
    }
    if m_lines > MAX_M_LINES {
        return Err("the offer has too many m-lines");
    }
    if candidate_count(sdp) > MAX_CANDIDATES {
        return Err("the offer has too many candidates");
    }
    Ok((sdp, ufrag(sdp)))
}

fn candidate_count(sdp: &str) -> usize {
    sdp.lines()
        .filter(|l| l.trim_start().starts_with("a=candidate:"))
        .count()
}

fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::to_string)
}

/// What a `PATCH` body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch<'a> {
    /// Trickled candidates (RFC 9725 §4.3.2): no ICE credentials, or the current ones.
    Trickle(Vec<&'a str>),
    /// An ICE restart (RFC 9725 §4.3.3): new `ice-ufrag` and `ice-pwd`, and the candidates
    /// gathered with them.
    Restart {
        /// The client's new ufrag.
        ufrag: &'a str,
        /// The client's new password.
        pwd: &'a str,
        /// Its candidates (`candidate:…`).
        candidates: Vec<&'a str>,
    },
}

/// RFC 8839 `ice-char`s (`ALPHA / DIGIT / "+" / "/"`) within `min..=256`.
fn is_ice_token(s: &str, min: usize) -> bool {
    (min..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A `PATCH` body (`application/trickle-ice-sdpfrag`, RFC 8840): trickle or ICE restart, or
/// why it is refused (`(status, reason)`). `ufrag_now`: the client's current ufrag.
pub fn check_patch<'a>(
    body: &'a [u8],
    ufrag_now: Option<&str>,
) -> Result<Patch<'a>, (u16, &'static str)> {
    let frag = std::str::from_utf8(body).map_err(|_| (400, "the patch is not UTF-8"))?;
    if candidate_count(frag) > MAX_CANDIDATES {
        return Err((400, "the patch has too many candidates"));
    }
    let candidates: Vec<&str> = frag
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .collect();
    let pwd = frag
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-pwd:"));
    let new_ufrag = frag
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"));
    match new_ufrag {
        Some(u) if Some(u) != ufrag_now => {
            let pwd = pwd.ok_or((400, "an ICE restart needs a=ice-pwd"))?;
            if !is_ice_token(u, 4) || !is_ice_token(pwd, 22) {
                return Err((400, "malformed a=ice-ufrag or a=ice-pwd (RFC 8839)"));
            }
            Ok(Patch::Restart {
                ufrag: u,
                pwd,
                candidates,
            })
        }
        _ => Ok(Patch::Trickle(candidates)),
    }
}

/// The `200 OK` body of an ICE restart (`application/trickle-ice-sdpfrag`, RFC 8840 and RFC
/// 9725 §4.3.3): the server's new credentials, the first m-line of its answer with its mid,
/// and its candidates.
pub fn restart_fragment(answer: &str, ufrag: &str, pwd: &str, candidates: &[String]) -> String {
    let mut out = String::new();
    if answer.lines().any(|l| l.trim_end() == "a=ice-lite") {
        out.push_str("a=ice-lite\r\n");
    }
    out.push_str(&format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"));
    let mut lines = answer.lines().map(str::trim_end);
    if let Some(m) = lines.find(|l| l.starts_with("m=")) {
        out.push_str(m);
        out.push_str("\r\n");
        if let Some(mid) = lines
            .take_while(|l| !l.starts_with("m="))
            .find(|l| l.starts_with("a=mid:"))
        {
            out.push_str(mid);
            out.push_str("\r\n");
        }
    }
    for c in candidates {
        out.push_str("a=");
        out.push_str(c.strip_prefix("a=").unwrap_or(c));
        out.push_str("\r\n");
    }
    out.push_str("a=end-of-candidates\r\n");
    out
}

/// The HTTP status of a signalling refusal. `had_token`: the client sent a credential.
pub fn status_for(e: SignalError, had_token: bool) -> u16 {
    use SignalError as E;
    match e {
        E::UnauthorizedAccess if !had_token => 401,
        E::UnauthorizedAccess
        | E::UserBlocked
        | E::NotAllowedUnregisteredStreams
        | E::StreamNotActiveOrExpired
        | E::RoomNotActiveOrExpired
        | E::ViewerLimitReached => 403,
        E::NoStreamExist => 404,
        E::StreamIdInUse | E::AlreadyPublishing | E::AlreadyPlaying => 409,
        E::InvalidStreamName
        | E::NoStreamNameSpecified
        | E::ParameterTooLong
        | E::NotSetRemoteDescription
        | E::InvalidMessage => 400,
        E::ConnectionLimitReached => 429,
        E::HighResourceUsage | E::DataStoreNotAvailable => 503,
        _ => 500,
    }
}

/// One live WHIP or WHEP resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its signalling connection.
    pub conn: ConnId,
    /// WHIP or WHEP.
    pub kind: Kind,
    /// The application.
    pub app: String,
    /// The stream published or played.
    pub stream: String,
    /// The client's address.
    pub ip: IpAddr,
    /// The entity tag (quoted).
    pub etag: String,
    /// The client's current ICE ufrag (of its offer, or of its last ICE restart).
    pub ufrag: Option<String>,
    /// When its last ICE restarts were asked for (at most [`MAX_RESTARTS_PER_MINUTE`]
    /// within a minute).
    pub restarts: Vec<Instant>,
}

/// The live resources, by id and by connection, with a count per client address.
#[derive(Debug)]
pub struct Resources {
    by_id: HashMap<String, Resource>,
    by_conn: HashMap<ConnId, String>,
    per_ip: HashMap<IpAddr, usize>,
    rng: ChaCha8Rng,
    next_conn: u64,
    /// Bound per client address.
    pub max_per_ip: usize,
    /// Refused requests by HTTP status.
    pub refused: std::collections::BTreeMap<u16, u64>,
    /// Resources created and ended so far.
    pub created: u64,
    /// See `created`.
    pub ended: u64,
    /// Wrong-token lock-out by client address.
    pub bad_tokens: super::lockout::BadTokens,
    /// ICE restarts made so far.
    pub restarts: u64,
}

impl Resources {
    /// An empty table; resource ids and entity tags are drawn from `seed` (unguessable: the
    /// resource URL is what lets a client end its stream).
    pub fn new(seed: [u8; 32]) -> Self {
        Resources {
            by_id: HashMap::new(),
            by_conn: HashMap::new(),
            per_ip: HashMap::new(),
            rng: ChaCha8Rng::from_seed(seed),
            next_conn: RESOURCE_CONN_BASE,
            max_per_ip: DEFAULT_MAX_RESOURCES_PER_IP,
            refused: std::collections::BTreeMap::new(),
            created: 0,
            ended: 0,
            bad_tokens: super::lockout::BadTokens::default(),
            restarts: 0,
        }
    }

    /// Live resources of each kind: `(whip, whep)`.
    pub fn live_by_kind(&self) -> (usize, usize) {
        let whip = self.by_id.values().filter(|r| r.kind == Kind::Whip).count();
        (whip, self.by_id.len() - whip)
    }

    /// Live resources.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Live resources of a client address.
    pub fn count_for(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// True when `conn` is a resource's connection (or one being created).
    pub fn is_resource_conn(conn: ConnId) -> bool {
        conn.0 >= RESOURCE_CONN_BASE
    }

    /// Why a new resource from `ip` is refused, if it is.
    pub fn admit(&self, ip: IpAddr) -> Result<(), (u16, &'static str)> {
        if self.by_id.len() >= MAX_RESOURCES {
            return Err((503, "too many WHIP/WHEP resources"));
        }
        if self.max_per_ip > 0 && self.count_for(ip) >= self.max_per_ip {
            return Err((429, "too many WHIP/WHEP resources from this address"));
        }
        Ok(())
    }

    /// A connection id for a resource being created.
    pub fn alloc_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    fn token(&mut self, bytes: usize) -> String {
        let mut b = vec![0u8; bytes];
        self.rng.fill_bytes(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Records a created resource; returns its id.
    pub fn insert(&mut self, mut r: Resource) -> String {
        let id = self.token(16);
        r.etag = format!("\"{}\"", self.token(8));
        *self.per_ip.entry(r.ip).or_default() += 1;
        self.created += 1;
        self.by_conn.insert(r.conn, id.clone());
        self.by_id.insert(id.clone(), r);
        id
    }

    /// The resource `id`, if it is one of `kind`, `app` and `stream`.
    pub fn get(&self, kind: Kind, app: &str, stream: &str, id: &str) -> Option<&Resource> {
        self.by_id
            .get(id)
            .filter(|r| r.kind == kind && r.app == app && r.stream == stream)
    }

    /// The resource of a connection.
    pub fn by_conn(&self, conn: ConnId) -> Option<&Resource> {
        self.by_conn.get(&conn).and_then(|id| self.by_id.get(id))
    }

    /// Records an ICE restart asked of the resource of `conn` at `now`, or, over
    /// [`MAX_RESTARTS_PER_MINUTE`], how long until the next one is allowed.
    pub fn admit_restart(&mut self, conn: ConnId, now: Instant) -> Result<(), Duration> {
        let Some(r) = self
            .by_conn
            .get(&conn)
            .and_then(|id| self.by_id.get_mut(id))
        else {
            return Ok(());
        };
        r.restarts
            .retain(|t| now.saturating_duration_since(*t) < RESTART_WINDOW);
        if r.restarts.len() >= MAX_RESTARTS_PER_MINUTE {
            let oldest = r.restarts.iter().min().copied().unwrap_or(now);
            return Err(RESTART_WINDOW.saturating_sub(now.saturating_duration_since(oldest)));
        }
        r.restarts.push(now);
        Ok(())
    }

    /// After an ICE restart of the resource of `conn`: its client's new ufrag, and a new
    /// entity tag (returned; the old one no longer matches an `If-Match`).
    pub fn restarted(&mut self, conn: ConnId, ufrag: &str) -> Option<String> {
        let etag = format!("\"{}\"", self.token(8));
        let r = self
            .by_conn
            .get(&conn)
            .and_then(|id| self.by_id.get_mut(id))?;
        r.ufrag = Some(ufrag.to_string());
        r.etag = etag.clone();
        self.restarts += 1;
        Some(etag)
    }

    /// Forgets the resource of `conn`.
    pub fn remove_conn(&mut self, conn: ConnId) -> Option<Resource> {
        let id = self.by_conn.remove(&conn)?;
        let r = self.by_id.remove(&id)?;
        self.ended += 1;
        if let Some(n) = self.per_ip.get_mut(&r.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&r.ip);
            }
        }
        Some(r)
    }

    /// Internal consistency (tests): both indexes and the per-address counts agree.
    pub fn check_invariants(&self) {
        assert_eq!(self.by_id.len(), self.by_conn.len());
        assert_eq!(self.per_ip.values().sum::<usize>(), self.by_id.len());
        assert!(self.per_ip.values().all(|n| *n > 0));
        for (conn, id) in &self.by_conn {
            assert_eq!(self.by_id.get(id).map(|r| r.conn), Some(*conn));
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests {
    use super::*;

    const PWD: &str = "0123456789abcdefghijkl";

    #[test]
    fn a_patch_is_trickle_or_restart() {
        let c = "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\n";
        assert_eq!(
            check_patch(c.as_bytes(), Some("abcd")),
            Ok(Patch::Trickle(vec![
                "candidate:1 1 udp 1 1.2.3.4 5 typ host"
            ]))
        );
        // The current ufrag is trickle too.
        let same = format!("a=ice-ufrag:abcd\r\na=ice-pwd:{PWD}\r\n{c}");
        assert!(matches!(
            check_patch(same.as_bytes(), Some("abcd")),
            Ok(Patch::Trickle(v)) if v.len() == 1
        ));
        let restart = format!("a=ice-ufrag:efgh\r\na=ice-pwd:{PWD}\r\nm=audio 9 X 0\r\n{c}");
        assert_eq!(
            check_patch(restart.as_bytes(), Some("abcd")),
            Ok(Patch::Restart {
                ufrag: "efgh",
                pwd: PWD,
                candidates: vec!["candidate:1 1 udp 1 1.2.3.4 5 typ host"],
            })
        );
        // No password, a short one, a character outside ice-char: 400.
        for bad in [
            "a=ice-ufrag:efgh\r\n".to_string(),
            "a=ice-ufrag:efgh\r\na=ice-pwd:short\r\n".to_string(),
            format!("a=ice-ufrag:ef gh\r\na=ice-pwd:{PWD}\r\n"),
            format!("a=ice-ufrag:efgh\r\na=ice-pwd:{PWD}\"\r\n"),
            format!("a=ice-ufrag:{}\r\na=ice-pwd:{PWD}\r\n", "u".repeat(257)),
        ] {
            assert_eq!(
                check_patch(bad.as_bytes(), Some("abcd")).unwrap_err().0,
                400,
                "{bad}"
            );
        }
        let flood = c.repeat(MAX_CANDIDATES + 1);
        assert_eq!(check_patch(flood.as_bytes(), None).unwrap_err().0, 400);
    }

    #[test]
    fn the_restart_fragment_carries_credentials_mline_mid_and_candidates() {
        let answer = "v=0\r\na=ice-lite\r\na=group:BUNDLE 0 1\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:old\r\na=mid:0\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";
        let frag = restart_fragment(
            answer,
            "newu",
            "newpwd",
            &["candidate:1 1 udp 2130706431 10.0.0.1 50000 typ host".to_string()],
        );
        assert_eq!(
            frag,
            "a=ice-lite\r\na=ice-ufrag:newu\r\na=ice-pwd:newpwd\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
             a=candidate:1 1 udp 2130706431 10.0.0.1 50000 typ host\r\na=end-of-candidates\r\n"
        );
    }

    fn one_resource(t: &mut Resources) -> ConnId {
        let conn = t.alloc_conn();
        t.insert(Resource {
            conn,
            kind: Kind::Whip,
            app: "A".into(),
            stream: "s".into(),
            ip: IpAddr::from([10, 0, 0, 1]),
            etag: String::new(),
            ufrag: Some("abcd".into()),
            restarts: Vec::new(),
        });
        conn
    }

    #[test]
    fn restarts_are_bounded_per_minute_and_change_the_etag() {
        let mut t = Resources::new([3; 32]);
        let conn = one_resource(&mut t);
        let t0 = Instant::now();
        for n in 0..MAX_RESTARTS_PER_MINUTE {
            assert_eq!(
                t.admit_restart(conn, t0 + Duration::from_secs(n as u64)),
                Ok(())
            );
        }
        let wait = t
            .admit_restart(conn, t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(50),
            "until the oldest leaves the window"
        );
        assert_eq!(t.admit_restart(conn, t0 + Duration::from_secs(60)), Ok(()));
        let before = t.by_conn(conn).unwrap().etag.clone();
        let etag = t.restarted(conn, "efgh").unwrap();
        let r = t.by_conn(conn).unwrap();
        assert_ne!(etag, before);
        assert_eq!(r.etag, etag);
        assert_eq!(r.ufrag.as_deref(), Some("efgh"));
        assert_eq!(t.restarts, 1);
        t.check_invariants();
    }
}
