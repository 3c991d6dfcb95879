//! Stream security through the node's admin core on the simulation's virtual clock: every
//! security error definition over a simulated WebSocket, with each application's settings and
//! the records (broadcasts, tokens, subscribers) made through the REST API. (What needs the
//! real binary, a datastore that cannot open, the configuration file, the media path of a
//! hardened server, is `server-mio/tests/security.rs`.)
//! (Over 600 lines: one test per security feature and per finding, over two shared servers.)
//!
//! A publish that passes the checks gets `start`; a play that passes them gets
//! `no_stream_exist` (nobody publishes), so "allowed" and "refused" are told apart.

use std::net::SocketAddr;
use std::time::Duration;

use antenna_store::{shared, MemStore};
use antenna_tests::{assert_error, assert_start, Sim};
use proto_core::ConnId;
use serde_json::{json, Value};

const JWT_KEY: &str = "0123456789abcdef0123456789abcdef-stream";
const HASH_SECRET: &str = "hash-secret";
/// `JBSWY3DPEHPK3PXP` (Base32 of "Hello!\xde\xad\xbe\xef").
const B32: &str = "JBSWY3DPEHPK3PXP";

/// One server, one application per security feature.
fn server() -> Sim {
    let apps = [
        ("Open", json!({})),
        (
            "Tok",
            json!({"publishTokenControlEnabled": true, "playTokenControlEnabled": true}),
        ),
        (
            "Jwt",
            json!({"publishJwtControlEnabled": true, "playJwtControlEnabled": true,
                "jwtStreamSecretKey": JWT_KEY}),
        ),
        (
            "Hash",
            json!({"hashControlPublishEnabled": true, "hashControlPlayEnabled": true,
                "tokenHashSecret": HASH_SECRET}),
        ),
        (
            "Totp",
            json!({"enableTimeTokenForPublish": true, "enableTimeTokenForPlay": true}),
        ),
        ("Lim", json!({"webRTCViewerLimit": 0})),
        ("Rooms", json!({"acceptOnlyRoomsInDataStore": true})),
    ];
    with_apps(31, &apps)
}

/// A simulated server of these applications, each with these settings (PUT by REST).
fn with_apps(seed: u64, apps: &[(&str, Value)]) -> Sim {
    let names: Vec<&str> = apps.iter().map(|(a, _)| *a).collect();
    let mut s = Sim::new(seed)
        .with_apps(&names)
        .with_admin(shared(MemStore::new()));
    for (app, settings) in apps {
        let r = s.rest(
            "PUT",
            &format!("/rest/v2/applications/settings/{app}"),
            Some(settings.clone()),
        );
        assert_eq!(r.status, 200, "{app}: {r:?}");
    }
    s
}

fn rest(s: &mut Sim, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let body = body.map(|b| serde_json::from_str(b).expect("JSON body"));
    let r = s.rest(method, path, body);
    (r.status, r.body)
}

fn create(s: &mut Sim, app: &str, body: Value) -> Value {
    let (status, b) = rest(
        s,
        "POST",
        &format!("/{app}/rest/v2/broadcasts/create"),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{b}");
    b
}

/// Sends `m` with `extra`'s fields on `c`; its first answer.
fn send(s: &mut Sim, c: ConnId, mut m: Value, extra: Value) -> Value {
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    s.send_json(c, m);
    s.take(c).into_iter().next().unwrap_or(Value::Null)
}

fn publish(s: &mut Sim, c: ConnId, id: &str, extra: Value) -> Value {
    let m = json!({"command": "publish", "streamId": id, "video": true, "audio": true});
    send(s, c, m, extra)
}

fn play(s: &mut Sim, c: ConnId, id: &str, extra: Value) -> Value {
    let m = json!({"command": "play", "streamId": id, "room": "", "trackList": []});
    send(s, c, m, extra)
}

/// A publish on a new connection to `app`.
fn publish_new(s: &mut Sim, app: &str, id: &str, extra: Value) -> Value {
    let c = s.connect_app(app);
    publish(s, c, id, extra)
}

/// A play on a new connection to `app`.
fn play_new(s: &mut Sim, app: &str, id: &str, extra: Value) -> Value {
    let c = s.connect_app(app);
    play(s, c, id, extra)
}

fn assert_play_allowed(v: &Value) {
    assert_error(v, "no_stream_exist");
}

#[test]
fn one_time_tokens_for_publish_and_play() {
    let mut s = server();
    let t0 = s.wall_s(0);
    create(&mut s, "Tok", json!({"streamId": "t1"}));
    let token = |s: &mut Sim, kind: &str| -> String {
        let (status, t) = rest(
            s,
            "GET",
            &format!(
                "/Tok/rest/v2/broadcasts/t1/token?expireDate={}&type={kind}",
                (t0 + 600)
            ),
            None,
        );
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["type"], kind, "{t}");
        t["tokenId"].as_str().expect("tokenId").to_string()
    };
    let publish_token = token(&mut s, "publish");
    let play_token = token(&mut s, "play");
    // No token, a wrong token, the play token for publishing: refused.
    for extra in [
        json!({}),
        json!({"token": "wrong"}),
        json!({"token": play_token}),
    ] {
        assert_error(
            &publish_new(&mut s, "Tok", "t1", extra),
            "unauthorized_access",
        );
    }
    // The publish token works once.
    let p = s.connect_app("Tok");
    assert_start(
        &publish(&mut s, p, "t1", json!({"token": publish_token})),
        "t1",
    );
    s.close(p);
    assert_error(
        &publish_new(&mut s, "Tok", "t1", json!({"token": publish_token})),
        "unauthorized_access",
    );
    // Play: wrong token refused, the play token accepted. Nobody publishes t1, so the play
    // ends in no_stream_exist, which spends nothing (issue 9, finding 4): the token still
    // passes the checks.
    assert_error(
        &play_new(&mut s, "Tok", "t1", json!({"token": "wrong"})),
        "unauthorized_access",
    );
    for _ in 0..2 {
        assert_play_allowed(&play_new(&mut s, "Tok", "t1", json!({"token": play_token})));
    }
}

#[test]
fn jwt_stream_tokens() {
    let mut s = server();
    let t0 = s.wall_s(0);
    let jwt = |s: &mut Sim, id: &str, kind: &str| -> String {
        let (status, t) = rest(
            s,
            "GET",
            &format!(
                "/Jwt/rest/v2/broadcasts/{id}/jwt-token?expireDate={}&type={kind}",
                (t0 + 600)
            ),
            None,
        );
        assert_eq!(status, 200, "{t}");
        t["tokenId"].as_str().expect("tokenId").to_string()
    };
    let pub_jwt = jwt(&mut s, "j1", "publish");
    let play_jwt = jwt(&mut s, "j1", "play");
    let other = jwt(&mut s, "j2", "publish");
    let mut forged = pub_jwt.clone();
    forged.pop();
    forged.push(if pub_jwt.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        json!({}),
        json!({"token": forged}),
        json!({"token": other}),
        json!({"token": play_jwt}),
    ] {
        assert_error(
            &publish_new(&mut s, "Jwt", "j1", bad),
            "unauthorized_access",
        );
    }
    assert_start(
        &publish_new(&mut s, "Jwt", "j1", json!({"token": pub_jwt})),
        "j1",
    );
    assert_error(
        &play_new(&mut s, "Jwt", "j1", json!({"token": pub_jwt})),
        "unauthorized_access",
    );
    // JWTs are not used up.
    for _ in 0..2 {
        assert_play_allowed(&play_new(&mut s, "Jwt", "j1", json!({"token": play_jwt})));
    }
}

#[test]
fn hash_tokens() {
    let mut s = server();
    let good = antenna_store::crypto::hash_token("h1", "publish", HASH_SECRET);
    let play_hash = antenna_store::crypto::hash_token("h1", "play", HASH_SECRET);
    let wrong_secret = antenna_store::crypto::hash_token("h1", "publish", "other");
    for bad in [
        json!({}),
        json!({"token": wrong_secret}),
        json!({"token": play_hash}),
    ] {
        assert_error(
            &publish_new(&mut s, "Hash", "h1", bad),
            "unauthorized_access",
        );
    }
    assert_start(
        &publish_new(&mut s, "Hash", "h1", json!({"token": good})),
        "h1",
    );
    assert_error(
        &play_new(&mut s, "Hash", "h1", json!({"token": good})),
        "unauthorized_access",
    );
    assert_play_allowed(&play_new(&mut s, "Hash", "h1", json!({"token": play_hash})));
}

#[test]
fn totp_subscribers_and_user_blocked() {
    let mut s = server();
    create(&mut s, "Totp", json!({"streamId": "c1"}));
    for (sid, kind) in [("pubsub1", "publish"), ("playsub1", "play")] {
        let (status, r) = rest(
            &mut s,
            "POST",
            "/Totp/rest/v2/broadcasts/c1/subscribers",
            Some(&json!({"subscriberId": sid, "b32Secret": B32, "type": kind}).to_string()),
        );
        assert_eq!((status, &r["success"]), (200, &json!(true)), "{r}");
    }
    let code = |s: &mut Sim, sid: &str, kind: &str| -> String {
        let (status, r) = rest(
            s,
            "GET",
            &format!("/Totp/rest/v2/broadcasts/c1/subscribers/{sid}/totp?type={kind}"),
            None,
        );
        assert_eq!(status, 200, "{r}");
        r["dataId"].as_str().expect("code").to_string()
    };
    let pub_code = code(&mut s, "pubsub1", "publish");
    let wrong = if pub_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    for bad in [
        json!({}),
        json!({"subscriberId": "pubsub1"}),
        json!({"subscriberId": "pubsub1", "subscriberCode": wrong}),
        // A play subscriber may not publish.
        json!({"subscriberId": "playsub1", "subscriberCode": code(&mut s, "playsub1", "play")}),
    ] {
        assert_error(
            &publish_new(&mut s, "Totp", "c1", bad),
            "unauthorized_access",
        );
    }
    assert_start(
        &publish_new(
            &mut s,
            "Totp",
            "c1",
            json!({"subscriberId": "pubsub1", "subscriberCode": pub_code}),
        ),
        "c1",
    );
    let play_code = code(&mut s, "playsub1", "play");
    assert_error(
        &play_new(
            &mut s,
            "Totp",
            "c1",
            json!({"subscriberId": "playsub1", "subscriberCode": wrong}),
        ),
        "unauthorized_access",
    );
    assert_play_allowed(&play_new(
        &mut s,
        "Totp",
        "c1",
        json!({"subscriberId": "playsub1", "subscriberCode": play_code}),
    ));
    // Blocked for an hour: user_blocked, even with the right code.
    let (status, r) = rest(
        &mut s,
        "PUT",
        "/Totp/rest/v2/broadcasts/c1/subscribers/playsub1/block/3600/play",
        None,
    );
    assert_eq!(status, 200, "{r}");
    let right = code(&mut s, "playsub1", "play");
    assert_error(
        &play_new(
            &mut s,
            "Totp",
            "c1",
            json!({"subscriberId": "playsub1", "subscriberCode": right}),
        ),
        "user_blocked",
    );
}

#[test]
fn stream_not_active_or_expired() {
    let mut s = server();
    let t0 = s.wall_s(0);
    // Planned dates both set and over.
    create(
        &mut s,
        "Open",
        json!({"streamId": "past1", "plannedStartDate": (t0 + -7200), "plannedEndDate": (t0 + -3600)}),
    );
    // Planned to start later.
    create(
        &mut s,
        "Open",
        json!({"streamId": "future1", "plannedStartDate": (t0 + 3600), "plannedEndDate": (t0 + 7200)}),
    );
    // Expired one millisecond after creation.
    create(
        &mut s,
        "Open",
        json!({"streamId": "exp1", "expireDurationMS": 1}),
    );
    s.advance(Duration::from_millis(20));
    for id in ["past1", "future1", "exp1"] {
        assert_error(
            &publish_new(&mut s, "Open", id, json!({})),
            "stream_not_active_or_expired",
        );
    }
    // Inside its window: fine.
    create(
        &mut s,
        "Open",
        json!({"streamId": "now1", "plannedStartDate": (t0 + -60), "plannedEndDate": (t0 + 3600)}),
    );
    assert_start(&publish_new(&mut s, "Open", "now1", json!({})), "now1");
}

#[test]
fn viewer_limit_reached() {
    let mut s = server();
    assert_error(
        &play_new(&mut s, "Lim", "v1", json!({})),
        "viewerLimitReached",
    );
    // The broadcast's own limit wins over the app's.
    create(
        &mut s,
        "Lim",
        json!({"streamId": "v2", "webRTCViewerLimit": 5}),
    );
    assert_play_allowed(&play_new(&mut s, "Lim", "v2", json!({})));
}

#[test]
fn room_not_active_or_expired() {
    let mut s = server();
    let t0 = s.wall_s(0);
    // acceptOnlyRoomsInDataStore: a room (mainTrack) without a record is refused.
    assert_error(
        &publish_new(&mut s, "Rooms", "r1", json!({"mainTrack": "noroom"})),
        "room_not_active_or_expired",
    );
    create(&mut s, "Rooms", json!({"streamId": "room1"}));
    assert_start(
        &publish_new(&mut s, "Rooms", "r2", json!({"mainTrack": "room1"})),
        "r2",
    );
    // A room outside its planned dates, for a player.
    create(
        &mut s,
        "Open",
        json!({"streamId": "oldroom", "plannedStartDate": (t0 + -7200), "plannedEndDate": (t0 + -3600)}),
    );
    assert_error(
        &play_new(&mut s, "Open", "x", json!({"room": "oldroom"})),
        "room_not_active_or_expired",
    );
}

// Issue 9 (hardening, authorisation): the regression tests of its findings that need no media.

const ADMIN_KEY: &str = "same-key-for-rest-and-streams-0123456789";

fn hardened_server() -> Sim {
    let apps = [
        (
            "Tok",
            json!({"publishTokenControlEnabled": true, "playTokenControlEnabled": true}),
        ),
        ("Totp", json!({"enableTimeTokenForPublish": true})),
        ("Rooms", json!({"acceptOnlyRoomsInDataStore": true})),
        (
            "Admin",
            json!({"jwtControlEnabled": true, "jwtSecretKey": ADMIN_KEY,
                "playJwtControlEnabled": true, "jwtStreamSecretKey": ADMIN_KEY}),
        ),
    ];
    with_apps(32, &apps)
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 45000))
}

fn one_time_token(s: &mut Sim, app: &str, id: &str, kind: &str) -> String {
    let exp = s.wall_s(600);
    let (status, t) = rest(
        s,
        "GET",
        &format!("/{app}/rest/v2/broadcasts/{id}/token?expireDate={exp}&type={kind}"),
        None,
    );
    assert_eq!(status, 200, "{t}");
    t["tokenId"].as_str().expect("tokenId").to_string()
}

fn totp_code(s: &mut Sim, app: &str, stream: &str, sid: &str, kind: &str) -> String {
    let (status, r) = rest(
        s,
        "GET",
        &format!("/{app}/rest/v2/broadcasts/{stream}/subscribers/{sid}/totp?type={kind}"),
        None,
    );
    assert_eq!(status, 200, "{r}");
    r["dataId"].as_str().expect("code").to_string()
}

/// Finding 1: one publish token for `alice` published `victim`, `victim2`, `victim3` with
/// `mainTrack: alice` (measured on the unmodified code: three `start`s). Now refused, and the
/// token still publishes `alice`.
#[test]
fn finding1_a_stream_token_does_not_publish_other_streams_via_main_track() {
    let mut s = hardened_server();
    create(&mut s, "Tok", json!({"streamId": "alice"}));
    let tok = one_time_token(&mut s, "Tok", "alice", "publish");
    for victim in ["victim", "victim2", "victim3"] {
        assert_error(
            &publish_new(
                &mut s,
                "Tok",
                victim,
                json!({"token": tok, "mainTrack": "alice"}),
            ),
            "unauthorized_access",
        );
    }
    let c = s.connect_app("Tok");
    assert_start(&publish(&mut s, c, "alice", json!({"token": tok})), "alice");
    assert_error(
        &publish_new(&mut s, "Tok", "alice2", json!({"token": tok})),
        "unauthorized_access",
    );
}

/// Finding 2, replay: a right code works once.
#[test]
fn finding2_a_totp_code_is_not_replayed() {
    let mut s = hardened_server();
    create(&mut s, "Totp", json!({"streamId": "t3"}));
    let (status, _) = rest(
        &mut s,
        "POST",
        "/Totp/rest/v2/broadcasts/t3/subscribers",
        Some(&json!({"subscriberId": "pub3", "b32Secret": B32, "type": "publish"}).to_string()),
    );
    assert_eq!(status, 200);
    let code = totp_code(&mut s, "Totp", "t3", "pub3", "publish");
    let first = s.connect_app("Totp");
    assert_start(
        &publish(
            &mut s,
            first,
            "t3",
            json!({"subscriberId": "pub3", "subscriberCode": code}),
        ),
        "t3",
    );
    s.close(first);
    assert_error(
        &publish_new(
            &mut s,
            "Totp",
            "t3",
            json!({"subscriberId": "pub3", "subscriberCode": code}),
        ),
        "unauthorized_access",
    );
}

/// Finding 5: joinRoom ran no access check, and any client could take another member's id.
#[test]
fn finding5_join_room_is_checked_and_ids_are_not_taken_over() {
    let mut s = hardened_server();
    let t0 = s.wall_s(0);
    let join = |s: &mut Sim, c: ConnId, room: &str, id: &str| -> Value {
        let m = json!({"command": "joinRoom", "room": room, "mainTrack": room, "streamId": id});
        send(s, c, m, json!({}))
    };
    let alice = s.connect_app("Rooms");
    assert_error(
        &join(&mut s, alice, "noroom", "alice"),
        "room_not_active_or_expired",
    );
    create(&mut s, "Rooms", json!({"streamId": "room5"}));
    create(
        &mut s,
        "Rooms",
        json!({"streamId": "later5", "plannedStartDate": (t0 + 3600), "plannedEndDate": (t0 + 7200)}),
    );
    assert_error(
        &join(&mut s, alice, "later5", "alice"),
        "room_not_active_or_expired",
    );
    let joined = join(&mut s, alice, "room5", "alice");
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");
    // A stranger asks for alice's id.
    let eve = s.connect_app("Rooms");
    assert_error(&join(&mut s, eve, "room5", "alice"), "streamIdInUse");
    // alice is still a member: a third client sees her in the room info once she publishes;
    // simpler: alice's own leave still reports her room.
    let left = send(
        &mut s,
        alice,
        json!({"command": "leaveFromRoom", "room": "room5"}),
        json!({}),
    );
    assert_eq!(left["definition"], "leavedFromRoom");
    // Her id is free again (as after a reconnect).
    let joined = join(&mut s, eve, "room5", "alice");
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");
}

/// Finding 6: the REST API accepted a stream JWT when the two secrets were equal, and JWTs
/// without `exp` never expired.
#[test]
fn finding6_stream_and_rest_jwts_are_not_interchangeable() {
    let mut s = hardened_server();
    let t0 = s.wall_s(0);
    let sign = |claims: Value| {
        antenna_store::crypto::jwt_sign(claims.as_object().expect("object"), ADMIN_KEY)
            .expect("sign")
    };
    let count = "/Admin/rest/v2/broadcasts/count";
    let call = |s: &mut Sim, token: &str| {
        let auth = format!("Bearer {token}");
        s.rest_from(local(), "GET", count, "", Some(&auth)).status
    };
    let stream_jwt = sign(json!({"streamId": "s6", "type": "play", "exp": (t0 + 600)}));
    assert_eq!(
        call(&mut s, &stream_jwt),
        401,
        "a stream JWT is not an admin JWT"
    );
    assert_eq!(call(&mut s, &sign(json!({"sub": "admin"}))), 401, "no exp");
    assert_eq!(
        call(&mut s, &sign(json!({"sub": "admin", "exp": (t0 + 600)}))),
        200
    );
    // The stream side: no exp refused, with exp accepted (play allowed = no_stream_exist).
    assert_error(
        &play_new(
            &mut s,
            "Admin",
            "s6",
            json!({"token": sign(json!({"streamId": "s6", "type": "play"}))}),
        ),
        "unauthorized_access",
    );
    assert_play_allowed(&play_new(
        &mut s,
        "Admin",
        "s6",
        json!({"token": stream_jwt}),
    ));
}
