//! [`StreamSecurity`]: the AMS publish/play security chain as a [`proto_core::AccessPolicy`].

use std::time::Instant;

use proto_core::{AccessPolicy, PlayRequest, PublishRequest, SignalError};
use tracing::debug;

use crate::crypto;
use crate::model::{Broadcast, TokenType, TokenUse};
use crate::settings::AppSettings;
use crate::store::{Data, SharedStore, WriteOp};

/// A wall clock: unix time in milliseconds. The runtime passes [`system_clock`]; tests pass a
/// fixed or scripted value.
pub type WallClock = Box<dyn Fn() -> u64>;

/// The system wall clock (`SystemTime::now()` as unix ms). For the runtime only: the cores take
/// time as input.
#[allow(clippy::disallowed_methods)]
pub fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What a check is asked about: the common part of [`PublishRequest`] and [`PlayRequest`].
#[derive(Debug, Clone, Copy)]
struct Ask<'a> {
    app: &'a str,
    stream_id: &'a str,
    token: Option<&'a str>,
    subscriber_id: Option<&'a str>,
    subscriber_code: Option<&'a str>,
    /// `mainTrack` of a publish, `room` of a play.
    room: Option<&'a str>,
    what: TokenType,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// The stream security chain of AMS, answering from the in-memory datastore.
///
/// # Checks, in order (PROTOCOL.md §4)
///
/// Publish:
/// 1. `acceptOnlyStreamsInDataStore` and no broadcast record → `not_allowed_unregistered_streams`;
///    `acceptOnlyRoomsInDataStore`, a `mainTrack` and no record of it →
///    `room_not_active_or_expired`.
/// 2. Token checks, each when enabled, **all** must pass: TOTP (`enableTimeTokenForPublish`),
///    one-time token (`publishTokenControlEnabled`), hash (`hashControlPublishEnabled`),
///    JWT (`publishJwtControlEnabled`) → `unauthorized_access`; a blocked TOTP subscriber →
///    `user_blocked`.
/// 3. The broadcast's `expireDurationMS` (publishing only before `date + expireDurationMS`) and
///    planned dates (only when both are non-zero: start ≤ now ≤ end) →
///    `stream_not_active_or_expired`; the same for the `mainTrack` record →
///    `room_not_active_or_expired`.
///
/// Play:
/// 1. Token checks as above with the play settings (TOTP when `enableTimeTokenForPlay` or the
///    deprecated `timeTokenSubscriberOnly`), in the order of AMS's `TokenFilterManager`:
///    TOTP, one-time token, hash, JWT.
/// 2. `room` given: `acceptOnlyRoomsInDataStore` without a record, or outside the room's planned
///    dates → `room_not_active_or_expired`.
/// 3. Viewer limit: the broadcast's `webRTCViewerLimit` if it is set (≥ 0), else the app's
///    (-1 = unlimited); `PlayRequest::viewers` at or over it → `viewerLimitReached`.
///
/// A one-time token is consumed (deleted) only when every check passed, so a client refused for
/// another reason keeps its token (AMS deletes it in the token filter already). A failing client
/// learns only the error definition.
///
/// # Decisions where AMS is silent or closed
/// - TOTP accepts the code of the current period and of the one before (one step of clock skew,
///   as RFC 6238 §5.2 recommends), since a code fetched at the end of a period would else fail.
/// - A subscriber is looked up for the stream, then for the room (`mainTrack`/`room`).
///   A stored subscriber of type `play` may not publish. Without a stored subscriber the AMS
///   derived key is used (`timeTokenSecretFor{Publish|Play}` + subscriberId + streamId + type),
///   unless `timeTokenSubscriberOnly`, which requires a stored subscriber.
/// - Room tokens: see [`crate::Token::check_use`]. A token whose `roomId` (or `streamId`) is
///   the request's room is kept, as in AMS (which compares nothing else then); a plain token for
///   the publisher's own stream id still works inside a room and is used up.
/// - JWT: `streamId` claim equal to the stream (or the room), `type` claim equal to the action,
///   `exp` (if any) in the future.
/// - `concurrentConnectionsLimit` is stored but not enforced: the policy is not told when a
///   connection ends.
///
/// # Clock
/// [`AccessPolicy`] passes a monotonic `Instant`; tokens need wall-clock time, so the policy
/// reads the [`WallClock`] given to [`StreamSecurity::new`] once per check. The
/// `check_*_at` methods take the time explicitly.
pub struct StreamSecurity {
    store: SharedStore,
    clock: WallClock,
}

impl std::fmt::Debug for StreamSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSecurity").finish_non_exhaustive()
    }
}

impl StreamSecurity {
    /// A policy over `store`, reading wall-clock time from `clock` (unix ms).
    pub fn new(store: SharedStore, clock: impl Fn() -> u64 + 'static) -> StreamSecurity {
        StreamSecurity {
            store,
            clock: Box::new(clock),
        }
    }

    /// The publish checks at `now_ms` (unix ms).
    pub fn check_publish_at(
        &mut self,
        now_ms: u64,
        req: &PublishRequest<'_>,
    ) -> Result<(), SignalError> {
        let ask = Ask {
            app: req.app,
            stream_id: req.stream_id,
            token: non_empty(req.token),
            subscriber_id: non_empty(req.subscriber_id),
            subscriber_code: non_empty(req.subscriber_code),
            room: non_empty(req.main_track),
            what: TokenType::Publish,
        };
        let consume = {
            let store = self.store.borrow();
            let data = store.data();
            let settings = data.settings(ask.app);
            let broadcast = data.broadcast(ask.app, ask.stream_id);
            if settings.accept_only_streams_in_data_store && broadcast.is_none() {
                return Err(SignalError::NotAllowedUnregisteredStreams);
            }
            let room = ask.room.and_then(|r| data.broadcast(ask.app, r));
            if settings.accept_only_rooms_in_data_store && ask.room.is_some() && room.is_none() {
                return Err(SignalError::RoomNotActiveOrExpired);
            }
            let consume = token_checks(data, &settings, &ask, now_ms)?;
            if let Some(b) = broadcast {
                if !active(b, now_ms) {
                    return Err(SignalError::StreamNotActiveOrExpired);
                }
            }
            if let Some(r) = room {
                if !active(r, now_ms) {
                    return Err(SignalError::RoomNotActiveOrExpired);
                }
            }
            consume
        };
        self.consume(ask.app, consume)
    }

    /// The play checks at `now_ms` (unix ms).
    pub fn check_play_at(&mut self, now_ms: u64, req: &PlayRequest<'_>) -> Result<(), SignalError> {
        let ask = Ask {
            app: req.app,
            stream_id: req.stream_id,
            token: non_empty(req.token),
            subscriber_id: non_empty(req.subscriber_id),
            subscriber_code: non_empty(req.subscriber_code),
            room: non_empty(req.room),
            what: TokenType::Play,
        };
        let consume = {
            let store = self.store.borrow();
            let data = store.data();
            let settings = data.settings(ask.app);
            let consume = token_checks(data, &settings, &ask, now_ms)?;
            if let Some(r) = ask.room {
                match data.broadcast(ask.app, r) {
                    None if settings.accept_only_rooms_in_data_store => {
                        return Err(SignalError::RoomNotActiveOrExpired)
                    }
                    Some(b) if !planned_ok(b, now_ms) => {
                        return Err(SignalError::RoomNotActiveOrExpired)
                    }
                    _ => {}
                }
            }
            let limit = match data.broadcast(ask.app, ask.stream_id) {
                Some(b) if b.webrtc_viewer_limit >= 0 => b.webrtc_viewer_limit,
                _ => settings.webrtc_viewer_limit,
            };
            if limit >= 0 && i64::try_from(req.viewers).unwrap_or(i64::MAX) >= limit {
                return Err(SignalError::ViewerLimitReached);
            }
            consume
        };
        self.consume(ask.app, consume)
    }

    fn consume(&mut self, app: &str, token_id: Option<String>) -> Result<(), SignalError> {
        if let Some(token_id) = token_id {
            self.store.borrow_mut().write(WriteOp::DeleteToken {
                app: app.to_string(),
                token_id,
            })?;
        }
        Ok(())
    }
}

/// Planned dates count only when both are set (unix s): start ≤ now ≤ end.
fn planned_ok(b: &Broadcast, now_ms: u64) -> bool {
    if b.planned_start_date == 0 || b.planned_end_date == 0 {
        return true;
    }
    let now_s = i128::from(now_ms / 1000);
    i128::from(b.planned_start_date) <= now_s && now_s <= i128::from(b.planned_end_date)
}

/// `ExpireStreamPublishSecurity`: expiry and planned dates.
fn active(b: &Broadcast, now_ms: u64) -> bool {
    if b.expire_duration_ms != 0
        && i128::from(now_ms) >= i128::from(b.date) + i128::from(b.expire_duration_ms)
    {
        return false;
    }
    planned_ok(b, now_ms)
}

/// Runs every enabled token check. `Ok(Some(id))`: a one-time token to consume on success.
fn token_checks(
    data: &Data,
    s: &AppSettings,
    ask: &Ask<'_>,
    now_ms: u64,
) -> Result<Option<String>, SignalError> {
    let (totp_on, one_time_on, hash_on, jwt_on) = match ask.what {
        TokenType::Publish => (
            s.enable_time_token_for_publish,
            s.publish_token_control_enabled,
            s.hash_control_publish_enabled,
            s.publish_jwt_control_enabled,
        ),
        TokenType::Play => (
            s.enable_time_token_for_play || s.time_token_subscriber_only,
            s.play_token_control_enabled,
            s.hash_control_play_enabled,
            s.play_jwt_control_enabled,
        ),
    };
    if totp_on {
        totp_check(data, s, ask, now_ms)?;
    }
    let mut consume = None;
    if one_time_on {
        consume = one_time_check(data, ask, now_ms)?;
    }
    if hash_on {
        let ok = match ask.token {
            Some(t) if !s.token_hash_secret.is_empty() => {
                let want =
                    crypto::hash_token(ask.stream_id, ask.what.as_str(), &s.token_hash_secret);
                crypto::constant_time_eq(want.as_bytes(), t.to_ascii_lowercase().as_bytes())
            }
            _ => false,
        };
        if !ok {
            debug!(app = ask.app, stream = ask.stream_id, "hash token refused");
            return Err(SignalError::UnauthorizedAccess);
        }
    }
    if jwt_on {
        jwt_check(s, ask, now_ms)?;
    }
    Ok(consume)
}

fn one_time_check(data: &Data, ask: &Ask<'_>, now_ms: u64) -> Result<Option<String>, SignalError> {
    let refuse = |why: &str| {
        debug!(
            app = ask.app,
            stream = ask.stream_id,
            why,
            "one-time token refused"
        );
        SignalError::UnauthorizedAccess
    };
    let id = ask.token.ok_or_else(|| refuse("no token"))?;
    let t = data.token(ask.app, id).ok_or_else(|| refuse("unknown"))?;
    match t.check_use(ask.what, ask.stream_id, ask.room, now_ms) {
        TokenUse::Consume => Ok(Some(t.token_id.clone())),
        TokenUse::Keep => Ok(None),
        TokenUse::Refuse => Err(refuse("type, expiry, stream or room")),
    }
}

fn jwt_check(s: &AppSettings, ask: &Ask<'_>, now_ms: u64) -> Result<(), SignalError> {
    let refuse = |why: &str| {
        debug!(app = ask.app, stream = ask.stream_id, why, "JWT refused");
        SignalError::UnauthorizedAccess
    };
    let token = ask.token.ok_or_else(|| refuse("no token"))?;
    let claims = crypto::jwt_verify(token, &s.jwt_stream_secret_key, now_ms / 1000)
        .map_err(|e| refuse(&e.to_string()))?;
    let sid = claims.get("streamId").and_then(|v| v.as_str());
    if sid != Some(ask.stream_id) && (sid.is_none() || sid != ask.room) {
        return Err(refuse("streamId claim"));
    }
    if claims.get("type").and_then(|v| v.as_str()) != Some(ask.what.as_str()) {
        return Err(refuse("type claim"));
    }
    Ok(())
}

fn totp_check(data: &Data, s: &AppSettings, ask: &Ask<'_>, now_ms: u64) -> Result<(), SignalError> {
    let refuse = |why: &str| {
        debug!(app = ask.app, stream = ask.stream_id, why, "TOTP refused");
        SignalError::UnauthorizedAccess
    };
    let sid = ask.subscriber_id.ok_or_else(|| refuse("no subscriberId"))?;
    let code = ask
        .subscriber_code
        .ok_or_else(|| refuse("no subscriberCode"))?;
    let subscriber = data
        .subscriber(ask.app, ask.stream_id, sid)
        .or_else(|| ask.room.and_then(|r| data.subscriber(ask.app, r, sid)));
    let (key, period) = match subscriber {
        Some(sub) => {
            if sub.is_blocked(ask.what, now_ms) {
                return Err(SignalError::UserBlocked);
            }
            if !sub.subscriber_type.allows(ask.what) {
                return Err(refuse("subscriber type"));
            }
            let period = sub
                .totp_expiry_period_seconds
                .filter(|p| *p >= 10)
                .unwrap_or(s.time_token_period);
            match sub.b32_secret.as_deref().filter(|k| !k.is_empty()) {
                Some(b32) => (
                    crypto::base32_decode(b32).ok_or_else(|| refuse("bad b32Secret"))?,
                    period,
                ),
                None => (
                    derived_key(s, ask, sid).ok_or_else(|| refuse("no secret"))?,
                    period,
                ),
            }
        }
        None if s.time_token_subscriber_only => return Err(refuse("not a subscriber")),
        None => (
            derived_key(s, ask, sid).ok_or_else(|| refuse("no secret"))?,
            s.time_token_period,
        ),
    };
    let period = u64::from(period.max(1));
    let step_ms = period * 1000;
    let ok = [now_ms, now_ms.saturating_sub(step_ms)].iter().any(|t| {
        crypto::constant_time_eq(
            crypto::totp(&key, *t, period, 6).as_bytes(),
            code.as_bytes(),
        )
    });
    if ok {
        Ok(())
    } else {
        Err(refuse("code"))
    }
}

fn derived_key(s: &AppSettings, ask: &Ask<'_>, sid: &str) -> Option<Vec<u8>> {
    let secret = s.time_token_secret(ask.what)?;
    Some(crypto::ams_derived_totp_key(
        secret,
        sid,
        ask.stream_id,
        ask.what.as_str(),
    ))
}

impl AccessPolicy for StreamSecurity {
    fn check_publish(
        &mut self,
        _now: Instant,
        req: &PublishRequest<'_>,
    ) -> Result<(), SignalError> {
        let now_ms = (self.clock)();
        self.check_publish_at(now_ms, req)
    }

    fn check_play(&mut self, _now: Instant, req: &PlayRequest<'_>) -> Result<(), SignalError> {
        let now_ms = (self.clock)();
        self.check_play_at(now_ms, req)
    }
}
