//! Rooms whose members publish on other nodes (`remote_room.rs`).

use serde_json::json;

use super::test_util::*;
use super::{ConnId, Output, MAX_RELAYED_PER_ROOM, ROOM_POLL};
use crate::fuzzing::Harness;
use crate::media::{MediaCmd, MediaEvent};

const RELAY_CONN: ConnId = ConnId(1 << 50);

fn finds(outs: &[Output]) -> (Vec<String>, Vec<String>) {
    let mut rooms = Vec::new();
    let mut streams = Vec::new();
    for o in outs {
        match o {
            Output::FindRoom { room, .. } => rooms.push(room.clone()),
            Output::FindStream { stream, .. } => streams.push(stream.clone()),
            _ => {}
        }
    }
    (rooms, streams)
}

fn members(h: &mut Harness, ids: &[&str]) -> Vec<Output> {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    h.sig.room_members(h.now, "app", "room1", &ids);
    h.drain()
}

/// A node with member `alice` live and her room player on connection 2.
fn node_with_room_player() -> (Harness, Vec<Output>) {
    let mut h = harness();
    h.sig.set_remote_streams(true);
    h.open(1, "app");
    h.open(2, "app");
    live_publisher(&mut h, 1, "alice", "room1");
    let outs = send(
        &mut h,
        2,
        json!({"command":"play","streamId":"room1","trackList":["!alice"],"userPublishId":"alice"}),
    );
    (h, outs)
}

#[test]
fn a_room_play_looks_its_members_up_and_relays_each_remote_one_into_the_room() {
    let (mut h, outs) = node_with_room_player();
    assert_eq!(finds(&outs).0, vec!["room1".to_string()], "asked at once");
    // Alice is published here: only bob is looked up, once.
    let outs = members(&mut h, &["alice", "bob"]);
    assert_eq!(finds(&outs).1, vec!["bob".to_string()]);
    assert!(finds(&members(&mut h, &["alice", "bob"])).1.is_empty());
    let relay = h
        .sig
        .open_relay(h.now, RELAY_CONN, "app", "bob")
        .expect("a relay for the room's member");
    h.media.insert(relay, true);
    assert!(h.drain().is_empty());
    // Live: the room player gets bob (media layer first, then `subtrackAdded`).
    let outs = h.media_event(MediaEvent::MediaStarted { session: relay });
    assert!(cmds(&outs).iter().any(|c| matches!(c,
        MediaCmd::SetSubtracks { subtracks, .. } if subtracks.iter().any(|t| t.publisher == relay))));
    assert!(sent(&outs, 2)
        .iter()
        .any(|m| m["definition"] == "subtrackAdded" && m["trackId"] == "bob"));
    // Relayed now: the next poll asks for the room and looks nobody up.
    let outs = h.advance(ROOM_POLL);
    assert_eq!(finds(&outs).0, vec!["room1".to_string()]);
    assert!(finds(&members(&mut h, &["alice", "bob"])).1.is_empty());
    // Bob's origin stream ends: the room player loses him, the room play goes on.
    h.sig.relay_ended(h.now, relay);
    let outs = h.drain();
    assert!(sent(&outs, 2)
        .iter()
        .any(|m| m["definition"] == "subtrackRemoved" && m["trackId"] == "bob"));
    assert!(!sent(&outs, 2)
        .iter()
        .any(|m| m["definition"] == "play_finished"));
    let c = h.sig.remote_counters();
    assert_eq!((c.room_members, c.relays_opened), (1, 1));
    h.finish();
}

#[test]
fn a_failed_look_up_is_asked_again_at_the_next_poll() {
    let (mut h, _) = node_with_room_player();
    assert_eq!(finds(&members(&mut h, &["bob"])).1, vec!["bob".to_string()]);
    h.sig
        .remote_failed(h.now, "app", "bob", crate::SignalError::NoStreamExist);
    // Nobody waits for bob's stream as a play: the room player is not told anything.
    assert!(sent(&h.drain(), 2).is_empty());
    assert_eq!(finds(&members(&mut h, &["bob"])).1, vec!["bob".to_string()]);
    h.finish();
}

#[test]
fn the_last_room_player_leaving_ends_the_rooms_relays_at_the_next_poll() {
    let (mut h, _) = node_with_room_player();
    members(&mut h, &["bob"]);
    let relay = h.sig.open_relay(h.now, RELAY_CONN, "app", "bob").unwrap();
    h.media.insert(relay, true);
    h.media_event(MediaEvent::MediaStarted { session: relay });
    let outs = h.close(2);
    assert!(!cmds(&outs).contains(&MediaCmd::Close { session: relay }));
    let outs = h.advance(ROOM_POLL);
    assert!(cmds(&outs).contains(&MediaCmd::Close { session: relay }));
    assert!(finds(&outs).0.is_empty(), "no room played here: no poll");
    assert_eq!(h.sig.poll_timeout(), None);
    h.finish();
}

#[test]
fn members_relayed_per_room_are_bounded_and_answers_for_rooms_not_played_are_ignored() {
    let (mut h, _) = node_with_room_player();
    let many: Vec<String> = (0..MAX_RELAYED_PER_ROOM + 2)
        .map(|i| format!("m{i}"))
        .collect();
    let ids: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(finds(&members(&mut h, &ids)).1.len(), MAX_RELAYED_PER_ROOM);
    assert_eq!(h.sig.remote_counters().room_overflow, 2);
    h.sig
        .room_members(h.now, "app", "elsewhere", &["x".to_string()]);
    assert!(h.drain().is_empty());
    h.finish();
}

#[test]
fn a_member_relay_also_played_plainly_ends_with_its_last_player_once_the_room_is_not_played() {
    let (mut h, _) = node_with_room_player();
    members(&mut h, &["bob"]);
    let relay = h.sig.open_relay(h.now, RELAY_CONN, "app", "bob").unwrap();
    h.media.insert(relay, true);
    h.media_event(MediaEvent::MediaStarted { session: relay });
    // A plain player of bob on this node joins the live relay.
    h.open(3, "app");
    player(&mut h, 3, "bob");
    // The room player leaves: the poll keeps the relay (it has a player).
    h.close(2);
    let outs = h.advance(ROOM_POLL);
    assert!(!cmds(&outs).contains(&MediaCmd::Close { session: relay }));
    // Its last player leaves: nothing plays it here any more.
    let outs = h.close(3);
    assert!(cmds(&outs).contains(&MediaCmd::Close { session: relay }));
    h.finish();
}
