//! The datastore as signalling reads it ([`proto_core::StoredRecords`]): stored Broadcasts of
//! main tracks and subtracks, `subtracksLimit`, and the TOTP subscribers of a stream, for
//! `getBroadcastObject`, `getSubtracks`, `getSubtracksCount`, `getSubscribers` and the
//! subtrack-limit check of `publish`. Read-only: every call borrows the store and copies out.

use std::collections::BTreeMap;

use proto_core::StoredRecords;
use serde_json::{Map, Value};

use crate::model::{Broadcast, Subscriber};
use crate::security::StreamSecurity;
use crate::store::Data;

fn record(b: &Broadcast) -> Option<Map<String, Value>> {
    match serde_json::to_value(b) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Stored subtracks of `main` in `app`: the records whose `mainTrackStreamId` is `main`, and
/// the ones `main`'s `subTrackStreamIds` names; by stream id, at most `max`.
pub fn stored_subtracks<'a>(
    data: &'a Data,
    app: &str,
    main: &str,
    max: usize,
) -> Vec<&'a Broadcast> {
    let mut found: BTreeMap<&str, &Broadcast> = data
        .broadcasts(app)
        .filter(|b| b.stream_id != main && b.main_track_stream_id.as_deref() == Some(main))
        .map(|b| (b.stream_id.as_str(), b))
        .collect();
    if let Some(m) = data.broadcast(app, main) {
        for id in m.sub_track_stream_ids.iter().filter(|id| *id != main) {
            if let Some(b) = data.broadcast(app, id) {
                found.entry(b.stream_id.as_str()).or_insert(b);
            }
        }
    }
    found.into_values().take(max).collect()
}

/// `subtracksLimit` of a stored main track, if it has one (`-1`: none).
pub fn subtracks_limit(data: &Data, app: &str, main: &str) -> Option<u64> {
    data.broadcast(app, main)
        .and_then(|b| u64::try_from(b.subtracks_limit).ok())
}

impl StoredRecords for StreamSecurity {
    fn broadcast(&self, app: &str, id: &str) -> Option<Map<String, Value>> {
        let store = self.shared_store().borrow();
        store.data().broadcast(app, id).and_then(record)
    }

    fn subtracks(&self, app: &str, main: &str, max: usize) -> Vec<Map<String, Value>> {
        let store = self.shared_store().borrow();
        stored_subtracks(store.data(), app, main, max)
            .into_iter()
            .filter_map(record)
            .collect()
    }

    fn subtracks_limit(&self, app: &str, main: &str) -> Option<u64> {
        let store = self.shared_store().borrow();
        subtracks_limit(store.data(), app, main)
    }

    fn subscribers(&self, app: &str, stream_id: &str, offset: usize, size: usize) -> Vec<Value> {
        let store = self.shared_store().borrow();
        store
            .data()
            .subscribers_of(app, stream_id)
            .skip(offset)
            .take(size)
            .map(Subscriber::public_json)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{shared, MemStore, WriteOp};
    use serde_json::json;

    fn put(sec: &StreamSecurity, b: Value) {
        let broadcast: Broadcast = serde_json::from_value(b).unwrap();
        sec.shared_store()
            .borrow_mut()
            .write(WriteOp::PutBroadcast {
                app: "App".into(),
                broadcast: Box::new(broadcast),
            })
            .unwrap();
    }

    fn security() -> StreamSecurity {
        StreamSecurity::new(shared(MemStore::new()), || 0)
    }

    #[test]
    fn broadcast_records_and_subtracks_by_either_link() {
        let sec = security();
        put(
            &sec,
            json!({"streamId":"room","subTrackStreamIds":["listed","ghost"],"subtracksLimit":2}),
        );
        put(&sec, json!({"streamId":"listed","status":"finished"}));
        put(
            &sec,
            json!({"streamId":"linked","mainTrackStreamId":"room"}),
        );
        put(
            &sec,
            json!({"streamId":"other","mainTrackStreamId":"elsewhere"}),
        );
        let r: &dyn StoredRecords = &sec;
        let b = r.broadcast("App", "room").unwrap();
        assert_eq!(b["subtracksLimit"], 2);
        assert_eq!(b["status"], "created");
        assert!(r.broadcast("App", "nope").is_none());
        assert!(r.broadcast("Other", "room").is_none());
        let ids: Vec<String> = r
            .subtracks("App", "room", 10)
            .iter()
            .map(|b| b["streamId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids,
            ["linked", "listed"],
            "a listed id without a record is skipped"
        );
        assert_eq!(r.subtracks("App", "room", 1).len(), 1, "bounded");
        assert_eq!(r.subtracks_limit("App", "room"), Some(2));
        assert_eq!(r.subtracks_limit("App", "listed"), None, "-1 is no limit");
        assert_eq!(r.subtracks_limit("App", "nope"), None);
    }

    #[test]
    fn subscribers_are_paged_and_have_no_secret() {
        let sec = security();
        for i in 0..5 {
            let s: Subscriber = serde_json::from_value(json!({
                "subscriberId": format!("sub{i}"), "streamId": "s", "type": "play",
                "b32Secret": "JBSWY3DPEHPK3PXP"
            }))
            .unwrap();
            sec.shared_store()
                .borrow_mut()
                .write(WriteOp::PutSubscriber {
                    app: "App".into(),
                    subscriber: s,
                })
                .unwrap();
        }
        let r: &dyn StoredRecords = &sec;
        let page = r.subscribers("App", "s", 1, 3);
        let ids: Vec<&str> = page
            .iter()
            .map(|v| v["subscriberId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["sub1", "sub2", "sub3"]);
        assert!(page.iter().all(|v| v.get("b32Secret").is_none()));
        assert_eq!(r.subscribers("App", "s", 4, 50).len(), 1);
        assert!(r.subscribers("App", "s", usize::MAX, 50).is_empty());
        assert!(r.subscribers("App", "t", 0, 50).is_empty());
    }
}
