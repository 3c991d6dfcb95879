//! [`StreamSecurity`]: the AMS publish/play security chain as a [`proto_core::AccessPolicy`].
//!
//! Why about 650 lines: the AMS check chain (publish, play, room, commit, purge and each
//! token check) reads in the AMS order in one place; its wall clock (`security/clock.rs`) and
//! the TOTP guard (`security/totp.rs`) live beside it.

use std::time::{Duration, Instant};

use proto_core::{
    AccessPolicy, Grant, JoinRoomRequest, PlayRequest, PublishRequest, SignalError, TotpUse,
};
use tracing::{debug, info, warn};

use crate::crypto;
use crate::model::{Broadcast, TokenType, TokenUse};
use crate::settings::AppSettings;
use crate::store::{Data, SharedStore, WriteOp};

mod clock;
mod totp;

use clock::Clock;
pub use clock::WallAnchor;
use totp::{TotpGuard, TotpKey};

/// A wall clock: unix time in milliseconds. Tests pass a fixed or scripted value to
/// [`StreamSecurity::new`]; the runtime uses [`StreamSecurity::with_anchor`] instead, with
/// one reading of its own wall clock (this crate reads none).
pub type WallClock = Box<dyn Fn() -> u64>;

/// TOTP failures of one subscriber answered normally; each further one locks the subscriber
/// out for 1 s, 2 s, 4 s, ... up to [`TOTP_MAX_LOCK`].
pub const TOTP_FREE_FAILURES: u32 = 3;
/// TOTP failures of one stream (all subscriber ids together) answered normally; each further
/// one locks the stream's TOTP out the same way. Needed because a derived-key TOTP accepts any
/// subscriber id: without it a guesser would get three tries per invented id.
pub const TOTP_FREE_FAILURES_PER_STREAM: u32 = 20;
/// The longest TOTP lock-out.
pub const TOTP_MAX_LOCK: Duration = Duration::from_secs(300);
/// Subscribers and streams tracked for TOTP failures and replay; when full (after purging the
/// stale ones) a TOTP check of an untracked subscriber is refused (fail closed).
pub const TOTP_MAX_TRACKED: usize = 100_000;
/// How long an idle TOTP record is kept (longer than two periods of the longest period, 1000 s,
/// so the replay guard outlives every code it remembers).
pub const TOTP_RETAIN: Duration = Duration::from_secs(3600);
/// How often expired one-time tokens and stale TOTP records are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Expired tokens deleted per purge tick at most (each is a store write).
pub const PURGE_MAX_DELETES: usize = 256;

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
    /// The stream really belongs to `room` (signalling's word, or a datastore subtrack link).
    room_member: bool,
    what: TokenType,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Does the datastore link `stream` to `room` as a subtrack (either side of the link)?
fn linked_in_data_store(data: &Data, app: &str, stream: &str, room: &str) -> bool {
    data.broadcast(app, stream)
        .is_some_and(|b| b.main_track_stream_id.as_deref() == Some(room))
        || data
            .broadcast(app, room)
            .is_some_and(|r| r.sub_track_stream_ids.iter().any(|s| s == stream))
}

/// The stream security chain of AMS, answering from the in-memory datastore.
///
/// # Checks, in order (PROTOCOL.md §4)
///
/// Every check first refuses an application whose settings record could not be read
/// ([`AppSettings::unreadable`]) with `data_store_not_available`: fail closed.
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
/// `joinRoom`: `acceptOnlyRoomsInDataStore` without a record of the room, or outside the
/// room's planned dates → `room_not_active_or_expired`. (The SDK's `joinRoom` carries no
/// token, so there is no token check.)
///
/// # Check, then commit
///
/// A check answers a [`Grant`] naming the single-use token to delete and the TOTP time-step to
/// remember; [`AccessPolicy::commit`] spends them once signalling accepted the request. So a
/// client refused for any reason (another check, `no_stream_exist`, `already_playing`,
/// `streamIdInUse`) keeps its token. (AMS deletes it in the token filter already.)
///
/// # Credentials are bound to their stream
///
/// A credential made for stream or room R opens another stream only when that stream really
/// belongs to R: signalling vouches for it ([`PublishRequest::room_member`],
/// [`PlayRequest::room_member`]: a live subtrack with `mainTrack` = R, or a legacy `joinRoom`
/// member of R) or the datastore links them (`mainTrackStreamId` / `subTrackStreamIds`).
/// Naming R as `room`/`mainTrack` alone counts for nothing. This holds for one-time tokens
/// ([`crate::Token::check_use`]), the JWT `streamId` claim and stored TOTP subscribers.
///
/// # TOTP against online guessing and replay
///
/// - Codes of the current period and of the one before are accepted (one step of clock skew,
///   RFC 6238 §5.2), but only for a time-step later than the last one accepted for that
///   subscriber: a code works once (RFC 6238 §5.2 again).
/// - [`TOTP_FREE_FAILURES`] failures per subscriber and [`TOTP_FREE_FAILURES_PER_STREAM`] per
///   stream are answered normally; then each failure locks the subscriber (or the stream) out
///   for 1 s, 2 s, 4 s, ... up to [`TOTP_MAX_LOCK`], and during a lock-out every code is refused
///   without being looked at. A right code resets the count. The price: a guesser can keep a
///   subscriber locked out; AMS's answer to that is blocking the subscriber.
/// - Signalling closes a connection after [`proto_core::MAX_AUTH_FAILURES_PER_CONN`] credential
///   refusals.
///
/// # Decisions where AMS is silent or closed
/// - A subscriber is looked up for the stream, then (only for a stream of the room, see above)
///   for the room. A stored subscriber of type `play` may not publish. Without a stored
///   subscriber the AMS derived key is used (`timeTokenSecretFor{Publish|Play}` + subscriberId
///   + streamId + type), unless `timeTokenSubscriberOnly`, which requires a stored subscriber.
/// - JWT: `streamId` claim equal to the stream (or to the room of a stream of that room),
///   `type` claim equal to the action, and an `exp` claim in the future: a JWT without `exp`
///   is refused (it would never expire). See [`crypto::jwt_verify_rest`] for why a stream JWT
///   never opens the REST API.
/// - `concurrentConnectionsLimit` is stored but not enforced: the policy is not told when a
///   connection ends.
///
/// # Housekeeping
///
/// Every [`PURGE_INTERVAL`] ([`AccessPolicy::poll_timeout`]) expired one-time tokens are
/// deleted, at most [`PURGE_MAX_DELETES`] per tick, and idle TOTP records forgotten.
///
/// # Clock
/// [`AccessPolicy`] passes a monotonic `Instant`; tokens need wall-clock time. The runtime
/// builds the policy with [`StreamSecurity::with_anchor`]: one wall-clock reading taken at
/// start, paired with the `Instant` of that moment; wall time of a call is derived from its
/// `now`, so a virtual clock drives expiry in tests. [`StreamSecurity::new`] takes a closure
/// instead (tests, tools), and the `*_at` methods take the time explicitly.
pub struct StreamSecurity {
    store: SharedStore,
    clock: Clock,
    totp: TotpGuard,
    next_purge: Option<Instant>,
}

impl std::fmt::Debug for StreamSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSecurity").finish_non_exhaustive()
    }
}

impl StreamSecurity {
    /// A policy over `store`, reading wall-clock time from `clock` (unix ms) at each check.
    pub fn new(store: SharedStore, clock: impl Fn() -> u64 + 'static) -> StreamSecurity {
        StreamSecurity {
            store,
            clock: Clock::Fn(Box::new(clock)),
            totp: TotpGuard::default(),
            next_purge: None,
        }
    }

    /// A policy over `store` whose wall clock is `unix_ms` at `at` and follows the `now` of
    /// each call from there. Reads no clock itself.
    pub fn with_anchor(store: SharedStore, at: Instant, unix_ms: u64) -> StreamSecurity {
        StreamSecurity {
            store,
            clock: Clock::Anchor(WallAnchor { at, unix_ms }),
            totp: TotpGuard::default(),
            next_purge: Some(at + PURGE_INTERVAL),
        }
    }

    /// Wall-clock time (unix ms) at `now`.
    pub fn wall_ms(&self, now: Instant) -> u64 {
        self.clock.wall_ms(now)
    }

    /// The publish checks at `now_ms` (unix ms), committed at once if they pass.
    pub fn check_publish_at(
        &mut self,
        now_ms: u64,
        req: &PublishRequest<'_>,
    ) -> Result<(), SignalError> {
        let grant = self.grant_publish_at(now_ms, req)?;
        self.commit_at(now_ms, grant)
    }

    /// The play checks at `now_ms` (unix ms), committed at once if they pass.
    pub fn check_play_at(&mut self, now_ms: u64, req: &PlayRequest<'_>) -> Result<(), SignalError> {
        let grant = self.grant_play_at(now_ms, req)?;
        self.commit_at(now_ms, grant)
    }

    /// The publish checks at `now_ms`: a grant to commit once the publish is accepted.
    pub fn grant_publish_at(
        &mut self,
        now_ms: u64,
        req: &PublishRequest<'_>,
    ) -> Result<Grant, SignalError> {
        let mut ask = Ask {
            app: req.app,
            stream_id: req.stream_id,
            token: non_empty(req.token),
            subscriber_id: non_empty(req.subscriber_id),
            subscriber_code: non_empty(req.subscriber_code),
            room: non_empty(req.main_track),
            room_member: req.room_member,
            what: TokenType::Publish,
        };
        let StreamSecurity { store, totp, .. } = self;
        let store = store.borrow();
        let data = store.data();
        let settings = readable_settings(data, ask.app)?;
        if let Some(r) = ask.room {
            ask.room_member |= linked_in_data_store(data, ask.app, ask.stream_id, r);
        }
        let broadcast = data.broadcast(ask.app, ask.stream_id);
        if settings.accept_only_streams_in_data_store && broadcast.is_none() {
            return Err(SignalError::NotAllowedUnregisteredStreams);
        }
        let room = ask.room.and_then(|r| data.broadcast(ask.app, r));
        if settings.accept_only_rooms_in_data_store && ask.room.is_some() && room.is_none() {
            return Err(SignalError::RoomNotActiveOrExpired);
        }
        let grant = token_checks(data, &settings, &ask, now_ms, totp)?;
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
        Ok(grant)
    }

    /// The play checks at `now_ms`: a grant to commit once the play is accepted.
    pub fn grant_play_at(
        &mut self,
        now_ms: u64,
        req: &PlayRequest<'_>,
    ) -> Result<Grant, SignalError> {
        let mut ask = Ask {
            app: req.app,
            stream_id: req.stream_id,
            token: non_empty(req.token),
            subscriber_id: non_empty(req.subscriber_id),
            subscriber_code: non_empty(req.subscriber_code),
            room: non_empty(req.room),
            room_member: req.room_member,
            what: TokenType::Play,
        };
        let StreamSecurity { store, totp, .. } = self;
        let store = store.borrow();
        let data = store.data();
        let settings = readable_settings(data, ask.app)?;
        if let Some(r) = ask.room {
            ask.room_member |= linked_in_data_store(data, ask.app, ask.stream_id, r);
        }
        let grant = token_checks(data, &settings, &ask, now_ms, totp)?;
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
        Ok(grant)
    }

    /// The `joinRoom` checks at `now_ms`.
    pub fn check_join_room_at(
        &mut self,
        now_ms: u64,
        req: &JoinRoomRequest<'_>,
    ) -> Result<(), SignalError> {
        let store = self.store.borrow();
        let data = store.data();
        let settings = readable_settings(data, req.app)?;
        match data.broadcast(req.app, req.room) {
            None if settings.accept_only_rooms_in_data_store => {
                debug!(
                    app = req.app,
                    room = req.room,
                    "joinRoom: room not in the datastore"
                );
                Err(SignalError::RoomNotActiveOrExpired)
            }
            Some(b) if !active(b, now_ms) => {
                debug!(app = req.app, room = req.room, "joinRoom: room not active");
                Err(SignalError::RoomNotActiveOrExpired)
            }
            _ => Ok(()),
        }
    }

    /// Spends a grant: deletes its single-use token, remembers its TOTP time-step.
    pub fn commit_at(&mut self, now_ms: u64, grant: Grant) -> Result<(), SignalError> {
        if let Some(token_id) = grant.spend_token {
            let mut store = self.store.borrow_mut();
            if store.data().token(&grant.app, &token_id).is_none() {
                debug!(app = grant.app, "token already spent");
                return Err(SignalError::UnauthorizedAccess);
            }
            store.write(WriteOp::DeleteToken {
                app: grant.app.clone(),
                token_id,
            })?;
        }
        if let Some(t) = grant.totp {
            self.totp
                .spend((grant.app, t.stream_id, t.subscriber_id), t.step, now_ms);
        }
        Ok(())
    }

    /// Housekeeping at `now_ms`: deletes up to [`PURGE_MAX_DELETES`] expired one-time tokens and
    /// forgets idle TOTP records. Returns the number of tokens deleted.
    pub fn purge_at(&mut self, now_ms: u64) -> usize {
        self.totp.purge(now_ms);
        let expired: Vec<(String, String)> = {
            let store = self.store.borrow();
            let data = store.data();
            data.apps()
                .flat_map(|app| {
                    data.app(app)
                        .into_iter()
                        .flat_map(|a| a.tokens.values())
                        .filter(move |t| t.expired(now_ms))
                        .map(move |t| (app.to_string(), t.token_id.clone()))
                })
                .take(PURGE_MAX_DELETES)
                .collect()
        };
        let mut deleted = 0;
        let mut store = self.store.borrow_mut();
        for (app, token_id) in expired {
            if let Err(e) = store.write(WriteOp::DeleteToken { app, token_id }) {
                warn!("expired token purge stopped: {e}");
                break;
            }
            deleted += 1;
        }
        if deleted > 0 {
            info!(deleted, "expired one-time tokens purged");
        }
        deleted
    }
}

/// The settings of `app`, or `data_store_not_available` if its stored record is unreadable.
fn readable_settings(data: &Data, app: &str) -> Result<AppSettings, SignalError> {
    let settings = data.settings(app);
    if settings.unreadable {
        warn!(
            app,
            "refused: the application's settings record is unreadable"
        );
        return Err(SignalError::DataStoreNotAvailable);
    }
    Ok(settings)
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

/// Runs every enabled token check; the grant names what to spend on success.
fn token_checks(
    data: &Data,
    s: &AppSettings,
    ask: &Ask<'_>,
    now_ms: u64,
    guard: &mut TotpGuard,
) -> Result<Grant, SignalError> {
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
    let mut grant = Grant::free(ask.app);
    if totp_on {
        grant.totp = Some(totp_check(data, s, ask, now_ms, guard)?);
    }
    if one_time_on {
        grant.spend_token = one_time_check(data, ask, now_ms)?;
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
    Ok(grant)
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
    match t.check_use(ask.what, ask.stream_id, ask.room, ask.room_member, now_ms) {
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
    let claims = crypto::jwt_verify_stream(token, &s.jwt_stream_secret_key, now_ms / 1000)
        .map_err(|e| refuse(&e.to_string()))?;
    let sid = claims.get("streamId").and_then(|v| v.as_str());
    let room = ask.room.filter(|_| ask.room_member);
    if sid != Some(ask.stream_id) && (sid.is_none() || sid != room) {
        return Err(refuse("streamId claim"));
    }
    if claims.get("type").and_then(|v| v.as_str()) != Some(ask.what.as_str()) {
        return Err(refuse("type claim"));
    }
    Ok(())
}

fn totp_check(
    data: &Data,
    s: &AppSettings,
    ask: &Ask<'_>,
    now_ms: u64,
    guard: &mut TotpGuard,
) -> Result<TotpUse, SignalError> {
    let refuse = |why: &str| {
        debug!(app = ask.app, stream = ask.stream_id, why, "TOTP refused");
        SignalError::UnauthorizedAccess
    };
    let sid = ask.subscriber_id.ok_or_else(|| refuse("no subscriberId"))?;
    let code = ask
        .subscriber_code
        .ok_or_else(|| refuse("no subscriberCode"))?;
    let room = ask.room.filter(|_| ask.room_member);
    let subscriber = data
        .subscriber(ask.app, ask.stream_id, sid)
        .or_else(|| room.and_then(|r| data.subscriber(ask.app, r, sid)));
    let (key, period, owner) = match subscriber {
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
            let key = match sub.b32_secret.as_deref().filter(|k| !k.is_empty()) {
                Some(b32) => crypto::base32_decode(b32).ok_or_else(|| refuse("bad b32Secret"))?,
                None => derived_key(s, ask, sid).ok_or_else(|| refuse("no secret"))?,
            };
            (key, period, sub.stream_id.as_str())
        }
        None if s.time_token_subscriber_only => return Err(refuse("not a subscriber")),
        None => (
            derived_key(s, ask, sid).ok_or_else(|| refuse("no secret"))?,
            s.time_token_period,
            ask.stream_id,
        ),
    };
    let sub_key: TotpKey = (ask.app.to_string(), owner.to_string(), sid.to_string());
    let stream_key: TotpKey = (ask.app.to_string(), owner.to_string(), String::new());
    guard.admit(&stream_key, now_ms).map_err(refuse)?;
    guard.admit(&sub_key, now_ms).map_err(refuse)?;
    let period = u64::from(period.max(1));
    let current = now_ms / 1000 / period;
    let last = guard.last_step(&sub_key);
    let step = [current, current.saturating_sub(1)]
        .into_iter()
        .filter(|st| last.is_none_or(|l| *st > l))
        .find(|st| {
            crypto::constant_time_eq(crypto::hotp(&key, *st, 6).as_bytes(), code.as_bytes())
        });
    match step {
        Some(step) => {
            guard.success(&sub_key, now_ms);
            Ok(TotpUse {
                stream_id: owner.to_string(),
                subscriber_id: sid.to_string(),
                step,
            })
        }
        None => {
            guard.failure(&sub_key, TOTP_FREE_FAILURES, now_ms);
            guard.failure(&stream_key, TOTP_FREE_FAILURES_PER_STREAM, now_ms);
            Err(refuse("code (wrong, or already used)"))
        }
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

impl StreamSecurity {
    fn tick_from(&mut self, now: Instant) {
        if self.next_purge.is_none() {
            self.next_purge = Some(now + PURGE_INTERVAL);
        }
    }
}

impl AccessPolicy for StreamSecurity {
    fn check_publish(
        &mut self,
        now: Instant,
        req: &PublishRequest<'_>,
    ) -> Result<Grant, SignalError> {
        self.tick_from(now);
        let now_ms = self.wall_ms(now);
        self.grant_publish_at(now_ms, req)
    }

    fn check_play(&mut self, now: Instant, req: &PlayRequest<'_>) -> Result<Grant, SignalError> {
        self.tick_from(now);
        let now_ms = self.wall_ms(now);
        self.grant_play_at(now_ms, req)
    }

    fn commit(&mut self, now: Instant, grant: Grant) -> Result<(), SignalError> {
        let now_ms = self.wall_ms(now);
        self.commit_at(now_ms, grant)
    }

    fn check_join_room(
        &mut self,
        now: Instant,
        req: &JoinRoomRequest<'_>,
    ) -> Result<(), SignalError> {
        self.tick_from(now);
        let now_ms = self.wall_ms(now);
        self.check_join_room_at(now_ms, req)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_purge
    }

    fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.wall_ms(now);
        self.purge_at(now_ms);
        self.next_purge = Some(now + PURGE_INTERVAL);
    }

    fn records(&self) -> Option<&dyn proto_core::StoredRecords> {
        Some(self)
    }
}

impl StreamSecurity {
    /// The store it reads (for [`crate::records`]).
    pub(crate) fn shared_store(&self) -> &SharedStore {
        &self.store
    }
}
