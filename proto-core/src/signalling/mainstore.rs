//! Main-track and subscriber answers that join the datastore with the live state:
//! `getBroadcastObject`, `getSubtracks`, `getSubtracksCount`, `getSubscribers`, and the
//! `subtracksLimit` check of a `publish` with `mainTrack`.
//!
//! The datastore is read through [`AccessPolicy::records`](super::AccessPolicy::records)
//! ([`StoredRecords`]): synchronous, read-only calls, so signalling stays pure. Without a
//! datastore (the open policy) only live streams are known.
//!
//! # How a stored record and a live stream combine
//!
//! A stream's Broadcast object starts from its stored record (every AMS field, e.g. `name`,
//! `plannedStartDate`, `subtracksLimit`, viewer counts) and, while the stream is published
//! here, takes from the live publish its `status` (`preparing` until media flows, then
//! `broadcasting`), `name`, `metaData`, `role`, `mainTrackStreamId` and `webRTCViewerCount`.
//! A main track's `subTrackStreamIds` are its stored ones followed by its live subtracks that
//! the record does not list; while a subtrack is live its status is `broadcasting`.
//!
//! # `subtracksLimit` (decision where AMS is silent on timing)
//!
//! A subtrack holds a slot of its main track from its accepted `publish` until it ends
//! (while it waits for media and while it is held after a dropped connection too), so
//! clients that publish at the same moment cannot pass the limit together. A resumed publish
//! of a held subtrack takes its own slot back, and any `publish` of an id that is already a
//! subtrack is not counted twice.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tracing::debug;

use super::{key, ConnId, Role, Session, Signalling, StoredRecords};
use crate::error::SignalError;
use crate::message::{
    GetSubscribers, GetSubtracks, GetSubtracksCount, Notification, ServerMessage,
};

/// The largest page of `getSubtracks` and `getSubscribers` (as AMS's REST lists).
pub(super) const MAX_PAGE: usize = 50;
/// The most stored subtracks of one main track that a query reads.
pub(super) const MAX_STORED_SUBTRACKS: usize = 1000;

type Record = Map<String, Value>;

/// `(offset, size)` of a page request: negative or missing offset is 0, size is at most
/// [`MAX_PAGE`] (missing: [`MAX_PAGE`]; negative: 0).
fn page(offset: Option<i64>, size: Option<i64>) -> (usize, usize) {
    let offset = offset.map_or(0, |o| usize::try_from(o).unwrap_or(0));
    let size = size
        .map_or(MAX_PAGE, |s| usize::try_from(s).unwrap_or(0))
        .min(MAX_PAGE);
    (offset, size)
}

fn str_field<'a>(b: &'a Record, k: &str) -> Option<&'a str> {
    b.get(k).and_then(Value::as_str)
}

impl Signalling {
    fn records(&self) -> Option<&dyn StoredRecords> {
        self.access.records()
    }

    /// Writes the live publish of `id` (if any) over `b`; `main` overrides its main track (a
    /// legacy room member listed as a subtrack). Returns whether `id` is published here.
    fn overlay_live(&self, app: &str, id: &str, main: Option<&str>, b: &mut Record) -> bool {
        let Some((
            sid,
            Session {
                role: Role::Publish(p),
                ..
            },
        )) = self
            .publishers
            .get(&key(app, id))
            .and_then(|sid| Some((*sid, self.sessions.get(sid)?)))
        else {
            return false;
        };
        let status = if p.live { "broadcasting" } else { "preparing" };
        b.insert("streamId".into(), json!(id));
        b.insert("status".into(), json!(status));
        if let Some(n) = &p.name {
            b.insert("name".into(), json!(n));
        }
        if let Some(m) = &p.meta {
            b.insert("metaData".into(), json!(m));
        }
        if let Some(r) = &p.role {
            b.insert("role".into(), json!(r));
        }
        if let Some(m) = main.or(p.main_track.as_deref()) {
            b.insert("mainTrackStreamId".into(), json!(m));
        }
        let viewers = self.cluster_viewers(app, id, Some(sid));
        b.insert("webRTCViewerCount".into(), json!(viewers));
        b.entry("type").or_insert_with(|| json!("liveStream"));
        if b.get("publishType").is_none_or(Value::is_null) {
            b.insert("publishType".into(), json!("WebRTC"));
        }
        true
    }

    /// `getBroadcastObject`: the stored record joined with the live state; `no_stream_exist`
    /// when the id is neither stored, nor published, nor a main track or room here.
    pub(super) fn broadcast_object(&mut self, conn: ConnId, app: &str, id: String) {
        let k = key(app, &id);
        let stored = self.records().and_then(|r| r.broadcast(app, &id));
        let is_stored = stored.is_some();
        let mut b = stored.unwrap_or_default();
        let live_subtracks = self.room_streams(app, &id, true);
        let subtracks = self.room_streams(app, &id, false);
        let published = self.overlay_live(app, &id, None, &mut b);
        if !published {
            let is_room = !subtracks.is_empty() || self.rooms.contains_key(&k);
            if !is_room && !is_stored {
                return self.error(conn, SignalError::NoStreamExist, Some(&id));
            }
            b.insert("streamId".into(), json!(id));
            if !live_subtracks.is_empty() {
                b.insert("status".into(), json!("broadcasting"));
            } else if !is_stored {
                b.insert("status".into(), json!("finished"));
            }
            if !is_stored {
                b.insert("webRTCViewerCount".into(), json!(0));
                b.insert("type".into(), json!("liveStream"));
                b.insert("publishType".into(), json!("WebRTC"));
            }
        }
        let mut ids: Vec<Value> = b
            .get("subTrackStreamIds")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for t in subtracks {
            if !ids.iter().any(|v| v.as_str() == Some(t.as_str())) {
                ids.push(json!(t));
            }
        }
        b.insert("subTrackStreamIds".into(), Value::Array(ids));
        self.send(
            conn,
            ServerMessage::Notification(Notification::BroadcastObject {
                stream_id: id,
                broadcast: Value::Object(b).to_string(),
            }),
        );
    }

    /// The subtracks of `main`, stored and live, by stream id: `(role, status, record)`.
    fn all_subtracks(&self, app: &str, main: &str) -> BTreeMap<String, (Option<String>, Record)> {
        let mut all: BTreeMap<String, Record> = BTreeMap::new();
        if let Some(r) = self.records() {
            for b in r.subtracks(app, main, MAX_STORED_SUBTRACKS) {
                if let Some(id) = str_field(&b, "streamId").map(str::to_string) {
                    all.insert(id, b);
                }
            }
        }
        for id in self.room_streams(app, main, false) {
            let mut b = all.remove(&id).unwrap_or_default();
            if self.overlay_live(app, &id, Some(main), &mut b) {
                all.insert(id, b);
            }
        }
        all.into_iter()
            .map(|(id, b)| {
                let role = str_field(&b, "role").map(str::to_string);
                (id, (role, b))
            })
            .collect()
    }

    /// `getSubtracks`: a page of the main track's subtracks (stored or live, any status), as
    /// Broadcast JSON strings by stream id, filtered by `role`.
    pub(super) fn subtracks(&mut self, conn: ConnId, app: &str, id: String, g: GetSubtracks) {
        let (offset, size) = page(g.offset, g.size);
        let list: Vec<String> = self
            .all_subtracks(app, &id)
            .into_values()
            .filter(|(role, _)| g.role.is_none() || *role == g.role)
            .skip(offset)
            .take(size)
            .map(|(_, b)| Value::Object(b).to_string())
            .collect();
        self.send(
            conn,
            ServerMessage::Notification(Notification::SubtrackList {
                stream_id: id,
                subtrack_list: list,
            }),
        );
    }

    /// `getSubtracksCount`: how many subtracks (stored or live) match `role` and `status`.
    pub(super) fn subtracks_count(
        &mut self,
        conn: ConnId,
        app: &str,
        id: String,
        g: GetSubtracksCount,
    ) {
        let count = self
            .all_subtracks(app, &id)
            .into_values()
            .filter(|(role, b)| {
                (g.role.is_none() || *role == g.role)
                    && g.status
                        .as_deref()
                        .is_none_or(|s| str_field(b, "status") == Some(s))
            })
            .count() as u64;
        self.send(
            conn,
            ServerMessage::Notification(Notification::SubtrackCount {
                stream_id: id,
                count,
            }),
        );
    }

    /// `getSubscribers`: a page of the stream's TOTP subscribers from the datastore (none
    /// without one), each a Subscriber JSON string without its secret.
    pub(super) fn subscribers(&mut self, conn: ConnId, app: &str, id: String, g: GetSubscribers) {
        let (offset, size) = page(g.offset, g.size);
        let list: Vec<String> = self
            .records()
            .map(|r| r.subscribers(app, &id, offset, size))
            .unwrap_or_default()
            .into_iter()
            .take(size)
            .map(|v| v.to_string())
            .collect();
        self.send(
            conn,
            ServerMessage::Notification(Notification::SubscriberList {
                stream_id: id,
                subscriber_list: list,
            }),
        );
    }

    /// Would publishing `id` as a subtrack of `main` pass `main`'s `subtracksLimit`?
    /// (See the module documentation for what holds a slot.)
    pub(super) fn check_subtracks_limit(
        &self,
        app: &str,
        main: &str,
        id: &str,
    ) -> Result<(), SignalError> {
        let Some(limit) = self.records().and_then(|r| r.subtracks_limit(app, main)) else {
            return Ok(());
        };
        let held: Vec<String> = self.room_streams(app, main, false);
        if held.iter().any(|t| t == id) {
            return Ok(());
        }
        if held.len() as u64 >= limit {
            debug!(
                app,
                main, id, limit, "publish refused: main track has its subtracksLimit"
            );
            return Err(SignalError::MainTrackHasMaxSubtrackCount);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded() {
        assert_eq!(page(None, None), (0, MAX_PAGE));
        assert_eq!(page(Some(-5), Some(-1)), (0, 0));
        assert_eq!(page(Some(7), Some(10_000)), (7, MAX_PAGE));
        assert_eq!(page(Some(3), Some(2)), (3, 2));
    }
}
