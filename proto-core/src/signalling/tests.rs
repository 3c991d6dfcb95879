//! Publish and play through signalling: flows, errors, timeouts, media failures, queries.
//! (A little over 600 lines: one test per publish/play flow; already split from the room tests.)
//! (Rooms, p2p and main tracks are in `room_tests.rs`; the shared helpers in `test_util.rs`.)

use super::test_util::{cmds, error_of, harness, live_publisher, one, player, send, sent, started};
use super::*;
use crate::access::Grant;
use crate::fuzzing::Harness;
use crate::media::FailReason;
use crate::media::LocalCandidate;
use crate::media::OfferedTrack;
use crate::media::{MediaEvent, SessionStats};
use serde_json::json;
use std::time::Duration;

const APP: &str = "WebRTCAppEE";

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
