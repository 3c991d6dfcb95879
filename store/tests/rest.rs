//! The REST handlers: every endpoint, bad input and unknown ids. (Who may call them is the
//! gate's: `src/gate/tests.rs`, and through the node `tests/tests/sim_rest_api.rs`.)
//! (Over 600 lines: one test per endpoint group of the handlers, over the same `Api` fixture.)

use antenna_store::crypto::{base32_encode, jwt_verify, totp};
use antenna_store::{
    shared, MemStore, RestApi, RestRequest, RestResponse, SharedStore, StreamSecurity, TokenType,
    WriteSeq,
};
use proto_core::{PlayRequest, PublishRequest, SignalError};
use serde_json::{json, Value};

/// 2026-01-01T00:00:00Z in unix ms.
const NOW: u64 = 1_767_225_600_000;
const NOW_S: u64 = NOW / 1000;

struct Api {
    store: SharedStore,
    rest: RestApi,
}

impl Api {
    fn new() -> Api {
        let store = shared(MemStore::new());
        Api {
            rest: RestApi::new(store.clone(), [42; 32]),
            store,
        }
    }

    fn call(&mut self, method: &str, url: &str, body: &str) -> RestResponse {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        self.rest.serve(
            NOW,
            &RestRequest {
                method,
                path,
                query,
                body: body.as_bytes(),
            },
        )
    }

    /// Calls and parses the JSON body; asserts the status.
    fn json(&mut self, method: &str, url: &str, body: &str, status: u16) -> Value {
        let r = self.call(method, url, body);
        assert_eq!(
            r.status,
            status,
            "{method} {url}: {} {}",
            r.status,
            r.body_str()
        );
        assert_eq!(r.content_type, "application/json");
        serde_json::from_slice(&r.body).unwrap()
    }
}

const B: &str = "/LiveApp/rest/v2/broadcasts";

#[test]
fn broadcast_create_get_update_delete() {
    let mut api = Api::new();
    let b = api.json(
        "POST",
        &format!("{B}/create"),
        r#"{"streamId":"s1","name":"first","webRTCViewerLimit":3,"plannedStartDate":5}"#,
        200,
    );
    assert_eq!(b["streamId"], "s1");
    assert_eq!(b["status"], "created");
    assert_eq!(b["date"], NOW);
    assert_eq!(b["webRTCViewerLimit"], 3);
    let got = api.json("GET", &format!("{B}/s1"), "", 200);
    assert_eq!(got, b);
    // update merges the given keys
    let r = api.json(
        "PUT",
        &format!("{B}/s1"),
        r#"{"name":"renamed","streamId":"ignored","description":null}"#,
        200,
    );
    assert_eq!(r["success"], true);
    let got = api.json("GET", &format!("{B}/s1"), "", 200);
    assert_eq!(got["name"], "renamed");
    assert_eq!(got["streamId"], "s1");
    assert_eq!(got["webRTCViewerLimit"], 3);
    // count, list
    api.json("POST", &format!("{B}/create"), r#"{"streamId":"s2"}"#, 200);
    assert_eq!(api.json("GET", &format!("{B}/count"), "", 200)["number"], 2);
    assert_eq!(
        api.json("GET", &format!("{B}/active-live-stream-count"), "", 200)["number"],
        0
    );
    let list = api.json("GET", &format!("{B}/list/0/10"), "", 200);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let list = api.json("GET", &format!("{B}/list/1/10"), "", 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let list = api.json("GET", &format!("{B}/list/0/10?search=renamed"), "", 200);
    assert_eq!(list[0]["streamId"], "s1");
    // delete
    let r = api.json("DELETE", &format!("{B}/s1"), "", 200);
    assert_eq!(r["success"], true);
    api.json("GET", &format!("{B}/s1"), "", 404);
    api.json("DELETE", &format!("{B}/s1"), "", 404);
    // bulk delete
    api.json("POST", &format!("{B}/create"), r#"{"streamId":"s3"}"#, 200);
    let r = api.json("DELETE", &format!("{B}?ids=s2,s3"), "", 200);
    assert_eq!(r["success"], true);
    assert_eq!(api.json("GET", &format!("{B}/count"), "", 200)["number"], 0);
    let r = api.json("DELETE", &format!("{B}?ids=nope"), "", 404);
    assert_eq!(r["success"], false);
}

#[test]
fn list_is_capped_at_50() {
    let mut api = Api::new();
    for i in 0..60 {
        api.json(
            "POST",
            &format!("{B}/create"),
            &format!(r#"{{"streamId":"s{i}"}}"#),
            200,
        );
    }
    let list = api.json("GET", &format!("{B}/list/0/100"), "", 200);
    assert_eq!(list.as_array().unwrap().len(), 50);
    assert_eq!(
        api.json("GET", &format!("{B}/count"), "", 200)["number"],
        60
    );
}

#[test]
fn create_generates_an_id_and_refuses_duplicates_and_bad_ids() {
    let mut api = Api::new();
    let b = api.json("POST", &format!("{B}/create"), "{}", 200);
    let id = b["streamId"].as_str().unwrap().to_string();
    assert!(id.len() > 16 && proto_core::is_valid_stream_id(&id), "{id}");
    let b2 = api.json("POST", &format!("{B}/create"), "", 200);
    assert_ne!(b2["streamId"], b["streamId"]);
    let r = api.json(
        "POST",
        &format!("{B}/create"),
        &format!(r#"{{"streamId":"{id}"}}"#),
        400,
    );
    assert_eq!(r["success"], false);
    assert!(r["message"]
        .as_str()
        .unwrap()
        .contains("already being used"));
    let r = api.json("POST", &format!("{B}/create"), r#"{"streamId":"a b"}"#, 400);
    assert_eq!(r["message"], "Stream id is not valid.");
}

#[test]
fn bad_json_and_wrong_types_get_400_with_a_message() {
    let mut api = Api::new();
    for body in [
        "not json",
        r#"{"streamId": 5}"#,
        r#"{"date":"yesterday"}"#,
        r#"{"subTrackStreamIds":"x"}"#,
        "[]",
    ] {
        let r = api.json("POST", &format!("{B}/create"), body, 400);
        assert_eq!(r["success"], false, "{body}");
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .starts_with("Bad request body"),
            "{body}"
        );
    }
    api.json("POST", &format!("{B}/create"), r#"{"streamId":"s1"}"#, 200);
    api.json(
        "PUT",
        &format!("{B}/s1"),
        r#"{"expireDurationMS":"long"}"#,
        400,
    );
    api.json("PUT", &format!("{B}/s1"), "[1]", 400);
    api.json("GET", &format!("{B}/list/x/10"), "", 400);
    api.json("GET", &format!("{B}/list/0/-1"), "", 400);
    api.json(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        r#"{"timeTokenPeriod":"sixty"}"#,
        400,
    );
    api.json(
        "POST",
        &format!("{B}/validate-token"),
        r#"{"tokenId":1}"#,
        400,
    );
    api.json(
        "POST",
        &format!("{B}/s1/subscribers"),
        r#"{"subscriberId":"abcd","type":"owner"}"#,
        400,
    );
}

#[test]
fn unknown_ids_routes_and_methods() {
    let mut api = Api::new();
    api.json("GET", &format!("{B}/nope"), "", 404);
    api.json("PUT", &format!("{B}/nope"), "{}", 404);
    api.json("GET", &format!("{B}/nope/broadcast-statistics"), "", 404);
    api.json("DELETE", &format!("{B}/nope/subscribers/sub1"), "", 404);
    api.json(
        "PUT",
        &format!("{B}/nope/subscribers/sub1/block/10/play"),
        "",
        404,
    );
    api.json("POST", &format!("{B}/nope/subtrack?id=x"), "", 404);
    api.json("GET", &format!("{B}/s1/whatever"), "", 404);
    api.json("GET", "/LiveApp/rest/v2/nothing", "", 404);
    api.json("GET", "/LiveApp/rest/v1/broadcasts/count", "", 404);
    api.json("GET", "/bad app/rest/v2/broadcasts/count", "", 404);
    api.json("PATCH", &format!("{B}/create"), "", 405);
    api.json("GET", &format!("{B}/create"), "", 405);
    api.json("POST", &format!("{B}/s1"), "", 405);
    api.json("GET", &format!("{B}/bad%20id"), "", 400);
}

#[test]
fn statistics() {
    let mut api = Api::new();
    api.json(
        "POST",
        &format!("{B}/create"),
        r#"{"streamId":"s1","webRTCViewerCount":7}"#,
        200,
    );
    let s = api.json("GET", &format!("{B}/s1/broadcast-statistics"), "", 200);
    // counts are reset at creation: the runtime reports live numbers
    assert_eq!(s["totalWebRTCWatchersCount"], 0);
    assert_eq!(s["totalHLSWatchersCount"], 0);
    assert_eq!(s["totalRTMPWatchersCount"], 0);
    assert_eq!(s["totalDASHWatchersCount"], 0);
    let t = api.json("GET", &format!("{B}/total-broadcast-statistics"), "", 200);
    assert_eq!(t["activeLiveStreamCount"], 0);
}

#[test]
fn one_time_token_endpoints_and_policy_agree() {
    let mut api = Api::new();
    let t = api.json(
        "GET",
        &format!("{B}/s1/token?expireDate={}&type=publish", NOW_S + 100),
        "",
        200,
    );
    let id = t["tokenId"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(t["streamId"], "s1");
    assert_eq!(t["type"], "publish");
    assert_eq!(t["expireDate"], NOW_S + 100);
    let list = api.json("GET", &format!("{B}/s1/tokens/list/0/10"), "", 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    // validate-token uses it up
    let body = json!({"tokenId": id, "streamId": "s1", "type": "publish"}).to_string();
    let r = api.json("POST", &format!("{B}/validate-token"), &body, 200);
    assert_eq!(r["success"], true);
    let r = api.json("POST", &format!("{B}/validate-token"), &body, 200);
    assert_eq!(r["success"], false);
    // a REST-made token works with the policy, once
    api.json(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        r#"{"publishTokenControlEnabled":true}"#,
        200,
    );
    let t = api.json(
        "GET",
        &format!("{B}/s1/token?expireDate={}&type=publish", NOW_S + 100),
        "",
        200,
    );
    let id = t["tokenId"].as_str().unwrap().to_string();
    let mut sec = StreamSecurity::new(api.store.clone(), || NOW);
    let req = PublishRequest {
        app: "LiveApp",
        stream_id: "s1",
        token: Some(&id),
        subscriber_id: None,
        subscriber_code: None,
        main_track: None,
        room_member: false,
    };
    assert_eq!(sec.check_publish_at(NOW, &req), Ok(()));
    assert_eq!(
        sec.check_publish_at(NOW, &req),
        Err(SignalError::UnauthorizedAccess)
    );
    // delete tokens
    api.json(
        "GET",
        &format!("{B}/s1/token?expireDate={}&type=play", NOW_S + 100),
        "",
        200,
    );
    api.json("DELETE", &format!("{B}/s1/tokens"), "", 200);
    let list = api.json("GET", &format!("{B}/s1/tokens/list/0/10"), "", 200);
    assert_eq!(list, json!([]));
}

#[test]
fn token_requests_with_bad_parameters() {
    let mut api = Api::new();
    api.json("GET", &format!("{B}/s1/token?type=play"), "", 400);
    api.json(
        "GET",
        &format!("{B}/s1/token?expireDate=abc&type=play"),
        "",
        400,
    );
    api.json(
        "GET",
        &format!("{B}/s1/token?expireDate={}&type=play", NOW_S - 1),
        "",
        400,
    );
    api.json(
        "GET",
        &format!("{B}/s1/token?expireDate={}&type=watch", NOW_S + 10),
        "",
        400,
    );
    // JWT without a key configured
    api.json(
        "GET",
        &format!("{B}/s1/jwt-token?expireDate={}&type=play", NOW_S + 10),
        "",
        400,
    );
}

#[test]
fn jwt_token_endpoint_makes_tokens_the_policy_accepts() {
    let mut api = Api::new();
    let key = "0123456789abcdef0123456789abcdef";
    api.json(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        &json!({"playJwtControlEnabled": true, "jwtStreamSecretKey": key}).to_string(),
        200,
    );
    let t = api.json(
        "GET",
        &format!("{B}/s1/jwt-token?expireDate={}&type=play", NOW_S + 100),
        "",
        200,
    );
    let jwt = t["tokenId"].as_str().unwrap().to_string();
    let claims = jwt_verify(&jwt, key, NOW_S).unwrap();
    assert_eq!(claims["streamId"], "s1");
    assert_eq!(claims["type"], "play");
    assert_eq!(claims["exp"], NOW_S + 100);
    let mut sec = StreamSecurity::new(api.store.clone(), || NOW);
    let req = PlayRequest {
        app: "LiveApp",
        stream_id: "s1",
        token: Some(&jwt),
        subscriber_id: None,
        subscriber_code: None,
        room: None,
        viewers: 0,
        room_member: false,
    };
    assert_eq!(sec.check_play_at(NOW, &req), Ok(()));
    assert_eq!(
        sec.check_play_at((NOW_S + 100) * 1000, &req),
        Err(SignalError::UnauthorizedAccess)
    );
}

#[test]
fn subscribers_and_totp() {
    let mut api = Api::new();
    let key = b"subscriber secret!!!";
    let b32 = base32_encode(key);
    let body = json!({"subscriberId": "viewer1", "b32Secret": b32, "type": "play"}).to_string();
    let r = api.json("POST", &format!("{B}/s1/subscribers"), &body, 200);
    assert_eq!(r["success"], true);
    let list = api.json("GET", &format!("{B}/s1/subscribers/list/0/10"), "", 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["subscriberId"], "viewer1");
    assert!(list[0].get("b32Secret").is_none(), "secret never shown");
    let r = api.json("GET", &format!("{B}/s1/subscribers/viewer1/totp"), "", 200);
    assert_eq!(r["success"], true);
    let code = r["dataId"].as_str().unwrap().to_string();
    assert_eq!(code, totp(key, NOW, 60, 6));
    // the policy accepts that code
    api.json(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        r#"{"enableTimeTokenForPlay":true}"#,
        200,
    );
    let mut sec = StreamSecurity::new(api.store.clone(), || NOW);
    let req = PlayRequest {
        app: "LiveApp",
        stream_id: "s1",
        token: None,
        subscriber_id: Some("viewer1"),
        subscriber_code: Some(&code),
        room: None,
        viewers: 0,
        room_member: false,
    };
    assert_eq!(sec.check_play_at(NOW, &req), Ok(()));
    // block, then the policy says user_blocked
    api.json(
        "PUT",
        &format!("{B}/s1/subscribers/viewer1/block/60/play"),
        "",
        200,
    );
    assert_eq!(sec.check_play_at(NOW, &req), Err(SignalError::UserBlocked));
    api.json(
        "PUT",
        &format!("{B}/s1/subscribers/viewer1/block/x/play"),
        "",
        400,
    );
    api.json(
        "PUT",
        &format!("{B}/s1/subscribers/viewer1/block/5/everything"),
        "",
        400,
    );
    // delete one, delete all
    api.json("DELETE", &format!("{B}/s1/subscribers/viewer1"), "", 200);
    api.json("DELETE", &format!("{B}/s1/subscribers/viewer1"), "", 404);
    api.json("POST", &format!("{B}/s1/subscribers"), &body, 200);
    api.json("DELETE", &format!("{B}/s1/subscribers"), "", 200);
    let list = api.json("GET", &format!("{B}/s1/subscribers/list/0/10"), "", 200);
    assert_eq!(list, json!([]));
}

#[test]
fn subscriber_validation() {
    let mut api = Api::new();
    let url = format!("{B}/s1/subscribers");
    api.json("POST", &url, r#"{"subscriberId":"abc","type":"play"}"#, 400);
    api.json(
        "POST",
        &url,
        r#"{"subscriberId":"abcd","type":"play","b32Secret":"not base32!"}"#,
        400,
    );
    api.json(
        "POST",
        &url,
        r#"{"subscriberId":"abcd","type":"play","totpExpiryPeriodSeconds":5}"#,
        400,
    );
    api.json("POST", &url, r#"{"subscriberId":"abcd"}"#, 400);
    // no secret anywhere: the TOTP endpoint says so
    api.json(
        "POST",
        &url,
        r#"{"subscriberId":"abcd","type":"play"}"#,
        200,
    );
    api.json("GET", &format!("{B}/s1/subscribers/abcd/totp"), "", 400);
    api.json(
        "GET",
        &format!("{B}/s1/subscribers/abcd/totp?type=bad"),
        "",
        400,
    );
}

#[test]
fn totp_for_unstored_subscriber_uses_the_derived_key() {
    let mut api = Api::new();
    api.json(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        r#"{"timeTokenSecretForPublish":"pubsecret","enableTimeTokenForPublish":true}"#,
        200,
    );
    let r = api.json(
        "GET",
        &format!("{B}/s1/subscribers/anyone/totp?type=publish"),
        "",
        200,
    );
    let code = r["dataId"].as_str().unwrap().to_string();
    let mut sec = StreamSecurity::new(api.store.clone(), || NOW);
    let req = PublishRequest {
        app: "LiveApp",
        stream_id: "s1",
        token: None,
        subscriber_id: Some("anyone"),
        subscriber_code: Some(&code),
        main_track: None,
        room_member: false,
    };
    assert_eq!(sec.check_publish_at(NOW, &req), Ok(()));
}

#[test]
fn subtracks() {
    let mut api = Api::new();
    api.json(
        "POST",
        &format!("{B}/create"),
        r#"{"streamId":"room","subtracksLimit":1}"#,
        200,
    );
    api.json("POST", &format!("{B}/create"), r#"{"streamId":"a"}"#, 200);
    let r = api.json("POST", &format!("{B}/room/subtrack?id=a"), "", 200);
    assert_eq!(
        r,
        json!({"success":true,"message":null,"dataId":"a","errorId":0})
    );
    // again: still listed once
    api.json("POST", &format!("{B}/room/subtrack?id=a"), "", 200);
    assert_eq!(
        api.json("GET", &format!("{B}/room"), "", 200)["subTrackStreamIds"],
        json!(["a"])
    );
    assert_eq!(
        api.json("GET", &format!("{B}/a"), "", 200)["mainTrackStreamId"],
        "room"
    );
    // unknown subtrack, unknown main track, no id, itself
    let r = api.json("POST", &format!("{B}/room/subtrack?id=b"), "", 404);
    assert_eq!(r["success"], false);
    assert_eq!(
        r["message"],
        "There is no stream with id:b as subtrack or room as mainTrack"
    );
    api.json("POST", &format!("{B}/nope/subtrack?id=a"), "", 404);
    api.json("DELETE", &format!("{B}/nope/subtrack?id=a"), "", 404);
    api.json("POST", &format!("{B}/room/subtrack"), "", 400);
    api.json("POST", &format!("{B}/room/subtrack?id=room"), "", 400);
    api.json("POST", &format!("{B}/room/subtrack?id=a%2Fb"), "", 400);
    api.json("GET", &format!("{B}/room/subtrack?id=a"), "", 405);
    // subtracksLimit counts broadcasting subtracks (as AMS): `a` is only created, so `b` fits
    api.json("POST", &format!("{B}/create"), r#"{"streamId":"b"}"#, 200);
    api.json("POST", &format!("{B}/room/subtrack?id=b"), "", 200);
    api.json(
        "PUT",
        &format!("{B}/a"),
        r#"{"status":"broadcasting"}"#,
        200,
    );
    api.json("POST", &format!("{B}/create"), r#"{"streamId":"d"}"#, 200);
    let r = api.json("POST", &format!("{B}/room/subtrack?id=d"), "", 400);
    assert_eq!(
        r["message"],
        "Subtrack limit is reached for the main track:room"
    );
    assert_eq!(
        api.json("GET", &format!("{B}/d"), "", 200)["mainTrackStreamId"],
        Value::Null
    );
    // a broadcasting subtrack that ends frees its slot
    api.json("PUT", &format!("{B}/a"), r#"{"status":"finished"}"#, 200);
    api.json("POST", &format!("{B}/room/subtrack?id=d"), "", 200);
    assert_eq!(
        api.json("GET", &format!("{B}/room"), "", 200)["subTrackStreamIds"],
        json!(["a", "b", "d"])
    );
    // DELETE unlinks both sides
    api.json("DELETE", &format!("{B}/room/subtrack?id=d"), "", 200);
    assert_eq!(
        api.json("GET", &format!("{B}/d"), "", 200)["mainTrackStreamId"],
        Value::Null
    );
    let r = api.json("DELETE", &format!("{B}/room/subtrack?id=d"), "", 404);
    assert_eq!(
        r["message"],
        "Subtrack(d) is not removed from mainTrack:room"
    );
    api.json("DELETE", &format!("{B}/room/subtrack?id=b"), "", 200);
    // deleting the subtrack unlinks it
    api.json("DELETE", &format!("{B}/a"), "", 200);
    assert_eq!(
        api.json("GET", &format!("{B}/room"), "", 200)["subTrackStreamIds"],
        json!([])
    );
    api.json("DELETE", &format!("{B}/room/subtrack?id=a"), "", 404);
    // deleteSubtracks
    api.json("POST", &format!("{B}/create"), r#"{"streamId":"c"}"#, 200);
    api.json("POST", &format!("{B}/room/subtrack?id=c"), "", 200);
    api.json("DELETE", &format!("{B}/room?deleteSubtracks=true"), "", 200);
    api.json("GET", &format!("{B}/c"), "", 404);
}

#[test]
fn settings_get_put_take_effect_and_keep_unknown_keys() {
    let mut api = Api::new();
    let s = api.json("GET", "/rest/v2/applications/settings/LiveApp", "", 200);
    assert_eq!(s["remoteAllowedCIDR"], "127.0.0.1");
    assert_eq!(s["webRTCViewerLimit"], -1);
    let r = api.call(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        r#"{"webRTCViewerLimit":1,"hlsMuxingEnabled":false}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.settings_changed.as_deref(), Some("LiveApp"));
    let s = api.json("GET", "/rest/v2/applications/settings/LiveApp", "", 200);
    assert_eq!(s["webRTCViewerLimit"], 1);
    assert_eq!(s["hlsMuxingEnabled"], false);
    // effective at once
    let mut sec = StreamSecurity::new(api.store.clone(), || NOW);
    let req = PlayRequest {
        app: "LiveApp",
        stream_id: "s1",
        token: None,
        subscriber_id: None,
        subscriber_code: None,
        room: None,
        viewers: 1,
        room_member: false,
    };
    assert_eq!(
        sec.check_play_at(NOW, &req),
        Err(SignalError::ViewerLimitReached)
    );
    // other apps keep their defaults
    let s = api.json("GET", "/rest/v2/applications/settings/OtherApp", "", 200);
    assert_eq!(s["webRTCViewerLimit"], -1);
    // the app-local path works too
    let s = api.json(
        "GET",
        "/LiveApp/rest/v2/applications/settings/LiveApp",
        "",
        200,
    );
    assert_eq!(s["webRTCViewerLimit"], 1);
    // bad CIDR refused
    api.json(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        r#"{"remoteAllowedCIDR":"10.0.0.0/99"}"#,
        400,
    );
    api.json("DELETE", "/rest/v2/applications/settings/LiveApp", "", 405);
    // Settings change with PUT only.
    api.json(
        "POST",
        "/rest/v2/applications/settings/LiveApp",
        r#"{"remoteAllowedCIDR":"0.0.0.0/0"}"#,
        405,
    );
    let s = api.json("GET", "/rest/v2/applications/settings/LiveApp", "", 200);
    assert_eq!(s["remoteAllowedCIDR"], "127.0.0.1");
    // Secrets are write-only: redacted when read, kept when the placeholder is sent back.
    api.json(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        r#"{"tokenHashSecret":"the-hash-secret"}"#,
        200,
    );
    let s = api.json("GET", "/rest/v2/applications/settings/LiveApp", "", 200);
    assert_eq!(s["tokenHashSecret"], antenna_store::REDACTED);
    api.json(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        &s.to_string(),
        200,
    );
    assert_eq!(
        api.store
            .borrow()
            .data()
            .settings("LiveApp")
            .token_hash_secret,
        "the-hash-secret"
    );
}

#[test]
fn writes_report_the_sequence_to_wait_for_and_reads_do_not() {
    let mut api = Api::new();
    let r = api.call("POST", &format!("{B}/create"), r#"{"streamId":"s1"}"#);
    assert_eq!(r.durable_after, Some(WriteSeq(1)));
    let r = api.call("GET", &format!("{B}/s1"), "");
    assert_eq!(r.durable_after, None);
    let r = api.call("PUT", &format!("{B}/s1"), r#"{"name":"x"}"#);
    assert_eq!(r.durable_after, Some(WriteSeq(2)));
    assert!(api.store.borrow().durable_seq() >= WriteSeq(2));
    let r = api.call(
        "GET",
        &format!("{B}/s1/token?expireDate={}&type=play", NOW_S + 1),
        "",
    );
    assert_eq!(r.durable_after, Some(WriteSeq(3)));
    let _ = TokenType::Play;
}

#[test]
fn openapi_document_is_served_and_lists_the_endpoints() {
    let mut api = Api::new();
    let doc = api.json("GET", "/LiveApp/rest/v2/openapi.json", "", 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/{App}/rest/v2/broadcasts/create",
        "/{App}/rest/v2/broadcasts/{id}",
        "/{App}/rest/v2/broadcasts/list/{offset}/{size}",
        "/{App}/rest/v2/broadcasts/{id}/token",
        "/{App}/rest/v2/broadcasts/{id}/jwt-token",
        "/{App}/rest/v2/broadcasts/validate-token",
        "/{App}/rest/v2/broadcasts/{id}/subscribers",
        "/{App}/rest/v2/broadcasts/{id}/subscribers/{sid}/totp",
        "/rest/v2/applications/settings/{App}",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
}
