//! Finding 11 of issue 9: per-connection state and field lengths are bounded, and the room
//! queries use indexes instead of scanning every room or publisher.
#![allow(clippy::disallowed_methods)] // Instant::now() for cost figures only

use super::*;
use crate::fuzzing::Harness;
use crate::media::{MediaCmd, MediaEvent, SessionId};
use crate::signalling::{key, Config, Output};
use serde_json::{json, Value};
use std::time::Instant;

const APP: &str = "WebRTCAppEE";

fn small() -> Config {
    Config {
        limits: Limits {
            max_publishes_per_conn: 2,
            max_plays_per_conn: 2,
            max_rooms_per_conn: 2,
            max_p2p_per_conn: 2,
            ..Limits::default()
        },
        ..Config::default()
    }
}

fn replies(outs: &[Output], conn: u64) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(c, m) if c.0 == conn => serde_json::from_str(&m.to_json()).ok(),
            _ => None,
        })
        .collect()
}

fn send(h: &mut Harness, conn: u64, v: Value) -> Vec<Value> {
    let outs = h.text(conn, &v.to_string());
    replies(&outs, conn)
}

fn refusal(r: &[Value]) -> (&str, &str) {
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["command"], "error", "{r:?}");
    (
        r[0]["definition"].as_str().unwrap_or(""),
        r[0]["information"].as_str().unwrap_or(""),
    )
}

fn live(h: &mut Harness, conn: u64, id: &str) -> SessionId {
    send(h, conn, json!({"command":"publish","streamId":id}));
    let outs = h.text(
        conn,
        &json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"O"}).to_string(),
    );
    let s = outs
        .iter()
        .find_map(|o| match o {
            Output::Media(MediaCmd::StartPublish { session, .. }) => Some(*session),
            _ => None,
        })
        .expect("publish started");
    h.media_event(MediaEvent::MediaStarted { session: s });
    s
}

#[test]
fn per_connection_counts_are_bounded() {
    let mut h = Harness::new(small());
    h.open(1, APP);
    h.open(2, APP);
    // Publishes.
    for id in ["a", "b"] {
        let r = send(&mut h, 1, json!({"command":"publish","streamId":id}));
        assert_eq!(r[0]["command"], "start");
    }
    let r = send(&mut h, 1, json!({"command":"publish","streamId":"c"}));
    let (def, info) = refusal(&r);
    assert_eq!(def, "connection_limit_reached");
    assert!(info.contains("2 publishes"), "{info}");
    assert_eq!(r[0]["streamId"], "c");
    // A repeat is answered as before, not as a limit.
    let r = send(&mut h, 1, json!({"command":"publish","streamId":"a"}));
    assert_eq!(refusal(&r).0, "already_publishing");
    // Stopping one frees a place.
    send(&mut h, 1, json!({"command":"stop","streamId":"a"}));
    let r = send(&mut h, 1, json!({"command":"publish","streamId":"c"}));
    assert_eq!(r[0]["command"], "start");
    assert_eq!(h.sig.limit_counters().too_many, 1);

    // Plays.
    for id in ["p1", "p2"] {
        live(&mut h, 2, id);
    }
    h.open(3, APP);
    live(&mut h, 3, "p3");
    h.open(4, APP);
    for id in ["p1", "p2"] {
        let outs = h.text(4, &json!({"command":"play","streamId":id}).to_string());
        assert!(outs
            .iter()
            .any(|o| matches!(o, Output::Media(MediaCmd::StartPlay { .. }))));
    }
    let r = send(&mut h, 4, json!({"command":"play","streamId":"p3"}));
    assert_eq!(refusal(&r).0, "connection_limit_reached");
    assert_eq!(h.sig.limit_counters().too_many, 2);

    // Room memberships: re-joining a held one is fine, a third is not.
    h.open(5, APP);
    for room in ["r1", "r2", "r1"] {
        let r = send(
            &mut h,
            5,
            json!({"command":"joinRoom","room":room,"streamId":"m"}),
        );
        assert_eq!(r[0]["definition"], "joinedTheRoom", "{r:?}");
    }
    let r = send(
        &mut h,
        5,
        json!({"command":"joinRoom","room":"r3","streamId":"m"}),
    );
    assert_eq!(refusal(&r).0, "connection_limit_reached");
    let r = send(&mut h, 5, json!({"command":"joinRoom","room":"r3"}));
    assert_eq!(refusal(&r).0, "connection_limit_reached");
    assert!(!h.sig.rooms.contains_key(&key(APP, "r3")));

    // P2p groups.
    for id in ["g1", "g2"] {
        let r = send(&mut h, 5, json!({"command":"join","streamId":id}));
        assert_eq!(r[0]["definition"], "joined");
    }
    let r = send(&mut h, 5, json!({"command":"join","streamId":"g3"}));
    assert_eq!(refusal(&r).0, "connection_limit_reached");
    assert_eq!(h.sig.limit_counters().too_many, 5);
    h.finish();
}

#[test]
fn field_lengths_are_bounded() {
    let mut h = Harness::new(Config::default());
    h.open(1, APP);
    let l = Limits::default();
    let long_id = "a".repeat(l.max_id_len + 1);
    // An over-long id is an invalid stream name, not echoed back.
    let r = send(&mut h, 1, json!({"command":"publish","streamId":long_id}));
    assert_eq!(refusal(&r).0, "invalidStreamName");
    assert!(r[0].get("streamId").is_none(), "{r:?}");
    let r = send(&mut h, 1, json!({"command":"joinRoom","room":long_id}));
    assert_eq!(refusal(&r).0, "invalidStreamName");
    // The longest allowed id works.
    let ok_id = "a".repeat(l.max_id_len);
    let r = send(&mut h, 1, json!({"command":"publish","streamId":ok_id}));
    assert_eq!(r[0]["command"], "start");
    // Other fields: parameter_too_long, naming the field; the id is echoed.
    let cases = [
        json!({"command":"publish","streamId":"s","metaData":"m".repeat(l.max_meta_len + 1)}),
        json!({"command":"publish","streamId":"s","streamName":"n".repeat(l.max_name_len + 1)}),
        json!({"command":"publish","streamId":"s","token":"t".repeat(l.max_token_len + 1)}),
        json!({"command":"joinRoom","room":"r","metadata":"m".repeat(l.max_meta_len + 1)}),
        json!({"command":"updateStreamMetaData","streamId":"s","metaData":"m".repeat(l.max_meta_len + 1)}),
        json!({"command":"takeCandidate","streamId":"s","label":0,"id":"0",
               "candidate":"c".repeat(l.max_candidate_len + 1)}),
        json!({"command":"play","streamId":"s","trackList":["x".repeat(l.max_id_len + 1)]}),
    ];
    for (i, c) in cases.iter().enumerate() {
        let r = send(&mut h, 1, c.clone());
        let (def, info) = refusal(&r);
        let expected = if i == 6 {
            "invalidStreamName"
        } else {
            "parameter_too_long"
        };
        assert_eq!(def, expected, "{c}");
        assert!(info.contains("longer than"), "{info}");
    }
    assert_eq!(h.sig.limit_counters().too_long, 2 + cases.len() as u64);
    assert!(!h.sig.rooms.contains_key(&key(APP, "r")));
    // Metadata at the bound is stored.
    let r = send(
        &mut h,
        1,
        json!({"command":"joinRoom","room":"r","streamId":"m","metadata":"m".repeat(l.max_meta_len)}),
    );
    assert_eq!(r[0]["definition"], "joinedTheRoom");
    h.finish();
}

/// The figure of finding 11: 1000 `joinRoom` with 70 KB metadata on one connection used to
/// keep 70 MB. Now none is kept (metadata over the bound), and with metadata at the bound at
/// most `max_rooms_per_conn` memberships are.
#[test]
fn thousand_join_rooms_keep_bounded_state() {
    let mut sig = Signalling::new(Config::default(), Instant::now());
    let now = Instant::now();
    let conn = ConnId(1);
    sig.handle_open(now, conn, APP);
    let l = Limits::default();
    for meta_len in [70 * 1024, l.max_meta_len] {
        let meta = "m".repeat(meta_len);
        for i in 0..1000 {
            let m = json!({"command":"joinRoom","room":format!("room{i}"),"streamId":"me",
                           "metadata":meta});
            sig.handle_text(now, conn, &m.to_string());
            while sig.poll_output().is_some() {}
        }
        let kept: usize = sig
            .rooms
            .values()
            .flat_map(|r| r.members.values())
            .map(|m| m.meta.as_ref().map_or(0, String::len))
            .sum();
        eprintln!("1000 joinRoom with {meta_len} B metadata: {kept} B of metadata kept");
        assert!(sig.rooms.len() <= l.max_rooms_per_conn);
        assert!(kept <= l.max_rooms_per_conn * l.max_meta_len);
    }
    assert_eq!(sig.rooms.len(), l.max_rooms_per_conn);
    assert_eq!(sig.limit_counters().too_long, 1000);
    assert_eq!(
        sig.limit_counters().too_many,
        1000 - l.max_rooms_per_conn as u64
    );
    sig.check_invariants().unwrap();
}

/// The room queries do not scan every room or publisher: with 100k rooms, a membership
/// metadata update, a `joinRoom` and a publish in a room touch only their own room. Asserted on
/// what the indexes hold; the time per message is printed for the record.
#[test]
fn room_queries_use_indexes_at_100k_rooms() {
    let now = Instant::now();
    let mut sig = Signalling::new(Config::default(), now);
    let per_conn = Limits::default().max_rooms_per_conn as u64;
    let rooms = 100_000u64;
    for i in 0..rooms {
        let conn = ConnId(i / per_conn);
        if i % per_conn == 0 {
            sig.handle_open(now, conn, APP);
        }
        let m = json!({"command":"joinRoom","room":format!("room{i}"),"streamId":format!("m{i}")});
        sig.handle_text(now, conn, &m.to_string());
    }
    while sig.poll_output().is_some() {}
    assert_eq!(sig.rooms.len(), rooms as usize);
    assert_eq!(sig.member_rooms.len(), rooms as usize);
    sig.check_invariants().unwrap();

    let conn = ConnId(7 / per_conn);
    let update =
        json!({"command":"updateStreamMetaData","streamId":"m7","metaData":"x"}).to_string();
    let n = 1000;
    let t0 = Instant::now();
    for _ in 0..n {
        sig.handle_text(now, conn, &update);
    }
    let per_update = t0.elapsed() / n;
    assert!(
        sig.poll_output().is_none(),
        "updates answered with an error"
    );
    assert_eq!(
        sig.rooms[&key(APP, "room7")].members["m7"].meta.as_deref(),
        Some("x")
    );
    // A publish into a room, then the room's track list: only that room's streams.
    let c = ConnId(1_000_000);
    sig.handle_open(now, c, APP);
    sig.handle_text(
        now,
        c,
        &json!({"command":"publish","streamId":"sub","mainTrack":"room9"}).to_string(),
    );
    let t0 = Instant::now();
    for _ in 0..n {
        sig.handle_text(
            now,
            c,
            &json!({"command":"getTrackList","streamId":"room9"}).to_string(),
        );
    }
    let per_list = t0.elapsed() / n;
    let mut lists = 0;
    while let Some(o) = sig.poll_output() {
        if let Output::Send(_, m) = o {
            let v: Value = serde_json::from_str(&m.to_json()).unwrap();
            if v["command"] == "trackList" {
                assert_eq!(v["trackList"], json!(["sub"]));
                lists += 1;
            }
        }
    }
    assert_eq!(lists, n);
    assert_eq!(sig.main_track_streams.len(), 1);
    sig.check_invariants().unwrap();
    eprintln!(
        "100k rooms: updateStreamMetaData {per_update:?} per message, getTrackList {per_list:?}"
    );
}
