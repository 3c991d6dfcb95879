//! WHIP (RFC 9725) and WHEP over HTTP, without IO: the request head, the bounds on the body,
//! the resource table and the responses. The decisions about streams are signalling's
//! (`proto_core::Signalling::handle_whip_publish` and friends); [`crate::Node`] joins the
//! two (`node/whip.rs`).
//!
//! Routes (AMS's paths):
//! - `POST /<App>/whip/<streamId>[?mainTrack=<room>]`, `POST /<App>/whep/<streamId>`: an SDP
//!   offer (`Content-Type: application/sdp`) in, `201 Created` with the answer, `Location` of
//!   the resource, `ETag`, and a `Link` to the ICE servers if any are configured;
//! - `PATCH <resource>` (`application/trickle-ice-sdpfrag`): trickled candidates (`204`); an ICE
//!   restart (a new `a=ice-ufrag`) is not supported: `422`, as RFC 9725 §4.3.1 asks of a
//!   server that supports only trickle; `If-Match` other than `*` or the resource's `ETag`:
//!   `412`;
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

/// A trickle patch: its candidates, or why it is refused (`(status, reason)`).
pub fn check_patch<'a>(
    body: &'a [u8],
    ufrag_of_offer: Option<&str>,
) -> Result<Vec<&'a str>, (u16, &'static str)> {
    let frag = std::str::from_utf8(body).map_err(|_| (400, "the patch is not UTF-8"))?;
    if let (Some(new), Some(old)) = (ufrag(frag), ufrag_of_offer) {
        if new != old {
            return Err((422, "ICE restart is not supported"));
        }
    }
    if candidate_count(frag) > MAX_CANDIDATES {
        return Err((400, "the patch has too many candidates"));
    }
    Ok(frag
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .collect())
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
    /// The ICE ufrag of the client's offer.
    pub ufrag: Option<String>,
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
