//! The admin REST API of the real `antenna` binary over real HTTP: every endpoint, bad input,
//! unknown ids, missing or wrong JWT, a caller outside `remoteAllowedCIDR`, oversize bodies,
//! and the OpenAPI document.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::{http_json, http_raw, unix_s, Server};
use serde_json::{json, Map, Value};

const REST_KEY: &str = "rest-api-secret-key-0123456789abcdef";

fn server() -> Server {
    Server::start_with_config(
        "rest",
        &format!(
            r#"
            [apps.WebRTCAppEE]
            [apps.Secured]
            jwtControlEnabled = true
            jwtSecretKey = "{REST_KEY}"
            "#
        ),
    )
}

const B: &str = "/WebRTCAppEE/rest/v2/broadcasts";

/// The headers of an admin JSON request (credential and content type), for raw requests.
fn admin_headers(s: &Server) -> String {
    format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        s.admin_token.as_deref().expect("admin token")
    )
}

/// A call with the admin token.
fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    s.rest(method, path, body.map(|b| b.to_string()).as_deref())
}

fn ok(r: &(u16, Value)) {
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["success"], true, "{}", r.1);
}

fn fails(r: &(u16, Value), status: u16) {
    assert_eq!(r.0, status, "{}", r.1);
    assert_eq!(r.1["success"], false, "{}", r.1);
    assert!(r.1["message"].is_string(), "{}", r.1);
}

#[test]
fn broadcasts_crud_list_count_and_statistics() {
    let s = server();
    // create: explicit and generated ids; duplicates and bad ids refused; bad JSON refused.
    let (st, b) = call(
        &s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"streamId": "s1", "name": "one"})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (b["streamId"].as_str(), b["status"].as_str()),
        (Some("s1"), Some("created"))
    );
    let (st, g) = call(
        &s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"name": "gen"})),
    );
    assert_eq!(st, 200, "{g}");
    let gen_id = g["streamId"].as_str().expect("generated id").to_string();
    assert!(gen_id.len() > 16, "{gen_id}");
    fails(
        &call(
            &s,
            "POST",
            &format!("{B}/create"),
            Some(json!({"streamId": "s1"})),
        ),
        400,
    );
    fails(
        &call(
            &s,
            "POST",
            &format!("{B}/create"),
            Some(json!({"streamId": "bad id!"})),
        ),
        400,
    );
    let (st, _) = s.rest("POST", &format!("{B}/create"), Some("{not json"));
    assert_eq!(st, 400);
    // get, unknown id, invalid id.
    let (st, got) = call(&s, "GET", &format!("{B}/s1"), None);
    assert_eq!((st, got["name"].as_str()), (200, Some("one")), "{got}");
    fails(&call(&s, "GET", &format!("{B}/nope"), None), 404);
    fails(&call(&s, "GET", &format!("{B}/bad%20id"), None), 400);
    // update merges keys.
    ok(&call(
        &s,
        "PUT",
        &format!("{B}/s1"),
        Some(json!({"description": "d"})),
    ));
    let (_, got) = call(&s, "GET", &format!("{B}/s1"), None);
    assert_eq!(
        (got["name"].as_str(), got["description"].as_str()),
        (Some("one"), Some("d"))
    );
    fails(
        &call(&s, "PUT", &format!("{B}/nope"), Some(json!({"name": "x"}))),
        404,
    );
    fails(
        &call(
            &s,
            "PUT",
            &format!("{B}/s1"),
            Some(json!({"webRTCViewerLimit": "x"})),
        ),
        400,
    );
    // list and count.
    for i in 0..3 {
        call(
            &s,
            "POST",
            &format!("{B}/create"),
            Some(json!({"streamId": format!("l{i}")})),
        );
    }
    let (st, list) = call(&s, "GET", &format!("{B}/list/0/50"), None);
    assert_eq!(st, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(5), "{list}");
    let (_, page) = call(
        &s,
        "GET",
        &format!("{B}/list/1/2?sort_by=name&order_by=desc"),
        None,
    );
    assert_eq!(page.as_array().map(Vec::len), Some(2), "{page}");
    let (_, found) = call(&s, "GET", &format!("{B}/list/0/10?search=l1"), None);
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    fails(&call(&s, "GET", &format!("{B}/list/x/10"), None), 400);
    let (st, n) = call(&s, "GET", &format!("{B}/count"), None);
    assert_eq!((st, n["number"].as_u64()), (200, Some(5)));
    let (st, n) = call(&s, "GET", &format!("{B}/active-live-stream-count"), None);
    assert_eq!((st, n["number"].as_u64()), (200, Some(0)));
    // statistics.
    let (st, stats) = call(&s, "GET", &format!("{B}/s1/broadcast-statistics"), None);
    assert_eq!(
        (st, stats["totalWebRTCWatchersCount"].as_i64()),
        (200, Some(0)),
        "{stats}"
    );
    fails(
        &call(&s, "GET", &format!("{B}/nope/broadcast-statistics"), None),
        404,
    );
    let (st, t) = call(&s, "GET", &format!("{B}/total-broadcast-statistics"), None);
    assert_eq!(
        (st, t["activeLiveStreamCount"].as_u64()),
        (200, Some(0)),
        "{t}"
    );
    // delete one, unknown, many.
    ok(&call(&s, "DELETE", &format!("{B}/{gen_id}"), None));
    fails(&call(&s, "DELETE", &format!("{B}/{gen_id}"), None), 404);
    ok(&call(&s, "DELETE", &format!("{B}?ids=l0,l1"), None));
    fails(&call(&s, "DELETE", &format!("{B}?ids=l2,gone"), None), 404);
    fails(&call(&s, "DELETE", B, None), 400);
    let (_, n) = call(&s, "GET", &format!("{B}/count"), None);
    assert_eq!(n["number"].as_u64(), Some(1), "{n}");
    // Wrong method, unknown route.
    fails(&call(&s, "GET", &format!("{B}/create"), None), 405);
    fails(&call(&s, "GET", "/WebRTCAppEE/rest/v2/nothing", None), 404);
}

#[test]
fn tokens_validate_list_and_delete() {
    let s = server();
    call(
        &s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"streamId": "tk1"})),
    );
    let exp = unix_s(600);
    let (st, t) = call(
        &s,
        "GET",
        &format!("{B}/tk1/token?expireDate={exp}&type=play"),
        None,
    );
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        (t["streamId"].as_str(), t["expireDate"].as_i64()),
        (Some("tk1"), Some(exp))
    );
    // Bad input: missing or past expireDate, bad type.
    fails(
        &call(&s, "GET", &format!("{B}/tk1/token?type=play"), None),
        400,
    );
    fails(
        &call(
            &s,
            "GET",
            &format!("{B}/tk1/token?expireDate={}&type=play", unix_s(-5)),
            None,
        ),
        400,
    );
    fails(
        &call(
            &s,
            "GET",
            &format!("{B}/tk1/token?expireDate={exp}&type=watch"),
            None,
        ),
        400,
    );
    // jwt-token needs jwtStreamSecretKey.
    fails(
        &call(
            &s,
            "GET",
            &format!("{B}/tk1/jwt-token?expireDate={exp}&type=play"),
            None,
        ),
        400,
    );
    ok(&call(
        &s,
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(json!({"jwtStreamSecretKey": "k0123456789abcdef0123456789abcdef"})),
    ));
    let (st, j) = call(
        &s,
        "GET",
        &format!("{B}/tk1/jwt-token?expireDate={exp}&type=play"),
        None,
    );
    assert_eq!(st, 200, "{j}");
    assert_eq!(
        j["tokenId"].as_str().map(|t| t.split('.').count()),
        Some(3),
        "{j}"
    );
    // list
    let (st, list) = call(&s, "GET", &format!("{B}/tk1/tokens/list/0/10"), None);
    assert_eq!(
        (st, list.as_array().map(Vec::len)),
        (200, Some(1)),
        "{list}"
    );
    fails(
        &call(&s, "GET", &format!("{B}/tk1/tokens/list/0/x"), None),
        400,
    );
    // validate-token uses it up; a wrong type or unknown token is not valid.
    let wrong = json!({"tokenId": t["tokenId"], "streamId": "tk1", "type": "publish"});
    let r = call(&s, "POST", &format!("{B}/validate-token"), Some(wrong));
    assert_eq!((r.0, &r.1["success"]), (200, &json!(false)), "{}", r.1);
    ok(&call(
        &s,
        "POST",
        &format!("{B}/validate-token"),
        Some(t.clone()),
    ));
    let r = call(&s, "POST", &format!("{B}/validate-token"), Some(t));
    assert_eq!(r.1["success"], false, "{}", r.1);
    fails(
        &call(
            &s,
            "POST",
            &format!("{B}/validate-token"),
            Some(json!({"x": 1})),
        ),
        400,
    );
    // delete all tokens of the stream.
    call(
        &s,
        "GET",
        &format!("{B}/tk1/token?expireDate={exp}&type=publish"),
        None,
    );
    ok(&call(&s, "DELETE", &format!("{B}/tk1/tokens"), None));
    let (_, list) = call(&s, "GET", &format!("{B}/tk1/tokens/list/0/10"), None);
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
}

#[test]
fn subscribers_totp_block_and_subtracks() {
    let s = server();
    call(
        &s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"streamId": "m1"})),
    );
    call(
        &s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"streamId": "sub1"})),
    );
    let add = |body: Value| call(&s, "POST", &format!("{B}/m1/subscribers"), Some(body));
    ok(&add(
        json!({"subscriberId": "alice", "b32Secret": "JBSWY3DPEHPK3PXP", "type": "play"}),
    ));
    ok(&add(
        json!({"subscriberId": "bobby", "b32Secret": "JBSWY3DPEHPK3PXP", "type": "publish"}),
    ));
    fails(&add(json!({"subscriberId": "ab", "type": "play"})), 400);
    fails(
        &add(json!({"subscriberId": "carol", "b32Secret": "not base32!", "type": "play"})),
        400,
    );
    fails(
        &add(json!({"subscriberId": "carol", "type": "play", "totpExpiryPeriodSeconds": 5})),
        400,
    );
    let (st, list) = call(&s, "GET", &format!("{B}/m1/subscribers/list/0/10"), None);
    assert_eq!(
        (st, list.as_array().map(Vec::len)),
        (200, Some(2)),
        "{list}"
    );
    assert!(
        !list.to_string().contains("JBSWY3DPEHPK3PXP"),
        "secrets listed: {list}"
    );
    // TOTP: a 6-digit code; bad type; no secret for an unknown subscriber.
    let r = call(&s, "GET", &format!("{B}/m1/subscribers/alice/totp"), None);
    ok(&r);
    assert_eq!(r.1["dataId"].as_str().map(str::len), Some(6), "{}", r.1);
    fails(
        &call(
            &s,
            "GET",
            &format!("{B}/m1/subscribers/alice/totp?type=x"),
            None,
        ),
        400,
    );
    fails(
        &call(&s, "GET", &format!("{B}/m1/subscribers/nobody/totp"), None),
        400,
    );
    // block
    ok(&call(
        &s,
        "PUT",
        &format!("{B}/m1/subscribers/alice/block/60/play"),
        None,
    ));
    fails(
        &call(
            &s,
            "PUT",
            &format!("{B}/m1/subscribers/nobody/block/60/play"),
            None,
        ),
        404,
    );
    fails(
        &call(
            &s,
            "PUT",
            &format!("{B}/m1/subscribers/alice/block/x/play"),
            None,
        ),
        400,
    );
    fails(
        &call(
            &s,
            "PUT",
            &format!("{B}/m1/subscribers/alice/block/60/x"),
            None,
        ),
        400,
    );
    // delete one, unknown, all.
    ok(&call(
        &s,
        "DELETE",
        &format!("{B}/m1/subscribers/alice"),
        None,
    ));
    fails(
        &call(&s, "DELETE", &format!("{B}/m1/subscribers/alice"), None),
        404,
    );
    ok(&call(&s, "DELETE", &format!("{B}/m1/subscribers"), None));
    let (_, list) = call(&s, "GET", &format!("{B}/m1/subscribers/list/0/10"), None);
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    // subtracks
    ok(&call(&s, "POST", &format!("{B}/m1/subtrack?id=sub1"), None));
    let (_, m) = call(&s, "GET", &format!("{B}/m1"), None);
    assert_eq!(m["subTrackStreamIds"], json!(["sub1"]), "{m}");
    let (_, sub) = call(&s, "GET", &format!("{B}/sub1"), None);
    assert_eq!(sub["mainTrackStreamId"], "m1", "{sub}");
    fails(&call(&s, "POST", &format!("{B}/m1/subtrack"), None), 400);
    fails(
        &call(&s, "POST", &format!("{B}/nope/subtrack?id=sub1"), None),
        404,
    );
    ok(&call(
        &s,
        "DELETE",
        &format!("{B}/m1/subtrack?id=sub1"),
        None,
    ));
    fails(
        &call(&s, "DELETE", &format!("{B}/m1/subtrack?id=sub1"), None),
        404,
    );
}

#[test]
fn application_settings_get_put_and_bad_input() {
    let s = server();
    for path in [
        "/rest/v2/applications/settings/WebRTCAppEE",
        "/WebRTCAppEE/rest/v2/applications/settings/WebRTCAppEE",
    ] {
        let (st, v) = call(&s, "GET", path, None);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["remoteAllowedCIDR"], "127.0.0.1", "{v}");
        assert_eq!(v["webRTCViewerLimit"], -1, "{v}");
    }
    ok(&call(
        &s,
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(json!({"webRTCViewerLimit": 7, "hlsMuxingEnabled": true})),
    ));
    let (_, v) = call(
        &s,
        "GET",
        "/rest/v2/applications/settings/WebRTCAppEE",
        None,
    );
    assert_eq!(
        (v["webRTCViewerLimit"].as_i64(), &v["hlsMuxingEnabled"]),
        (Some(7), &json!(true))
    );
    let put = |body: &str| {
        s.rest(
            "PUT",
            "/rest/v2/applications/settings/WebRTCAppEE",
            Some(body),
        )
    };
    fails(&put("{not json"), 400);
    fails(&put(r#"{"webRTCViewerLimit": "many"}"#), 400);
    fails(&put(r#"{"remoteAllowedCIDR": "10.0.0.0/33"}"#), 400);
    fails(&put(r#"{"timeTokenPeriod": 0}"#), 400);
    fails(
        &call(
            &s,
            "DELETE",
            "/rest/v2/applications/settings/WebRTCAppEE",
            None,
        ),
        405,
    );
    // Unknown application: 404 from the router.
    let (st, _) = call(&s, "GET", "/rest/v2/applications/settings/Nope", None);
    assert_eq!(st, 404);
    let (st, _) = call(&s, "GET", "/Nope/rest/v2/broadcasts/count", None);
    assert_eq!(st, 404);
}

#[test]
fn openapi_document() {
    let s = server();
    let (st, doc) = call(&s, "GET", "/WebRTCAppEE/rest/v2/openapi.json", None);
    assert_eq!(st, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "{doc}"
    );
    let paths: &Map<String, Value> = doc["paths"].as_object().expect("paths");
    assert!(
        paths.keys().any(|p| p.contains("broadcasts/create")),
        "{paths:?}"
    );
}

#[test]
fn jwt_protected_application() {
    let s = server();
    let path = "/Secured/rest/v2/broadcasts/count";
    // Missing, malformed, wrongly signed, expired: 401.
    fails(&http_json(s.http, "GET", path, None, None), 401);
    fails(
        &http_json(s.http, "GET", path, Some("Bearer nope"), None),
        401,
    );
    let sign = |claims: Value, key: &str| {
        let Value::Object(c) = claims else { panic!() };
        antenna_store::crypto::jwt_sign(&c, key).expect("sign")
    };
    let other = sign(
        json!({"exp": unix_s(600)}),
        "another-key-0123456789abcdef0123456789",
    );
    fails(&http_json(s.http, "GET", path, Some(&other), None), 401);
    let expired = sign(json!({"exp": unix_s(-600)}), REST_KEY);
    fails(&http_json(s.http, "GET", path, Some(&expired), None), 401);
    // A valid one, with or without "Bearer ".
    let good = sign(json!({"exp": unix_s(600)}), REST_KEY);
    let (st, n) = http_json(s.http, "GET", path, Some(&good), None);
    assert_eq!((st, n["number"].as_u64()), (200, Some(0)), "{n}");
    let (st, _) = http_json(s.http, "GET", path, Some(&format!("Bearer {good}")), None);
    assert_eq!(st, 200);
    // The admin token works for both applications; the application's JWT only for it.
    assert_eq!(call(&s, "GET", path, None).0, 200);
    assert_eq!(call(&s, "GET", &format!("{B}/count"), None).0, 200);
    fails(
        &http_json(s.http, "GET", &format!("{B}/count"), Some(&good), None),
        401,
    );
}

/// `curl` with the admin token from a given source address; returns the HTTP status.
fn curl_from(s: &Server, source: &str, url: &str) -> u16 {
    let auth = format!(
        "Authorization: Bearer {}",
        s.admin_token.as_deref().expect("admin token")
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(["-H", &auth])
        .args(["--interface", source, url])
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl: {out:?}"))
}

#[test]
fn only_local_callers_unless_the_cidr_list_allows() {
    // The server listens on 127.0.0.1; the caller connects from 127.0.0.2, which the runtime
    // does not count as the local host (only 127.0.0.1 and ::1 do).
    let s = server();
    let url = format!("http://{}{B}/count", s.http);
    assert_eq!(curl_from(&s, "127.0.0.1", &url), 200);
    assert_eq!(curl_from(&s, "127.0.0.2", &url), 403);
    ok(&call(
        &s,
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(json!({"remoteAllowedCIDR": "127.0.0.1, 127.0.0.2/32"})),
    ));
    assert_eq!(curl_from(&s, "127.0.0.2", &url), 200);
    assert_eq!(curl_from(&s, "127.0.0.3", &url), 403);
    // Another application keeps its own (default) list.
    let other = format!("http://{}/Secured/rest/v2/broadcasts/count", s.http);
    assert_eq!(curl_from(&s, "127.0.0.2", &other), 403);
}

#[test]
fn bodies_oversize_chunked_and_split() {
    let s = server();
    let (st, _) = http_raw(
        s.http,
        format!(
            "POST {B}/create HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            2 * 1024 * 1024
        )
        .as_bytes(),
    );
    assert_eq!(st, 413);
    let (st, _) = http_raw(
        s.http,
        format!("POST {B}/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(st, 411);
    // A body sent in pieces after the head.
    use std::io::{Read, Write};
    let body = json!({"streamId": "split1"}).to_string();
    let mut t = common::tcp(s.http);
    t.write_all(
        format!(
            "POST {B}/create HTTP/1.1\r\nHost: {}\r\n{}Content-Length: {}\r\n\r\n",
            s.http,
            admin_headers(&s),
            body.len()
        )
        .as_bytes(),
    )
    .expect("write");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (a, b) = body.split_at(5);
    t.write_all(a.as_bytes()).expect("write");
    std::thread::sleep(std::time::Duration::from_millis(50));
    t.write_all(b.as_bytes()).expect("write");
    let mut resp = String::new();
    let _ = t.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.contains("\"split1\""), "{resp}");
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    use std::io::{BufRead, BufReader, Read, Write};
    let s = server();
    let body = json!({"streamId": "cont1", "description": "x".repeat(2000)}).to_string();
    let mut t = common::tcp(s.http);
    t.write_all(
        format!(
            "POST {B}/create HTTP/1.1\r\nHost: {}\r\n{}Expect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            s.http,
            admin_headers(&s),
            body.len()
        )
        .as_bytes(),
    )
    .expect("write head");
    let mut reader = BufReader::new(t.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("interim line");
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    line.clear();
    reader.read_line(&mut line).expect("blank line");
    assert_eq!(line, "\r\n");
    t.write_all(body.as_bytes()).expect("write body");
    let mut resp = String::new();
    reader.read_to_string(&mut resp).expect("response");
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.contains("\"cont1\""), "{resp}");
}

// --- Hardening (issue 9, findings 3 and 12) ---------------------------------------------------

const SETTINGS: &str = "/rest/v2/applications/settings/WebRTCAppEE";

/// A raw request; returns the status and the JSON body.
fn raw(s: &Server, request: &str) -> (u16, Value) {
    let (st, text) = http_raw(s.http, request.as_bytes());
    (
        st,
        serde_json::from_str(common::body(&text)).unwrap_or(Value::Null),
    )
}

fn cidr(s: &Server) -> Value {
    let (st, v) = call(s, "GET", SETTINGS, None);
    assert_eq!(st, 200, "{v}");
    v["remoteAllowedCIDR"].clone()
}

/// What a web page can make a browser send to the API: a "simple" cross-site POST
/// (`text/plain`, no credential, the page's `Origin`).
fn cross_site_post(s: &Server, origin: Option<&str>, extra: &str) -> u16 {
    let body = r#"{"remoteAllowedCIDR":"0.0.0.0/0"}"#;
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    raw(
        s,
        &format!(
            "POST {SETTINGS} HTTP/1.1\r\nHost: {}\r\n{origin}{extra}Content-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{body}",
            s.http,
            body.len()
        ),
    )
    .0
}

#[test]
fn a_cross_site_text_plain_post_is_refused_and_changes_nothing() {
    // The default (production) mode, and the trust-loopback mode of a development machine,
    // where a page opened in the local browser is the whole threat.
    for args in [&[][..], &["--rest-trust-loopback"][..]] {
        let s = Server::start_with(args);
        assert_eq!(
            cross_site_post(&s, Some("http://evil.example"), ""),
            403,
            "{args:?}"
        );
        assert_eq!(cross_site_post(&s, Some("null"), ""), 403, "{args:?}");
        // Without Origin (not a browser): still no JSON, so 415 (or 401 without credential).
        let want = if args.is_empty() { 401 } else { 415 };
        assert_eq!(cross_site_post(&s, None, ""), want, "{args:?}");
        // Even with the credential, text/plain is refused.
        assert_eq!(
            cross_site_post(
                &s,
                None,
                &format!(
                    "Authorization: Bearer {}\r\n",
                    s.admin_token.as_deref().unwrap_or("")
                )
            ),
            415
        );
        assert_eq!(cidr(&s), "127.0.0.1", "{args:?}: settings changed");
        assert!(s.wait_log("rest request refused"), "no log line");
    }
}

#[test]
fn a_foreign_origin_is_refused_and_the_same_origin_is_not() {
    let s = server();
    let get = |origin: &str| {
        raw(
            &s,
            &format!(
                "GET {B}/count HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n{}\r\n",
                s.http,
                admin_headers(&s)
            ),
        )
        .0
    };
    assert_eq!(get("http://evil.example"), 403);
    assert_eq!(get(&format!("http://127.0.0.2:{}", s.http.port())), 403);
    assert_eq!(get(&format!("http://{}", s.http)), 200);
    // A cross-site no-cors request (an <img>, a form) has no Origin but Sec-Fetch-Site.
    let (st, _) = raw(
        &s,
        &format!(
            "GET {B}/count HTTP/1.1\r\nHost: {}\r\nSec-Fetch-Site: cross-site\r\n{}\r\n",
            s.http,
            admin_headers(&s)
        ),
    );
    assert_eq!(st, 403);
}

#[test]
fn a_rebinding_host_is_refused() {
    let s = Server::start_with(&["--rest-host", "media.example.org"]);
    let get = |host: &str| {
        raw(
            &s,
            &format!(
                "GET {SETTINGS} HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
                admin_headers(&s)
            ),
        )
    };
    // A page on evil.example whose name now resolves to 127.0.0.1.
    let (st, v) = get(&format!("evil.example:{}", s.http.port()));
    assert_eq!(st, 421, "{v}");
    assert!(!v.to_string().contains("remoteAllowedCIDR"), "{v}");
    assert_eq!(get("evil.example").0, 421);
    assert_eq!(
        raw(
            &s,
            &format!("GET {SETTINGS} HTTP/1.1\r\n{}\r\n", admin_headers(&s))
        )
        .0,
        400
    );
    // IP literals, localhost and configured names are fine.
    for host in [
        s.http.to_string(),
        format!("localhost:{}", s.http.port()),
        "media.example.org".into(),
    ] {
        assert_eq!(get(&host).0, 200, "{host}");
    }
}

#[test]
fn get_redacts_secrets_and_a_put_of_the_placeholder_keeps_them() {
    let s = server();
    let secrets = json!({
        "jwtSecretKey": "rest-secret-0123456789abcdef0123456789",
        "jwtStreamSecretKey": "stream-secret-0123456789abcdef01234567",
        "tokenHashSecret": "hash-secret-1",
        "timeTokenSecretForPublish": "totp-secret-1",
        "turnServerCredential": "turn-secret-1",
        "s3SecretKey": "s3-secret-1"
    });
    ok(&call(&s, "PUT", SETTINGS, Some(secrets.clone())));
    let (st, v) = call(&s, "GET", SETTINGS, None);
    assert_eq!(st, 200);
    for (k, secret) in secrets.as_object().expect("object") {
        assert_eq!(v[k], antenna_store::REDACTED, "{k}");
        assert!(
            !v.to_string().contains(secret.as_str().unwrap_or("")),
            "{k} leaked"
        );
    }
    // An admin page writes the settings back as it read them (placeholders included), with a
    // change: the secrets stay.
    let mut back = v.clone();
    back["webRTCViewerLimit"] = json!(5);
    ok(&call(&s, "PUT", SETTINGS, Some(back)));
    let (_, j) = call(
        &s,
        "GET",
        &format!("{B}/r1/jwt-token?expireDate={}&type=play", unix_s(600)),
        None,
    );
    let jwt = j["tokenId"].as_str().expect("jwt").to_string();
    assert!(
        antenna_store::crypto::jwt_verify(&jwt, "stream-secret-0123456789abcdef01234567", 0)
            .is_ok(),
        "jwtStreamSecretKey changed"
    );
    // The REST JWT signed with the kept jwtSecretKey is a credential.
    let Value::Object(c) = json!({"exp": unix_s(600)}) else {
        panic!()
    };
    let rest_jwt = antenna_store::crypto::jwt_sign(&c, "rest-secret-0123456789abcdef0123456789")
        .expect("sign");
    let (st, v) = http_json(s.http, "GET", SETTINGS, Some(&rest_jwt), None);
    assert_eq!((st, v["webRTCViewerLimit"].as_i64()), (200, Some(5)), "{v}");
}

#[test]
fn settings_change_only_with_put() {
    let s = server();
    let (st, v) = call(
        &s,
        "POST",
        SETTINGS,
        Some(json!({"remoteAllowedCIDR": "0.0.0.0/0"})),
    );
    assert_eq!(st, 405, "{v}");
    assert_eq!(cidr(&s), "127.0.0.1");
    ok(&call(
        &s,
        "PUT",
        SETTINGS,
        Some(json!({"remoteAllowedCIDR": "127.0.0.1, 10.0.0.0/8"})),
    ));
    assert_eq!(cidr(&s), "127.0.0.1, 10.0.0.0/8");
}

#[test]
fn without_the_admin_credential_401_unless_trust_loopback() {
    let s = server();
    let (st, v) = http_json(s.http, "GET", SETTINGS, None, None);
    assert_eq!(st, 401, "{v}");
    let (st, _) = http_json(s.http, "GET", SETTINGS, Some("Bearer wrong-token"), None);
    assert_eq!(st, 401);
    let (st, _) = http_json(
        s.http,
        "PUT",
        SETTINGS,
        None,
        Some(r#"{"remoteAllowedCIDR":"0.0.0.0/0"}"#),
    );
    assert_eq!(st, 401);
    assert_eq!(cidr(&s), "127.0.0.1");
    // Development mode: local callers need none, other callers still do.
    let dev = Server::start_with(&["--rest-trust-loopback"]);
    let (st, _) = http_json(dev.http, "GET", SETTINGS, None, None);
    assert_eq!(st, 200);
    ok(&call(
        &dev,
        "PUT",
        SETTINGS,
        Some(json!({"remoteAllowedCIDR": "127.0.0.1, 127.0.0.2"})),
    ));
    let mut t = tcp_from("127.0.0.2", dev.http);
    t.write_all(format!("GET {SETTINGS} HTTP/1.1\r\nHost: {}\r\n\r\n", dev.http).as_bytes())
        .expect("write");
    assert_eq!(status_line(&mut t), 401);
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A TCP connection from `source` (a loopback address) to `addr`.
fn tcp_from(source: &str, addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    let src: std::net::SocketAddrV4 = format!("{source}:0").parse().expect("source");
    bind(fd.as_raw_fd(), &SockaddrIn::from(src)).expect("bind");
    let SocketAddr::V4(dst) = addr else {
        panic!("IPv4 only")
    };
    connect(fd.as_raw_fd(), &SockaddrIn::from(dst)).expect("connect");
    let t = TcpStream::from(fd);
    t.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    t
}

/// Reads until the end of the response head; the status code (0 on timeout or reset).
fn status_line(t: &mut TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match t.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process: (current, peak) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_refused_request_is_answered_on_its_head_and_its_body_never_read() {
    // Finding 12: a 1 MiB body from a refused address (127.0.0.2 is outside the default
    // remoteAllowedCIDR) or without a credential.
    let s = server();
    let head = |host: SocketAddr| {
        format!(
            "POST {B}/create HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            1024 * 1024
        )
    };
    // The refusal arrives before a single body byte was sent.
    for (source, want) in [("127.0.0.2", 403), ("127.0.0.1", 401)] {
        let mut t = tcp_from(source, s.http);
        let sent = Instant::now();
        t.write_all(head(s.http).as_bytes()).expect("head");
        assert_eq!(status_line(&mut t), want, "{source}");
        eprintln!(
            "{source}: {want} after {:.1} ms, with the 1 MiB body not sent",
            sent.elapsed().as_secs_f64() * 1000.0
        );
        // The server closed the connection: the body goes nowhere.
        let _ = t.write_all(&vec![b'x'; 1024 * 1024]);
        let mut rest = Vec::new();
        let _ = t.read_to_end(&mut rest);
    }
    // 64 clients send a 1 MiB body but its last byte, at once, and hold the connection (a slow
    // body): the server's peak memory does not grow by what they send (it grew by 66 MB when
    // it buffered bodies before deciding).
    let (_, peak_before) = rss_kib(s.pid());
    let written = std::sync::Arc::new(std::sync::Barrier::new(65));
    let measured = std::sync::Arc::new(std::sync::Barrier::new(65));
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let addr = s.http;
            let head = head(addr);
            let (written, measured) = (written.clone(), measured.clone());
            std::thread::spawn(move || {
                let mut t = tcp_from("127.0.0.2", addr);
                let mut req = head.into_bytes();
                req.extend(std::iter::repeat_n(b'{', 1024 * 1024 - 1));
                let _ = t.write_all(&req);
                written.wait();
                measured.wait();
                status_line(&mut t)
            })
        })
        .collect();
    written.wait();
    std::thread::sleep(Duration::from_millis(500));
    let (_, peak_after) = rss_kib(s.pid());
    measured.wait();
    let statuses: Vec<u16> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    eprintln!(
        "64 refused slow 1 MiB bodies: server peak RSS {peak_before} KiB -> {peak_after} KiB \
         (+{} KiB); {} answered 403",
        peak_after - peak_before,
        statuses.iter().filter(|&&s| s == 403).count()
    );
    // A client may see a reset instead of the 403 when the server closes while it still
    // writes; none may see anything else.
    assert!(
        statuses.iter().all(|&st| st == 403 || st == 0),
        "{statuses:?}"
    );
    assert!(statuses.contains(&403), "{statuses:?}");
    assert!(
        peak_after - peak_before < 16 * 1024,
        "peak RSS grew by {} KiB",
        peak_after - peak_before
    );
    // Refusals are counted in the log lines.
    assert!(s.wait_log("Not allowed IP"), "{}", s.log().join("\n"));
}
