use super::*;
use crate::access::Grant;
use crate::fuzzing::Harness;
use crate::media::FailReason;
use crate::media::LocalCandidate;
use crate::media::OfferedTrack;
use crate::media::{MediaEvent, SessionStats};
use serde_json::{json, Value};
use std::time::Duration;

const APP: &str = "WebRTCAppEE";

fn harness() -> Harness {
    Harness::new(Config::default())
}

/// The JSON of every message sent to `conn`.
fn sent(outs: &[Output], conn: u64) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(c, m) if c.0 == conn => serde_json::from_str(&m.to_json()).ok(),
            _ => None,
        })
        .collect()
}

fn cmds(outs: &[Output]) -> Vec<MediaCmd> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Media(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn send(h: &mut Harness, conn: u64, v: Value) -> Vec<Output> {
    h.text(conn, &v.to_string())
}

/// The one message sent to `conn`.
fn one(outs: &[Output], conn: u64) -> Value {
    let s = sent(outs, conn);
    assert_eq!(s.len(), 1, "expected one message to {conn}: {outs:?}");
    s.into_iter().next().unwrap()
}

fn error_of(outs: &[Output], conn: u64) -> Value {
    let m = one(outs, conn);
    assert_eq!(m["command"], "error", "{m}");
    m
}

fn started(outs: &[Output]) -> SessionId {
    cmds(outs)
        .into_iter()
        .find_map(|c| match c {
            MediaCmd::StartPublish { session, .. } | MediaCmd::StartPlay { session, .. } => {
                Some(session)
            }
            _ => None,
        })
        .expect("a session started")
}

/// Publishes `id` from `conn` until media flows; returns the session.
fn live_publisher(h: &mut Harness, conn: u64, id: &str, main_track: &str) -> SessionId {
    let outs = send(
        h,
        conn,
        json!({"command":"publish","streamId":id,"mainTrack":main_track,"video":true,"audio":true}),
    );
    assert_eq!(one(&outs, conn), json!({"command":"start","streamId":id}));
    let outs = send(
        h,
        conn,
        json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"OFFER"}),
    );
    let s = started(&outs);
    h.media_event(MediaEvent::MediaStarted { session: s });
    s
}

fn player(h: &mut Harness, conn: u64, id: &str) -> SessionId {
    let outs = send(h, conn, json!({"command":"play","streamId":id}));
    started(&outs)
}

#[test]
fn ping_ice_servers_and_parse_errors() {
    let mut h = Harness::new(Config {
        ice_servers: IceServers {
            stun_server_uri: "stun:127.0.0.1:3478".into(),
            turn_server_username: None,
            turn_server_credential: None,
        },
        ..Config::default()
    });
    h.open(1, APP);
    assert_eq!(
        one(&h.text(1, r#"{"command":"ping"}"#), 1),
        json!({"command":"pong"})
    );
    assert_eq!(
        one(&h.text(1, r#"{"command":"getIceServerConfig"}"#), 1),
        json!({"command":"iceServerConfig","stunServerUri":"stun:127.0.0.1:3478"})
    );
    let e = error_of(&h.text(1, "{nope"), 1);
    assert_eq!(e["definition"], "invalid_message");
    assert!(e["information"].as_str().unwrap().contains("invalid JSON"));
    let e = error_of(&h.text(1, r#"{"command":"fly"}"#), 1);
    assert_eq!(e["definition"], "unsupported_command");
    let e = error_of(
        &h.text(1, r#"{"command":"getDebugInfo","streamId":"r"}"#),
        1,
    );
    assert_eq!(e["definition"], "unsupported_command");
    assert_eq!(e["streamId"], "r");
    // Still open.
    assert_eq!(
        one(&h.text(1, r#"{"command":"ping"}"#), 1),
        json!({"command":"pong"})
    );
    h.finish();
}

#[test]
fn stream_id_checks() {
    let mut h = harness();
    h.open(1, APP);
    for cmd in [
        "publish",
        "play",
        "stop",
        "getStreamInfo",
        "join",
        "getBroadcastObject",
    ] {
        let e = error_of(&send(&mut h, 1, json!({"command":cmd})), 1);
        assert_eq!(e["definition"], "noStreamNameSpecified", "{cmd}");
        let e = error_of(&send(&mut h, 1, json!({"command":cmd,"streamId":""})), 1);
        assert_eq!(e["definition"], "noStreamNameSpecified", "{cmd}");
        let e = error_of(&send(&mut h, 1, json!({"command":cmd,"streamId":"a b"})), 1);
        assert_eq!(e["definition"], "invalidStreamName", "{cmd}");
        assert_eq!(e["streamId"], "a b");
    }
    h.finish();
}

#[test]
fn publish_flow_and_republish_after_stop() {
    let mut h = harness();
    h.open(1, APP);
    let outs = send(
        &mut h,
        1,
        json!({"command":"publish","streamId":"s1","subscriberId":"u"}),
    );
    assert_eq!(
        one(&outs, 1),
        json!({"command":"start","streamId":"s1","subscriberId":"u"})
    );
    let outs = send(
        &mut h,
        1,
        json!({"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"OFFER"}),
    );
    let s = started(&outs);
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::StartPublish {
            session: s,
            stream: "s1".into(),
            offer: "OFFER".into()
        }]
    );
    let outs = h.media_event(MediaEvent::Answer {
        session: s,
        sdp: "ANSWER".into(),
    });
    assert_eq!(
        one(&outs, 1),
        json!({"command":"takeConfiguration","streamId":"s1","type":"answer","sdp":"ANSWER"})
    );
    let outs = h.media_event(MediaEvent::Candidate {
        session: s,
        candidate: LocalCandidate {
            mline_index: 1,
            mid: "1".into(),
            candidate: "candidate:x".into(),
        },
    });
    assert_eq!(
        one(&outs, 1),
        json!({"command":"takeCandidate","streamId":"s1","label":1,"id":"1","candidate":"candidate:x"})
    );
    let outs = send(
        &mut h,
        1,
        json!({"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":"candidate:c"}),
    );
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::RemoteCandidate {
            session: s,
            candidate: "candidate:c".into()
        }]
    );
    let outs = send(
        &mut h,
        1,
        json!({"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":""}),
    );
    assert!(outs.is_empty(), "end-of-candidates dropped");
    let outs = h.media_event(MediaEvent::MediaStarted { session: s });
    assert_eq!(
        one(&outs, 1),
        json!({"command":"notification","definition":"publish_started","streamId":"s1","subscriberId":"u"})
    );
    assert_eq!(h.sig.poll_timeout(), None, "start timeout cancelled");
    let e = error_of(
        &send(&mut h, 1, json!({"command":"publish","streamId":"s1"})),
        1,
    );
    assert_eq!(e["definition"], "already_publishing");
    let outs = send(&mut h, 1, json!({"command":"stop","streamId":"s1"}));
    assert_eq!(cmds(&outs), vec![MediaCmd::Close { session: s }]);
    assert_eq!(
        one(&outs, 1),
        json!({"command":"notification","definition":"publish_finished","streamId":"s1","subscriberId":"u"})
    );
    // The SDK watchdog: stop, then publish again.
    let outs = send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
    assert_eq!(one(&outs, 1)["command"], "start");
    h.finish();
}

#[derive(Debug)]
struct Recorder {
    publish: Result<(), SignalError>,
    play: Result<(), SignalError>,
    viewers: std::rc::Rc<std::cell::Cell<usize>>,
}

impl AccessPolicy for Recorder {
    fn check_publish(&mut self, _: Instant, r: &PublishRequest<'_>) -> Result<Grant, SignalError> {
        assert_eq!(r.app, APP);
        self.publish.map(|()| Grant::free(r.app))
    }
    fn check_play(&mut self, _: Instant, r: &PlayRequest<'_>) -> Result<Grant, SignalError> {
        self.viewers.set(r.viewers);
        self.play.map(|()| Grant::free(r.app))
    }
}

#[test]
fn publish_errors_in_order() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    live_publisher(&mut h, 1, "s1", "");
    let e = error_of(
        &send(&mut h, 2, json!({"command":"publish","streamId":"s1"})),
        2,
    );
    assert_eq!(
        e,
        json!({"command":"error","definition":"streamIdInUse","streamId":"s1"})
    );
    h.overload(true);
    let e = error_of(
        &send(&mut h, 2, json!({"command":"publish","streamId":"s2"})),
        2,
    );
    assert_eq!(e["definition"], "highResourceUsage");
    let e = error_of(
        &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
        2,
    );
    assert_eq!(e["definition"], "highResourceUsage");
    h.overload(false);
    // The policy runs after the overload check and before the in-use checks.
    h.sig.set_access_policy(Box::new(Recorder {
        publish: Err(SignalError::UnauthorizedAccess),
        play: Ok(()),
        viewers: Default::default(),
    }));
    let e = error_of(
        &send(&mut h, 2, json!({"command":"publish","streamId":"s1"})),
        2,
    );
    assert_eq!(e["definition"], "unauthorized_access");
    h.finish();
}

#[test]
fn publish_timeout_tears_down() {
    let mut h = harness();
    h.open(1, APP);
    let t0 = h.now;
    send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
    assert_eq!(h.sig.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let s = started(&send(
        &mut h,
        1,
        json!({"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"O"}),
    ));
    assert!(h.advance(Duration::from_millis(9_999)).is_empty());
    let outs = h.advance(Duration::from_millis(1));
    assert_eq!(
        error_of(&outs, 1),
        json!({"command":"error","definition":"publishTimeoutError","streamId":"s1"})
    );
    assert_eq!(cmds(&outs), vec![MediaCmd::Close { session: s }]);
    assert_eq!(h.sig.publisher_count(), 0);
    // Without an offer, the media layer never heard of it: no Close.
    send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
    let outs = h.advance(Duration::from_secs(10));
    assert_eq!(error_of(&outs, 1)["definition"], "publishTimeoutError");
    assert!(cmds(&outs).is_empty());
    h.finish();
}

#[test]
fn play_flow() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    let e = error_of(
        &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
        2,
    );
    assert_eq!(
        e,
        json!({"command":"error","definition":"no_stream_exist","streamId":"s1","error_code":"404"})
    );
    let p = live_publisher(&mut h, 1, "s1", "");
    let outs = send(&mut h, 2, json!({"command":"play","streamId":"s1"}));
    let s = started(&outs);
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::StartPlay {
            session: s,
            stream: "s1".into(),
            publisher: p
        }]
    );
    let outs = h.media_event(MediaEvent::Offer {
        session: s,
        sdp: "SO".into(),
        tracks: vec![
            OfferedTrack {
                mid: "0".into(),
                kind: TrackKind::Audio,
                source: None,
            },
            OfferedTrack {
                mid: "1".into(),
                kind: TrackKind::Video,
                source: None,
            },
        ],
    });
    assert_eq!(
        one(&outs, 2),
        json!({"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"SO",
               "idMapping":{"0":"ARDAMSas1","1":"ARDAMSvs1"}})
    );
    let outs = send(
        &mut h,
        2,
        json!({"command":"takeConfiguration","streamId":"s1","type":"answer","sdp":"A"}),
    );
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::RemoteAnswer {
            session: s,
            sdp: "A".into()
        }]
    );
    let outs = send(
        &mut h,
        2,
        json!({"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":"candidate:1"}),
    );
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::RemoteCandidate {
            session: s,
            candidate: "candidate:1".into()
        }]
    );
    let outs = h.media_event(MediaEvent::Connected { session: s });
    assert_eq!(
        one(&outs, 2),
        json!({"command":"notification","definition":"play_started","streamId":"s1"})
    );
    assert_eq!(cmds(&outs), vec![MediaCmd::RequestKeyframe { session: p }]);
    let outs = h.media_event(MediaEvent::KeyframeRequested { session: s });
    assert_eq!(cmds(&outs), vec![MediaCmd::RequestKeyframe { session: p }]);
    let e = error_of(
        &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
        2,
    );
    assert_eq!(e["definition"], "already_playing");
    let outs = send(
        &mut h,
        2,
        json!({"command":"getSubscriberCount","streamId":"s1"}),
    );
    assert_eq!(one(&outs, 2)["count"], 1);
    let outs = send(&mut h, 2, json!({"command":"stop","streamId":"s1"}));
    assert_eq!(cmds(&outs), vec![MediaCmd::Close { session: s }]);
    assert_eq!(
        one(&outs, 2),
        json!({"command":"notification","definition":"play_finished","streamId":"s1"})
    );
    h.finish();
}

#[test]
fn play_policy_sees_viewers_and_replay_replaces_when_allowed() {
    let mut h = Harness::new(Config {
        play_once_per_session: false,
        ..Config::default()
    });
    let viewers = std::rc::Rc::new(std::cell::Cell::new(99));
    h.open(1, APP);
    h.open(2, APP);
    live_publisher(&mut h, 1, "s1", "");
    h.sig.set_access_policy(Box::new(Recorder {
        publish: Ok(()),
        play: Ok(()),
        viewers: viewers.clone(),
    }));
    let first = player(&mut h, 2, "s1");
    assert_eq!(viewers.get(), 0);
    let outs = send(&mut h, 2, json!({"command":"play","streamId":"s1"}));
    assert_eq!(viewers.get(), 1);
    let second = started(&outs);
    assert_eq!(
        cmds(&outs).first(),
        Some(&MediaCmd::Close { session: first })
    );
    assert_ne!(first, second);
    assert!(sent(&outs, 2).is_empty());
    h.sig.set_access_policy(Box::new(Recorder {
        publish: Ok(()),
        play: Err(SignalError::ViewerLimitReached),
        viewers,
    }));
    let e = error_of(
        &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
        2,
    );
    assert_eq!(e["definition"], "viewerLimitReached");
    h.finish();
}

#[test]
fn publisher_end_finishes_players() {
    let mut h = harness();
    for c in 1..=3 {
        h.open(c, APP);
    }
    let p = live_publisher(&mut h, 1, "s1", "");
    let a = player(&mut h, 2, "s1");
    let b = player(&mut h, 3, "s1");
    let outs = send(&mut h, 1, json!({"command":"stop","streamId":"s1"}));
    assert_eq!(
        cmds(&outs),
        vec![
            MediaCmd::Close { session: p },
            MediaCmd::Close { session: a },
            MediaCmd::Close { session: b }
        ]
    );
    for c in [2, 3] {
        assert_eq!(one(&outs, c)["definition"], "play_finished");
    }
    // Connection close: the publisher is held for webRTCClientStartTimeoutMs (resilience.rs);
    // when nobody resumes it, the players hear of it, the closed one hears nothing.
    let p = live_publisher(&mut h, 1, "s1", "");
    let a = player(&mut h, 2, "s1");
    assert!(h.close(1).is_empty());
    let outs = h.advance(Duration::from_secs(10));
    assert_eq!(
        cmds(&outs),
        vec![
            MediaCmd::Close { session: p },
            MediaCmd::Close { session: a }
        ]
    );
    assert_eq!(one(&outs, 2)["definition"], "play_finished");
    assert!(sent(&outs, 1).is_empty());
    h.finish();
}

#[test]
fn media_failures() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    let p = live_publisher(&mut h, 1, "s1", "");
    let a = player(&mut h, 2, "s1");
    let outs = h.media_event(MediaEvent::Failed {
        session: p,
        reason: FailReason::RemoteDescription("dtls".into()),
    });
    let to1 = sent(&outs, 1);
    assert_eq!(
        to1,
        vec![
            json!({"command":"error","definition":"notSetRemoteDescription","streamId":"s1"}),
            json!({"command":"notification","definition":"publish_finished","streamId":"s1"})
        ]
    );
    assert_eq!(one(&outs, 2)["definition"], "play_finished");
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::Close { session: a }],
        "no Close for p"
    );
    let p = live_publisher(&mut h, 1, "s1", "");
    let a = player(&mut h, 2, "s1");
    let outs = h.media_event(MediaEvent::Failed {
        session: a,
        reason: FailReason::IceFailed,
    });
    assert_eq!(
        sent(&outs, 2),
        vec![
            json!({"command":"error","definition":"server_error_check_logs","streamId":"s1"}),
            json!({"command":"notification","definition":"play_finished","streamId":"s1"})
        ]
    );
    assert!(cmds(&outs).is_empty());
    let outs = h.media_event(MediaEvent::Closed { session: p });
    assert_eq!(one(&outs, 1)["definition"], "publish_finished");
    assert!(cmds(&outs).is_empty());
    // Events for sessions that are gone are ignored.
    assert!(h
        .media_event(MediaEvent::Connected { session: a })
        .is_empty());
    h.finish();
}

#[test]
fn stream_info_and_bitrate_measurement() {
    let mut h = Harness::new(Config {
        bitrate_interval: Duration::from_secs(5),
        ..Config::default()
    });
    h.open(1, APP);
    h.open(2, APP);
    let e = error_of(
        &send(
            &mut h,
            1,
            json!({"command":"getStreamInfo","streamId":"s1"}),
        ),
        1,
    );
    assert_eq!(e["definition"], "no_stream_exist");
    let p = live_publisher(&mut h, 1, "s1", "");
    h.media_event(MediaEvent::Stats {
        session: p,
        stats: SessionStats {
            width: 640,
            height: 360,
            video_bitrate: 900_000,
            audio_bitrate: 48_000,
            video_codec: "VP8".into(),
            ..SessionStats::default()
        },
    });
    let outs = send(
        &mut h,
        2,
        json!({"command":"getStreamInfo","streamId":"s1"}),
    );
    assert_eq!(
        one(&outs, 2),
        json!({"command":"streamInformation","streamId":"s1","streamInfo":[
            {"streamWidth":640,"streamHeight":360,"videoBitrate":900_000,"audioBitrate":48_000,"videoCodec":"VP8"}]})
    );
    let a = player(&mut h, 2, "s1");
    h.media_event(MediaEvent::Connected { session: a });
    let outs = h.advance(Duration::from_secs(5));
    assert_eq!(
        one(&outs, 2),
        json!({"command":"notification","definition":"bitrateMeasurement","streamId":"s1",
               "targetBitrate":900_000,"videoBitrate":900_000,"audioBitrate":48_000})
    );
    h.media_event(MediaEvent::Stats {
        session: a,
        stats: SessionStats {
            estimated_bitrate: 300_000,
            ..SessionStats::default()
        },
    });
    let outs = h.advance(Duration::from_secs(5));
    assert_eq!(one(&outs, 2)["targetBitrate"], 300_000);
    h.finish();
}

#[test]
fn track_toggles_and_quality() {
    let mut h = harness();
    h.open(1, APP);
    h.open(2, APP);
    live_publisher(&mut h, 1, "s1", "");
    let a = player(&mut h, 2, "s1");
    let outs = send(
        &mut h,
        2,
        json!({"command":"toggleVideo","streamId":"s1","enabled":false}),
    );
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::SetForwarding {
            session: a,
            video: Some(false),
            audio: None
        }]
    );
    let outs = send(
        &mut h,
        2,
        json!({"command":"toggleAudio","streamId":"s1","enabled":true}),
    );
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::SetForwarding {
            session: a,
            video: None,
            audio: Some(true)
        }]
    );
    let outs = send(
        &mut h,
        2,
        json!({"command":"enableTrack","streamId":"room","trackId":"s1","enabled":false}),
    );
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::SetForwarding {
            session: a,
            video: Some(false),
            audio: Some(false)
        }]
    );
    // The publisher toggling its own stream: accepted, nothing to forward.
    let outs = send(
        &mut h,
        1,
        json!({"command":"toggleVideo","streamId":"s1","enabled":false}),
    );
    assert!(outs.is_empty());
    let outs = send(
        &mut h,
        2,
        json!({"command":"forceStreamQuality","streamId":"s1","streamHeight":360}),
    );
    assert_eq!(
        cmds(&outs),
        vec![MediaCmd::ForceQuality {
            session: a,
            height: 360
        }]
    );
    // One layer only: the delivered quality does not change, so no resolutionChangeInfo
    // (resilience.rs).
    assert!(sent(&outs, 2).is_empty(), "{outs:?}");
    h.finish();
}

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
