//! Fuzzes the admin REST API from raw request bytes: the request head (httparse, then
//! `RestHead::from_request`), the access decision on it (`RestGate::check`) and, when granted,
//! the REST handlers with the body that follows (`RestApi::serve`).
//!
//! The first input byte picks the configuration and the peer: bit 0 trust-loopback mode,
//! bit 1 127.0.0.1 as a trusted proxy, bits 2-3 the peer (127.0.0.1, ::1, 127.0.0.2,
//! 192.0.2.1), bit 4 a store that is down. Besides "never panics", it checks:
//! - a head refused by the parser gets 400, 411 or 413, and a parsed one never announces a
//!   body over `MAX_BODY_LEN`;
//! - every refusal has one of the gate's statuses, is counted once, and its body is JSON that
//!   does not echo the request; a down store never lets a request through;
//! - a granted request came with a credential the gate knows, from an allowed address, and
//!   mutating requests carried `application/json`;
//! - the handlers answer with an HTTP status, never reveal the admin token, and the settings
//!   read back afterwards show every secret redacted (null, empty or the placeholder).
#![no_main]

use std::net::IpAddr;

use antenna_store::{
    is_secret_key, shared, AdminAccess, Credential, MemStore, RestApi, RestGate, RestHead,
    RestRequest, StoreError, MAX_BODY_LEN, REDACTED,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const TOKEN: &str = "fuzz-admin-token-0123456789";
const NOW_MS: u64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(n)) = req.parse(input) else {
        return;
    };
    let body = input.get(n..).unwrap_or_default();
    let head = match RestHead::from_request(&req, "App") {
        Ok(h) => h,
        Err(r) => {
            assert!(matches!(r.status, 400 | 411 | 413), "{r:?}");
            return;
        }
    };
    assert!(head.content_length <= MAX_BODY_LEN);
    let store = shared(MemStore::new());
    let mut gate = RestGate::new(AdminAccess {
        admin_token: Some(TOKEN.into()),
        trust_loopback: ctl & 1 != 0,
        hosts: vec!["media.example.org".into()],
        trusted_proxies: if ctl & 2 != 0 {
            vec!["127.0.0.1/32".parse().expect("cidr")]
        } else {
            vec![]
        },
    });
    let peer: IpAddr = match (ctl >> 2) & 3 {
        0 => "127.0.0.1",
        1 => "::1",
        2 => "127.0.0.2",
        _ => "192.0.2.1",
    }
    .parse()
    .expect("ip");
    let down = ctl & 16 != 0;
    let health = if down {
        Err(StoreError::Degraded("fuzz".into()))
    } else {
        Ok(())
    };
    let settings = store.borrow().data().settings("App");
    let granted = match gate.check(&settings, health, NOW_MS, peer, &head) {
        Err(r) => {
            assert!(
                matches!(r.status, 400 | 401 | 403 | 405 | 415 | 421 | 503),
                "{r:?}"
            );
            assert_eq!(gate.counters().total(), 1);
            assert_eq!(gate.counters().get(r.reason), 1);
            let v: Value = serde_json::from_str(&r.body()).expect("refusal body is JSON");
            assert_eq!(v["success"], false);
            return;
        }
        Ok(g) => g,
    };
    assert!(!down, "a down store let a request through");
    assert_eq!(gate.counters().total(), 0);
    let local = antenna_store::is_local_host(granted.client);
    assert!(local || granted.client != peer || ctl & 2 != 0);
    if granted.credential == Credential::TrustedLoopback {
        assert!(ctl & 1 != 0 && antenna_store::is_local_host(peer));
    }
    let method = head.method.to_ascii_uppercase();
    if method != "GET" && method != "HEAD" {
        let ct = head
            .content_type
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(ct.trim_start().starts_with("application/json"), "{ct:?}");
    }
    let body = body
        .get(..head.content_length.min(body.len()))
        .unwrap_or_default();
    let mut api = RestApi::new(store.clone(), [7; 32]);
    let resp = api.serve(NOW_MS, &head.request(body));
    assert!((200..600).contains(&resp.status));
    // The admin token never appears in an answer, unless the client itself sent it in the body
    // (an error message may quote the client's own invalid value back, JSON-escaped).
    let echoed = body.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
    assert!(echoed || !resp.body_str().contains(TOKEN));
    // Whatever was written, the settings read back show no secret.
    let after = api.serve(
        NOW_MS,
        &RestRequest {
            method: "GET",
            path: "/rest/v2/applications/settings/App",
            query: "",
            body: b"",
        },
    );
    assert_eq!(after.status, 200);
    let v: Value = serde_json::from_slice(&after.body).expect("settings JSON");
    for (k, val) in v.as_object().expect("settings object") {
        if is_secret_key(k) {
            assert!(
                val.is_null() || val == "" || val == REDACTED,
                "secret {k} shown: {val}"
            );
        }
    }
});
