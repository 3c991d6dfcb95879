//! The signalling state machine: one object for the whole server.
//!
//! Why about 670 lines: the struct, its indexes, the entry points (`handle_*`, `poll_*`) and the
//! one dispatch of the command table belong together; the command handlers are in `signalling/`.
//!
//! [`Signalling`] serves every WebSocket connection of every application. Stream, room and
//! peer-to-peer ids are namespaced by the application given to [`Signalling::handle_open`].
//!
//! # Where things are
//!
//! This file holds [`Signalling`] itself, its indexes and the dispatch of a client frame
//! ([`Signalling::handle_text`] → [`Signalling::handle_message`] → the command's module). What
//! it holds per connection and session is in `state.rs`; the media layer's events in
//! `media_events.rs`; the access policy seam in `policy.rs`; the configuration in `config.rs`;
//! the index checks in `invariants.rs`; each command family in its own module (`stream.rs`,
//! `room.rs`, `p2p.rs`, `maintrack.rs`, `lastn.rs`, `mainstore.rs`, `whip.rs`).
//!
//! # Decisions where the AMS sources are silent (see PROTOCOL.md)
//!
//! - A stream is *live* once the media layer reports [`MediaEvent::MediaStarted`] for its
//!   publisher. Only live streams can be played; `joinedTheRoom.streams` and
//!   `roomInformation.streams` list live streams only (the legacy samples play each of them).
//! - `subTrackStreamIds` (broadcast object) and `getTrackList` list every stream currently being
//!   published with `mainTrack` = the id, or published by a legacy `joinRoom` member of the
//!   room of that id, live or not. `getTrackList` on a plain published stream answers `[]`;
//!   on an id that is neither published nor a room, `no_stream_exist`.
//! - `takeConfiguration`/`takeCandidate` are routed by `streamId`: a p2p id this connection
//!   joined is relayed to the partner; otherwise this connection's publish of that id, then its
//!   play of that id, goes to the media layer; anything else gets `no_peer_associated_before`.
//!   A publisher's offer creates the media session; a second offer on it is ignored (no
//!   renegotiation of publishers). Empty (end-of-candidates) candidates are dropped.
//! - `MediaCmd::Close` is sent only for sessions the media layer knows about (a publish session
//!   is known once its offer went out as [`MediaCmd::StartPublish`]).
//! - `stop` ends this connection's publish and play of the id (not p2p; that is `leave`).
//!   Its owner gets `publish_finished`/`play_finished`; players of a publisher that ends get
//!   `play_finished`. A media failure sends the error, then the same `*_finished`.
//!   `publishTimeoutError` is sent alone.
//! - With `play_once_per_session = false`, a second `play` of the same id on the same connection
//!   replaces the first session (the SDK holds one peer connection per stream id).
//! - Rooms (legacy `joinRoom`) exist while they have members. `joinRoom` first asks the
//!   access policy ([`AccessPolicy::check_join_room`]: registered rooms, planned dates). A
//!   member id that another open connection holds in that room is refused with
//!   `streamIdInUse`: taking it over would let any client evict any member. A reconnect still
//!   works, because the old connection's close ended its membership; a half-open old
//!   connection holds the id until the runtime notices it is gone. A member's stream counts in
//!   the room whichever connection publishes it (pages that join with one adaptor and publish
//!   with another).
//! - Access checks are two-phase (see [`crate::Grant`]): the policy's check grants, signalling
//!   runs its own refusals, and only an accepted publish or play commits the grant (spends a
//!   single-use token). Signalling tells the policy whether the stream really belongs to the
//!   room the client names (`room_member`). Every refusal of publish, play and joinRoom is
//!   counted ([`Signalling::refusals`]) and logged; after
//!   [`crate::MAX_AUTH_FAILURES_PER_CONN`] credential refusals the connection is closed. `leaveFromRoom` ends the
//!   connection's memberships in the room and stops its publishes in it (members' ids and
//!   `mainTrack` = room).
//! - Playing an id that is not itself published but is a main track (room) with a live subtrack
//!   plays the room: one peer connection carrying each selected live subtrack on its own
//!   audio/video m-lines, renegotiated as subtracks come and go (see `maintrack.rs`). A main
//!   track with no live subtrack gets `no_stream_exist`.
//! - The broadcast object exists only while the stream is published (status `preparing` before
//!   media, `broadcasting` after) or while the id is a room (`broadcasting` when one of its
//!   subtracks is live, else `finished`). Nothing is remembered once a publish ends.
//! - `toggleVideo`/`toggleAudio`/`enableTrack`/`forceStreamQuality` for a stream this connection
//!   does not play are accepted silently (nothing to forward).
//! - After [`Signalling::shutdown`], new connections get `server_will_stop` and are closed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use tracing::{debug, info, trace};

use crate::access::{is_credential_failure, RefusalCounters, MAX_AUTH_FAILURES_PER_CONN};
use crate::error::SignalError;
use crate::is_valid_stream_id;
use crate::media::{MediaCmd, SessionId, TrackKind};
use crate::message::{ClientMessage, ErrorMessage, Notification, SdpType, ServerMessage};

mod config;
mod events;
mod invariants;
mod lastn;
mod limits;
mod mainstore;
mod maintrack;
mod media_events;
mod p2p;
mod policy;
mod remote;
mod remote_room;
mod resilience;
mod role;
mod room;
mod state;
mod stream;
mod viewers;
mod whip;

pub use config::{Config, ConnId, IceServers};
pub use events::{EventKind, StreamEvent};
pub use limits::{LimitCounters, Limits};
pub use policy::{AccessPolicy, OpenAccess, PlayRequest, PublishRequest, StoredRecords};
pub use remote::{
    RemoteCounters, MAX_WAITING_PER_STREAM, MAX_WAITING_STREAMS, REMOTE_PLAY_TIMEOUT,
};
pub use remote_room::{MAX_RELAYED_PER_ROOM, MAX_REMOTE_ROOMS, ROOM_POLL};
pub use role::{ClusterRole, Target};
use state::{Conn, End, Member, PlayState, PublishState, Role, Room, Session};
pub use whip::HttpMediaRequest;

/// An output of [`Signalling`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this message on that connection.
    Send(ConnId, ServerMessage),
    /// Close that connection (after sending what was queued before).
    Close(ConnId),
    /// A command for the media layer.
    Media(MediaCmd),
    /// Cluster edge: ask the cluster where `app`/`stream` is live, and answer with
    /// [`Signalling::open_relay`] or [`Signalling::remote_failed`] (see `remote.rs`).
    FindStream {
        /// Application.
        app: String,
        /// Stream id.
        stream: String,
    },
    /// Cluster mode: ask the cluster which streams are members of `app`/`room` (published
    /// on any node with `mainTrack` = room), and answer with [`Signalling::room_members`]
    /// (see `remote_room.rs`).
    FindRoom {
        /// Application.
        app: String,
        /// Main track (room) id.
        room: String,
    },
}

/// `(application, id)`: stream, room and p2p ids are namespaced per application.
type Key = (String, String);

fn key(app: &str, id: &str) -> Key {
    (app.to_string(), id.to_string())
}

/// Removes `item` from the set that an index keeps under `k`, and the entry once its set is
/// empty (the indexes keep no empty sets; `check_invariants` holds them to that).
fn unindex<T: Ord>(index: &mut BTreeMap<Key, BTreeSet<T>>, k: &Key, item: &T) {
    if let Some(set) = index.get_mut(k) {
        set.remove(item);
        if set.is_empty() {
            index.remove(k);
        }
    }
}

/// Media sessions by role ([`Signalling::session_roles`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionRoles {
    /// Publishers (live or not).
    pub publish: u64,
    /// Publishers whose media started.
    pub live: u64,
    /// Players of one stream.
    pub play: u64,
    /// Players of a room (main track).
    pub room_play: u64,
}

/// Length of a stream id generated for `joinRoom`.
const GENERATED_ID_LEN: usize = 12;
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The signalling state machine for the whole server.
#[derive(Debug)]
pub struct Signalling {
    config: Config,
    /// The `now` of the latest input: the time of effects that happen deep inside one (a
    /// publish ending as its connection closes) and that the access policy records.
    now: Instant,
    outputs: VecDeque<Output>,
    access: Box<dyn AccessPolicy>,
    rng: ChaCha8Rng,
    overloaded: bool,
    shut_down: bool,
    next_session: u64,
    conns: BTreeMap<ConnId, Conn>,
    sessions: BTreeMap<SessionId, Session>,
    /// The one publish session of each stream.
    publishers: BTreeMap<Key, SessionId>,
    rooms: BTreeMap<Key, Room>,
    /// `(app, member stream id)` -> the rooms that have it as a legacy member.
    member_rooms: BTreeMap<Key, BTreeSet<String>>,
    /// `(app, room)` -> ids of the streams published with that `mainTrack`.
    main_track_streams: BTreeMap<Key, BTreeSet<String>>,
    /// Refusals over [`Limits`].
    limit_counters: LimitCounters,
    /// Main track -> its room play sessions.
    room_players: BTreeMap<Key, BTreeSet<SessionId>>,
    /// p2p id -> its one or two peers, in join order.
    p2p: BTreeMap<Key, Vec<ConnId>>,
    /// Deadlines, mirrored from `Session::deadline`.
    timers: BTreeSet<(Instant, SessionId)>,
    /// Refusals by error definition.
    refusals: RefusalCounters,
    /// Stream events for the runtime (webhooks).
    events: events::EventLog,
    /// The client's offer of the WHEP play being handled (see `whip.rs`): set only for the
    /// duration of [`Signalling::handle_whep_play`].
    whep_offer: Option<String>,
    /// Cluster edge mode: plays waiting for relays (`remote.rs`); `None`: off.
    remote: Option<remote::Remote>,
    /// This node's cluster role (`role.rs`).
    role: ClusterRole,
    /// Publishes refused by the role or the connection's target.
    role_refusals: u64,
    /// The other nodes' viewers of the streams published or relayed here (`viewers.rs`).
    remote_viewers: BTreeMap<Key, usize>,
}

impl Signalling {
    /// A server with no connections.
    pub fn new(config: Config, now: Instant) -> Self {
        Signalling {
            now,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            outputs: VecDeque::new(),
            access: Box::new(OpenAccess),
            overloaded: false,
            shut_down: false,
            next_session: 1,
            conns: BTreeMap::new(),
            sessions: BTreeMap::new(),
            publishers: BTreeMap::new(),
            rooms: BTreeMap::new(),
            member_rooms: BTreeMap::new(),
            main_track_streams: BTreeMap::new(),
            limit_counters: LimitCounters::default(),
            room_players: BTreeMap::new(),
            p2p: BTreeMap::new(),
            timers: BTreeSet::new(),
            refusals: RefusalCounters::default(),
            events: events::EventLog::default(),
            whep_offer: None,
            remote: None,
            role: ClusterRole::Both,
            role_refusals: 0,
            remote_viewers: BTreeMap::new(),
        }
    }

    /// Refusals so far, by error definition (access checks and signalling's own refusals of
    /// publish, play and joinRoom), and connections closed for credential failures.
    pub fn refusals(&self) -> &RefusalCounters {
        &self.refusals
    }

    /// Replaces the access policy (default [`OpenAccess`]).
    pub fn set_access_policy(&mut self, policy: Box<dyn AccessPolicy>) {
        self.access = policy;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration for what follows (a runtime applying changed application
    /// settings). Running sessions keep their deadlines; the RNG keeps its state, so
    /// `config.seed` is ignored.
    pub fn set_config(&mut self, config: Config) {
        self.config = Config {
            seed: self.config.seed,
            ..config
        };
    }

    /// True when no connection, session, room, p2p group or timer is left.
    pub fn is_idle(&self) -> bool {
        self.conns.is_empty()
            && self.sessions.is_empty()
            && self.publishers.is_empty()
            && self.rooms.is_empty()
            && self.member_rooms.is_empty()
            && self.main_track_streams.is_empty()
            && self.room_players.is_empty()
            && self.p2p.is_empty()
            && self.timers.is_empty()
            && self.remote_waiting() == 0
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Media sessions (publishers and players).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Streams being published (live or not).
    pub fn publisher_count(&self) -> usize {
        self.publishers.len()
    }

    /// Conference rooms (`joinRoom`) with at least one member.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Media sessions by role, for metrics.
    pub fn session_roles(&self) -> SessionRoles {
        let mut r = SessionRoles::default();
        for s in self.sessions.values() {
            match s.role {
                Role::Publish(ref p) => {
                    r.publish += 1;
                    r.live += u64::from(p.live);
                }
                Role::Play(_) => r.play += 1,
                Role::RoomPlay(_) => r.room_play += 1,
            }
        }
        r
    }

    /// A WebSocket connection opened on application `app`.
    pub fn handle_open(&mut self, now: Instant, conn: ConnId, app: &str) {
        self.now = now;
        if self.shut_down {
            self.outputs.push_back(Output::Send(
                conn,
                ServerMessage::Notification(Notification::ServerWillStop),
            ));
            self.outputs.push_back(Output::Close(conn));
            return;
        }
        if self.conns.contains_key(&conn) {
            debug!(?conn, "handle_open for an open connection ignored");
            return;
        }
        self.conns.insert(
            conn,
            Conn {
                app: app.to_string(),
                publishes: BTreeMap::new(),
                plays: BTreeMap::new(),
                p2p: BTreeSet::new(),
                rooms: BTreeSet::new(),
                auth_failures: 0,
                target: None,
            },
        );
    }

    /// A text frame arrived on `conn`.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        self.now = now;
        if !self.conns.contains_key(&conn) {
            trace!(?conn, "text on an unknown connection ignored");
            return;
        }
        match ClientMessage::parse(text) {
            Ok(msg) => self.handle_message(now, conn, msg),
            Err(e) => {
                debug!(?conn, error = %e, "unparsable client message");
                let mut m = ErrorMessage::new(e.signal_error(), None);
                m.information = Some(e.to_string());
                self.send(conn, ServerMessage::Error(m));
            }
        }
    }

    /// A parsed client message arrived on `conn`.
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, msg: ClientMessage) {
        self.now = now;
        let Some(app) = self.conns.get(&conn).map(|c| c.app.clone()) else {
            trace!(?conn, "message on an unknown connection ignored");
            return;
        };
        if !self.check_lengths(conn, &msg) {
            return;
        }
        // Commands answered before the common streamId check.
        let msg = match msg {
            ClientMessage::Ping => return self.send(conn, ServerMessage::Pong),
            ClientMessage::GetIceServerConfig => {
                let ice = &self.config.ice_servers;
                let reply = ServerMessage::IceServerConfig {
                    stun_server_uri: ice.stun_server_uri.clone(),
                    turn_server_username: ice.turn_server_username.clone(),
                    turn_server_credential: ice.turn_server_credential.clone(),
                };
                return self.send(conn, reply);
            }
            ClientMessage::JoinRoom(j) => return self.join_room(now, conn, &app, j),
            ClientMessage::LeaveFromRoom(r) => return self.leave_room(conn, &app, r),
            ClientMessage::GetRoomInfo(r) => return self.room_info(conn, &app, r),
            ClientMessage::Unsupported { command, stream_id } => {
                let mut m = ErrorMessage::new(SignalError::UnsupportedCommand, stream_id);
                m.information = Some(format!("{command} is not supported"));
                return self.send(conn, ServerMessage::Error(m));
            }
            other => other,
        };
        let id = match stream_id_of(&msg) {
            None => return self.error(conn, SignalError::NoStreamNameSpecified, None),
            Some(id) if !is_valid_stream_id(id) => {
                let id = id.to_string();
                return self.error(conn, SignalError::InvalidStreamName, Some(&id));
            }
            Some(id) => id.to_string(),
        };
        match msg {
            ClientMessage::Publish(p) => self.publish(now, conn, &app, id, p),
            ClientMessage::Play(p) => self.play(now, conn, &app, id, p),
            ClientMessage::TakeConfiguration(c) => self.take_configuration(conn, &app, id, c),
            ClientMessage::TakeCandidate(c) => self.take_candidate(conn, &app, id, c),
            ClientMessage::Stop(_) => self.stop(conn, &id),
            ClientMessage::Join(j) => self.join(conn, &app, id, j),
            ClientMessage::Leave(_) => self.leave(conn, &app, id),
            ClientMessage::GetStreamInfo(_) => self.stream_info(conn, &app, id),
            ClientMessage::GetTrackList(_) => self.track_list(conn, &app, id),
            ClientMessage::EnableTrack(t) => self.toggle(conn, id, t, true, true),
            ClientMessage::ToggleVideo(t) => self.toggle(conn, id, t, true, false),
            ClientMessage::ToggleAudio(t) => self.toggle(conn, id, t, false, true),
            ClientMessage::ForceStreamQuality(q) => self.force_quality(conn, id, q),
            ClientMessage::PeerMessageCommand(p) => self.peer_message(conn, &app, id, p),
            ClientMessage::GetBroadcastObject(_) => self.broadcast_object(conn, &app, id),
            ClientMessage::GetSubscriberCount(_) => {
                let count = self
                    .publishers
                    .get(&key(&app, &id))
                    .and_then(|s| self.sessions.get(s))
                    .map_or(0, |s| match &s.role {
                        Role::Publish(p) => p.players.len() as u64,
                        Role::Play(_) | Role::RoomPlay(_) => 0,
                    });
                self.send(
                    conn,
                    ServerMessage::Notification(Notification::SubscriberCount {
                        stream_id: id,
                        count,
                    }),
                );
            }
            ClientMessage::UpdateStreamMetaData(u) => self.update_meta(conn, &app, id, u),
            ClientMessage::GetSubtracks(g) => self.subtracks(conn, &app, id, g),
            ClientMessage::GetSubtracksCount(g) => self.subtracks_count(conn, &app, id, g),
            ClientMessage::GetSubscribers(g) => self.subscribers(conn, &app, id, g),
            ClientMessage::GetVideoTrackAssignments(_) => self.video_assignments(conn, id),
            ClientMessage::AssignVideoTrack(v) => self.assign_video_track(conn, id, v),
            ClientMessage::UpdateVideoTrackAssignments(v) => {
                self.update_video_assignments(conn, id, v)
            }
            ClientMessage::SetMaxVideoTrackCount(v) => self.set_max_video_tracks(conn, id, v),
            ClientMessage::Ping
            | ClientMessage::GetIceServerConfig
            | ClientMessage::JoinRoom(_)
            | ClientMessage::LeaveFromRoom(_)
            | ClientMessage::GetRoomInfo(_)
            | ClientMessage::Unsupported { .. } => {}
        }
    }

    /// `conn` closed (either side). Ends everything it owned.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        self.now = now;
        let Some(c) = self.conns.remove(&conn) else {
            trace!(?conn, "close of an unknown connection ignored");
            return;
        };
        for sid in c.publishes.values() {
            if !self.hold_publisher(now, *sid) {
                self.end_session(*sid, End::CONN_CLOSED);
            }
        }
        for sid in c.plays.values() {
            self.end_session(*sid, End::CONN_CLOSED);
        }
        for id in &c.p2p {
            self.p2p_remove(conn, &key(&c.app, id));
        }
        for (room, id) in &c.rooms {
            self.room_remove_member(&key(&c.app, room), id);
        }
        // A member's stream published from another connection leaves the room's subtracks.
        for (room, _) in &c.rooms {
            self.refresh_room(&c.app, room);
        }
        self.remote_conn_closed(conn);
    }
    /// Time passed; fire due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.access.poll_timeout().is_some_and(|at| at <= now) {
            self.access.handle_timeout(now);
        }
        while let Some(&(at, sid)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, sid));
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            s.deadline = None;
            match &s.role {
                Role::Publish(p) if p.held_until.is_some() => self.held_expired(sid),
                Role::Publish(p) => {
                    if !p.live || p.restoring {
                        debug!(%sid, stream = %s.stream, "publish start timeout");
                        self.end_session(sid, End::TIMEOUT);
                    }
                }
                Role::Play(p) => {
                    let publisher = p.publisher;
                    self.bitrate_measurement(sid, publisher);
                    if !self.config.bitrate_interval.is_zero() {
                        self.set_deadline(sid, Some(now + self.config.bitrate_interval));
                    }
                }
                Role::RoomPlay(_) => {}
            }
        }
        self.remote_timeout(now);
    }

    /// The runtime reports CPU/memory over (or back under) the limit.
    pub fn set_overloaded(&mut self, now: Instant, overloaded: bool) {
        self.now = now;
        self.overloaded = overloaded;
    }

    /// Graceful shutdown: `server_will_stop` to every connection, then close them all.
    pub fn shutdown(&mut self, now: Instant) {
        self.now = now;
        self.shut_down = true;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in &conns {
            self.send(
                *conn,
                ServerMessage::Notification(Notification::ServerWillStop),
            );
        }
        let sessions = std::mem::take(&mut self.sessions);
        for (sid, s) in sessions {
            if s.media_known {
                self.media(MediaCmd::Close { session: sid });
            }
        }
        for conn in conns {
            self.outputs.push_back(Output::Close(conn));
        }
        self.conns.clear();
        self.publishers.clear();
        self.rooms.clear();
        self.member_rooms.clear();
        self.main_track_streams.clear();
        self.room_players.clear();
        self.p2p.clear();
        self.timers.clear();
        self.remote_clear();
    }

    /// The next output, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest instant at which [`Signalling::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.first().map(|(at, _)| *at);
        let own = match (own, self.remote_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (own, self.access.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Plumbing.

    fn alloc_session(&mut self) -> SessionId {
        let sid = SessionId(self.next_session);
        self.next_session += 1;
        sid
    }

    fn set_deadline(&mut self, sid: SessionId, at: Option<Instant>) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if let Some(old) = s.deadline.take() {
            self.timers.remove(&(old, sid));
        }
        s.deadline = at;
        if let Some(at) = at {
            self.timers.insert((at, sid));
        }
    }

    /// Queues a message, only to an open connection.
    fn send(&mut self, conn: ConnId, msg: ServerMessage) {
        if self.conns.contains_key(&conn) {
            self.outputs.push_back(Output::Send(conn, msg));
        } else {
            trace!(?conn, "message to a closed connection dropped");
        }
    }

    fn error(&mut self, conn: ConnId, definition: SignalError, stream_id: Option<&str>) {
        self.send(conn, ServerMessage::error(definition, stream_id));
    }

    /// Refuses a publish, play or joinRoom: the error definition, a log line and a counter.
    /// A connection with [`MAX_AUTH_FAILURES_PER_CONN`] credential refusals is closed after
    /// the answer.
    fn refuse(&mut self, now: Instant, conn: ConnId, e: SignalError, stream_id: Option<&str>) {
        self.refusals.count(e);
        debug!(
            ?conn,
            stream = stream_id,
            definition = e.definition(),
            "request refused"
        );
        self.error(conn, e, stream_id);
        if !is_credential_failure(e) {
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.auth_failures = c.auth_failures.saturating_add(1);
        if c.auth_failures >= MAX_AUTH_FAILURES_PER_CONN {
            info!(
                ?conn,
                failures = c.auth_failures,
                "connection closed: too many credential failures"
            );
            self.refusals.conns_closed += 1;
            self.outputs.push_back(Output::Close(conn));
            self.handle_closed(now, conn);
        }
    }

    fn media(&mut self, cmd: MediaCmd) {
        self.outputs.push_back(Output::Media(cmd));
    }
}

/// The `streamId` of a command that needs one (`None` when absent or empty).
fn stream_id_of(msg: &ClientMessage) -> Option<&str> {
    match msg {
        ClientMessage::Unsupported { .. } => None,
        _ => msg.stream_id().filter(|s| !s.is_empty()),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod room_tests;

#[cfg(test)]
mod test_util;

#[cfg(test)]
mod access_tests;

#[cfg(test)]
mod mainstore_tests;

#[cfg(test)]
mod remote_tests;

#[cfg(test)]
mod remote_room_tests;

#[cfg(test)]
mod viewers_tests;
