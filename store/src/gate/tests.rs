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
