//! Tests of `lastn.rs`: the slot policy and the Last-N commands through signalling.

use super::*;
use crate::fuzzing::Harness;
use crate::media::MediaEvent;
use crate::signalling::{Config, Output};
use proptest::prelude::*;
use serde_json::json;

const APP: &str = "WebRTCAppEE";
const IDS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn some(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|s| s.map(str::to_string)).collect()
}

#[test]
fn slots_take_the_first_candidates_and_keep_their_place() {
    let none = BTreeMap::new();
    let c = ids(&["a", "b", "c"]);
    let s = assign(2, &none, 0, None, &c, &[]);
    assert_eq!(s, some(&[Some("a"), Some("b")]));
    // "a" leaves: "b" stays in slot 1, "c" takes slot 0.
    let s = assign(2, &none, 0, None, &ids(&["b", "c"]), &s);
    assert_eq!(s, some(&[Some("c"), Some("b")]));
    // Fewer candidates than slots: the rest stay empty.
    assert_eq!(
        assign(3, &none, 0, None, &ids(&["x"]), &[]),
        some(&[Some("x"), None, None])
    );
    assert_eq!(
        assign(0, &none, 0, None, &c, &[]),
        Vec::<Option<String>>::new()
    );
}

#[test]
fn pins_and_pages() {
    let mut pins = BTreeMap::new();
    pins.insert(1, "c".to_string());
    let c = ids(&["a", "b", "c", "d"]);
    assert_eq!(
        assign(2, &pins, 0, None, &c, &[]),
        some(&[Some("a"), Some("c")])
    );
    // Page 2 of the unpinned ones (a, b, d): offset 2 shows d.
    assert_eq!(
        assign(2, &pins, 2, None, &c, &[]),
        some(&[Some("d"), Some("c")])
    );
    // A pin of a subtrack that is not a candidate does not hold its slot.
    pins.insert(0, "gone".to_string());
    assert_eq!(
        assign(2, &pins, 0, None, &c, &[]),
        some(&[Some("a"), Some("c")])
    );
    // size 0: only the pins.
    assert_eq!(
        assign(2, &pins, 0, Some(0), &c, &[]),
        some(&[None, Some("c")])
    );
}

#[test]
fn slot_labels() {
    assert_eq!(slot_index("videoTrack0"), Some(0));
    assert_eq!(slot_index("videoTrack15"), Some(15));
    assert_eq!(slot_index("videoTrack"), None);
    assert_eq!(slot_index("videoTrack-1"), None);
    assert_eq!(slot_index("videoTrack99999999999999999999"), None);
    assert_eq!(slot_index("audioTrack0"), None);
}

proptest! {
    /// Whatever the pins, page and history: N slots, each subtrack at most once, only
    /// candidates, pins honoured, and as many filled as the page allows.
    #[test]
    fn assign_invariants(
        max in 0usize..6,
        cand in prop::collection::btree_set(0u8..8, 0..8),
        pins in prop::collection::btree_map(0usize..8, 0u8..10, 0..4),
        offset in 0usize..10,
        size in prop::option::of(0usize..8),
        current in prop::collection::vec(prop::option::of(0u8..10), 0..8),
    ) {
        let cand: Vec<String> = cand.iter().map(|c| format!("t{c}")).collect();
        let pins: BTreeMap<usize, String> = pins.into_iter().map(|(k, v)| (k, format!("t{v}"))).collect();
        let current: Vec<Option<String>> = current.into_iter().map(|c| c.map(|c| format!("t{c}"))).collect();
        let s = assign(max, &pins, offset, size, &cand, &current);
        prop_assert_eq!(s.len(), max);
        let filled: Vec<&String> = s.iter().flatten().collect();
        let uniq: BTreeSet<&String> = filled.iter().copied().collect();
        prop_assert_eq!(uniq.len(), filled.len(), "duplicate in {:?}", s);
        for f in &filled {
            prop_assert!(cand.contains(f));
        }
        let mut pinned = 0;
        let mut seen = BTreeSet::new();
        for (k, id) in &pins {
            if *k < max && cand.contains(id) && seen.insert(id.clone()) {
                prop_assert_eq!(s[*k].as_ref(), Some(id));
                pinned += 1;
            }
        }
        let unpinned = cand.len() - pinned;
        let free = max - pinned;
        let expect = pinned + unpinned.saturating_sub(offset).min(size.unwrap_or(max)).min(free);
        prop_assert_eq!(filled.len(), expect);
    }
}

/// Publishes subtrack `i` of room `room` on conn `10 + i` and makes it live.
fn publish(h: &mut Harness, i: usize) -> Vec<Output> {
    let conn = 10 + i as u64;
    let id = IDS[i];
    let mut outs = h.text(
        conn,
        &json!({"command":"publish","streamId":id,"mainTrack":"room","video":true}).to_string(),
    );
    outs.extend(h.text(
        conn,
        &json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"O"}).to_string(),
    ));
    let session = outs.iter().find_map(|o| match o {
        Output::Media(MediaCmd::StartPublish { session, .. }) => Some(*session),
        _ => None,
    });
    if let Some(session) = session {
        outs.extend(h.media_event(MediaEvent::MediaStarted { session }));
    }
    outs
}

/// What the media layer was told about the room player.
#[derive(Default, Debug)]
struct Seen {
    sent: BTreeMap<String, SessionId>,
    slots: Option<Vec<Option<Subtrack>>>,
    errors: Vec<String>,
    lists: Vec<Vec<VideoTrackAssignment>>,
}

fn observe(outs: &[Output], seen: &mut Seen) {
    for o in outs {
        match o {
            Output::Media(MediaCmd::StartRoomPlay { subtracks, .. })
            | Output::Media(MediaCmd::SetSubtracks { subtracks, .. }) => {
                seen.sent = subtracks
                    .iter()
                    .map(|t| (t.id.clone(), t.publisher))
                    .collect();
            }
            Output::Media(MediaCmd::SetVideoSlots { slots, .. }) => seen.slots.clone_from(slots),
            Output::Send(c, ServerMessage::Error(e)) if c.0 == 1 => {
                seen.errors.push(e.definition.definition().to_string())
            }
            Output::Send(
                c,
                ServerMessage::Notification(Notification::VideoTrackAssignmentList {
                    payload, ..
                }),
            ) if c.0 == 1 => seen.lists.push(payload.clone()),
            _ => {}
        }
    }
}

fn room(config: Config) -> (Harness, Seen) {
    let mut h = Harness::new(config);
    h.open(1, APP);
    for i in 0..IDS.len() as u64 {
        h.open(10 + i, APP);
    }
    let mut seen = Seen::default();
    for i in 0..3 {
        let outs = publish(&mut h, i);
        observe(&outs, &mut seen);
    }
    let outs = h.text(1, &json!({"command":"play","streamId":"room"}).to_string());
    observe(&outs, &mut seen);
    (h, seen)
}

fn slot_ids(seen: &Seen) -> Vec<Option<String>> {
    seen.slots
        .as_ref()
        .map(|v| v.iter().map(|s| s.as_ref().map(|t| t.id.clone())).collect())
        .unwrap_or_default()
}

#[test]
fn commands_drive_the_slots() {
    let (mut h, mut seen) = room(Config::default());
    assert_eq!(seen.sent.len(), 3);
    assert!(
        seen.slots.is_none(),
        "Last-N is off by default (maxVideoTrackCount -1)"
    );
    let o = h.text(
        1,
        r#"{"command":"setMaxVideoTrackCountCommand","streamId":"room","maxTrackCount":1}"#,
    );
    observe(&o, &mut seen);
    assert_eq!(slot_ids(&seen), some(&[Some("s0")]));
    let o = h.text(
        1,
        r#"{"command":"getVideoTrackAssignmentsCommand","streamId":"room"}"#,
    );
    observe(&o, &mut seen);
    assert_eq!(
        seen.lists.last().unwrap(),
        &vec![VideoTrackAssignment {
            video_label: "videoTrack0".into(),
            track_id: "s0".into()
        }]
    );
    // The SDK's form: streamId names the subtrack.
    let o = h.text(1, r#"{"command":"assignVideoTrackCommand","streamId":"s2","videoTrackId":"videoTrack0","enabled":true}"#);
    observe(&o, &mut seen);
    assert_eq!(slot_ids(&seen), some(&[Some("s2")]));
    // The pinned subtrack ends: the slot falls back to the first candidate.
    let o = h.text(12, r#"{"command":"stop","streamId":"s2"}"#);
    observe(&o, &mut seen);
    assert_eq!(slot_ids(&seen), some(&[Some("s0")]));
    // Paging.
    let o = h.text(
        1,
        r#"{"command":"updateVideoTrackAssignmentsCommand","streamId":"room","offset":1,"size":1}"#,
    );
    observe(&o, &mut seen);
    assert_eq!(slot_ids(&seen), some(&[Some("s1")]));
    // Video of s1 off: it leaves its slot.
    let o = h.text(
        1,
        r#"{"command":"updateVideoTrackAssignmentsCommand","streamId":"room","offset":0}"#,
    );
    observe(&o, &mut seen);
    let o = h.text(
        1,
        r#"{"command":"toggleVideo","streamId":"room","trackId":"s0","enabled":false}"#,
    );
    assert!(o.iter().any(|x| matches!(
        x,
        Output::Media(MediaCmd::SetSubtrackForwarding {
            video: Some(false),
            audio: None,
            ..
        })
    )));
    observe(&o, &mut seen);
    assert_eq!(slot_ids(&seen), some(&[Some("s1")]));
    // Bounds and errors.
    let o = h.text(
        1,
        r#"{"command":"setMaxVideoTrackCountCommand","streamId":"room","maxTrackCount":1000}"#,
    );
    observe(&o, &mut seen);
    assert_eq!(slot_ids(&seen).len(), MAX_VIDEO_SLOTS);
    for bad in [
        r#"{"command":"assignVideoTrackCommand","streamId":"room","videoTrackId":"videoTrack0","trackId":"nobody"}"#,
        r#"{"command":"assignVideoTrackCommand","streamId":"room","videoTrackId":"videoTrack16","trackId":"s1"}"#,
        r#"{"command":"assignVideoTrackCommand","streamId":"nobody","videoTrackId":"videoTrack0"}"#,
        r#"{"command":"toggleAudio","streamId":"room","trackId":"nobody","enabled":false}"#,
        r#"{"command":"getVideoTrackAssignmentsCommand","streamId":"other"}"#,
    ] {
        let before = seen.errors.len();
        let o = h.text(1, bad);
        observe(&o, &mut seen);
        assert_eq!(seen.errors[before..], ["no_stream_exist"], "{bad}");
    }
    let o = h.text(
        1,
        r#"{"command":"setMaxVideoTrackCountCommand","streamId":"room"}"#,
    );
    observe(&o, &mut seen);
    assert_eq!(seen.errors.last().unwrap(), "missingParameter");
    // -1: Last-N off again.
    let o = h.text(
        1,
        r#"{"command":"setMaxVideoTrackCountCommand","streamId":"room","maxTrackCount":-1}"#,
    );
    assert!(o.iter().any(|x| matches!(
        x,
        Output::Media(MediaCmd::SetVideoSlots { slots: None, .. })
    )));
    h.finish();
}

#[test]
fn application_default_starts_in_last_n() {
    let config = Config {
        max_track_count: 2,
        ..Config::default()
    };
    let (mut h, seen) = room(config);
    assert_eq!(slot_ids(&seen), some(&[Some("s0"), Some("s1")]));
    h.finish();
}

#[derive(Debug, Clone)]
enum Op {
    Publish(usize),
    Stop(usize),
    Max(i64),
    Assign(usize, usize, bool),
    Page(i64, i64),
    Video(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..5usize).prop_map(Op::Publish),
        (0..5usize).prop_map(Op::Stop),
        (-2..20i64).prop_map(Op::Max),
        (0..5usize, 0..4usize, any::<bool>()).prop_map(|(i, k, on)| Op::Assign(i, k, on)),
        (-1..6i64, -1..6i64).prop_map(|(o, s)| Op::Page(o, s)),
        (0..5usize, any::<bool>()).prop_map(|(i, on)| Op::Video(i, on)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any sequence of subtracks coming and going and Last-N commands: the slots never
    /// exceed N (nor the cap), each slot subtrack is one the player receives (live) with its
    /// current publisher, none twice, and the answer to getVideoTrackAssignmentsCommand is
    /// what the media layer was told.
    #[test]
    fn slots_are_live_and_bounded(ops in prop::collection::vec(op(), 1..40)) {
        let (mut h, mut seen) = room(Config::default());
        let mut max: Option<usize> = None;
        for op in ops {
            let text = match op {
                Op::Publish(i) => { let o = publish(&mut h, i); observe(&o, &mut seen); continue; }
                Op::Stop(i) => {
                    let o = h.text(10 + i as u64, &json!({"command":"stop","streamId":IDS[i]}).to_string());
                    observe(&o, &mut seen);
                    continue;
                }
                Op::Max(n) => {
                    max = usize::try_from(n).ok().map(|n| n.min(MAX_VIDEO_SLOTS));
                    json!({"command":"setMaxVideoTrackCountCommand","streamId":"room","maxTrackCount":n})
                }
                Op::Assign(i, k, on) => json!({"command":"assignVideoTrackCommand","streamId":"room",
                    "trackId":IDS[i],"videoTrackId":format!("videoTrack{k}"),"enabled":on}),
                Op::Page(o, s) => json!({"command":"updateVideoTrackAssignmentsCommand","streamId":"room","offset":o,"size":s}),
                Op::Video(i, on) => json!({"command":"toggleVideo","streamId":"room","trackId":IDS[i],"enabled":on}),
            };
            let o = h.text(1, &text.to_string());
            observe(&o, &mut seen);
            match (&seen.slots, max) {
                (Some(slots), Some(n)) => {
                    prop_assert_eq!(slots.len(), n);
                    let mut ids = BTreeSet::new();
                    for t in slots.iter().flatten() {
                        prop_assert_eq!(seen.sent.get(&t.id), Some(&t.publisher), "slot not live: {:?}", t);
                        prop_assert!(ids.insert(t.id.clone()));
                    }
                }
                (None, None) => {}
                (s, m) => prop_assert!(s.is_none() && m.is_none() || m == Some(0) && s.as_ref().is_some_and(|v| v.is_empty()), "{:?} {:?}", s, m),
            }
            let o = h.text(1, r#"{"command":"getVideoTrackAssignmentsCommand","streamId":"room"}"#);
            observe(&o, &mut seen);
            let told: Vec<VideoTrackAssignment> = seen.slots.iter().flatten().enumerate()
                .filter_map(|(k, s)| Some(VideoTrackAssignment { video_label: format!("videoTrack{k}"), track_id: s.as_ref()?.id.clone() }))
                .collect();
            prop_assert_eq!(seen.lists.last(), Some(&told));
        }
        h.finish();
    }
}
