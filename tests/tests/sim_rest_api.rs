//! The admin REST API through the node's admin core on the simulation's virtual clock:
//! every endpoint, bad input, unknown ids, the route table's unknown applications, missing or
//! wrong JWT, a caller outside `remoteAllowedCIDR`, secrets redacted, and the OpenAPI document.
//! (What only the real binary shows, HTTP framing and sockets, is `server-mio/tests/rest.rs`.)
//! (Over 600 lines: one test per endpoint group, each moved whole from the real-binary tests.)

use std::net::SocketAddr;

use antenna_store::{shared, MemStore};
use antenna_tests::{RestAnswer, Sim, ADMIN_TOKEN};
use serde_json::{json, Map, Value};

const REST_KEY: &str = "rest-api-secret-key-0123456789abcdef";
const B: &str = "/WebRTCAppEE/rest/v2/broadcasts";
const SETTINGS: &str = "/rest/v2/applications/settings/WebRTCAppEE";

/// A server with the applications `WebRTCAppEE` and `Secured` (`jwtControlEnabled`).
fn server() -> Sim {
    let mut s = Sim::new(12)
        .with_apps(&["WebRTCAppEE", "Secured"])
        .with_admin(shared(MemStore::new()));
    ok(&call(
        &mut s,
        "PUT",
        "/rest/v2/applications/settings/Secured",
        Some(json!({"jwtControlEnabled": true, "jwtSecretKey": REST_KEY})),
    ));
    s
}

fn pair(a: RestAnswer) -> (u16, Value) {
    (a.status, a.body)
}

/// A call with the admin token.
fn call(s: &mut Sim, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    pair(s.rest(method, path, body))
}

/// A call with this body text and `Authorization` header, from the local host.
fn raw(s: &mut Sim, method: &str, path: &str, body: &str, auth: Option<&str>) -> (u16, Value) {
    pair(s.rest_from(local(), method, path, body, auth))
}

/// A call with this `Authorization` header and body, as a plain HTTP client makes it.
fn get_with(
    s: &mut Sim,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    raw(s, method, path, body.unwrap_or(""), auth)
}

/// The admin token as an `Authorization` header value.
fn bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

/// The status of a call with the admin token from `source`.
fn status_from(s: &mut Sim, source: &str, path: &str) -> u16 {
    let peer = SocketAddr::new(source.parse().expect("address"), 45000);
    s.rest_from(peer, "GET", path, "", Some(&bearer())).status
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 45000))
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

fn cidr(s: &mut Sim) -> Value {
    let (st, v) = call(s, "GET", SETTINGS, None);
    assert_eq!(st, 200, "{v}");
    v["remoteAllowedCIDR"].clone()
}

#[test]
fn broadcasts_crud_list_count_and_statistics() {
    let mut s = server();
    // create: explicit and generated ids; duplicates and bad ids refused; bad JSON refused.
    let (st, b) = call(
        &mut s,
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
        &mut s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"name": "gen"})),
    );
    assert_eq!(st, 200, "{g}");
    let gen_id = g["streamId"].as_str().expect("generated id").to_string();
    assert!(gen_id.len() > 16, "{gen_id}");
    fails(
        &call(
            &mut s,
            "POST",
            &format!("{B}/create"),
            Some(json!({"streamId": "s1"})),
        ),
        400,
    );
    fails(
        &call(
            &mut s,
            "POST",
            &format!("{B}/create"),
            Some(json!({"streamId": "bad id!"})),
        ),
        400,
    );
    let (st, _) = raw(
        &mut s,
        "POST",
        &format!("{B}/create"),
        "{not json",
        Some(&bearer()),
    );
    assert_eq!(st, 400);
    // get, unknown id, invalid id.
    let (st, got) = call(&mut s, "GET", &format!("{B}/s1"), None);
    assert_eq!((st, got["name"].as_str()), (200, Some("one")), "{got}");
    fails(&call(&mut s, "GET", &format!("{B}/nope"), None), 404);
    fails(&call(&mut s, "GET", &format!("{B}/bad%20id"), None), 400);
    // update merges keys.
    ok(&call(
        &mut s,
        "PUT",
        &format!("{B}/s1"),
        Some(json!({"description": "d"})),
    ));
    let (_, got) = call(&mut s, "GET", &format!("{B}/s1"), None);
    assert_eq!(
        (got["name"].as_str(), got["description"].as_str()),
        (Some("one"), Some("d"))
    );
    fails(
        &call(
            &mut s,
            "PUT",
            &format!("{B}/nope"),
            Some(json!({"name": "x"})),
        ),
        404,
    );
    fails(
        &call(
            &mut s,
            "PUT",
            &format!("{B}/s1"),
            Some(json!({"webRTCViewerLimit": "x"})),
        ),
        400,
    );
    // list and count.
    for i in 0..3 {
        call(
            &mut s,
            "POST",
            &format!("{B}/create"),
            Some(json!({"streamId": format!("l{i}")})),
        );
    }
    let (st, list) = call(&mut s, "GET", &format!("{B}/list/0/50"), None);
    assert_eq!(st, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(5), "{list}");
    let (_, page) = call(
        &mut s,
        "GET",
        &format!("{B}/list/1/2?sort_by=name&order_by=desc"),
        None,
    );
    assert_eq!(page.as_array().map(Vec::len), Some(2), "{page}");
    let (_, found) = call(&mut s, "GET", &format!("{B}/list/0/10?search=l1"), None);
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    fails(&call(&mut s, "GET", &format!("{B}/list/x/10"), None), 400);
    let (st, n) = call(&mut s, "GET", &format!("{B}/count"), None);
    assert_eq!((st, n["number"].as_u64()), (200, Some(5)));
    let (st, n) = call(
        &mut s,
        "GET",
        &format!("{B}/active-live-stream-count"),
        None,
    );
    assert_eq!((st, n["number"].as_u64()), (200, Some(0)));
    // statistics.
    let (st, stats) = call(&mut s, "GET", &format!("{B}/s1/broadcast-statistics"), None);
    assert_eq!(
        (st, stats["totalWebRTCWatchersCount"].as_i64()),
        (200, Some(0)),
        "{stats}"
    );
    fails(
        &call(
            &mut s,
            "GET",
            &format!("{B}/nope/broadcast-statistics"),
            None,
        ),
        404,
    );
    let (st, t) = call(
        &mut s,
        "GET",
        &format!("{B}/total-broadcast-statistics"),
        None,
    );
    assert_eq!(
        (st, t["activeLiveStreamCount"].as_u64()),
        (200, Some(0)),
        "{t}"
    );
    // delete one, unknown, many.
    ok(&call(&mut s, "DELETE", &format!("{B}/{gen_id}"), None));
    fails(&call(&mut s, "DELETE", &format!("{B}/{gen_id}"), None), 404);
    ok(&call(&mut s, "DELETE", &format!("{B}?ids=l0,l1"), None));
    fails(
        &call(&mut s, "DELETE", &format!("{B}?ids=l2,gone"), None),
        404,
    );
    fails(&call(&mut s, "DELETE", B, None), 400);
    let (_, n) = call(&mut s, "GET", &format!("{B}/count"), None);
    assert_eq!(n["number"].as_u64(), Some(1), "{n}");
    // Wrong method, unknown route.
    fails(&call(&mut s, "GET", &format!("{B}/create"), None), 405);
    fails(
        &call(&mut s, "GET", "/WebRTCAppEE/rest/v2/nothing", None),
        404,
    );
}

#[test]
fn tokens_validate_list_and_delete() {
    let mut s = server();
    call(
        &mut s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"streamId": "tk1"})),
    );
    let exp = s.wall_s(600);
    let (st, t) = call(
        &mut s,
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
        &call(&mut s, "GET", &format!("{B}/tk1/token?type=play"), None),
        400,
    );
    let past = s.wall_s(-5);
    fails(
        &call(
            &mut s,
            "GET",
            &format!("{B}/tk1/token?expireDate={past}&type=play"),
            None,
        ),
        400,
    );
    fails(
        &call(
            &mut s,
            "GET",
            &format!("{B}/tk1/token?expireDate={exp}&type=watch"),
            None,
        ),
        400,
    );
    // jwt-token needs jwtStreamSecretKey.
    fails(
        &call(
            &mut s,
            "GET",
            &format!("{B}/tk1/jwt-token?expireDate={exp}&type=play"),
            None,
        ),
        400,
    );
    ok(&call(
        &mut s,
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(json!({"jwtStreamSecretKey": "k0123456789abcdef0123456789abcdef"})),
    ));
    let (st, j) = call(
        &mut s,
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
    let (st, list) = call(&mut s, "GET", &format!("{B}/tk1/tokens/list/0/10"), None);
    assert_eq!(
        (st, list.as_array().map(Vec::len)),
        (200, Some(1)),
        "{list}"
    );
    fails(
        &call(&mut s, "GET", &format!("{B}/tk1/tokens/list/0/x"), None),
        400,
    );
    // validate-token uses it up; a wrong type or unknown token is not valid.
    let wrong = json!({"tokenId": t["tokenId"], "streamId": "tk1", "type": "publish"});
    let r = call(&mut s, "POST", &format!("{B}/validate-token"), Some(wrong));
    assert_eq!((r.0, &r.1["success"]), (200, &json!(false)), "{}", r.1);
    ok(&call(
        &mut s,
        "POST",
        &format!("{B}/validate-token"),
        Some(t.clone()),
    ));
    let r = call(&mut s, "POST", &format!("{B}/validate-token"), Some(t));
    assert_eq!(r.1["success"], false, "{}", r.1);
    fails(
        &call(
            &mut s,
            "POST",
            &format!("{B}/validate-token"),
            Some(json!({"x": 1})),
        ),
        400,
    );
    // delete all tokens of the stream.
    call(
        &mut s,
        "GET",
        &format!("{B}/tk1/token?expireDate={exp}&type=publish"),
        None,
    );
    ok(&call(&mut s, "DELETE", &format!("{B}/tk1/tokens"), None));
    let (_, list) = call(&mut s, "GET", &format!("{B}/tk1/tokens/list/0/10"), None);
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
}

#[test]
fn subscribers_totp_block_and_subtracks() {
    let mut s = server();
    call(
        &mut s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"streamId": "m1"})),
    );
    call(
        &mut s,
        "POST",
        &format!("{B}/create"),
        Some(json!({"streamId": "sub1"})),
    );
    let add =
        |s: &mut Sim, body: Value| call(s, "POST", &format!("{B}/m1/subscribers"), Some(body));
    ok(&add(
        &mut s,
        json!({"subscriberId": "alice", "b32Secret": "JBSWY3DPEHPK3PXP", "type": "play"}),
    ));
    ok(&add(
        &mut s,
        json!({"subscriberId": "bobby", "b32Secret": "JBSWY3DPEHPK3PXP", "type": "publish"}),
    ));
    fails(
        &add(&mut s, json!({"subscriberId": "ab", "type": "play"})),
        400,
    );
    fails(
        &add(
            &mut s,
            json!({"subscriberId": "carol", "b32Secret": "not base32!", "type": "play"}),
        ),
        400,
    );
    fails(
        &add(
            &mut s,
            json!({"subscriberId": "carol", "type": "play", "totpExpiryPeriodSeconds": 5}),
        ),
        400,
    );
    let (st, list) = call(
        &mut s,
        "GET",
        &format!("{B}/m1/subscribers/list/0/10"),
        None,
    );
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
    let r = call(
        &mut s,
        "GET",
        &format!("{B}/m1/subscribers/alice/totp"),
        None,
    );
    ok(&r);
    assert_eq!(r.1["dataId"].as_str().map(str::len), Some(6), "{}", r.1);
    fails(
        &call(
            &mut s,
            "GET",
            &format!("{B}/m1/subscribers/alice/totp?type=x"),
            None,
        ),
        400,
    );
    fails(
        &call(
            &mut s,
            "GET",
            &format!("{B}/m1/subscribers/nobody/totp"),
            None,
        ),
        400,
    );
    // block
    ok(&call(
        &mut s,
        "PUT",
        &format!("{B}/m1/subscribers/alice/block/60/play"),
        None,
    ));
    fails(
        &call(
            &mut s,
            "PUT",
            &format!("{B}/m1/subscribers/nobody/block/60/play"),
            None,
        ),
        404,
    );
    fails(
        &call(
            &mut s,
            "PUT",
            &format!("{B}/m1/subscribers/alice/block/x/play"),
            None,
        ),
        400,
    );
    fails(
        &call(
            &mut s,
            "PUT",
            &format!("{B}/m1/subscribers/alice/block/60/x"),
            None,
        ),
        400,
    );
    // delete one, unknown, all.
    ok(&call(
        &mut s,
        "DELETE",
        &format!("{B}/m1/subscribers/alice"),
        None,
    ));
    fails(
        &call(&mut s, "DELETE", &format!("{B}/m1/subscribers/alice"), None),
        404,
    );
    ok(&call(
        &mut s,
        "DELETE",
        &format!("{B}/m1/subscribers"),
        None,
    ));
    let (_, list) = call(
        &mut s,
        "GET",
        &format!("{B}/m1/subscribers/list/0/10"),
        None,
    );
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    // subtracks
    ok(&call(
        &mut s,
        "POST",
        &format!("{B}/m1/subtrack?id=sub1"),
        None,
    ));
    let (_, m) = call(&mut s, "GET", &format!("{B}/m1"), None);
    assert_eq!(m["subTrackStreamIds"], json!(["sub1"]), "{m}");
    let (_, sub) = call(&mut s, "GET", &format!("{B}/sub1"), None);
    assert_eq!(sub["mainTrackStreamId"], "m1", "{sub}");
    fails(
        &call(&mut s, "POST", &format!("{B}/m1/subtrack"), None),
        400,
    );
    fails(
        &call(&mut s, "POST", &format!("{B}/nope/subtrack?id=sub1"), None),
        404,
    );
    ok(&call(
        &mut s,
        "DELETE",
        &format!("{B}/m1/subtrack?id=sub1"),
        None,
    ));
    fails(
        &call(&mut s, "DELETE", &format!("{B}/m1/subtrack?id=sub1"), None),
        404,
    );
}

#[test]
fn application_settings_get_put_and_bad_input() {
    let mut s = server();
    for path in [
        "/rest/v2/applications/settings/WebRTCAppEE",
        "/WebRTCAppEE/rest/v2/applications/settings/WebRTCAppEE",
    ] {
        let (st, v) = call(&mut s, "GET", path, None);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["remoteAllowedCIDR"], "127.0.0.1", "{v}");
        assert_eq!(v["webRTCViewerLimit"], -1, "{v}");
    }
    ok(&call(
        &mut s,
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(json!({"webRTCViewerLimit": 7, "hlsMuxingEnabled": true})),
    ));
    let (_, v) = call(
        &mut s,
        "GET",
        "/rest/v2/applications/settings/WebRTCAppEE",
        None,
    );
    assert_eq!(
        (v["webRTCViewerLimit"].as_i64(), &v["hlsMuxingEnabled"]),
        (Some(7), &json!(true))
    );
    let put = |s: &mut Sim, body: &str| raw(s, "PUT", SETTINGS, body, Some(&bearer()));
    fails(&put(&mut s, "{not json"), 400);
    fails(&put(&mut s, r#"{"webRTCViewerLimit": "many"}"#), 400);
    fails(&put(&mut s, r#"{"remoteAllowedCIDR": "10.0.0.0/33"}"#), 400);
    fails(&put(&mut s, r#"{"timeTokenPeriod": 0}"#), 400);
    fails(
        &call(
            &mut s,
            "DELETE",
            "/rest/v2/applications/settings/WebRTCAppEE",
            None,
        ),
        405,
    );
    // Unknown application: 404 from the router.
    let (st, _) = call(&mut s, "GET", "/rest/v2/applications/settings/Nope", None);
    assert_eq!(st, 404);
    let (st, _) = call(&mut s, "GET", "/Nope/rest/v2/broadcasts/count", None);
    assert_eq!(st, 404);
}

#[test]
fn openapi_document() {
    let mut s = server();
    let (st, doc) = call(&mut s, "GET", "/WebRTCAppEE/rest/v2/openapi.json", None);
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
    let mut s = server();
    let path = "/Secured/rest/v2/broadcasts/count";
    // Missing, malformed, wrongly signed, expired: 401.
    fails(&get_with(&mut s, "GET", path, None, None), 401);
    fails(
        &get_with(&mut s, "GET", path, Some("Bearer nope"), None),
        401,
    );
    let sign = |claims: Value, key: &str| {
        let Value::Object(c) = claims else { panic!() };
        antenna_store::crypto::jwt_sign(&c, key).expect("sign")
    };
    let other = sign(
        json!({"exp": s.wall_s(600)}),
        "another-key-0123456789abcdef0123456789",
    );
    fails(&get_with(&mut s, "GET", path, Some(&other), None), 401);
    let expired = sign(json!({"exp": s.wall_s(-600)}), REST_KEY);
    fails(&get_with(&mut s, "GET", path, Some(&expired), None), 401);
    // A valid one, with or without "Bearer ".
    let good = sign(json!({"exp": s.wall_s(600)}), REST_KEY);
    let (st, n) = get_with(&mut s, "GET", path, Some(&good), None);
    assert_eq!((st, n["number"].as_u64()), (200, Some(0)), "{n}");
    let (st, _) = get_with(&mut s, "GET", path, Some(&format!("Bearer {good}")), None);
    assert_eq!(st, 200);
    // The admin token works for both applications; the application's JWT only for it.
    assert_eq!(call(&mut s, "GET", path, None).0, 200);
    assert_eq!(call(&mut s, "GET", &format!("{B}/count"), None).0, 200);
    fails(
        &get_with(&mut s, "GET", &format!("{B}/count"), Some(&good), None),
        401,
    );
}

#[test]
fn only_local_callers_unless_the_cidr_list_allows() {
    // A caller from 127.0.0.2 is not the local host (only 127.0.0.1 and ::1 are).
    let mut s = server();
    let url = format!("{B}/count");
    assert_eq!(status_from(&mut s, "127.0.0.1", &url), 200);
    assert_eq!(status_from(&mut s, "127.0.0.2", &url), 403);
    ok(&call(
        &mut s,
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(json!({"remoteAllowedCIDR": "127.0.0.1, 127.0.0.2/32"})),
    ));
    assert_eq!(status_from(&mut s, "127.0.0.2", &url), 200);
    assert_eq!(status_from(&mut s, "127.0.0.3", &url), 403);
    // Another application keeps its own (default) list.
    let other = "/Secured/rest/v2/broadcasts/count";
    assert_eq!(status_from(&mut s, "127.0.0.2", other), 403);
}

#[test]
fn get_redacts_secrets_and_a_put_of_the_placeholder_keeps_them() {
    let mut s = server();
    let secrets = json!({
        "jwtSecretKey": "rest-secret-0123456789abcdef0123456789",
        "jwtStreamSecretKey": "stream-secret-0123456789abcdef01234567",
        "tokenHashSecret": "hash-secret-1",
        "timeTokenSecretForPublish": "totp-secret-1",
        "turnServerCredential": "turn-secret-1",
        "s3SecretKey": "s3-secret-1"
    });
    ok(&call(&mut s, "PUT", SETTINGS, Some(secrets.clone())));
    let (st, v) = call(&mut s, "GET", SETTINGS, None);
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
    ok(&call(&mut s, "PUT", SETTINGS, Some(back)));
    let exp = s.wall_s(600);
    let (_, j) = call(
        &mut s,
        "GET",
        &format!("{B}/r1/jwt-token?expireDate={exp}&type=play"),
        None,
    );
    let jwt = j["tokenId"].as_str().expect("jwt").to_string();
    assert!(
        antenna_store::crypto::jwt_verify(&jwt, "stream-secret-0123456789abcdef01234567", 0)
            .is_ok(),
        "jwtStreamSecretKey changed"
    );
    // The REST JWT signed with the kept jwtSecretKey is a credential.
    let Value::Object(c) = json!({"exp": s.wall_s(600)}) else {
        panic!()
    };
    let rest_jwt = antenna_store::crypto::jwt_sign(&c, "rest-secret-0123456789abcdef0123456789")
        .expect("sign");
    let (st, v) = get_with(&mut s, "GET", SETTINGS, Some(&rest_jwt), None);
    assert_eq!((st, v["webRTCViewerLimit"].as_i64()), (200, Some(5)), "{v}");
}

#[test]
fn settings_change_only_with_put() {
    let mut s = server();
    let (st, v) = call(
        &mut s,
        "POST",
        SETTINGS,
        Some(json!({"remoteAllowedCIDR": "0.0.0.0/0"})),
    );
    assert_eq!(st, 405, "{v}");
    assert_eq!(cidr(&mut s), "127.0.0.1");
    ok(&call(
        &mut s,
        "PUT",
        SETTINGS,
        Some(json!({"remoteAllowedCIDR": "127.0.0.1, 10.0.0.0/8"})),
    ));
    assert_eq!(cidr(&mut s), "127.0.0.1, 10.0.0.0/8");
}

#[test]
fn without_the_admin_credential_401() {
    let mut s = server();
    let (st, v) = get_with(&mut s, "GET", SETTINGS, None, None);
    assert_eq!(st, 401, "{v}");
    let (st, _) = get_with(&mut s, "GET", SETTINGS, Some("Bearer wrong-token"), None);
    assert_eq!(st, 401);
    let (st, _) = get_with(
        &mut s,
        "PUT",
        SETTINGS,
        None,
        Some(r#"{"remoteAllowedCIDR":"0.0.0.0/0"}"#),
    );
    assert_eq!(st, 401);
    assert_eq!(cidr(&mut s), "127.0.0.1");
}
