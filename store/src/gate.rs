//! The admin REST API's front gate: who may call it, decided on the request **head** alone.
//! (About 600 lines: the ordered checks of one head and the header parsing they need are read
//! together, top to bottom.)
//!
//! The runtime parses a REST request head into a [`RestHead`] and asks [`RestGate::check`]
//! before it reads (or buffers) a single body byte. A refused request gets its status and the
//! connection is closed; the body is never read. In order:
//!
//! 1. **Client address** (403): the peer, or, when the peer is a configured trusted proxy
//!    (`trusted_proxies`), the right-most `X-Forwarded-For` entry that is not itself a trusted
//!    proxy. `X-Forwarded-For` from anyone else is ignored. The client must be the local host
//!    (`127.0.0.1` or `::1`; other loopback addresses do not count) or inside the
//!    application's `remoteAllowedCIDR`.
//! 2. **Host** (421): an IP literal (with or without port), `localhost`, or a configured name
//!    (`rest_hosts`). A page on `http://evil.example` that rebinds its name to 127.0.0.1 still
//!    sends `Host: evil.example`, so DNS rebinding cannot reach the API. A missing `Host` is
//!    400.
//! 3. **Origin** (403): a browser's cross-site request is refused: an `Origin` must name the
//!    same host and port as `Host`, or a configured name; `Origin: null` is refused. Without
//!    `Origin`, a `Sec-Fetch-Site` other than `same-origin` or `none` is refused too (a
//!    cross-site `<img>` or form GET).
//! 4. **Credential** (401): `Authorization: Bearer <admin token>` (the token the server
//!    generates in its data directory, compared in constant time), or an AMS REST JWT signed
//!    with the application's `jwtSecretKey` (HS256, not expired). In trust-loopback mode
//!    (`rest_trust_loopback`, for a development machine) a direct caller on `127.0.0.1`/`::1`
//!    needs none, unless the application has `jwtControlEnabled`.
//! 5. **Content type** (415): every method but `GET` and `HEAD` must send
//!    `Content-Type: application/json`, which a browser cannot send cross-site without a
//!    preflight (that Antenna never grants): a `text/plain` "simple" POST is refused.
//! 6. **Method** (405): application settings change only with `PUT`.
//! 7. **Store** (503): while the datastore cannot make writes durable, the API answers 503.
//!
//! Every refusal is counted per [`Refused`] reason ([`RestGate::counters`]); the runtime logs
//! each one with its counter.

use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::crypto;
use crate::settings::AppSettings;
use crate::store::StoreError;

/// Largest REST request body.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

/// The head of a REST request: what the gate and the handlers need. The runtime reads
/// `content_length` body bytes only after [`RestGate::check`] granted it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestHead {
    /// Method as sent.
    pub method: String,
    /// The path without the query, still percent-encoded.
    pub path: String,
    /// The query without `?`.
    pub query: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// Body length (`Content-Length`, 0 if absent).
    pub content_length: usize,
    /// The application the request is for.
    pub app: String,
    /// The client sent `Expect: 100-continue` (curl does for bodies over 1 KiB) and waits for
    /// an interim `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// The `Host` header.
    pub host: Option<String>,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// The `Sec-Fetch-Site` header.
    pub sec_fetch_site: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `X-Forwarded-For` header (used only from a trusted proxy).
    pub forwarded_for: Option<String>,
}

/// Why a request was refused; each has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refused {
    /// A malformed head (400, 411, 413).
    BadHead,
    /// The client address is not allowed (403).
    Address,
    /// `Host` is not an IP literal or a configured name (421).
    Host,
    /// A cross-site `Origin` or `Sec-Fetch-Site` (403).
    Origin,
    /// No valid admin credential (401).
    Credential,
    /// A mutating request without `Content-Type: application/json` (415).
    ContentType,
    /// A method the resource does not take (405).
    Method,
    /// The datastore cannot make writes durable right now (503).
    Store,
}

impl Refused {
    /// Every reason, in counter order.
    pub const ALL: [Refused; 8] = [
        Refused::BadHead,
        Refused::Address,
        Refused::Host,
        Refused::Origin,
        Refused::Credential,
        Refused::ContentType,
        Refused::Method,
        Refused::Store,
    ];

    /// A short name for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::BadHead => "bad_head",
            Refused::Address => "address",
            Refused::Host => "host",
            Refused::Origin => "origin",
            Refused::Credential => "credential",
            Refused::ContentType => "content_type",
            Refused::Method => "method",
            Refused::Store => "store",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A refused request: the status, the reason (for the counter), a message for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Why.
    pub reason: Refused,
    /// A message for the response body (never echoes request data).
    pub message: String,
}

impl Refusal {
    fn new(status: u16, reason: Refused, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason,
            message: message.into(),
        }
    }

    /// The datastore cannot make writes durable (503): the one answer of the gate's step 7 and
    /// of a held REST answer whose write the store failed to commit.
    pub fn store_unavailable(e: &StoreError) -> Refusal {
        Refusal::new(
            503,
            Refused::Store,
            format!("data_store_not_available: {e}"),
        )
    }

    /// Extra response headers: `WWW-Authenticate` on 401, `Allow` on 405.
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        match self.status {
            401 => &[("WWW-Authenticate", "Bearer realm=\"antenna\"")],
            405 => &[("Allow", "GET, PUT")],
            _ => &[],
        }
    }

    /// The AMS-style Result body.
    pub fn body(&self) -> String {
        serde_json::json!({"success": false, "message": self.message, "dataId": null, "errorId": 0})
            .to_string()
    }
}

/// What let a request in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The admin token.
    AdminToken,
    /// An AMS REST JWT of the application.
    Jwt,
    /// Trust-loopback mode, caller on the local host.
    TrustedLoopback,
}

/// A granted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// The client address the decision was made for (the peer, or the forwarded client).
    pub client: IpAddr,
    /// What authenticated it.
    pub credential: Credential,
}

/// How the admin API is protected: the server's configuration.
#[derive(Debug, Clone, Default)]
pub struct AdminAccess {
    /// The admin token (`None`: only AMS REST JWTs, or trusted loopback, get in).
    pub admin_token: Option<String>,
    /// Callers on `127.0.0.1`/`::1` need no credential (development machines only).
    pub trust_loopback: bool,
    /// Host names accepted in `Host` and `Origin` besides IP literals and `localhost`.
    pub hosts: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// Refusal counters, by [`Refused`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateCounters([u64; 8]);

impl GateCounters {
    /// The count for one reason.
    pub fn get(&self, r: Refused) -> u64 {
        self.0.get(r.index()).copied().unwrap_or(0)
    }

    /// Every refusal.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// The gate: [`AdminAccess`] plus counters.
#[derive(Debug, Clone, Default)]
pub struct RestGate {
    token_digest: Option<[u8; 32]>,
    trust_loopback: bool,
    hosts: Vec<String>,
    trusted_proxies: Vec<IpNet>,
    counters: GateCounters,
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// `127.0.0.1` or `::1` (also as `::ffff:127.0.0.1`); no other loopback address.
pub fn is_local_host(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == std::net::Ipv6Addr::LOCALHOST,
    }
}

/// The host part of a `Host` value or URL authority (`[::1]:80` → `::1`, `a.b:80` → `a.b`),
/// lower-cased, without a trailing dot. `None` if malformed.
fn host_of(authority: &str) -> Option<String> {
    let a = authority.trim();
    if a.is_empty() || a.contains(['/', '@', ' ', '\t']) {
        return None;
    }
    let host = if let Some(rest) = a.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        h
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) if is_port(p) => h,
            Some(_) => return None,
            None => a,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

fn is_ip_literal(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok()
}

/// `scheme://authority` of an `Origin` value, or `None` (also for `null`).
fn origin_authority(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some(rest)
}

/// `application/json`, with or without parameters.
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// `/rest/v2/applications/settings/{App}` or `/{App}/rest/v2/applications/settings/{App}`.
fn is_settings_path(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    matches!(
        segs.as_slice(),
        ["rest", "v2", "applications", "settings", _]
            | [_, "rest", "v2", "applications", "settings", _]
    )
}

impl RestGate {
    /// A gate with this configuration.
    pub fn new(access: AdminAccess) -> RestGate {
        RestGate {
            token_digest: access
                .admin_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| digest(t.as_bytes())),
            trust_loopback: access.trust_loopback,
            hosts: access
                .hosts
                .iter()
                .filter_map(|h| host_of(h))
                .collect::<Vec<_>>(),
            trusted_proxies: access.trusted_proxies,
            counters: GateCounters::default(),
        }
    }

    /// Refusals so far.
    pub fn counters(&self) -> GateCounters {
        self.counters
    }

    /// Counts a refusal decided elsewhere (the runtime's head parser: 400, 411, 413).
    pub fn count(&mut self, reason: Refused) -> u64 {
        match self.counters.0.get_mut(reason.index()) {
            Some(c) => {
                *c += 1;
                *c
            }
            None => 0,
        }
    }

    /// Decides on the head of a request for an application with `settings`, from `peer`, at
    /// `now_ms` (unix ms), with the store's current `health`. Counts the refusal, if any.
    pub fn check(
        &mut self,
        settings: &AppSettings,
        health: Result<(), StoreError>,
        now_ms: u64,
        peer: IpAddr,
        head: &RestHead,
    ) -> Result<Granted, Refusal> {
        let r = self.decide(settings, health, now_ms, peer, head);
        if let Err(refusal) = &r {
            self.count(refusal.reason);
        }
        r
    }

    fn decide(
        &self,
        settings: &AppSettings,
        health: Result<(), StoreError>,
        now_ms: u64,
        peer: IpAddr,
        head: &RestHead,
    ) -> Result<Granted, Refusal> {
        // 1. Client address.
        let (client, forwarded) = self.client_ip(peer, head.forwarded_for.as_deref())?;
        if !settings.rest_allowed(client) {
            return Err(Refusal::new(403, Refused::Address, "Not allowed IP"));
        }
        // 2. Host.
        let Some(host) = head.host.as_deref() else {
            return Err(Refusal::new(400, Refused::Host, "Host header required"));
        };
        let Some(host_name) = host_of(host) else {
            return Err(Refusal::new(400, Refused::Host, "malformed Host header"));
        };
        if !self.known_host(&host_name) {
            return Err(Refusal::new(
                421,
                Refused::Host,
                "Host is not an IP address or a configured name (rest_hosts)",
            ));
        }
        // 3. Origin, else Sec-Fetch-Site.
        match head.origin.as_deref() {
            Some(origin) => {
                let same = origin_authority(origin).is_some_and(|a| {
                    a.eq_ignore_ascii_case(host.trim())
                        || host_of(a).is_some_and(|h| self.hosts.contains(&h))
                });
                if !same {
                    return Err(Refusal::new(
                        403,
                        Refused::Origin,
                        "cross-origin requests are not allowed",
                    ));
                }
            }
            None => {
                if let Some(site) = head.sec_fetch_site.as_deref() {
                    let site = site.trim();
                    if !(site.eq_ignore_ascii_case("same-origin")
                        || site.eq_ignore_ascii_case("none"))
                    {
                        return Err(Refusal::new(
                            403,
                            Refused::Origin,
                            "cross-site requests are not allowed",
                        ));
                    }
                }
            }
        }
        // 4. Credential.
        let credential = self.credential(settings, now_ms, peer, forwarded, head)?;
        // 5. Content type.
        let method = head.method.to_ascii_uppercase();
        let reads = method == "GET" || method == "HEAD";
        if !reads && !is_json(head.content_type.as_deref()) {
            return Err(Refusal::new(
                415,
                Refused::ContentType,
                "send Content-Type: application/json",
            ));
        }
        // 6. Method of the settings resource.
        if is_settings_path(&head.path) && !(reads || method == "PUT") {
            return Err(Refusal::new(
                405,
                Refused::Method,
                "application settings change with PUT",
            ));
        }
        // 7. Store.
        if let Err(e) = health {
            return Err(Refusal::store_unavailable(&e));
        }
        Ok(Granted { client, credential })
    }

    /// The client address (the peer, or what a trusted proxy says it forwarded for), and
    /// whether it was forwarded.
    fn client_ip(
        &self,
        peer: IpAddr,
        forwarded_for: Option<&str>,
    ) -> Result<(IpAddr, bool), Refusal> {
        let trusted = |ip: IpAddr| {
            let ip = ip.to_canonical();
            self.trusted_proxies.iter().any(|n| n.contains(&ip))
        };
        if !trusted(peer) {
            return Ok((peer, false));
        }
        let Some(list) = forwarded_for else {
            return Ok((peer, false));
        };
        // Right to left: the first entry a trusted proxy did not add is the client.
        let mut client = peer;
        for entry in list.rsplit(',') {
            let entry = entry.trim();
            let ip = entry
                .parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
                .ok_or_else(|| Refusal::new(400, Refused::BadHead, "malformed X-Forwarded-For"))?;
            client = ip;
            if !trusted(ip) {
                break;
            }
        }
        Ok((client, true))
    }

    fn known_host(&self, host: &str) -> bool {
        is_ip_literal(host.trim_start_matches('[').trim_end_matches(']'))
            || host == "localhost"
            || self.hosts.iter().any(|h| h == host)
    }

    fn credential(
        &self,
        settings: &AppSettings,
        now_ms: u64,
        peer: IpAddr,
        forwarded: bool,
        head: &RestHead,
    ) -> Result<Credential, Refusal> {
        let presented = head
            .authorization
            .as_deref()
            .map(str::trim)
            .map(|a| a.strip_prefix("Bearer ").unwrap_or(a).trim())
            .filter(|a| !a.is_empty());
        if let Some(p) = presented {
            if let Some(want) = &self.token_digest {
                let got = digest(p.as_bytes());
                if got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 {
                    return Ok(Credential::AdminToken);
                }
            }
            if !settings.jwt_secret_key.is_empty()
                && crypto::jwt_verify_rest(p, &settings.jwt_secret_key, now_ms / 1000).is_ok()
            {
                return Ok(Credential::Jwt);
            }
        }
        if self.trust_loopback && !settings.jwt_control_enabled && is_local_host(peer) && !forwarded
        {
            return Ok(Credential::TrustedLoopback);
        }
        Err(Refusal::new(
            401,
            Refused::Credential,
            "admin credential required: Authorization: Bearer <admin token or REST JWT>",
        ))
    }
}

impl RestHead {
    /// The request the REST handlers answer: this head with its `body`, from `peer`.
    pub fn request<'a>(&'a self, body: &'a [u8]) -> crate::RestRequest<'a> {
        crate::RestRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            body,
        }
    }

    /// The REST head of a parsed request for `app`, or the refusal of a malformed one:
    /// a `Transfer-Encoding` (411: send `Content-Length`), a bad or repeated `Content-Length`
    /// (400), a body over [`MAX_BODY_LEN`] (413).
    pub fn from_request(req: &httparse::Request<'_, '_>, app: &str) -> Result<RestHead, Refusal> {
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let count = |name: &str| {
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .count()
        };
        let bad = |status: u16, msg: &str| Refusal::new(status, Refused::BadHead, msg);
        let target = req.path.unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let path = path.split('#').next().unwrap_or("");
        let query = query.split('#').next().unwrap_or("");
        if count("transfer-encoding") > 0 {
            return Err(bad(411, "send the body with Content-Length"));
        }
        for name in [
            "content-length",
            "host",
            "origin",
            "content-type",
            "authorization",
        ] {
            if count(name) > 1 {
                return Err(bad(400, "repeated header"));
            }
        }
        let content_length = match header("content-length") {
            None => 0,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) => n,
                Err(_) => return Err(bad(400, "invalid Content-Length")),
            },
        };
        if content_length > MAX_BODY_LEN {
            return Err(bad(413, "request body too large"));
        }
        let expect_continue = header("expect").is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("100-continue"))
        });
        Ok(RestHead {
            method: req.method.unwrap_or("").to_string(),
            path: path.to_string(),
            query: query.to_string(),
            authorization: header("authorization"),
            content_length,
            app: app.to_string(),
            expect_continue,
            host: header("host"),
            origin: header("origin"),
            sec_fetch_site: header("sec-fetch-site"),
            content_type: header("content-type"),
            forwarded_for: header("x-forwarded-for"),
        })
    }
}

#[cfg(test)]
mod tests;
