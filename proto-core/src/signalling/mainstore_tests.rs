//! `mainstore.rs` as signalling drives it: `subtracksLimit` on `publish` (with subtracks that
//! wait for media, are held after a drop, resume and end), `getSubscribers`, and
//! `getBroadcastObject` / `getSubtracks` / `getSubtracksCount` joining stored records with
//! live streams. The datastore is a fake [`StoredRecords`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::access::Grant;
use crate::fuzzing::Harness;
use crate::media::MediaEvent;

const APP: &str = "WebRTCAppEE";
const LIMIT_ERR: &str = "main_track_has_max_subtrack_count__not_allowed_to_add_more_subtracks";

#[derive(Debug, Default)]
struct Fake {
    broadcasts: BTreeMap<String, Map<String, Value>>,
    subscribers: Vec<Value>,
    /// `(offset, size)` of each subscriber query.
    asked: Vec<(usize, usize)>,
}

/// An open policy with a datastore.
#[derive(Debug, Clone)]
struct Db(Rc<RefCell<Fake>>);

impl AccessPolicy for Db {
    fn check_publish(&mut self, _: Instant, r: &PublishRequest<'_>) -> Result<Grant, SignalError> {
        Ok(Grant::free(r.app))
    }
    fn check_play(&mut self, _: Instant, r: &PlayRequest<'_>) -> Result<Grant, SignalError> {
        Ok(Grant::free(r.app))
    }
    fn records(&self) -> Option<&dyn StoredRecords> {
        Some(self)
    }
}

impl StoredRecords for Db {
    fn broadcast(&self, app: &str, id: &str) -> Option<Map<String, Value>> {
        assert_eq!(app, APP);
        self.0.borrow().broadcasts.get(id).cloned()
    }
    fn subtracks(&self, _: &str, main: &str, max: usize) -> Vec<Map<String, Value>> {
        self.0
            .borrow()
            .broadcasts
            .values()
            .filter(|b| b.get("mainTrackStreamId").and_then(Value::as_str) == Some(main))
            .take(max)
            .cloned()
            .collect()
    }
    fn subtracks_limit(&self, _: &str, main: &str) -> Option<u64> {
        self.0
            .borrow()
            .broadcasts
            .get(main)
            .and_then(|b| b.get("subtracksLimit"))
            .and_then(Value::as_u64)
    }
    fn subscribers(&self, _: &str, stream: &str, offset: usize, size: usize) -> Vec<Value> {
        let mut f = self.0.borrow_mut();
        f.asked.push((offset, size));
        f.subscribers
            .iter()
            .filter(|s| s["streamId"] == stream)
            .skip(offset)
            .take(size)
            .cloned()
            .collect()
    }
}

fn harness() -> (Harness, Rc<RefCell<Fake>>) {
    let mut h = Harness::new(Config::default());
    let fake = Rc::new(RefCell::new(Fake::default()));
    h.sig.set_access_policy(Box::new(Db(fake.clone())));
    (h, fake)
}

fn store(fake: &Rc<RefCell<Fake>>, b: Value) {
    let Value::Object(m) = b else { panic!() };
    let id = m["streamId"].as_str().unwrap().to_string();
    fake.borrow_mut().broadcasts.insert(id, m);
}

fn sent(outs: &[Output], conn: u64) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(c, m) if c.0 == conn => serde_json::from_str(&m.to_json()).ok(),
            _ => None,
        })
        .collect()
}

fn send(h: &mut Harness, conn: u64, v: Value) -> Vec<Output> {
    h.text(conn, &v.to_string())
}

/// One message to `conn`.
fn one(outs: &[Output], conn: u64) -> Value {
    let s = sent(outs, conn);
    assert_eq!(s.len(), 1, "{outs:?}");
    s.into_iter().next().unwrap()
}

/// `publish` of `id` with `mainTrack = room` from `conn`; with `media`, its offer and media
/// start too. Returns what `conn` was sent in answer to the `publish`.
fn publish(h: &mut Harness, conn: u64, id: &str, media: bool) -> Value {
    let outs = send(
        h,
        conn,
        json!({"command":"publish","streamId":id,"mainTrack":"room","video":true}),
    );
    let answer = one(&outs, conn);
    if media && answer["command"] == "start" {
        let outs = send(
            h,
            conn,
            json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"O"}),
        );
        let session = outs
            .iter()
            .find_map(|o| match o {
                Output::Media(MediaCmd::StartPublish { session, .. }) => Some(*session),
                _ => None,
            })
            .expect("StartPublish");
        h.media_event(MediaEvent::MediaStarted { session });
    }
    answer
}

fn refused(v: &Value) -> bool {
    v["command"] == "error" && v["definition"] == LIMIT_ERR
}

#[test]
fn subtracks_limit_counts_waiting_held_and_frees_ended_slots() {
    let (mut h, fake) = harness();
    store(&fake, json!({"streamId":"room","subtracksLimit":2}));
    for c in 1..=6 {
        h.open(c, APP);
    }
    assert_eq!(publish(&mut h, 1, "s1", true)["command"], "start");
    // Waiting for media still holds a slot.
    assert_eq!(publish(&mut h, 2, "s2", false)["command"], "start");
    let e = publish(&mut h, 3, "s3", true);
    assert!(refused(&e), "{e}");
    assert_eq!(e["streamId"], "s3");
    assert_eq!(
        h.sig
            .refusals()
            .get(SignalError::MainTrackHasMaxSubtrackCount),
        1
    );
    assert!(!h
        .sig
        .room_streams(APP, "room", false)
        .contains(&"s3".to_string()));
    // Not a subtrack of that room, or no mainTrack: not limited.
    let outs = send(&mut h, 3, json!({"command":"publish","streamId":"s3"}));
    assert_eq!(one(&outs, 3)["command"], "start");
    send(&mut h, 3, json!({"command":"stop","streamId":"s3"}));
    // s1's connection drops: held, so its slot stays taken.
    h.close(1);
    assert!(h.sig.is_held(APP, "s1"));
    assert!(refused(&publish(&mut h, 3, "s3", true)));
    // s1 comes back on a new connection: its own slot, no refusal.
    assert_eq!(publish(&mut h, 4, "s1", false)["command"], "start");
    assert!(refused(&publish(&mut h, 3, "s3", true)));
    // s2 ends: its slot is free.
    send(&mut h, 2, json!({"command":"stop","streamId":"s2"}));
    assert_eq!(publish(&mut h, 3, "s3", true)["command"], "start");
    assert!(refused(&publish(&mut h, 5, "s5", true)));
    // A held subtrack not resumed in time frees its slot when it ends.
    h.close(3);
    assert!(h.sig.is_held(APP, "s3"));
    assert!(refused(&publish(&mut h, 5, "s5", true)));
    h.advance(Duration::from_secs(11));
    assert!(!h.sig.is_held(APP, "s3"));
    assert_eq!(publish(&mut h, 5, "s5", true)["command"], "start");
    // The limit is read at each publish: raised, one more fits; -1 (none stored) is none.
    store(&fake, json!({"streamId":"room","subtracksLimit":3}));
    assert_eq!(publish(&mut h, 6, "s6", true)["command"], "start");
    store(&fake, json!({"streamId":"room","subtracksLimit":-1}));
    h.open(7, APP);
    assert_eq!(publish(&mut h, 7, "s7", true)["command"], "start");
    h.finish();
}

#[test]
fn subtracks_limit_zero_refuses_every_subtrack_and_spends_nothing() {
    let (mut h, fake) = harness();
    store(&fake, json!({"streamId":"room","subtracksLimit":0}));
    h.open(1, APP);
    assert!(refused(&publish(&mut h, 1, "s1", true)));
    assert_eq!(h.sig.publisher_count(), 0);
    h.finish();
}

#[derive(Debug, Clone)]
enum Op {
    Publish(usize, bool),
    Stop(usize),
    Drop(usize),
    Wait,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..5usize, any::<bool>()).prop_map(|(i, m)| Op::Publish(i, m)),
        1 => (0..5usize).prop_map(Op::Stop),
        1 => (0..5usize).prop_map(Op::Drop),
        1 => Just(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Publishes, stops, drops (held publishers) and time in any order: the room never has
    /// more subtracks than its limit, and a publish is refused for the limit exactly when the
    /// room is full and the id is not already one of its subtracks.
    #[test]
    fn a_main_track_never_has_more_subtracks_than_its_limit(
        limit in 0..4u64,
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let (mut h, fake) = harness();
        store(&fake, json!({"streamId":"room","subtracksLimit":limit}));
        // Connection of stream i: 10 + i, then 20 + i, ... after each drop.
        let mut conn: Vec<u64> = (0..5).map(|i| 10 + i).collect();
        for c in &conn {
            h.open(*c, APP);
        }
        for op in ops {
            match op {
                Op::Publish(i, media) => {
                    let id = format!("s{i}");
                    let before = h.sig.room_streams(APP, "room", false);
                    let answer = publish(&mut h, conn[i], &id, media);
                    let full = before.len() as u64 >= limit && !before.contains(&id);
                    prop_assert_eq!(refused(&answer), full, "{} {:?}", answer, before);
                }
                Op::Stop(i) => {
                    send(&mut h, conn[i], json!({"command":"stop","streamId":format!("s{i}")}));
                }
                Op::Drop(i) => {
                    h.close(conn[i]);
                    conn[i] += 10;
                    h.open(conn[i], APP);
                }
                Op::Wait => {
                    h.advance(Duration::from_secs(4));
                }
            }
            let n = h.sig.room_streams(APP, "room", false).len() as u64;
            prop_assert!(n <= limit, "{} subtracks over limit {}", n, limit);
        }
        h.finish();
    }
}

#[test]
fn get_subscribers_answers_a_bounded_page_from_the_datastore() {
    let (mut h, fake) = harness();
    for i in 0..60 {
        fake.borrow_mut()
            .subscribers
            .push(json!({"subscriberId":format!("u{i:02}"),"streamId":"s","type":"play"}));
    }
    h.open(1, APP);
    let m = one(
        &send(
            &mut h,
            1,
            json!({"command":"getSubscribers","streamId":"s","offset":2,"size":3}),
        ),
        1,
    );
    assert_eq!(m["command"], "notification");
    assert_eq!(m["definition"], "subscriberList");
    assert_eq!(m["streamId"], "s");
    let list: Vec<Value> = m["subscriberList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_str(s.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        list.iter()
            .map(|s| s["subscriberId"].clone())
            .collect::<Vec<_>>(),
        [json!("u02"), json!("u03"), json!("u04")]
    );
    // Size is bounded, a missing or negative offset is 0, strings are accepted.
    let m = one(
        &send(
            &mut h,
            1,
            json!({"command":"getSubscribers","streamId":"s","size":1000}),
        ),
        1,
    );
    assert_eq!(m["subscriberList"].as_array().unwrap().len(), 50);
    send(
        &mut h,
        1,
        json!({"command":"getSubscribers","streamId":"s","offset":-4,"size":"2"}),
    );
    assert_eq!(fake.borrow().asked, [(2, 3), (0, 50), (0, 2)]);
    // Another stream: none.
    let m = one(
        &send(
            &mut h,
            1,
            json!({"command":"getSubscribers","streamId":"t"}),
        ),
        1,
    );
    assert_eq!(m["subscriberList"], json!([]));
    // Without a stream id: the usual error.
    let m = one(&send(&mut h, 1, json!({"command":"getSubscribers"})), 1);
    assert_eq!(m["definition"], "noStreamNameSpecified");
    h.finish();
}

#[test]
fn get_subscribers_without_a_datastore_is_an_empty_list() {
    let mut h = Harness::new(Config::default());
    h.open(1, APP);
    let m = one(
        &send(
            &mut h,
            1,
            json!({"command":"getSubscribers","streamId":"s"}),
        ),
        1,
    );
    assert_eq!(m["definition"], "subscriberList");
    assert_eq!(m["subscriberList"], json!([]));
    h.finish();
}

fn broadcast_object(h: &mut Harness, id: &str) -> Value {
    let m = one(
        &send(h, 1, json!({"command":"getBroadcastObject","streamId":id})),
        1,
    );
    if m["command"] == "error" {
        return m;
    }
    assert_eq!(m["definition"], "broadcastObject");
    serde_json::from_str(m["broadcast"].as_str().unwrap()).unwrap()
}

#[test]
fn broadcast_object_of_stored_live_and_finished_streams() {
    let (mut h, fake) = harness();
    store(
        &fake,
        json!({"streamId":"planned","name":"Planned","status":"created","type":"liveStream",
               "plannedStartDate":1_900_000_000,"hlsViewerCount":3,"subTrackStreamIds":[]}),
    );
    store(
        &fake,
        json!({"streamId":"old","status":"finished","name":"Old"}),
    );
    store(
        &fake,
        json!({"streamId":"room","status":"created","subTrackStreamIds":["gone"],"subtracksLimit":5}),
    );
    h.open(1, APP);
    h.open(2, APP);
    // Stored, never live: its stored fields.
    let b = broadcast_object(&mut h, "planned");
    assert_eq!(b["name"], "Planned");
    assert_eq!(b["status"], "created");
    assert_eq!(b["plannedStartDate"], 1_900_000_000);
    assert_eq!(b["hlsViewerCount"], 3);
    assert_eq!(b["subTrackStreamIds"], json!([]));
    assert_eq!(broadcast_object(&mut h, "old")["status"], "finished");
    // Unknown: no_stream_exist, as for play.
    let e = broadcast_object(&mut h, "nope");
    assert_eq!(e["definition"], "no_stream_exist");
    assert_eq!(e["error_code"], "404");
    // Live: the live status and name over the stored record, which keeps the rest.
    let outs = send(
        &mut h,
        2,
        json!({"command":"publish","streamId":"planned","streamName":"Now","mainTrack":"room"}),
    );
    assert_eq!(one(&outs, 2)["command"], "start");
    let b = broadcast_object(&mut h, "planned");
    assert_eq!(b["status"], "preparing");
    assert_eq!(b["name"], "Now");
    assert_eq!(b["plannedStartDate"], 1_900_000_000);
    assert_eq!(b["mainTrackStreamId"], "room");
    assert_eq!(b["publishType"], "WebRTC");
    // The main track: its stored subtracks and the live one; broadcasting only once the
    // subtrack's media flows.
    let b = broadcast_object(&mut h, "room");
    assert_eq!(b["subTrackStreamIds"], json!(["gone", "planned"]));
    assert_eq!(b["status"], "created");
    assert_eq!(b["subtracksLimit"], 5);
    let outs = send(
        &mut h,
        2,
        json!({"command":"takeConfiguration","streamId":"planned","type":"offer","sdp":"O"}),
    );
    let session = outs
        .iter()
        .find_map(|o| match o {
            Output::Media(MediaCmd::StartPublish { session, .. }) => Some(*session),
            _ => None,
        })
        .unwrap();
    h.media_event(MediaEvent::MediaStarted { session });
    assert_eq!(broadcast_object(&mut h, "room")["status"], "broadcasting");
    assert_eq!(
        broadcast_object(&mut h, "planned")["status"],
        "broadcasting"
    );
    // It ends: the stored record again (the runtime's datastore records `finished`).
    send(&mut h, 2, json!({"command":"stop","streamId":"planned"}));
    fake.borrow_mut().broadcasts.get_mut("planned").unwrap()["status"] = json!("finished");
    let b = broadcast_object(&mut h, "planned");
    assert_eq!(b["status"], "finished");
    assert_eq!(b["name"], "Planned");
    assert_eq!(broadcast_object(&mut h, "room")["status"], "created");
    h.finish();
}

#[test]
fn subtracks_and_their_count_include_stored_ones_with_their_status() {
    let (mut h, fake) = harness();
    store(
        &fake,
        json!({"streamId":"room","subTrackStreamIds":["a","b"]}),
    );
    store(
        &fake,
        json!({"streamId":"a","mainTrackStreamId":"room","status":"finished","role":"host"}),
    );
    store(
        &fake,
        json!({"streamId":"b","mainTrackStreamId":"room","status":"created","name":"B"}),
    );
    h.open(1, APP);
    h.open(2, APP);
    h.open(3, APP);
    // c is live here only; b is stored and published (waiting for media).
    publish(&mut h, 2, "c", true);
    let outs = send(
        &mut h,
        3,
        json!({"command":"publish","streamId":"b","mainTrack":"room","role":"guest"}),
    );
    assert_eq!(one(&outs, 3)["command"], "start");
    let list = |h: &mut Harness, extra: Value| -> Vec<Value> {
        let mut cmd = json!({"command":"getSubtracks","streamId":"room"});
        cmd.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let m = one(&send(h, 1, cmd), 1);
        assert_eq!(m["definition"], "subtrackList");
        m["subtrackList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| serde_json::from_str(s.as_str().unwrap()).unwrap())
            .collect()
    };
    let all = list(&mut h, json!({}));
    let ids: Vec<(&str, &str)> = all
        .iter()
        .map(|b| {
            (
                b["streamId"].as_str().unwrap(),
                b["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [("a", "finished"), ("b", "preparing"), ("c", "broadcasting")]
    );
    assert_eq!(all[1]["name"], "B", "stored fields stay");
    assert_eq!(all[1]["role"], "guest", "live fields win");
    assert!(all.iter().all(|b| b["mainTrackStreamId"] == "room"));
    assert_eq!(
        list(&mut h, json!({"offset":1,"size":1}))[0]["streamId"],
        "b"
    );
    assert_eq!(list(&mut h, json!({"role":"host"}))[0]["streamId"], "a");
    let count = |h: &mut Harness, extra: Value| -> u64 {
        let mut cmd = json!({"command":"getSubtracksCount","streamId":"room"});
        cmd.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let m = one(&send(h, 1, cmd), 1);
        assert_eq!(m["definition"], "subtrackCount");
        m["count"].as_u64().unwrap()
    };
    assert_eq!(count(&mut h, json!({})), 3);
    assert_eq!(count(&mut h, json!({"status":"finished"})), 1);
    assert_eq!(count(&mut h, json!({"status":"broadcasting"})), 1);
    assert_eq!(
        count(&mut h, json!({"role":"guest","status":"preparing"})),
        1
    );
    h.finish();
}
