//! Stream security against the real `antenna` binary: every security error definition over a
//! real WebSocket, with the settings of each application from the TOML file and the records
//! (broadcasts, tokens, subscribers) made through the REST API over real HTTP.
//!
//! A publish that passes the checks gets `start`; a play that passes them gets
//! `no_stream_exist` (nobody publishes), so "allowed" and "refused" are told apart.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{config_file, temp_dir, unix_s, Client, Server};
use serde_json::{json, Value};

const JWT_KEY: &str = "0123456789abcdef0123456789abcdef-stream";
const HASH_SECRET: &str = "hash-secret";
/// `JBSWY3DPEHPK3PXP` (Base32 of "Hello!\xde\xad\xbe\xef").
const B32: &str = "JBSWY3DPEHPK3PXP";

/// One server, one application per security feature.
fn server() -> Server {
    let cfg = config_file(
        "security",
        &format!(
            r#"
            [apps.Open]
            [apps.Reg]
            acceptOnlyStreamsInDataStore = true
            [apps.Tok]
            publishTokenControlEnabled = true
            playTokenControlEnabled = true
            [apps.Jwt]
            publishJwtControlEnabled = true
            playJwtControlEnabled = true
            jwtStreamSecretKey = "{JWT_KEY}"
            [apps.Hash]
            hashControlPublishEnabled = true
            hashControlPlayEnabled = true
            tokenHashSecret = "{HASH_SECRET}"
            [apps.Totp]
            enableTimeTokenForPublish = true
            enableTimeTokenForPlay = true
            [apps.Lim]
            webRTCViewerLimit = 0
            [apps.Rooms]
            acceptOnlyRoomsInDataStore = true
            "#
        ),
    );
    Server::start_with(&["--config", cfg.to_str().expect("utf-8 path")])
}

fn rest(s: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    s.rest(method, path, body)
}

fn create(s: &Server, app: &str, body: Value) -> Value {
    let (status, b) = rest(
        s,
        "POST",
        &format!("/{app}/rest/v2/broadcasts/create"),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{b}");
    b
}

fn publish(c: &mut Client, id: &str, extra: Value) -> Value {
    let mut m = json!({"command": "publish", "streamId": id, "video": true, "audio": true});
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    c.send(&m);
    c.recv()
}

fn play(c: &mut Client, id: &str, extra: Value) -> Value {
    let mut m = json!({"command": "play", "streamId": id, "room": "", "trackList": []});
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    c.send(&m);
    c.recv()
}

fn assert_error(v: &Value, definition: &str) {
    assert_eq!(v["command"], "error", "{v}");
    assert_eq!(v["definition"], definition, "{v}");
}

fn assert_start(v: &Value, id: &str) {
    assert_eq!(v["command"], "start", "{v}");
    assert_eq!(v["streamId"], id, "{v}");
}

fn assert_play_allowed(v: &Value) {
    assert_error(v, "no_stream_exist");
}

#[test]
fn open_app_allows_everything() {
    let s = server();
    let mut c = s.ws("/Open/websocket");
    assert_start(&publish(&mut c, "o1", json!({})), "o1");
    assert_play_allowed(&play(&mut s.ws("/Open/websocket"), "zz", json!({})));
}

#[test]
fn not_allowed_unregistered_streams() {
    let s = server();
    let mut c = s.ws("/Reg/websocket");
    assert_error(
        &publish(&mut c, "unknown1", json!({})),
        "not_allowed_unregistered_streams",
    );
    create(&s, "Reg", json!({"streamId": "known1"}));
    assert_start(
        &publish(&mut s.ws("/Reg/websocket"), "known1", json!({})),
        "known1",
    );
}

#[test]
fn one_time_tokens_for_publish_and_play() {
    let s = server();
    create(&s, "Tok", json!({"streamId": "t1"}));
    let token = |kind: &str| -> String {
        let (status, t) = rest(
            &s,
            "GET",
            &format!(
                "/Tok/rest/v2/broadcasts/t1/token?expireDate={}&type={kind}",
                unix_s(600)
            ),
            None,
        );
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["type"], kind, "{t}");
        t["tokenId"].as_str().expect("tokenId").to_string()
    };
    let publish_token = token("publish");
    let play_token = token("play");
    // No token, a wrong token, the play token for publishing: refused.
    for extra in [
        json!({}),
        json!({"token": "wrong"}),
        json!({"token": play_token}),
    ] {
        assert_error(
            &publish(&mut s.ws("/Tok/websocket"), "t1", extra),
            "unauthorized_access",
        );
    }
    // The publish token works once.
    let mut p = s.ws("/Tok/websocket");
    assert_start(
        &publish(&mut p, "t1", json!({"token": publish_token})),
        "t1",
    );
    drop(p);
    assert_error(
        &publish(
            &mut s.ws("/Tok/websocket"),
            "t1",
            json!({"token": publish_token}),
        ),
        "unauthorized_access",
    );
    // Play: wrong token refused, the play token accepted (then used up).
    assert_error(
        &play(&mut s.ws("/Tok/websocket"), "t1", json!({"token": "wrong"})),
        "unauthorized_access",
    );
    assert_play_allowed(&play(
        &mut s.ws("/Tok/websocket"),
        "t1",
        json!({"token": play_token}),
    ));
    assert_error(
        &play(
            &mut s.ws("/Tok/websocket"),
            "t1",
            json!({"token": play_token}),
        ),
        "unauthorized_access",
    );
}

#[test]
fn jwt_stream_tokens() {
    let s = server();
    let jwt = |id: &str, kind: &str| -> String {
        let (status, t) = rest(
            &s,
            "GET",
            &format!(
                "/Jwt/rest/v2/broadcasts/{id}/jwt-token?expireDate={}&type={kind}",
                unix_s(600)
            ),
            None,
        );
        assert_eq!(status, 200, "{t}");
        t["tokenId"].as_str().expect("tokenId").to_string()
    };
    let pub_jwt = jwt("j1", "publish");
    let play_jwt = jwt("j1", "play");
    let other = jwt("j2", "publish");
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
            &publish(&mut s.ws("/Jwt/websocket"), "j1", bad),
            "unauthorized_access",
        );
    }
    assert_start(
        &publish(&mut s.ws("/Jwt/websocket"), "j1", json!({"token": pub_jwt})),
        "j1",
    );
    assert_error(
        &play(&mut s.ws("/Jwt/websocket"), "j1", json!({"token": pub_jwt})),
        "unauthorized_access",
    );
    // JWTs are not used up.
    for _ in 0..2 {
        assert_play_allowed(&play(
            &mut s.ws("/Jwt/websocket"),
            "j1",
            json!({"token": play_jwt}),
        ));
    }
}

#[test]
fn hash_tokens() {
    let s = server();
    let good = antenna_store::crypto::hash_token("h1", "publish", HASH_SECRET);
    let play_hash = antenna_store::crypto::hash_token("h1", "play", HASH_SECRET);
    let wrong_secret = antenna_store::crypto::hash_token("h1", "publish", "other");
    for bad in [
        json!({}),
        json!({"token": wrong_secret}),
        json!({"token": play_hash}),
    ] {
        assert_error(
            &publish(&mut s.ws("/Hash/websocket"), "h1", bad),
            "unauthorized_access",
        );
    }
    assert_start(
        &publish(&mut s.ws("/Hash/websocket"), "h1", json!({"token": good})),
        "h1",
    );
    assert_error(
        &play(&mut s.ws("/Hash/websocket"), "h1", json!({"token": good})),
        "unauthorized_access",
    );
    assert_play_allowed(&play(
        &mut s.ws("/Hash/websocket"),
        "h1",
        json!({"token": play_hash}),
    ));
}

#[test]
fn totp_subscribers_and_user_blocked() {
    let s = server();
    create(&s, "Totp", json!({"streamId": "c1"}));
    for (sid, kind) in [("pubsub1", "publish"), ("playsub1", "play")] {
        let (status, r) = rest(
            &s,
            "POST",
            "/Totp/rest/v2/broadcasts/c1/subscribers",
            Some(&json!({"subscriberId": sid, "b32Secret": B32, "type": kind}).to_string()),
        );
        assert_eq!((status, &r["success"]), (200, &json!(true)), "{r}");
    }
    let code = |sid: &str, kind: &str| -> String {
        let (status, r) = rest(
            &s,
            "GET",
            &format!("/Totp/rest/v2/broadcasts/c1/subscribers/{sid}/totp?type={kind}"),
            None,
        );
        assert_eq!(status, 200, "{r}");
        r["dataId"].as_str().expect("code").to_string()
    };
    let pub_code = code("pubsub1", "publish");
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
        json!({"subscriberId": "playsub1", "subscriberCode": code("playsub1", "play")}),
    ] {
        assert_error(
            &publish(&mut s.ws("/Totp/websocket"), "c1", bad),
            "unauthorized_access",
        );
    }
    assert_start(
        &publish(
            &mut s.ws("/Totp/websocket"),
            "c1",
            json!({"subscriberId": "pubsub1", "subscriberCode": pub_code}),
        ),
        "c1",
    );
    let play_code = code("playsub1", "play");
    assert_error(
        &play(
            &mut s.ws("/Totp/websocket"),
            "c1",
            json!({"subscriberId": "playsub1", "subscriberCode": wrong}),
        ),
        "unauthorized_access",
    );
    assert_play_allowed(&play(
        &mut s.ws("/Totp/websocket"),
        "c1",
        json!({"subscriberId": "playsub1", "subscriberCode": play_code}),
    ));
    // Blocked for an hour: user_blocked, even with the right code.
    let (status, r) = rest(
        &s,
        "PUT",
        "/Totp/rest/v2/broadcasts/c1/subscribers/playsub1/block/3600/play",
        None,
    );
    assert_eq!(status, 200, "{r}");
    assert_error(
        &play(
            &mut s.ws("/Totp/websocket"),
            "c1",
            json!({"subscriberId": "playsub1", "subscriberCode": code("playsub1", "play")}),
        ),
        "user_blocked",
    );
}

#[test]
fn stream_not_active_or_expired() {
    let s = server();
    // Planned dates both set and over.
    create(
        &s,
        "Open",
        json!({"streamId": "past1", "plannedStartDate": unix_s(-7200), "plannedEndDate": unix_s(-3600)}),
    );
    // Planned to start later.
    create(
        &s,
        "Open",
        json!({"streamId": "future1", "plannedStartDate": unix_s(3600), "plannedEndDate": unix_s(7200)}),
    );
    // Expired one millisecond after creation.
    create(
        &s,
        "Open",
        json!({"streamId": "exp1", "expireDurationMS": 1}),
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    for id in ["past1", "future1", "exp1"] {
        assert_error(
            &publish(&mut s.ws("/Open/websocket"), id, json!({})),
            "stream_not_active_or_expired",
        );
    }
    // Inside its window: fine.
    create(
        &s,
        "Open",
        json!({"streamId": "now1", "plannedStartDate": unix_s(-60), "plannedEndDate": unix_s(3600)}),
    );
    assert_start(
        &publish(&mut s.ws("/Open/websocket"), "now1", json!({})),
        "now1",
    );
}

#[test]
fn viewer_limit_reached() {
    let s = server();
    assert_error(
        &play(&mut s.ws("/Lim/websocket"), "v1", json!({})),
        "viewerLimitReached",
    );
    // The broadcast's own limit wins over the app's.
    create(&s, "Lim", json!({"streamId": "v2", "webRTCViewerLimit": 5}));
    assert_play_allowed(&play(&mut s.ws("/Lim/websocket"), "v2", json!({})));
}

#[test]
fn settings_changed_at_run_time_apply_at_once() {
    let s = server();
    assert_start(
        &publish(&mut s.ws("/Open/websocket"), "rt1", json!({})),
        "rt1",
    );
    let (status, r) = rest(
        &s,
        "PUT",
        "/rest/v2/applications/settings/Open",
        Some(r#"{"acceptOnlyStreamsInDataStore": true}"#),
    );
    assert_eq!(status, 200, "{r}");
    assert_error(
        &publish(&mut s.ws("/Open/websocket"), "rt2", json!({})),
        "not_allowed_unregistered_streams",
    );
    // Signalling options follow the first application (Hash, in name order).
    let (status, _) = rest(
        &s,
        "PUT",
        "/rest/v2/applications/settings/Hash",
        Some(r#"{"stunServerURI": "stun:stun.example.org:3478"}"#),
    );
    assert_eq!(status, 200);
    let mut c = s.ws("/Hash/websocket");
    c.send(&json!({"command": "getIceServerConfig"}));
    let ice = c.recv_command("iceServerConfig");
    assert!(
        ice.to_string().contains("stun:stun.example.org:3478"),
        "{ice}"
    );
}

#[test]
fn data_store_not_available_when_the_data_dir_is_a_file() {
    let dir = temp_dir("not-a-dir");
    let file = dir.join("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let s = Server::start_with(&["--data-dir", file.to_str().expect("utf-8")]);
    assert!(
        s.wait_log("DATASTORE NOT AVAILABLE"),
        "no clear log line:\n{}",
        s.log().join("\n")
    );
    // The server keeps running: ping works, publish and play are refused.
    let mut c = s.client();
    c.ping_pong();
    assert_error(
        &publish(&mut c, "d1", json!({})),
        "data_store_not_available",
    );
    assert_error(&play(&mut c, "d1", json!({})), "data_store_not_available");
    let (status, r) = rest(&s, "GET", "/WebRTCAppEE/rest/v2/broadcasts/count", None);
    assert_eq!(status, 503, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("data_store_not_available"),
        "{r}"
    );
}

#[test]
fn room_not_active_or_expired() {
    let s = server();
    // acceptOnlyRoomsInDataStore: a room (mainTrack) without a record is refused.
    assert_error(
        &publish(
            &mut s.ws("/Rooms/websocket"),
            "r1",
            json!({"mainTrack": "noroom"}),
        ),
        "room_not_active_or_expired",
    );
    create(&s, "Rooms", json!({"streamId": "room1"}));
    assert_start(
        &publish(
            &mut s.ws("/Rooms/websocket"),
            "r2",
            json!({"mainTrack": "room1"}),
        ),
        "r2",
    );
    // A room outside its planned dates, for a player.
    create(
        &s,
        "Open",
        json!({"streamId": "oldroom", "plannedStartDate": unix_s(-7200), "plannedEndDate": unix_s(-3600)}),
    );
    assert_error(
        &play(
            &mut s.ws("/Open/websocket"),
            "x",
            json!({"room": "oldroom"}),
        ),
        "room_not_active_or_expired",
    );
}

#[test]
fn bad_app_settings_in_the_config_exit_2() {
    for (name, table) in [
        ("type", "webRTCViewerLimit = \"many\""),
        ("cidr", "remoteAllowedCIDR = \"10.0.0.0/33\""),
    ] {
        let cfg = config_file(name, &format!("[apps.WebRTCAppEE]\n{table}\n"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_antenna"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--udp",
                "127.0.0.1:0",
                "--memory-store",
            ])
            .args(["--config", cfg.to_str().expect("utf-8")])
            .output()
            .expect("run antenna");
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("[apps.WebRTCAppEE]"), "{err}");
    }
}
