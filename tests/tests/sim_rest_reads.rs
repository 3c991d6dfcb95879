//! What signalling reads from the datastore the REST API wrote, in the simulation (these were
//! real-binary tests in `server-mio/tests/`; nothing in them is about sockets): an open
//! application, settings changed at run time, and the WebSocket commands that read stored
//! broadcasts, subscribers and subtracks.

use antenna_store::{shared, MemStore};
use antenna_tests::{assert_error, assert_start, Sim};
use proto_core::ConnId;
use serde_json::{json, Value};

const B: &str = "/WebRTCAppEE/rest/v2/broadcasts";

fn sim(seed: u64) -> Sim {
    Sim::new(seed).with_admin(shared(MemStore::new()))
}

/// Sends `msg` on a new connection; its first answer.
fn first(sim: &mut Sim, msg: Value) -> Value {
    let c = sim.connect();
    sim.send_json(c, msg);
    sim.take(c).into_iter().next().unwrap_or(Value::Null)
}

fn publish(id: &str) -> Value {
    json!({"command": "publish", "streamId": id, "video": true, "audio": true})
}

/// The one message of `command` (or `notification` for `command: notification`) `conn` got.
fn take_one(sim: &mut Sim, conn: ConnId, what: &str) -> Value {
    let got = sim.take(conn);
    got.iter()
        .find(|m| m["command"] == what || m["definition"] == what)
        .cloned()
        .unwrap_or_else(|| panic!("no {what} in {got:?}"))
}

#[test]
fn an_open_application_allows_everything() {
    let mut sim = sim(41);
    assert_start(&first(&mut sim, publish("o1")), "o1");
    let play = json!({"command": "play", "streamId": "zz", "room": "", "trackList": []});
    assert_error(&first(&mut sim, play), "no_stream_exist");
}

#[test]
fn settings_changed_at_run_time_apply_at_once() {
    let mut sim = sim(42);
    assert_start(&first(&mut sim, publish("rt1")), "rt1");
    let r = sim.rest(
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(json!({"acceptOnlyStreamsInDataStore": true})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_error(
        &first(&mut sim, publish("rt2")),
        "not_allowed_unregistered_streams",
    );
    // Signalling options follow the first application.
    let r = sim.rest(
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(json!({"stunServerURI": "stun:stun.example.org:3478"})),
    );
    assert_eq!(r.status, 200);
    let ice = first(&mut sim, json!({"command": "getIceServerConfig"}));
    assert_eq!(ice["command"], "iceServerConfig", "{ice}");
    assert!(
        ice.to_string().contains("stun:stun.example.org:3478"),
        "{ice}"
    );
}

/// Signalling's answers from the datastore REST wrote: `getBroadcastObject` of a stored,
/// never-live main track, `getSubscribers`, `getSubtracks`/`getSubtracksCount` with a stored
/// subtrack, and a publish over the main track's `subtracksLimit` refused with AMS's
/// definition.
#[test]
fn websocket_commands_read_the_datastore() {
    let mut sim = sim(43);
    let ok = |r: antenna_tests::RestAnswer| assert_eq!(r.status, 200, "{r:?}");
    ok(sim.rest(
        "POST",
        &format!("{B}/create"),
        Some(json!({"streamId": "sub0", "name": "Stored sub"})),
    ));
    ok(sim.rest(
        "POST",
        &format!("{B}/create"),
        Some(
            json!({"streamId": "main", "name": "Main", "subtracksLimit": 1,
                    "plannedStartDate": 1_900_000_000_i64}),
        ),
    ));
    ok(sim.rest("POST", &format!("{B}/main/subtrack?id=sub0"), None));
    ok(sim.rest(
        "POST",
        &format!("{B}/main/subscribers"),
        Some(json!({"subscriberId": "alice", "b32Secret": "JBSWY3DPEHPK3PXP", "type": "play"})),
    ));
    let c = sim.connect();
    sim.send_json(
        c,
        json!({"command": "getBroadcastObject", "streamId": "main"}),
    );
    let m = take_one(&mut sim, c, "broadcastObject");
    let b: Value = serde_json::from_str(m["broadcast"].as_str().expect("string")).expect("json");
    assert_eq!(b["name"], "Main", "{b}");
    assert_eq!(b["status"], "created", "{b}");
    assert_eq!(b["plannedStartDate"], 1_900_000_000_i64, "{b}");
    assert_eq!(b["subTrackStreamIds"], json!(["sub0"]), "{b}");
    sim.send_json(
        c,
        json!({"command": "getBroadcastObject", "streamId": "nothing"}),
    );
    assert_error(&take_one(&mut sim, c, "error"), "no_stream_exist");
    sim.send_json(
        c,
        json!({"command": "getSubscribers", "streamId": "main", "offset": 0, "size": 10}),
    );
    let m = take_one(&mut sim, c, "subscriberList");
    let list = m["subscriberList"].as_array().expect("list");
    assert_eq!(list.len(), 1, "{m}");
    let sub: Value = serde_json::from_str(list[0].as_str().expect("string")).expect("json");
    assert_eq!(sub["subscriberId"], "alice");
    assert!(
        sub.get("b32Secret").is_none(),
        "no secret over the WebSocket: {sub}"
    );
    sim.send_json(c, json!({"command": "getSubtracks", "streamId": "main"}));
    let m = take_one(&mut sim, c, "subtrackList");
    let t: Value =
        serde_json::from_str(m["subtrackList"][0].as_str().expect("string")).expect("json");
    assert_eq!(
        (t["streamId"].as_str(), t["status"].as_str()),
        (Some("sub0"), Some("created"))
    );
    // One live subtrack fills the limit of 1; the stored, not broadcasting sub0 holds none.
    let p1 = sim.connect();
    sim.send_json(
        p1,
        json!({"command": "publish", "streamId": "p1", "mainTrack": "main", "video": true}),
    );
    take_one(&mut sim, p1, "start");
    sim.send_json(
        c,
        json!({"command": "getSubtracksCount", "streamId": "main"}),
    );
    assert_eq!(take_one(&mut sim, c, "subtrackCount")["count"], 2);
    let p2 = sim.connect();
    sim.send_json(
        p2,
        json!({"command": "publish", "streamId": "p2", "mainTrack": "main", "video": true}),
    );
    let e = take_one(&mut sim, p2, "error");
    assert_error(
        &e,
        "main_track_has_max_subtrack_count__not_allowed_to_add_more_subtracks",
    );
    assert_eq!(e["streamId"], "p2");
    // p1 stops: its slot is free.
    sim.send_json(p1, json!({"command": "stop", "streamId": "p1"}));
    take_one(&mut sim, p1, "publish_finished");
    sim.send_json(
        p2,
        json!({"command": "publish", "streamId": "p2", "mainTrack": "main", "video": true}),
    );
    take_one(&mut sim, p2, "start");
}
