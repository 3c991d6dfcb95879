//! Scripted signalling flows through the simulated server, with exact message sequences.

use antenna_tests::scenario::CHROME_OFFER;
use antenna_tests::Sim;
use serde_json::json;
use std::time::Duration;

#[test]
fn p2p_two_peers_relay_and_leave() {
    let mut sim = Sim::new(7);
    let a = sim.connect();
    let b = sim.connect();
    sim.send_json(
        a,
        json!({"command":"join","streamId":"room-p","multiPeer":false,"mode":"both"}),
    );
    assert_eq!(sim.take_labels(a), ["notification/joined"]);
    sim.send_json(
        b,
        json!({"command":"join","streamId":"room-p","multiPeer":false,"mode":"both"}),
    );
    assert_eq!(sim.take_labels(b), ["notification/joined"]);
    let got = sim.take(a);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["command"], "start");
    assert_eq!(got[0]["streamId"], "room-p");

    sim.send_json(
        a,
        json!({"command":"takeConfiguration","streamId":"room-p","type":"offer","sdp":"OFFER"}),
    );
    let got = sim.take(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["command"], "takeConfiguration");
    assert_eq!(got[0]["type"], "offer");
    assert_eq!(got[0]["sdp"], "OFFER");
    sim.send_json(
        b,
        json!({"command":"takeConfiguration","streamId":"room-p","type":"answer","sdp":"ANSWER"}),
    );
    assert_eq!(sim.take(a)[0]["sdp"], "ANSWER");
    sim.send_json(a, json!({"command":"takeCandidate","streamId":"room-p","label":1,"id":"1","candidate":"candidate:9"}));
    let got = sim.take(b);
    assert_eq!(got[0]["label"], 1);
    assert_eq!(got[0]["candidate"], "candidate:9");

    // A third peer has no room.
    let c = sim.connect();
    sim.send_json(c, json!({"command":"join","streamId":"room-p"}));
    assert_eq!(sim.take_labels(c), ["error/NoSpaceForNewPeer"]);

    sim.send_json(b, json!({"command":"leave","streamId":"room-p"}));
    assert_eq!(sim.take_labels(b), ["notification/leaved"]);
    assert_eq!(sim.take_labels(a), ["stop"]);
    sim.send_json(a, json!({"command":"takeCandidate","streamId":"room-p","label":0,"id":"0","candidate":"candidate:1"}));
    assert_eq!(sim.take_labels(a), ["error/no_peer_associated_before"]);
}

#[test]
fn p2p_close_tells_the_other_peer() {
    let mut sim = Sim::new(1);
    let a = sim.connect();
    let b = sim.connect();
    sim.send_json(a, json!({"command":"join","streamId":"x"}));
    sim.send_json(b, json!({"command":"join","streamId":"x"}));
    sim.take(a);
    sim.close(b);
    assert_eq!(sim.take_labels(a), ["stop"]);
}

#[test]
fn conference_join_info_leave() {
    let mut sim = Sim::new(3);
    let a = sim.connect();
    let b = sim.connect();
    sim.send_json(a, json!({"command":"joinRoom"}));
    assert_eq!(sim.take_labels(a), ["error/no_room_specified"]);
    sim.send_json(
        a,
        json!({"command":"joinRoom","room":"r1","mainTrack":"r1","streamId":"alice"}),
    );
    let got = sim.take(a);
    assert_eq!(got[0]["definition"], "joinedTheRoom");
    assert_eq!(got[0]["streamId"], "alice");
    assert_eq!(got[0]["room"], "r1");
    // Without a streamId the server makes one.
    sim.send_json(b, json!({"command":"joinRoom","room":"r1"}));
    let got = sim.take(b);
    assert_eq!(got[0]["definition"], "joinedTheRoom");
    let bob = got[0]["streamId"].as_str().unwrap().to_string();
    assert!(
        !bob.is_empty() && proto_core::is_valid_stream_id(&bob),
        "{bob}"
    );

    // Nobody publishes yet.
    sim.send_json(
        a,
        json!({"command":"getRoomInfo","room":"r1","streamId":"alice"}),
    );
    assert_eq!(sim.take_labels(a), ["error/no_active_streams_in_room"]);

    sim.send_json(
        a,
        json!({"command":"leaveFromRoom","room":"r1","mainTrack":"r1","streamId":"alice"}),
    );
    assert_eq!(sim.take_labels(a), ["notification/leavedFromRoom"]);
}

#[test]
fn publish_errors_and_timeout() {
    let mut sim = Sim::new(5);
    let a = sim.connect();
    let b = sim.connect();
    sim.send_json(a, json!({"command":"publish"}));
    assert_eq!(sim.take_labels(a), ["error/noStreamNameSpecified"]);
    sim.send_json(a, json!({"command":"publish","streamId":"bad id"}));
    let got = sim.take(a);
    assert_eq!(got[0]["definition"], "invalidStreamName");
    assert_eq!(got[0]["streamId"], "bad id");

    sim.send_json(
        a,
        json!({"command":"publish","streamId":"cam1","video":true,"audio":true}),
    );
    assert_eq!(sim.take_labels(a), ["start"]);
    sim.send_json(b, json!({"command":"publish","streamId":"cam1"}));
    assert_eq!(sim.take_labels(b), ["error/streamIdInUse"]);
    sim.send_json(
        a,
        json!({"command":"takeConfiguration","streamId":"cam1","type":"offer","sdp":CHROME_OFFER}),
    );
    let labels = sim.take_labels(a);
    assert_eq!(
        labels.first().map(String::as_str),
        Some("takeConfiguration"),
        "{labels:?}"
    );

    // No media ever arrives: the client start timeout (10 s by default) fires.
    sim.advance(Duration::from_secs(11));
    let labels = sim.take_labels(a);
    assert!(
        labels.contains(&"error/publishTimeoutError".to_string()),
        "{labels:?}"
    );

    // The id is free again.
    sim.send_json(b, json!({"command":"publish","streamId":"cam1"}));
    assert_eq!(sim.take_labels(b), ["start"]);
}

#[test]
fn play_of_missing_stream_and_ping() {
    let mut sim = Sim::new(9);
    let a = sim.connect();
    sim.send_json(a, json!({"command":"play","streamId":"nobody"}));
    let got = sim.take(a);
    assert_eq!(got[0]["definition"], "no_stream_exist");
    assert_eq!(got[0]["error_code"], "404");
    sim.send(a, r#"{"command":"ping"}"#);
    assert_eq!(sim.take_labels(a), ["pong"]);
    sim.send(a, "{nope");
    assert_eq!(sim.take(a)[0]["command"], "error");
    assert!(sim.is_open(a));
}

#[test]
fn shutdown_tells_everyone() {
    let mut sim = Sim::new(2);
    let a = sim.connect();
    let b = sim.connect();
    sim.shutdown();
    assert_eq!(sim.take_labels(a), ["notification/server_will_stop"]);
    assert_eq!(sim.take_labels(b), ["notification/server_will_stop"]);
    assert!(!sim.is_open(a) && !sim.is_open(b));
}
