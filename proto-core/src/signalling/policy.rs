//! The seam to stream security and the datastore: what signalling asks ([`PublishRequest`],
//! [`PlayRequest`]), the [`AccessPolicy`] that answers, the [`StoredRecords`] it may read, and
//! [`OpenAccess`], the policy of an open server.

use std::time::Instant;

use crate::access::{Grant, JoinRoomRequest};
use crate::error::SignalError;

/// What a publisher asks for, as the access policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest<'a> {
    /// The application (first path segment of the WebSocket URL).
    pub app: &'a str,
    /// The stream id.
    pub stream_id: &'a str,
    /// `token`, if given.
    pub token: Option<&'a str>,
    /// `subscriberId`, if given.
    pub subscriber_id: Option<&'a str>,
    /// `subscriberCode`, if given.
    pub subscriber_code: Option<&'a str>,
    /// `mainTrack` / room, if given.
    pub main_track: Option<&'a str>,
    /// Signalling vouches that the stream belongs to `main_track`: it is a legacy `joinRoom`
    /// member of that room. (The policy adds what the datastore knows: subtrack links.)
    /// A credential of the room opens the stream only then.
    pub room_member: bool,
}

/// What a player asks for, as the access policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayRequest<'a> {
    /// The application.
    pub app: &'a str,
    /// The stream id.
    pub stream_id: &'a str,
    /// `token`, if given.
    pub token: Option<&'a str>,
    /// `subscriberId`, if given.
    pub subscriber_id: Option<&'a str>,
    /// `subscriberCode`, if given.
    pub subscriber_code: Option<&'a str>,
    /// `room`, if given.
    pub room: Option<&'a str>,
    /// Signalling vouches that the stream belongs to `room`: it is published live with
    /// `mainTrack` = room, or its id is a legacy `joinRoom` member of the room. A credential of
    /// the room opens the stream only then.
    pub room_member: bool,
    /// Current WebRTC viewers of the stream (before this one).
    pub viewers: usize,
}

/// The seam for stream security and the datastore (tokens, TOTP, registered streams, planned
/// dates, viewer limits). Called synchronously; implementations answer from memory.
///
/// Two phases (see [`crate::Grant`]): a check only reads and answers a grant; signalling runs
/// its own refusals and then [`AccessPolicy::commit`]s the grant, so a single-use credential is
/// spent only by a request that was accepted. Wall-clock time must be derived from the `now`
/// given (e.g. an anchor taken once at start), never read inside a call.
pub trait AccessPolicy: std::fmt::Debug {
    /// May this client publish? `Err` is sent to the client as that error definition.
    fn check_publish(
        &mut self,
        now: Instant,
        req: &PublishRequest<'_>,
    ) -> Result<Grant, SignalError>;
    /// May this client play?
    fn check_play(&mut self, now: Instant, req: &PlayRequest<'_>) -> Result<Grant, SignalError>;
    /// The request a grant was given for was accepted: spend what it names. `Err` refuses the
    /// request after all (the credential could not be spent, e.g. a failed store).
    fn commit(&mut self, _now: Instant, _grant: Grant) -> Result<(), SignalError> {
        Ok(())
    }
    /// May this client join the legacy room? Default: yes.
    fn check_join_room(
        &mut self,
        _now: Instant,
        _req: &JoinRoomRequest<'_>,
    ) -> Result<(), SignalError> {
        Ok(())
    }
    /// When the policy wants [`AccessPolicy::handle_timeout`] (housekeeping: purging expired
    /// tokens and stale failure records). Default: never.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// Time passed; do the housekeeping that is due (bounded work per call).
    fn handle_timeout(&mut self, _now: Instant) {}
    /// A publisher's media started (`publish_started`) at `now`: a datastore records the
    /// stream as broadcasting. Default: nothing.
    fn on_publish_started(&mut self, _now: Instant, _app: &str, _stream_id: &str) {}
    /// A publisher whose media had started ended at `now`. Default: nothing.
    fn on_publish_finished(&mut self, _now: Instant, _app: &str, _stream_id: &str) {}
    /// The number of WebRTC players of a published stream changed. Default: nothing.
    fn on_viewer_count(&mut self, _app: &str, _stream_id: &str, _viewers: usize) {}
    /// Read-only datastore queries for the main-track and subscriber commands
    /// (`getBroadcastObject`, `getSubtracks`, `getSubscribers`, the `subtracksLimit` check).
    /// Default: no datastore.
    fn records(&self) -> Option<&dyn StoredRecords> {
        None
    }
}

/// What signalling may read from a datastore (synchronous, read-only: the answer is what the
/// store holds now). Records are Broadcast / Subscriber objects with their AMS JSON names.
pub trait StoredRecords {
    /// The stored Broadcast `id` of `app`.
    fn broadcast(&self, app: &str, id: &str) -> Option<serde_json::Map<String, serde_json::Value>>;
    /// Stored Broadcasts that are subtracks of `main` (their `mainTrackStreamId` is `main`, or
    /// `main`'s `subTrackStreamIds` names them), by stream id, at most `max`.
    fn subtracks(
        &self,
        app: &str,
        main: &str,
        max: usize,
    ) -> Vec<serde_json::Map<String, serde_json::Value>>;
    /// `subtracksLimit` of main track `main`, when it has a stored record with a limit
    /// (`-1`, the default, is none).
    fn subtracks_limit(&self, app: &str, main: &str) -> Option<u64>;
    /// The TOTP subscribers of `stream_id` from `offset`, at most `size`, each a Subscriber
    /// JSON object without its secret.
    fn subscribers(
        &self,
        app: &str,
        stream_id: &str,
        offset: usize,
        size: usize,
    ) -> Vec<serde_json::Value>;
}

/// The policy of an open server: everything is allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAccess;

impl AccessPolicy for OpenAccess {
    fn check_publish(&mut self, _: Instant, r: &PublishRequest<'_>) -> Result<Grant, SignalError> {
        Ok(Grant::free(r.app))
    }
    fn check_play(&mut self, _: Instant, r: &PlayRequest<'_>) -> Result<Grant, SignalError> {
        Ok(Grant::free(r.app))
    }
}
