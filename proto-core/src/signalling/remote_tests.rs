//! The cluster edge's waiting plays and relay publishers (`remote.rs`).

use std::time::Duration;

use serde_json::json;

use super::test_util::*;
use super::{ConnId, Output, MAX_WAITING_PER_STREAM, REMOTE_PLAY_TIMEOUT};
use crate::error::SignalError;
use crate::fuzzing::Harness;
use crate::media::{MediaCmd, MediaEvent, SessionId};

const RELAY_CONN: ConnId = ConnId(1 << 50);

fn edge() -> Harness {
    let mut h = harness();
    h.sig.set_remote_streams(true);
    h
}

fn finds(outs: &[Output]) -> Vec<(String, String)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::FindStream { app, stream } => Some((app.clone(), stream.clone())),
            _ => None,
        })
        .collect()
}

fn play(h: &mut Harness, conn: u64, id: &str) -> Vec<Output> {
    send(h, conn, json!({"command":"play","streamId":id}))
}

/// Opens the relay publisher of `id` as the node does (its media known as a publisher).
fn open_relay(h: &mut Harness, id: &str) -> SessionId {
    let sid = h
        .sig
        .open_relay(h.now, RELAY_CONN, "app", id)
        .expect("a relay for the waiting plays");
    h.media.insert(sid, true);
    assert!(h.drain().is_empty());
    sid
}

fn closes(outs: &[Output], sid: SessionId) -> bool {
    cmds(outs).contains(&MediaCmd::Close { session: sid })
}

#[test]
fn without_edge_mode_a_play_of_an_unknown_stream_is_refused_at_once() {
    let mut h = harness();
    h.open(1, "app");
    let outs = play(&mut h, 1, "cam");
    assert_eq!(error_of(&outs, 1)["definition"], "no_stream_exist");
    assert!(finds(&outs).is_empty());
}

#[test]
fn plays_wait_for_one_look_up_and_one_relay_then_play_it() {
    let mut h = edge();
    h.open(1, "app");
    h.open(2, "app");
    let outs = play(&mut h, 1, "cam");
    assert!(sent(&outs, 1).is_empty(), "the player waits: {outs:?}");
    assert_eq!(finds(&outs), vec![("app".into(), "cam".into())]);
    let outs = play(&mut h, 2, "cam");
    assert!(finds(&outs).is_empty(), "one look-up per stream");
    assert_eq!(h.sig.remote_waiting(), 1);
    let relay = open_relay(&mut h, "cam");
    assert!(h.sig.is_relay(relay));
    // A third play while the relay connects waits for it too, with no new look-up.
    h.open(3, "app");
    assert!(finds(&play(&mut h, 3, "cam")).is_empty());
    let outs = h.media_event(MediaEvent::MediaStarted { session: relay });
    let players: Vec<_> = cmds(&outs)
        .into_iter()
        .filter_map(|c| match c {
            MediaCmd::StartPlay { publisher, .. } => Some(publisher),
            _ => None,
        })
        .collect();
    assert_eq!(
        players,
        vec![relay; 3],
        "every waiting play plays the relay"
    );
    assert!(sent(&outs, RELAY_CONN.0).is_empty());
    assert_eq!(h.sig.remote_waiting(), 0);
    let c = h.sig.remote_counters();
    assert_eq!((c.waited, c.released, c.relays_opened), (3, 3, 1));
    // A later play is an ordinary play of a live stream.
    h.open(4, "app");
    assert_eq!(player(&mut h, 4, "cam"), SessionId(relay.0 + 4));
    // The relay ends with its last player, not before.
    for conn in [1, 2, 3] {
        assert!(!closes(&h.close(conn), relay));
    }
    let outs = h.close(4);
    assert!(closes(&outs, relay), "last player gone: relay closed");
    h.finish();
}

#[test]
fn the_end_of_the_relay_finishes_its_players() {
    let mut h = edge();
    h.open(1, "app");
    play(&mut h, 1, "cam");
    let relay = open_relay(&mut h, "cam");
    let outs = h.media_event(MediaEvent::MediaStarted { session: relay });
    assert!(matches!(&cmds(&outs)[..], [MediaCmd::StartPlay { .. }]));
    let outs = {
        h.sig.relay_ended(h.now, relay);
        h.drain()
    };
    assert_eq!(one(&outs, 1)["definition"], "play_finished");
    assert!(closes(&outs, relay));
    h.finish();
}

#[test]
fn no_origin_an_unavailable_registry_or_a_failed_relay_refuse_the_waiters() {
    let mut h = edge();
    h.open(1, "app");
    h.open(2, "app");
    play(&mut h, 1, "cam");
    h.sig
        .remote_failed(h.now, "app", "cam", SignalError::NoStreamExist);
    let outs = h.drain();
    assert_eq!(error_of(&outs, 1)["definition"], "no_stream_exist");

    play(&mut h, 2, "other");
    h.sig
        .remote_failed(h.now, "app", "other", SignalError::DataStoreNotAvailable);
    let outs = h.drain();
    assert_eq!(error_of(&outs, 2)["definition"], "data_store_not_available");

    // The relay's media fails before it is live: the waiter is refused.
    play(&mut h, 1, "cam");
    let relay = open_relay(&mut h, "cam");
    let outs = h.media_event(MediaEvent::Failed {
        session: relay,
        reason: crate::media::FailReason::RelayCapacity,
    });
    assert_eq!(error_of(&outs, 1)["definition"], "no_stream_exist");
    assert_eq!(h.sig.remote_counters().failed, 3);
    h.finish();
}

#[test]
fn waiting_is_bounded_in_time_and_count() {
    let mut h = edge();
    for conn in 1..=MAX_WAITING_PER_STREAM as u64 + 1 {
        h.open(conn, "app");
    }
    for conn in 1..=MAX_WAITING_PER_STREAM as u64 {
        assert!(sent(&play(&mut h, conn, "cam"), conn).is_empty());
    }
    let last = MAX_WAITING_PER_STREAM as u64 + 1;
    let outs = play(&mut h, last, "cam");
    assert_eq!(error_of(&outs, last)["definition"], "no_stream_exist");
    assert_eq!(h.sig.remote_counters().overflow, 1);
    let relay = open_relay(&mut h, "cam");
    assert!(h
        .advance(REMOTE_PLAY_TIMEOUT - Duration::from_millis(1))
        .is_empty());
    let outs = h.advance(Duration::from_millis(1));
    for conn in 1..=MAX_WAITING_PER_STREAM as u64 {
        assert_eq!(error_of(&outs, conn)["definition"], "no_stream_exist");
    }
    assert!(closes(&outs, relay), "the relay that never went live ends");
    h.finish();
}

#[test]
fn a_relay_nobody_waits_for_any_more_ends() {
    let mut h = edge();
    h.open(1, "app");
    play(&mut h, 1, "cam");
    // The only waiter leaves before the look-up's answer: no relay is started.
    h.close(1);
    assert_eq!(h.sig.remote_waiting(), 0);
    assert_eq!(h.sig.open_relay(h.now, RELAY_CONN, "app", "cam"), None);
    // ... and after the relay started, before it is live: the relay ends.
    h.open(2, "app");
    play(&mut h, 2, "cam");
    let relay = open_relay(&mut h, "cam");
    assert!(closes(&h.close(2), relay));
    h.finish();
}

#[test]
fn a_stream_published_here_meanwhile_is_played_without_a_relay() {
    let mut h = edge();
    h.open(1, "app");
    h.open(2, "app");
    play(&mut h, 1, "cam");
    let publisher = live_publisher(&mut h, 2, "cam", "");
    assert_eq!(h.sig.open_relay(h.now, RELAY_CONN, "app", "cam"), None);
    let outs = h.drain();
    assert!(
        matches!(&cmds(&outs)[..], [MediaCmd::StartPlay { publisher: p, .. }] if *p == publisher),
        "the waiter plays the local publisher: {outs:?}"
    );
    h.finish();
}

#[test]
fn a_replayed_stream_keeps_its_relay() {
    let mut h = edge();
    h.sig.set_config(super::Config {
        play_once_per_session: false,
        ..h.sig.config().clone()
    });
    h.open(1, "app");
    play(&mut h, 1, "cam");
    let relay = open_relay(&mut h, "cam");
    h.media_event(MediaEvent::MediaStarted { session: relay });
    let outs = play(&mut h, 1, "cam");
    assert!(!closes(&outs, relay), "{outs:?}");
    assert!(cmds(&outs)
        .iter()
        .any(|c| matches!(c, MediaCmd::StartPlay { publisher, .. } if *publisher == relay)));
    h.finish();
}

#[test]
fn a_connections_waiting_plays_count_against_its_plays() {
    let mut h = edge();
    let bound = h.sig.config().limits.max_plays_per_conn;
    h.open(1, "app");
    for i in 0..bound {
        let outs = play(&mut h, 1, &format!("s{i}"));
        assert!(sent(&outs, 1).is_empty(), "{outs:?}");
    }
    // The same stream again waits once more (no new slot); a new one is over the bound.
    assert!(sent(&play(&mut h, 1, "s0"), 1).is_empty());
    let outs = play(&mut h, 1, "one-too-many");
    assert_eq!(error_of(&outs, 1)["definition"], "connection_limit_reached");
    assert!(finds(&outs).is_empty());
    assert_eq!(h.sig.remote_waiting(), bound);
    h.finish();
}

#[test]
fn a_waiting_play_that_is_stopped_waits_no_more() {
    let mut h = edge();
    h.open(1, "app");
    h.open(2, "app");
    play(&mut h, 1, "cam");
    play(&mut h, 2, "cam");
    let relay = open_relay(&mut h, "cam");
    assert!(h.drain().is_empty());
    send(&mut h, 1, json!({"command":"stop","streamId":"cam"}));
    let outs = h.media_event(MediaEvent::MediaStarted { session: relay });
    assert!(
        sent(&outs, 1).is_empty(),
        "the stopped play is not started: {outs:?}"
    );
    assert_eq!(cmds(&outs).len(), 1, "only the other play starts: {outs:?}");
    // Both stop before the relay is live: the relay ends.
    play(&mut h, 1, "cam2");
    let relay2 = open_relay(&mut h, "cam2");
    let outs = send(&mut h, 1, json!({"command":"stop","streamId":"cam2"}));
    assert!(closes(&outs, relay2), "{outs:?}");
    assert_eq!(h.sig.remote_waiting(), 0);
    h.finish();
}

/// A second answer for a stream whose relay is still connecting opens nothing and keeps the
/// plays waiting for that relay; the relay ends when its last waiting play goes (the signalling
/// fuzzer's `relay-state-left-after-close`: the waiters were let go without a player and the
/// relay was left behind).
#[test]
fn a_second_answer_keeps_the_plays_waiting_for_the_relay_not_live_yet() {
    let mut h = edge();
    h.open(1, "app");
    play(&mut h, 1, "cam");
    let relay = open_relay(&mut h, "cam");
    // Overloaded: a play handled again now would be refused (`highResourceUsage`).
    h.overload(true);
    assert_eq!(h.sig.open_relay(h.now, RELAY_CONN, "app", "cam"), None);
    assert_eq!(
        h.sig.remote_waiting(),
        1,
        "the play still waits for the relay"
    );
    h.overload(false);
    let outs = h.close(1);
    assert!(
        closes(&outs, relay),
        "the relay ends with its last waiting play: {outs:?}"
    );
    h.finish();
}
