//! Rooms, p2p and main tracks through signalling, and the cases that cross them (routing
//! without a session, application namespaces, shutdown, edge cases).

use super::test_util::{cmds, error_of, harness, live_publisher, one, player, send, sent, started};
use super::*;
use crate::fuzzing::Harness;
use crate::media::MediaEvent;
use crate::media::OfferedTrack;
use serde_json::{json, Value};
use std::time::Duration;

const APP: &str = "WebRTCAppEE";

#[test]
fn peer_to_peer() {
    let mut h = harness();
    for c in 1..=3 {
        h.open(c, APP);
    }
    let join = json!({"command":"join","streamId":"p","multiPeer":false,"mode":"both"});
    let outs = send(&mut h, 1, join.clone());
    assert_eq!(
        one(&outs, 1),
        json!({"command":"notification","definition":"joined","streamId":"p"})
    );
    let e = error_of(
        &send(
            &mut h,
            1,
            json!({"command":"takeConfiguration","streamId":"p","type":"offer","sdp":"X"}),
        ),
        1,
    );
    assert_eq!(e["definition"], "no_peer_associated_before");
    let outs = send(&mut h, 2, join.clone());
    assert_eq!(one(&outs, 2)["definition"], "joined");
    assert_eq!(one(&outs, 1), json!({"command":"start","streamId":"p"}));
    let e = error_of(&send(&mut h, 3, join.clone()), 3);
    assert_eq!(
        e,
        json!({"command":"error","definition":"NoSpaceForNewPeer","streamId":"p"})
    );
    let offer = json!({"command":"takeConfiguration","streamId":"p","type":"offer","sdp":"X"});
    let outs = send(&mut h, 1, offer.clone());
    assert_eq!(one(&outs, 2), offer);
    let cand = json!({"command":"takeCandidate","streamId":"p","label":1,"id":"1","candidate":"candidate:z"});
    let outs = send(&mut h, 2, cand.clone());
    assert_eq!(one(&outs, 1), cand);
    let pm =
        json!({"command":"peerMessageCommand","streamId":"p","definition":"d","data":{"k":[1]}});
    let outs = send(&mut h, 2, pm.clone());
    assert_eq!(one(&outs, 1), pm);
    let e = error_of(&send(&mut h, 3, pm.clone()), 3);
    assert_eq!(e["definition"], "no_peer_associated_before");
    let outs = send(&mut h, 1, json!({"command":"leave","streamId":"p"}));
    assert_eq!(one(&outs, 2), json!({"command":"stop","streamId":"p"}));
    assert_eq!(
        one(&outs, 1),
        json!({"command":"notification","definition":"leaved","streamId":"p"})
    );
    let outs = send(&mut h, 3, join);
    assert_eq!(one(&outs, 3)["definition"], "joined");
    assert_eq!(one(&outs, 2)["command"], "start");
    let outs = h.close(3);
    assert_eq!(one(&outs, 2), json!({"command":"stop","streamId":"p"}));
    h.finish();
}

#[test]
fn legacy_conference() {
    let mut h = Harness::new(Config {
        seed: 7,
        ..Config::default()
    });
    h.open(1, APP);
    h.open(2, APP);
    let e = error_of(&send(&mut h, 1, json!({"command":"joinRoom"})), 1);
    assert_eq!(e["definition"], "no_room_specified");
    let outs = send(
        &mut h,
        1,
        json!({"command":"joinRoom","room":"r1","mode":"legacy"}),
    );
    let j = one(&outs, 1);
    let gen = j["streamId"].as_str().unwrap().to_string();
    assert_eq!(gen.len(), 12);
    assert!(gen.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        j,
        json!({"command":"notification","definition":"joinedTheRoom","streamId":gen,"streams":[],
               "streamList":[],"ATTR_ROOM_NAME":"r1","room":"r1","maxTrackCount":-1})
    );
    let e = error_of(
        &send(
            &mut h,
            1,
            json!({"command":"getRoomInfo","room":"r1","streamId":gen}),
        ),
        1,
    );
    assert_eq!(
        e,
        json!({"command":"error","definition":"no_active_streams_in_room","streamId":gen,"room":"r1"})
    );
    // The member publishes its id (legacy page: no mainTrack).
    live_publisher(&mut h, 1, &gen, "");
    let outs = send(
        &mut h,
        2,
        json!({"command":"joinRoom","room":"r1","streamId":"bob","streamName":"Bob","metadata":"m"}),
    );
    let j = one(&outs, 2);
    assert_eq!(j["streams"], json!([gen]));
    assert_eq!(j["streamList"], json!([{"streamId":gen}]));
    live_publisher(&mut h, 2, "bob", "");
    let outs = send(
        &mut h,
        1,
        json!({"command":"getRoomInfo","room":"r1","streamId":gen}),
    );
    assert_eq!(
        one(&outs, 1),
        json!({"command":"roomInformation","streams":["bob"],
               "streamList":[{"streamId":"bob","streamName":"Bob","metaData":"m"}],
               "ATTR_ROOM_NAME":"r1","room":"r1"})
    );
    let outs = send(
        &mut h,
        2,
        json!({"command":"leaveFromRoom","room":"r1","streamId":"bob"}),
    );
    assert_eq!(
        sent(&outs, 2),
        vec![
            json!({"command":"notification","definition":"publish_finished","streamId":"bob"}),
            json!({"command":"notification","definition":"leavedFromRoom","ATTR_ROOM_NAME":"r1","room":"r1"})
        ]
    );
    let e = error_of(
        &send(
            &mut h,
            1,
            json!({"command":"getRoomInfo","room":"r1","streamId":gen}),
        ),
        1,
    );
    assert_eq!(e["definition"], "no_active_streams_in_room");
    // Another open connection cannot take a held member id over (issue 9, finding 5).
    h.open(3, APP);
    let e = error_of(
        &send(
            &mut h,
            3,
            json!({"command":"joinRoom","room":"r1","streamId":gen}),
        ),
        3,
    );
    assert_eq!(
        e,
        json!({"command":"error","definition":"streamIdInUse","streamId":gen})
    );
    let outs = send(
        &mut h,
        2,
        json!({"command":"getRoomInfo","room":"r1","streamId":"x"}),
    );
    assert_eq!(one(&outs, 2)["streams"], json!([gen]), "still conn 1's");
    // Once the holder is gone (a reconnect), the id is free.
    h.close(1);
    let e = error_of(
        &send(
            &mut h,
            2,
            json!({"command":"getRoomInfo","room":"r1","streamId":"x"}),
        ),
        2,
    );
    assert_eq!(e["definition"], "no_active_streams_in_room");
    let outs = send(
        &mut h,
        3,
        json!({"command":"joinRoom","room":"r1","streamId":gen}),
    );
    assert_eq!(one(&outs, 3)["streamId"], gen.as_str());
    // Same seed, same generated id.
    let mut h2 = Harness::new(Config {
        seed: 7,
        ..Config::default()
    });
    h2.open(9, APP);
    let j2 = one(
        &send(&mut h2, 9, json!({"command":"joinRoom","room":"x"})),
        9,
    );
    assert_eq!(j2["streamId"], gen.as_str());
    h2.finish();
    h.finish();
}

#[test]
fn main_track_conference_and_broadcast_objects() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    let outs = send(
        &mut h,
        1,
        json!({"command":"publish","streamId":"alice","mainTrack":"room1","streamName":"Alice","metaData":"{\"mic\":true}"}),
    );
    assert_eq!(one(&outs, 1)["command"], "start");
    let s = started(&send(
        &mut h,
        1,
        json!({"command":"takeConfiguration","streamId":"alice","type":"offer","sdp":"O"}),
    ));
    let b = |h: &mut Harness, id: &str| -> Value {
        let m = one(
            &send(h, 2, json!({"command":"getBroadcastObject","streamId":id})),
            2,
        );
        assert_eq!(m["definition"], "broadcastObject");
        assert_eq!(m["streamId"], id);
        serde_json::from_str(m["broadcast"].as_str().unwrap()).unwrap()
    };
    assert_eq!(b(&mut h, "room1")["status"], "finished");
    assert_eq!(b(&mut h, "alice")["status"], "preparing");
    let outs = h.media_event(MediaEvent::MediaStarted { session: s });
    assert_eq!(
        one(&outs, 1),
        json!({"command":"notification","definition":"publish_started","streamId":"alice",
               "ATTR_ROOM_NAME":"room1","room":"room1"})
    );
    let room = b(&mut h, "room1");
    assert_eq!(room["status"], "broadcasting");
    assert_eq!(room["subTrackStreamIds"], json!(["alice"]));
    let alice = b(&mut h, "alice");
    assert_eq!(alice["status"], "broadcasting");
    assert_eq!(alice["name"], "Alice");
    assert_eq!(alice["metaData"], "{\"mic\":true}");
    assert_eq!(alice["mainTrackStreamId"], "room1");
    assert_eq!(alice["webRTCViewerCount"], 0);
    send(
        &mut h,
        1,
        json!({"command":"updateStreamMetaData","streamId":"alice","metaData":"{\"mic\":false}"}),
    );
    assert_eq!(b(&mut h, "alice")["metaData"], "{\"mic\":false}");
    let outs = send(
        &mut h,
        2,
        json!({"command":"getTrackList","streamId":"room1"}),
    );
    assert_eq!(
        one(&outs, 2),
        json!({"command":"trackList","streamId":"room1","trackList":["alice"]})
    );
    let outs = send(
        &mut h,
        2,
        json!({"command":"getTrackList","streamId":"alice"}),
    );
    assert_eq!(one(&outs, 2)["trackList"], json!([]));
    let e = error_of(
        &send(&mut h, 2, json!({"command":"getTrackList","streamId":"zz"})),
        2,
    );
    assert_eq!(e["definition"], "no_stream_exist");
    let outs = send(
        &mut h,
        2,
        json!({"command":"getRoomInfo","room":"room1","streamId":"me"}),
    );
    assert_eq!(one(&outs, 2)["streams"], json!(["alice"]));
    // Playing the room itself: one peer connection carrying its live subtracks.
    let outs = send(&mut h, 2, json!({"command":"play","streamId":"room1"}));
    assert!(sent(&outs, 2).is_empty(), "{outs:?}");
    let MediaCmd::StartRoomPlay {
        session: rp,
        stream,
        subtracks,
    } = cmds(&outs).remove(0)
    else {
        panic!("{outs:?}")
    };
    assert_eq!(stream, "room1");
    assert_eq!(
        subtracks,
        vec![crate::media::Subtrack {
            id: "alice".into(),
            publisher: s
        }]
    );
    let outs = h.media_event(MediaEvent::Offer {
        session: rp,
        sdp: "SO".into(),
        tracks: vec![
            OfferedTrack {
                mid: "a".into(),
                kind: TrackKind::Audio,
                source: Some("alice".into()),
            },
            OfferedTrack {
                mid: "v".into(),
                kind: TrackKind::Video,
                source: Some("alice".into()),
            },
        ],
    });
    assert_eq!(
        one(&outs, 2),
        json!({"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"SO",
               "idMapping":{"a":"ARDAMSaalice","v":"ARDAMSvalice"}})
    );
    let outs = h.media_event(MediaEvent::Connected { session: rp });
    assert_eq!(
        one(&outs, 2),
        json!({"command":"notification","definition":"play_started","streamId":"room1"})
    );
    // The room play does not count as a viewer of the subtrack.
    assert_eq!(b(&mut h, "alice")["webRTCViewerCount"], 0);
    let e = error_of(
        &send(
            &mut h,
            2,
            json!({"command":"updateStreamMetaData","streamId":"zz"}),
        ),
        2,
    );
    assert_eq!(e["definition"], "no_stream_exist");
    // A live publisher whose connection drops is held for webRTCClientStartTimeoutMs
    // (resilience.rs); then it is gone: the room player's media follows, and it is told.
    h.close(1);
    let outs = h.advance(Duration::from_secs(10));
    assert!(cmds(&outs).contains(&MediaCmd::SetSubtracks {
        session: rp,
        subtracks: vec![]
    }));
    assert_eq!(
        one(&outs, 2),
        json!({"command":"notification","definition":"subtrackRemoved","streamId":"room1","trackId":"alice"})
    );
    let e = error_of(
        &send(
            &mut h,
            2,
            json!({"command":"getBroadcastObject","streamId":"room1"}),
        ),
        2,
    );
    assert_eq!(e["definition"], "no_stream_exist");
    h.finish();
}

#[test]
fn routing_without_a_session() {
    let mut h = harness();
    h.open(1, APP);
    for v in [
        json!({"command":"takeConfiguration","streamId":"s9","type":"answer","sdp":"A"}),
        json!({"command":"takeCandidate","streamId":"s9","label":0,"candidate":"c"}),
    ] {
        let e = error_of(&send(&mut h, 1, v), 1);
        assert_eq!(e["definition"], "no_peer_associated_before");
    }
    assert!(send(&mut h, 1, json!({"command":"stop","streamId":"s9"})).is_empty());
    h.finish();
}

#[test]
fn apps_are_separate_namespaces() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, "LiveApp");
    live_publisher(&mut h, 1, "s1", "");
    live_publisher(&mut h, 2, "s1", "");
    assert_eq!(h.sig.publisher_count(), 2);
    h.open(3, "LiveApp");
    let outs = send(&mut h, 3, json!({"command":"play","streamId":"s1"}));
    let MediaCmd::StartPlay { publisher, .. } = cmds(&outs).remove(0) else {
        panic!()
    };
    assert_eq!(h.sig.sessions.get(&publisher).unwrap().conn, ConnId(2));
    h.finish();
}

#[test]
fn shutdown_closes_everything() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    let p = live_publisher(&mut h, 1, "s1", "");
    let a = player(&mut h, 2, "s1");
    let outs = h.shutdown();
    assert_eq!(
        outs,
        vec![
            Output::Send(
                ConnId(1),
                ServerMessage::Notification(Notification::ServerWillStop)
            ),
            Output::Send(
                ConnId(2),
                ServerMessage::Notification(Notification::ServerWillStop)
            ),
            Output::Media(MediaCmd::Close { session: p }),
            Output::Media(MediaCmd::Close { session: a }),
            Output::Close(ConnId(1)),
            Output::Close(ConnId(2)),
        ]
    );
    assert!(h.sig.is_idle());
    let outs = h.open(3, APP);
    assert_eq!(outs.last(), Some(&Output::Close(ConnId(3))));
    h.finish();
}

#[test]
fn edge_cases() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    // An invalid mainTrack is an invalid stream name.
    let e = error_of(
        &send(
            &mut h,
            1,
            json!({"command":"publish","streamId":"s1","mainTrack":"r 1"}),
        ),
        1,
    );
    assert_eq!(e["definition"], "invalidStreamName");
    assert_eq!(e["streamId"], "r 1");
    // Overload only refuses publish and play.
    h.overload(true);
    assert_eq!(
        one(&h.text(1, r#"{"command":"ping"}"#), 1)["command"],
        "pong"
    );
    h.overload(false);
    // leaveFromRoom stops this connection's mainTrack=room publishes too.
    live_publisher(&mut h, 1, "s1", "room1");
    send(
        &mut h,
        1,
        json!({"command":"joinRoom","room":"room1","streamId":"s2"}),
    );
    let outs = send(&mut h, 1, json!({"command":"leaveFromRoom","room":"room1"}));
    assert_eq!(
        sent(&outs, 1)
            .iter()
            .map(|m| m["definition"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        ["publish_finished", "leavedFromRoom"]
    );
    assert_eq!(h.sig.publisher_count(), 0);
    assert!(h.sig.rooms.is_empty());
    // One stop ends this connection's publish and play of the same id.
    live_publisher(&mut h, 1, "s3", "");
    let a = player(&mut h, 1, "s3");
    let outs = send(&mut h, 1, json!({"command":"stop","streamId":"s3"}));
    assert!(cmds(&outs).contains(&MediaCmd::Close { session: a }));
    assert_eq!(
        sent(&outs, 1).len(),
        2,
        "publish_finished and play_finished"
    );
    assert_eq!(h.sig.session_count(), 0);
    // Closing a connection drops its memberships and p2p groups.
    send(
        &mut h,
        2,
        json!({"command":"joinRoom","room":"room1","streamId":"m2"}),
    );
    send(&mut h, 2, json!({"command":"join","streamId":"p"}));
    h.close(2);
    assert!(h.sig.rooms.is_empty() && h.sig.p2p.is_empty());
    h.finish();
}

#[test]
fn media_events_before_the_media_layer_knows_a_session_are_ignored() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    // Publish session allocated, but its offer never reached the media layer.
    send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
    let sid = SessionId(1);
    h.sig
        .handle_media(h.now, MediaEvent::MediaStarted { session: sid });
    assert!(h.drain().is_empty());
    let e = error_of(
        &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
        2,
    );
    assert_eq!(e["definition"], "no_stream_exist");
    h.finish();
}

#[test]
fn unknown_connections_are_ignored() {
    let mut h = harness();
    assert!(h.text(5, r#"{"command":"ping"}"#).is_empty());
    h.sig.handle_closed(h.now, ConnId(5));
    assert!(h.drain().is_empty());
    h.open(1, APP);
    h.sig.handle_open(h.now, ConnId(1), "other");
    assert!(h.drain().is_empty());
    assert_eq!(h.sig.connection_count(), 1);
    h.finish();
}

#[test]
fn subtrack_publish_tells_media_its_main_track() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    send(
        &mut h,
        1,
        json!({"command":"publish","streamId":"alice","mainTrack":"room1","video":false,"audio":false}),
    );
    let outs = send(
        &mut h,
        1,
        json!({"command":"takeConfiguration","streamId":"alice","type":"offer","sdp":"OFFER"}),
    );
    let s = started(&outs);
    let media = cmds(&outs);
    assert_eq!(
        media,
        vec![
            MediaCmd::StartPublish {
                session: s,
                stream: "alice".into(),
                offer: "OFFER".into(),
            },
            MediaCmd::SetMainTrack {
                session: s,
                main_track: format!("{APP}/room1"),
            },
        ]
    );
    // A plain publish has no main track.
    send(&mut h, 2, json!({"command":"publish","streamId":"bob"}));
    let outs = send(
        &mut h,
        2,
        json!({"command":"takeConfiguration","streamId":"bob","type":"offer","sdp":"OFFER"}),
    );
    assert!(!cmds(&outs)
        .iter()
        .any(|c| matches!(c, MediaCmd::SetMainTrack { .. })));
    // A data-only publish (video:false, audio:false) goes live on the media layer's
    // MediaStarted like any other (rtc-core sends it when the channel opens).
    let outs = h.media_event(MediaEvent::MediaStarted { session: s });
    assert_eq!(sent(&outs, 1)[0]["definition"], "publish_started");
    h.finish();
}
