//! The stream-security handlers of the REST API: one-time and JWT tokens, TOTP subscribers,
//! blocks, subtracks and the application settings.

use serde_json::{Map, Value};

use super::{bad_json, not_found_broadcast, Query, RestApi, RestResponse};
use crate::crypto;
use crate::model::{Subscriber, SubscriberType, Token, TokenType, TokenUse};
use crate::settings::{parse_cidr_list, restore_redacted, AppSettings};
use crate::store::WriteOp;

impl RestApi {
    pub(super) fn token(
        &mut self,
        now_ms: u64,
        app: &str,
        id: &str,
        q: &Query,
        jwt: bool,
    ) -> RestResponse {
        let Some(expire) = q.get("expireDate").and_then(|e| e.parse::<i64>().ok()) else {
            return RestResponse::fail(400, "expireDate (unix seconds) is required");
        };
        if i128::from(expire) <= i128::from(now_ms / 1000) {
            return RestResponse::fail(400, "expireDate must be in the future");
        }
        let Some(kind) = q.get("type").and_then(TokenType::parse) else {
            return RestResponse::fail(400, "type must be publish or play");
        };
        let room_id = q
            .get("roomId")
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        if jwt {
            let key = self
                .store
                .borrow()
                .data()
                .settings(app)
                .jwt_stream_secret_key;
            let mut claims = Map::new();
            claims.insert("streamId".into(), id.into());
            claims.insert("type".into(), kind.as_str().into());
            claims.insert("exp".into(), expire.into());
            return match crypto::jwt_sign(&claims, &key) {
                Ok(jwt) => RestResponse::json(
                    200,
                    &Token {
                        token_id: jwt,
                        stream_id: id.to_string(),
                        expire_date: expire,
                        token_type: kind,
                        room_id,
                    },
                ),
                Err(_) => RestResponse::fail(400, "jwtStreamSecretKey is not set"),
            };
        }
        let token = Token {
            token_id: self.random_string(32),
            stream_id: id.to_string(),
            expire_date: expire,
            token_type: kind,
            room_id,
        };
        let resp = RestResponse::json(200, &token);
        let op = WriteOp::PutToken {
            app: app.to_string(),
            token,
        };
        self.written(vec![op], resp)
    }

    pub(super) fn validate_token(&mut self, now_ms: u64, app: &str, body: &[u8]) -> RestResponse {
        let t: Token = match serde_json::from_slice(body) {
            Ok(t) => t,
            Err(e) => return bad_json(&e),
        };
        let verdict = match self.store.borrow().data().token(app, &t.token_id) {
            // The admin caller vouches that the stream belongs to the room it names.
            Some(stored) => stored.check_use(
                t.token_type,
                &t.stream_id,
                t.room_id.as_deref(),
                true,
                now_ms,
            ),
            None => TokenUse::Refuse,
        };
        match verdict {
            TokenUse::Refuse => RestResponse::result(200, false, Some("Token is not valid"), None),
            TokenUse::Keep => RestResponse::ok(None, Some(&t.token_id)),
            TokenUse::Consume => {
                let op = WriteOp::DeleteToken {
                    app: app.to_string(),
                    token_id: t.token_id.clone(),
                };
                self.written(vec![op], RestResponse::ok(None, Some(&t.token_id)))
            }
        }
    }

    pub(super) fn add_subscriber(&mut self, app: &str, id: &str, body: &[u8]) -> RestResponse {
        let mut s: Subscriber = match serde_json::from_slice(body) {
            Ok(s) => s,
            Err(e) => return bad_json(&e),
        };
        if s.subscriber_id.chars().count() <= 3 {
            return RestResponse::fail(400, "subscriberId must be longer than 3 characters");
        }
        if let Some(b32) = s.b32_secret.as_deref() {
            if crypto::base32_decode(b32).is_none() {
                return RestResponse::fail(400, "b32Secret is not valid Base32");
            }
        }
        if let Some(p) = s.totp_expiry_period_seconds {
            if !(10..=1000).contains(&p) {
                return RestResponse::fail(
                    400,
                    "totpExpiryPeriodSeconds must be between 10 and 1000 seconds",
                );
            }
        }
        s.stream_id = id.to_string();
        s.blocked_type = None;
        s.blocked_until_unit_time_stamp_ms = 0;
        s.current_concurrent_connections = 0;
        let sid = s.subscriber_id.clone();
        let op = WriteOp::PutSubscriber {
            app: app.to_string(),
            subscriber: s,
        };
        self.written(vec![op], RestResponse::ok(None, Some(&sid)))
    }

    pub(super) fn totp(
        &self,
        now_ms: u64,
        app: &str,
        id: &str,
        sid: &str,
        q: &Query,
    ) -> RestResponse {
        let store = self.store.borrow();
        let data = store.data();
        let settings: AppSettings = data.settings(app);
        let asked = match q.get("type") {
            Some(t) => match SubscriberType::parse(t) {
                Some(t) => Some(t),
                None => {
                    return RestResponse::fail(400, "type must be publish, play or publish_play")
                }
            },
            None => None,
        };
        let sub = data.subscriber(app, id, sid);
        let kind = match asked.or(sub.map(|s| s.subscriber_type)) {
            Some(SubscriberType::Play) | None => TokenType::Play,
            Some(_) => TokenType::Publish,
        };
        let mut period = settings.time_token_period;
        let key = match sub {
            Some(s) => {
                if let Some(p) = s.totp_expiry_period_seconds.filter(|p| *p >= 10) {
                    period = p;
                }
                match s.b32_secret.as_deref().filter(|k| !k.is_empty()) {
                    Some(b32) => crypto::base32_decode(b32),
                    None => settings
                        .time_token_secret(kind)
                        .map(|sec| crypto::ams_derived_totp_key(sec, sid, id, kind.as_str())),
                }
            }
            None => settings
                .time_token_secret(kind)
                .map(|sec| crypto::ams_derived_totp_key(sec, sid, id, kind.as_str())),
        };
        let Some(key) = key else {
            return RestResponse::fail(
                400,
                "No TOTP secret: the subscriber has no b32Secret and timeTokenSecretFor* is not set",
            );
        };
        let code = crypto::totp(&key, now_ms, u64::from(period.max(1)), 6);
        RestResponse::ok(None, Some(&code))
    }

    pub(super) fn block(
        &mut self,
        now_ms: u64,
        app: &str,
        id: &str,
        sid: &str,
        secs: &str,
        kind: &str,
    ) -> RestResponse {
        let Some(mut s) = self.store.borrow().data().subscriber(app, id, sid).cloned() else {
            return RestResponse::fail(404, "Subscriber is not found");
        };
        let Ok(secs) = secs.parse::<u64>() else {
            return RestResponse::fail(400, "seconds must be a non-negative integer");
        };
        let Some(kind) = SubscriberType::parse(kind) else {
            return RestResponse::fail(400, "type must be publish, play or publish_play");
        };
        s.blocked_type = Some(kind);
        s.blocked_until_unit_time_stamp_ms =
            i64::try_from(now_ms.saturating_add(secs.saturating_mul(1000))).unwrap_or(i64::MAX);
        let op = WriteOp::PutSubscriber {
            app: app.to_string(),
            subscriber: s,
        };
        self.written(vec![op], RestResponse::ok(None, Some(sid)))
    }

    /// `POST|DELETE /{id}/subtrack?id=`: links subtrack `sub` to main track `id` (both must be
    /// stored; refused while `id` has `subtracksLimit` broadcasting subtracks, as AMS counts
    /// them) or unlinks it (only a listed subtrack; its `mainTrackStreamId` is cleared when it
    /// names `id`).
    pub(super) fn subtrack(
        &mut self,
        app: &str,
        id: &str,
        sub: Option<&str>,
        add: bool,
    ) -> RestResponse {
        let Some(sub) = sub.filter(|s| proto_core::is_valid_stream_id(s)) else {
            return RestResponse::fail(400, "id (the subtrack's stream id) is required");
        };
        if sub == id {
            return RestResponse::fail(400, "A stream cannot be its own subtrack");
        }
        let mut ops = Vec::new();
        {
            let store = self.store.borrow();
            let data = store.data();
            let Some(mut main) = data.broadcast(app, id).cloned() else {
                return not_found_broadcast();
            };
            let subtrack = data.broadcast(app, sub).cloned();
            let had = main.sub_track_stream_ids.iter().any(|s| s == sub);
            if add {
                let Some(mut s) = subtrack else {
                    return RestResponse::fail(
                        404,
                        &format!(
                            "There is no stream with id:{sub} as subtrack or {id} as mainTrack"
                        ),
                    );
                };
                if let Some(limit) = crate::records::subtracks_limit(data, app, id) {
                    let active = crate::records::stored_subtracks(data, app, id, usize::MAX)
                        .into_iter()
                        .filter(|b| b.status == "broadcasting" && b.stream_id != sub)
                        .count() as u64;
                    if active >= limit {
                        return RestResponse::fail(
                            400,
                            &format!("Subtrack limit is reached for the main track:{id}"),
                        );
                    }
                }
                if !had {
                    main.sub_track_stream_ids.push(sub.to_string());
                    ops.push(WriteOp::PutBroadcast {
                        app: app.to_string(),
                        broadcast: Box::new(main),
                    });
                }
                s.main_track_stream_id = Some(id.to_string());
                ops.push(WriteOp::PutBroadcast {
                    app: app.to_string(),
                    broadcast: Box::new(s),
                });
            } else {
                if !had {
                    return RestResponse::fail(
                        404,
                        &format!("Subtrack({sub}) is not removed from mainTrack:{id}"),
                    );
                }
                main.sub_track_stream_ids.retain(|s| s != sub);
                ops.push(WriteOp::PutBroadcast {
                    app: app.to_string(),
                    broadcast: Box::new(main),
                });
                if let Some(mut s) =
                    subtrack.filter(|s| s.main_track_stream_id.as_deref() == Some(id))
                {
                    s.main_track_stream_id = None;
                    ops.push(WriteOp::PutBroadcast {
                        app: app.to_string(),
                        broadcast: Box::new(s),
                    });
                }
            }
        }
        self.written(ops, RestResponse::ok(None, Some(sub)))
    }

    pub(super) fn put_settings(
        &mut self,
        app: &str,
        current: AppSettings,
        body: &[u8],
    ) -> RestResponse {
        let mut patch: Map<String, Value> = match serde_json::from_slice(body) {
            Ok(p) => p,
            Err(e) => return bad_json(&e),
        };
        let mut merged = match serde_json::to_value(&current) {
            Ok(Value::Object(m)) => m,
            _ => return RestResponse::fail(500, "Cannot encode the settings"),
        };
        // Secrets are write-only: a placeholder sent back keeps the stored value.
        restore_redacted(&mut patch, &merged);
        merged.extend(patch);
        let new: AppSettings = match serde_json::from_value(Value::Object(merged)) {
            Ok(s) => s,
            Err(e) => return bad_json(&e),
        };
        if let Err(e) = parse_cidr_list(&new.remote_allowed_cidr) {
            return RestResponse::fail(400, &format!("remoteAllowedCIDR: {e}"));
        }
        if new.time_token_period == 0 {
            return RestResponse::fail(400, "timeTokenPeriod must be at least 1");
        }
        let op = WriteOp::PutSettings {
            app: app.to_string(),
            settings: Box::new(new),
        };
        let mut resp = self.written(vec![op], RestResponse::ok(None, None));
        if resp.status == 200 {
            resp.settings_changed = Some(app.to_string());
        }
        resp
    }
}
