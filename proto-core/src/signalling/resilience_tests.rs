//! Flow tests of `resilience.rs`: held publishers and `session_restored`, silent publishers,
//! `forceStreamQuality` answers, and a property test of hold/restore against the invariants.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::fuzzing::Harness;
use crate::media::{MediaCmd, MediaEvent, SessionId, SessionStats};
use crate::signalling::{Config, Output};

const APP: &str = "WebRTCAppEE";

fn sent(outs: &[Output], conn: u64) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(c, m) if c.0 == conn => serde_json::from_str(&m.to_json()).ok(),
            _ => None,
        })
        .collect()
}

fn defs(outs: &[Output], conn: u64) -> Vec<String> {
    sent(outs, conn)
        .iter()
        .map(|m| {
            m.get("definition")
                .or_else(|| m.get("command"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
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

fn offer(h: &mut Harness, conn: u64, id: &str) -> Vec<Output> {
    send(
        h,
        conn,
        json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"OFFER"}),
    )
}

/// Publishes `id` from `conn` until media flows; returns the session.
fn live(h: &mut Harness, conn: u64, id: &str) -> SessionId {
    send(h, conn, json!({"command":"publish","streamId":id}));
    let outs = offer(h, conn, id);
    let sid = cmds(&outs)
        .into_iter()
        .find_map(|c| match c {
            MediaCmd::StartPublish { session, .. } => Some(session),
            _ => None,
        })
        .expect("StartPublish");
    h.media_event(MediaEvent::MediaStarted { session: sid });
    sid
}

fn play(h: &mut Harness, conn: u64, id: &str) -> SessionId {
    let outs = send(h, conn, json!({"command":"play","streamId":id}));
    let sid = cmds(&outs)
        .into_iter()
        .find_map(|c| match c {
            MediaCmd::StartPlay { session, .. } => Some(session),
            _ => None,
        })
        .expect("StartPlay");
    h.media_event(MediaEvent::Connected { session: sid });
    sid
}

fn stats(video: u64, audio: u64, height: u32) -> SessionStats {
    SessionStats {
        width: height * 16 / 9,
        height,
        video_bitrate: video,
        audio_bitrate: audio,
        ..SessionStats::default()
    }
}

#[test]
fn dropped_publisher_is_held_and_restored_without_play_finished() {
    let mut h = Harness::new(Config::default());
    h.open(1, APP);
    h.open(2, APP);
    let p = live(&mut h, 1, "s1");
    let v = play(&mut h, 2, "s1");
    // The publisher's WebSocket drops ungracefully.
    let outs = h.close(1);
    assert!(cmds(&outs).is_empty(), "held: its media stays: {outs:?}");
    assert!(sent(&outs, 2).is_empty(), "the player is told nothing");
    assert!(h.sig.is_held(APP, "s1"));
    // Its old peer connection goes away meanwhile: still held.
    let outs = h.media_event(MediaEvent::Closed { session: p });
    assert!(outs.is_empty());
    // A new player meanwhile: nothing to play yet.
    h.open(3, APP);
    let outs = send(&mut h, 3, json!({"command":"play","streamId":"s1"}));
    assert_eq!(defs(&outs, 3), ["no_stream_exist"]);
    // 6 s later the SDK publishes again on a new connection.
    h.advance(Duration::from_secs(6));
    h.open(4, APP);
    let outs = send(&mut h, 4, json!({"command":"publish","streamId":"s1"}));
    assert_eq!(sent(&outs, 4), [json!({"command":"start","streamId":"s1"})]);
    assert!(!h.sig.is_held(APP, "s1"));
    // Its offer starts the same session in the media layer, where the player waits.
    let outs = offer(&mut h, 4, "s1");
    assert!(matches!(cmds(&outs).as_slice(),
        [MediaCmd::StartPublish { session, .. }] if *session == p));
    let outs = h.media_event(MediaEvent::MediaStarted { session: p });
    assert_eq!(defs(&outs, 4), ["session_restored"]);
    assert_eq!(
        sent(&outs, 4),
        [json!({"command":"notification","definition":"session_restored","streamId":"s1"})]
    );
    // Nothing more is due: no start timeout, no hold.
    let outs = h.advance(Duration::from_secs(30));
    assert!(
        outs.iter().all(|o| !matches!(o, Output::Send(..))),
        "{outs:?}"
    );
    // The player never saw play_finished, and still plays.
    assert!(h.log.iter().all(|o| !matches!(o,
        Output::Send(c, m) if c.0 == 2 && m.to_json().contains("play_finished"))));
    let outs = send(
        &mut h,
        2,
        json!({"command":"getSubscriberCount","streamId":"s1"}),
    );
    assert_eq!(sent(&outs, 2)[0]["count"], 1);
    let _ = v;
    h.finish();
}

#[test]
fn restore_with_the_old_peer_connection_alive_closes_it_first() {
    let mut h = Harness::new(Config::default());
    h.open(1, APP);
    let p = live(&mut h, 1, "s1");
    h.close(1);
    h.open(2, APP);
    let outs = send(&mut h, 2, json!({"command":"publish","streamId":"s1"}));
    assert_eq!(cmds(&outs), [MediaCmd::Close { session: p }]);
    let outs = offer(&mut h, 2, "s1");
    assert!(matches!(
        cmds(&outs).as_slice(),
        [MediaCmd::StartPublish { .. }]
    ));
    // The restored session must bring media within the start timeout again.
    let outs = h.advance(Duration::from_secs(10));
    assert_eq!(defs(&outs, 2), ["publishTimeoutError"]);
    h.finish();
}

#[test]
fn held_publisher_not_resumed_ends_and_players_are_told() {
    let mut h = Harness::new(Config::default());
    h.open(1, APP);
    h.open(2, APP);
    let p = live(&mut h, 1, "s1");
    play(&mut h, 2, "s1");
    h.close(1);
    assert!(h.advance(Duration::from_millis(9_999)).is_empty());
    let outs = h.advance(Duration::from_millis(1));
    assert_eq!(defs(&outs, 2), ["play_finished"]);
    assert!(cmds(&outs).contains(&MediaCmd::Close { session: p }));
    assert_eq!(h.sig.publisher_count(), 0);
    // The id is free again: a plain publish.
    h.open(3, APP);
    live(&mut h, 3, "s1");
    h.finish();
}

#[test]
fn graceful_stop_and_unstarted_publishers_are_not_held() {
    let mut h = Harness::new(Config::default());
    h.open(1, APP);
    live(&mut h, 1, "s1");
    send(&mut h, 1, json!({"command":"stop","streamId":"s1"}));
    h.close(1);
    assert_eq!(h.sig.publisher_count(), 0);
    h.open(2, APP);
    send(&mut h, 2, json!({"command":"publish","streamId":"s2"}));
    h.close(2);
    assert_eq!(h.sig.publisher_count(), 0, "no media yet: not held");
    // A zero timeout turns holding off.
    let mut h = Harness::new(Config {
        client_start_timeout: Duration::ZERO,
        ..Config::default()
    });
    h.open(1, APP);
    live(&mut h, 1, "s1");
    h.close(1);
    assert_eq!(h.sig.publisher_count(), 0);
    h.finish();
}

#[test]
fn silent_publisher_ends_with_no_packet_received() {
    let mut h = Harness::new(Config {
        no_packet_timeout: Duration::from_secs(3),
        bitrate_interval: Duration::ZERO,
        ..Config::default()
    });
    h.open(1, APP);
    h.open(2, APP);
    let p = live(&mut h, 1, "s1");
    play(&mut h, 2, "s1");
    // Stats every second: media for 2 s, then nothing.
    for _ in 0..2 {
        h.advance(Duration::from_secs(1));
        assert!(h
            .media_event(MediaEvent::Stats {
                session: p,
                stats: stats(500_000, 40_000, 360)
            })
            .is_empty());
    }
    for _ in 0..2 {
        h.advance(Duration::from_secs(1));
        let outs = h.media_event(MediaEvent::Stats {
            session: p,
            stats: stats(0, 0, 360),
        });
        assert!(outs.is_empty(), "{outs:?}");
    }
    h.advance(Duration::from_secs(1));
    let outs = h.media_event(MediaEvent::Stats {
        session: p,
        stats: stats(0, 0, 360),
    });
    assert_eq!(
        defs(&outs, 1),
        ["noPacketReceivedForTimeoutDuration", "publish_finished"]
    );
    assert_eq!(defs(&outs, 2), ["play_finished"]);
    assert!(cmds(&outs).contains(&MediaCmd::Close { session: p }));
    h.finish();
}

#[test]
fn publishers_that_never_sent_media_or_resume_in_time_are_kept() {
    let mut h = Harness::new(Config {
        no_packet_timeout: Duration::from_secs(3),
        ..Config::default()
    });
    h.open(1, APP);
    // A data-only publisher: live, but its statistics never show audio or video.
    let p = live(&mut h, 1, "dc");
    for _ in 0..10 {
        h.advance(Duration::from_secs(1));
        assert!(h
            .media_event(MediaEvent::Stats {
                session: p,
                stats: stats(0, 0, 0)
            })
            .is_empty());
    }
    // A publisher that pauses for less than the timeout.
    h.open(2, APP);
    let q = live(&mut h, 2, "cam");
    for v in [1, 0, 0, 1, 0, 0, 1] {
        h.advance(Duration::from_secs(1));
        let outs = h.media_event(MediaEvent::Stats {
            session: q,
            stats: stats(v * 100_000, 0, 360),
        });
        assert!(outs.is_empty(), "{outs:?}");
    }
    // Zero turns the check off.
    let mut h = Harness::new(Config {
        no_packet_timeout: Duration::ZERO,
        ..Config::default()
    });
    h.open(1, APP);
    let p = live(&mut h, 1, "s");
    h.media_event(MediaEvent::Stats {
        session: p,
        stats: stats(1, 0, 0),
    });
    h.advance(Duration::from_secs(100));
    assert!(h
        .media_event(MediaEvent::Stats {
            session: p,
            stats: stats(0, 0, 0)
        })
        .is_empty());
    h.finish();
}

#[test]
fn force_stream_quality_answers_only_real_changes() {
    let mut h = Harness::new(Config::default());
    h.open(1, APP);
    h.open(2, APP);
    let p = live(&mut h, 1, "s1");
    let v = play(&mut h, 2, "s1");
    let force = |h: &mut Harness, height: i64| {
        send(
            h,
            2,
            json!({"command":"forceStreamQuality","streamId":"s1","streamHeight":height}),
        )
    };
    // No layer known yet: recorded, nothing reported.
    let outs = force(&mut h, 240);
    assert_eq!(
        cmds(&outs),
        [MediaCmd::ForceQuality {
            session: v,
            height: 240
        }]
    );
    assert!(sent(&outs, 2).is_empty());
    // The same height again: nothing at all.
    assert!(force(&mut h, 240).is_empty());
    // One layer (360p): whatever the request, the player keeps getting 360p.
    h.media_event(MediaEvent::Stats {
        session: p,
        stats: stats(800_000, 40_000, 360),
    });
    for height in [0, 720, 144, 360] {
        let outs = force(&mut h, height);
        assert!(sent(&outs, 2).is_empty(), "{height}: {outs:?}");
        assert_eq!(cmds(&outs).len(), 1);
    }
    h.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random drops, re-publishes, media closes, stats and time: the invariants hold after
    /// every step (the harness checks them), players of a restored publisher never get
    /// `play_finished` before the publisher really ends, and everything ends cleanly.
    #[test]
    fn hold_and_restore_keep_the_invariants(ops in proptest::collection::vec(0u8..8, 1..40)) {
        let mut h = Harness::new(Config {
            no_packet_timeout: Duration::from_secs(4),
            ..Config::default()
        });
        h.open(100, APP);
        let mut conn = 1u64;
        h.open(conn, APP);
        let mut sid = Some(live(&mut h, conn, "s"));
        let viewer = play(&mut h, 100, "s");
        let mut viewer_alive = true;
        for op in ops {
            let outs = match op {
                0 => h.close(conn),
                1 => {
                    conn += 1;
                    h.open(conn, APP);
                    let mut outs = send(&mut h, conn, json!({"command":"publish","streamId":"s"}));
                    outs.extend(offer(&mut h, conn, "s"));
                    if let Some(s) = cmds(&outs).iter().find_map(|c| match c {
                        MediaCmd::StartPublish { session, .. } => Some(*session),
                        _ => None,
                    }) {
                        sid = Some(s);
                        outs.extend(h.media_event(MediaEvent::MediaStarted { session: s }));
                    }
                    outs
                }
                2 => sid.map_or_else(Vec::new, |s| h.media_event(MediaEvent::Closed { session: s })),
                3 => h.advance(Duration::from_secs(3)),
                4 => sid.map_or_else(Vec::new, |s| h.media_event(MediaEvent::Stats {
                    session: s, stats: stats(0, 0, 360) })),
                5 => sid.map_or_else(Vec::new, |s| h.media_event(MediaEvent::Stats {
                    session: s, stats: stats(100_000, 0, 360) })),
                6 => send(&mut h, conn, json!({"command":"stop","streamId":"s"})),
                _ => h.advance(Duration::from_millis(700)),
            };
            if defs(&outs, 100).iter().any(|d| d == "play_finished") {
                prop_assert!(viewer_alive, "play_finished twice");
                viewer_alive = false;
            }
        }
        let _ = viewer;
        h.finish();
    }
}
