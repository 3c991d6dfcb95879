//! The admin REST API's front gate: who may call it, decided on the request **head** alone.
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
use crate::settings::{parse_cidr_list, AppSettings};
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
        let allowed = is_local_host(client)
            || parse_cidr_list(&settings.remote_allowed_cidr)
                .map(|nets| nets.iter().any(|n| n.contains(&client.to_canonical())))
                .unwrap_or(false);
        if !allowed {
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
mod tests {
    use super::*;
    use serde_json::Map;

    const TOKEN: &str = "admin-token-0123456789";
    const NOW: u64 = 1_700_000_000_000;

    fn gate() -> RestGate {
        RestGate::new(AdminAccess {
            admin_token: Some(TOKEN.into()),
            trust_loopback: false,
            hosts: vec!["Media.Example.org".into()],
            trusted_proxies: vec![],
        })
    }

    fn head(method: &str, path: &str) -> RestHead {
        RestHead {
            method: method.into(),
            path: path.into(),
            app: "App".into(),
            host: Some("127.0.0.1:5080".into()),
            authorization: Some(format!("Bearer {TOKEN}")),
            content_type: (method != "GET").then(|| "application/json".into()),
            ..RestHead::default()
        }
    }

    fn local() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn status(g: &mut RestGate, s: &AppSettings, peer: IpAddr, h: &RestHead) -> u16 {
        match g.check(s, Ok(()), NOW, peer, h) {
            Ok(_) => 200,
            Err(r) => r.status,
        }
    }

    const B: &str = "/App/rest/v2/broadcasts/count";
    const S: &str = "/rest/v2/applications/settings/App";

    #[test]
    fn the_admin_token_lets_a_local_caller_in() {
        let mut g = gate();
        let s = AppSettings::default();
        assert_eq!(
            g.check(&s, Ok(()), NOW, local(), &head("GET", B)),
            Ok(Granted {
                client: local(),
                credential: Credential::AdminToken
            })
        );
        // Without it, or with a wrong one: 401, even on loopback.
        let mut h = head("GET", B);
        h.authorization = None;
        assert_eq!(status(&mut g, &s, local(), &h), 401);
        h.authorization = Some("Bearer admin-token-0123456788".into());
        assert_eq!(status(&mut g, &s, local(), &h), 401);
        h.authorization = Some(TOKEN.into());
        assert_eq!(status(&mut g, &s, local(), &h), 200);
        assert_eq!(g.counters().get(Refused::Credential), 2);
    }

    #[test]
    fn trust_loopback_mode_and_jwt_control() {
        let mut g = RestGate::new(AdminAccess {
            trust_loopback: true,
            ..AdminAccess::default()
        });
        let mut s = AppSettings::default();
        let mut h = head("GET", B);
        h.authorization = None;
        assert_eq!(status(&mut g, &s, local(), &h), 200);
        assert_eq!(status(&mut g, &s, "::1".parse().unwrap(), &h), 200);
        // jwtControlEnabled: a JWT is needed even on loopback.
        s.jwt_control_enabled = true;
        s.jwt_secret_key = "k0123456789abcdef0123456789abcdef".into();
        assert_eq!(status(&mut g, &s, local(), &h), 401);
        let mut claims = Map::new();
        claims.insert("exp".into(), (NOW / 1000 + 60).into());
        let jwt = crypto::jwt_sign(&claims, &s.jwt_secret_key).unwrap();
        h.authorization = Some(format!("Bearer {jwt}"));
        assert_eq!(
            g.check(&s, Ok(()), NOW, local(), &h).map(|g| g.credential),
            Ok(Credential::Jwt)
        );
        // Expired.
        assert_eq!(
            g.check(&s, Ok(()), NOW + 120_000, local(), &h)
                .map_err(|r| r.status),
            Err(401)
        );
    }

    #[test]
    fn addresses_and_trusted_proxies() {
        let mut g = gate();
        let s = AppSettings::default();
        let h = head("GET", B);
        assert_eq!(status(&mut g, &s, "127.0.0.2".parse().unwrap(), &h), 403);
        assert_eq!(status(&mut g, &s, "192.0.2.1".parse().unwrap(), &h), 403);
        let cidr = AppSettings {
            remote_allowed_cidr: "127.0.0.1, 192.0.2.0/24".into(),
            ..AppSettings::default()
        };
        assert_eq!(status(&mut g, &cidr, "192.0.2.1".parse().unwrap(), &h), 200);
        // X-Forwarded-For is ignored from an untrusted peer...
        let mut fwd = h.clone();
        fwd.forwarded_for = Some("127.0.0.1".into());
        assert_eq!(
            status(&mut g, &s, "198.51.100.1".parse().unwrap(), &fwd),
            403
        );
        // ... and believed from a trusted proxy, right to left.
        let mut g = RestGate::new(AdminAccess {
            admin_token: Some(TOKEN.into()),
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
            trust_loopback: true,
            ..AdminAccess::default()
        });
        fwd.forwarded_for = Some("127.0.0.1, 203.0.113.9".into());
        assert_eq!(status(&mut g, &s, local(), &fwd), 403);
        assert_eq!(
            g.check(&cidr, Ok(()), NOW, local(), &{
                let mut x = fwd.clone();
                x.forwarded_for = Some("203.0.113.9, 192.0.2.5".into());
                x
            })
            .map(|g| g.client),
            Ok("192.0.2.5".parse().unwrap())
        );
        // A forwarded request never counts as trusted loopback, whatever it claims.
        let mut anon = fwd.clone();
        anon.authorization = None;
        anon.forwarded_for = Some("127.0.0.1".into());
        assert_eq!(status(&mut g, &s, local(), &anon), 401);
        anon.forwarded_for = None;
        assert_eq!(status(&mut g, &s, local(), &anon), 200);
        anon.forwarded_for = Some("192.0.2.5".into());
        assert_eq!(status(&mut g, &cidr, local(), &anon), 401);
        anon.forwarded_for = Some("junk".into());
        assert_eq!(status(&mut g, &s, local(), &anon), 400);
    }

    /// Host, Origin, Sec-Fetch-Site, expected status.
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, u16);

    #[test]
    fn hosts_and_origins() {
        let mut g = gate();
        let s = AppSettings::default();
        let with = |host: Option<&str>, origin: Option<&str>, site: Option<&str>| {
            let mut h = head("PUT", S);
            h.host = host.map(str::to_string);
            h.origin = origin.map(str::to_string);
            h.sec_fetch_site = site.map(str::to_string);
            h
        };
        let cases: &[Case<'_>] = &[
            (Some("127.0.0.1:5080"), None, None, 200),
            (Some("127.0.0.1"), None, None, 200),
            (Some("[::1]:5080"), None, None, 200),
            (Some("localhost:5080"), None, None, 200),
            (Some("media.example.org"), None, None, 200),
            (Some("MEDIA.example.org.:443"), None, None, 200),
            (Some("evil.example"), None, None, 421),
            (Some("127.0.0.1.evil.example"), None, None, 421),
            (None, None, None, 400),
            (Some("a b"), None, None, 400),
            (
                Some("127.0.0.1:5080"),
                Some("http://127.0.0.1:5080"),
                None,
                200,
            ),
            (
                Some("127.0.0.1:5080"),
                Some("http://127.0.0.1:8080"),
                None,
                403,
            ),
            (
                Some("127.0.0.1:5080"),
                Some("http://evil.example"),
                None,
                403,
            ),
            (Some("127.0.0.1:5080"), Some("null"), None, 403),
            (
                Some("127.0.0.1:5080"),
                Some("https://media.example.org"),
                None,
                200,
            ),
            (Some("127.0.0.1:5080"), None, Some("cross-site"), 403),
            (Some("127.0.0.1:5080"), None, Some("same-site"), 403),
            (Some("127.0.0.1:5080"), None, Some("same-origin"), 200),
            (Some("127.0.0.1:5080"), None, Some("none"), 200),
        ];
        for (host, origin, site, want) in cases {
            assert_eq!(
                status(&mut g, &s, local(), &with(*host, *origin, *site)),
                *want,
                "{host:?} {origin:?} {site:?}"
            );
        }
        assert_eq!(g.counters().get(Refused::Host), 4);
        assert_eq!(g.counters().get(Refused::Origin), 5);
    }

    #[test]
    fn content_type_method_and_store() {
        let mut g = gate();
        let s = AppSettings::default();
        let mut h = head("POST", "/App/rest/v2/broadcasts/create");
        h.content_type = Some("text/plain".into());
        assert_eq!(status(&mut g, &s, local(), &h), 415);
        h.content_type = None;
        assert_eq!(status(&mut g, &s, local(), &h), 415);
        h.content_type = Some("Application/JSON; charset=utf-8".into());
        assert_eq!(status(&mut g, &s, local(), &h), 200);
        let mut del = head("DELETE", "/App/rest/v2/broadcasts/x");
        del.content_type = None;
        assert_eq!(status(&mut g, &s, local(), &del), 415);
        // Settings: GET and PUT only.
        assert_eq!(status(&mut g, &s, local(), &head("POST", S)), 405);
        assert_eq!(
            status(&mut g, &s, local(), &head("POST", &format!("/App{S}"))),
            405
        );
        assert_eq!(status(&mut g, &s, local(), &head("PUT", S)), 200);
        assert_eq!(status(&mut g, &s, local(), &head("GET", S)), 200);
        // A degraded store: 503 after the access checks.
        let down = Err(StoreError::Degraded("disk full".into()));
        let r = g.check(&s, down.clone(), NOW, local(), &head("GET", B));
        assert_eq!(
            r.map_err(|r| (r.status, r.reason)),
            Err((503, Refused::Store))
        );
        let mut anon = head("GET", B);
        anon.authorization = None;
        assert_eq!(
            g.check(&s, down, NOW, local(), &anon).map_err(|r| r.status),
            Err(401)
        );
        let c = g.counters();
        assert_eq!(
            (
                c.get(Refused::ContentType),
                c.get(Refused::Method),
                c.get(Refused::Store)
            ),
            (3, 2, 1)
        );
        assert_eq!(c.total(), 7);
    }

    fn parse(raw: &str) -> Result<RestHead, Refusal> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(raw.as_bytes()).unwrap().is_complete());
        RestHead::from_request(&req, "App")
    }

    #[test]
    fn heads_are_parsed_and_malformed_ones_refused() {
        let h = parse(
            "PUT /App/rest/v2/broadcasts/s1?a=1#f HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Origin: http://127.0.0.1\r\nContent-Type: application/json\r\n\
             Authorization: Bearer x\r\nX-Forwarded-For: 1.2.3.4\r\n\
             Sec-Fetch-Site: same-origin\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.query.as_str()),
            ("PUT", "/App/rest/v2/broadcasts/s1", "a=1")
        );
        assert_eq!(h.content_length, 5);
        assert!(h.expect_continue);
        assert_eq!(h.forwarded_for.as_deref(), Some("1.2.3.4"));
        assert_eq!(h.sec_fetch_site.as_deref(), Some("same-origin"));
        let status = |raw: &str| parse(raw).map(|_| 200).unwrap_or_else(|r| r.status);
        assert_eq!(
            status("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(
            status("POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            400
        );
        assert_eq!(status("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(
            status(&format!(
                "POST /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                MAX_BODY_LEN + 1
            )),
            413
        );
    }
}
