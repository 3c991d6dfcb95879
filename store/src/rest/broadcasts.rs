//! The broadcast handlers of the REST API: create, update, delete, list.

use serde_json::{Map, Value};

use super::{bad_json, not_found_broadcast, Query, RestApi, RestResponse};
use crate::model::Broadcast;
use crate::store::{Data, WriteOp};

impl RestApi {
    pub(super) fn create(&mut self, now_ms: u64, app: &str, body: &[u8]) -> RestResponse {
        let mut b: Broadcast = if body.iter().all(u8::is_ascii_whitespace) {
            Broadcast::default()
        } else {
            match serde_json::from_slice(body) {
                Ok(b) => b,
                Err(e) => return bad_json(&e),
            }
        };
        if b.stream_id.is_empty() {
            b.stream_id = format!("{}{}", self.random_string(16), now_ms);
        } else if !proto_core::is_valid_stream_id(&b.stream_id) {
            return RestResponse::fail(400, "Stream id is not valid.");
        }
        if self
            .store
            .borrow()
            .data()
            .broadcast(app, &b.stream_id)
            .is_some()
        {
            return RestResponse::fail(
                400,
                "Stream id is already being used. Please change stream id or keep it empty",
            );
        }
        b.date = i64::try_from(now_ms).unwrap_or(i64::MAX);
        b.status = "created".into();
        b.webrtc_viewer_count = 0;
        b.hls_viewer_count = 0;
        b.rtmp_viewer_count = 0;
        b.dash_viewer_count = 0;
        let resp = RestResponse::json(200, &b);
        let op = WriteOp::PutBroadcast {
            app: app.to_string(),
            broadcast: Box::new(b),
        };
        self.written(vec![op], resp)
    }

    pub(super) fn update(&mut self, app: &str, id: &str, body: &[u8]) -> RestResponse {
        let Some(current) = self.store.borrow().data().broadcast(app, id).cloned() else {
            return not_found_broadcast();
        };
        let patch: Map<String, Value> = match serde_json::from_slice(body) {
            Ok(p) => p,
            Err(e) => return bad_json(&e),
        };
        let mut merged = match serde_json::to_value(&current) {
            Ok(Value::Object(m)) => m,
            _ => return RestResponse::fail(500, "Cannot encode the broadcast"),
        };
        for (k, v) in patch {
            // The id is the path's; AMS ignores null fields of a BroadcastUpdate.
            if k != "streamId" && !v.is_null() {
                merged.insert(k, v);
            }
        }
        let b: Broadcast = match serde_json::from_value(Value::Object(merged)) {
            Ok(b) => b,
            Err(e) => return bad_json(&e),
        };
        let op = WriteOp::PutBroadcast {
            app: app.to_string(),
            broadcast: Box::new(b),
        };
        self.written(vec![op], RestResponse::ok(None, Some(id)))
    }

    /// The writes that delete a broadcast and what hangs on it.
    pub(super) fn delete_ops(
        data: &Data,
        app: &str,
        id: &str,
        subtracks: bool,
        ops: &mut Vec<WriteOp>,
    ) {
        let Some(b) = data.broadcast(app, id) else {
            return;
        };
        ops.push(WriteOp::DeleteBroadcast {
            app: app.to_string(),
            stream_id: id.to_string(),
        });
        for t in data.tokens_of(app, id) {
            ops.push(WriteOp::DeleteToken {
                app: app.to_string(),
                token_id: t.token_id.clone(),
            });
        }
        for s in data.subscribers_of(app, id) {
            ops.push(WriteOp::DeleteSubscriber {
                app: app.to_string(),
                stream_id: id.to_string(),
                subscriber_id: s.subscriber_id.clone(),
            });
        }
        // Unlink from its main track.
        if let Some(main) = b
            .main_track_stream_id
            .as_deref()
            .and_then(|m| data.broadcast(app, m))
        {
            let mut main = main.clone();
            main.sub_track_stream_ids.retain(|s| s != id);
            ops.push(WriteOp::PutBroadcast {
                app: app.to_string(),
                broadcast: Box::new(main),
            });
        }
        if subtracks {
            for sub in &b.sub_track_stream_ids {
                if sub != id {
                    Self::delete_ops(data, app, sub, false, ops);
                }
            }
        }
    }

    pub(super) fn delete(&mut self, app: &str, id: &str, subtracks: bool) -> RestResponse {
        let mut ops = Vec::new();
        {
            let store = self.store.borrow();
            if store.data().broadcast(app, id).is_none() {
                return not_found_broadcast();
            }
            Self::delete_ops(store.data(), app, id, subtracks, &mut ops);
        }
        self.written(ops, RestResponse::ok(None, Some(id)))
    }

    pub(super) fn delete_many(&mut self, app: &str, q: &Query) -> RestResponse {
        let Some(ids) = q.get("ids").filter(|s| !s.is_empty()) else {
            return RestResponse::fail(400, "Missing ids parameter");
        };
        let ids: Vec<String> = ids.split(',').map(|s| s.trim().to_string()).collect();
        let mut ops = Vec::new();
        let mut missing = Vec::new();
        {
            let store = self.store.borrow();
            for id in &ids {
                if store.data().broadcast(app, id).is_none() {
                    missing.push(id.as_str());
                }
                Self::delete_ops(store.data(), app, id, false, &mut ops);
            }
        }
        let resp = if missing.is_empty() {
            RestResponse::ok(None, None)
        } else {
            RestResponse::result(
                404,
                false,
                Some(&format!("Broadcasts not found: {}", missing.join(","))),
                None,
            )
        };
        self.written(ops, resp)
    }

    pub(super) fn list(&self, app: &str, offset: usize, size: usize, q: &Query) -> RestResponse {
        let store = self.store.borrow();
        let mut v: Vec<&Broadcast> = store
            .data()
            .broadcasts(app)
            .filter(|b| q.get("type_by").is_none_or(|t| b.stream_type == t))
            .filter(|b| {
                q.get("search").filter(|s| !s.is_empty()).is_none_or(|s| {
                    b.stream_id.contains(s) || b.name.as_deref().is_some_and(|n| n.contains(s))
                })
            })
            .collect();
        match q.get("sort_by") {
            Some("name") => v.sort_by(|a, b| a.name.cmp(&b.name)),
            Some("status") => v.sort_by(|a, b| a.status.cmp(&b.status)),
            _ => v.sort_by(|a, b| (a.date, &a.stream_id).cmp(&(b.date, &b.stream_id))),
        }
        if q.get("order_by") == Some("desc") {
            v.reverse();
        }
        let page: Vec<&Broadcast> = v.into_iter().skip(offset).take(size).collect();
        RestResponse::json(200, &page)
    }
}
