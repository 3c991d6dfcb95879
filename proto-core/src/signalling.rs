//! The signalling state machine: one object for the whole server.
//!
//! [`Signalling`] serves every WebSocket connection of every application. Stream, room and
//! peer-to-peer ids are namespaced by the application given to [`Signalling::handle_open`].
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
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use tracing::{debug, info, trace};

use crate::access::{
    is_credential_failure, Grant, JoinRoomRequest, RefusalCounters, MAX_AUTH_FAILURES_PER_CONN,
};
use crate::error::SignalError;
use crate::is_valid_stream_id;
use crate::media::{MediaCmd, MediaEvent, SessionId, SessionStats, TrackKind};
use crate::message::{ClientMessage, ErrorMessage, Notification, SdpType, ServerMessage};

mod events;
mod lastn;
mod limits;
mod mainstore;
mod maintrack;
mod p2p;
mod resilience;
mod room;
mod stream;
mod whip;

pub use events::{EventKind, StreamEvent};
pub use limits::{LimitCounters, Limits};
pub use whip::HttpMediaRequest;

/// One WebSocket connection, allocated by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// STUN/TURN servers handed to clients in `iceServerConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServers {
    /// `stun:` or `turn:` URI; empty means none (the SDK then keeps its defaults).
    pub stun_server_uri: String,
    /// TURN user name.
    pub turn_server_username: Option<String>,
    /// TURN credential.
    pub turn_server_credential: Option<String>,
}

/// Signalling configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seed of the RNG that makes generated stream ids.
    pub seed: u64,
    /// `webRTCClientStartTimeoutMs`: how long a publisher may take to send media.
    pub client_start_timeout: Duration,
    /// How often `bitrateMeasurement` is sent to players.
    pub bitrate_interval: Duration,
    /// `playWebRTCStreamOnceForEachSession`.
    pub play_once_per_session: bool,
    /// STUN/TURN servers for `iceServerConfig`.
    pub ice_servers: IceServers,
    /// `maxVideoTrackCount` reported in `joinedTheRoom` (-1 = unlimited).
    pub max_track_count: i64,
    /// Per-connection bounds (counts and field lengths).
    pub limits: Limits,
    /// A publisher whose media started and then stopped for this long ends with
    /// `noPacketReceivedForTimeoutDuration`; zero turns the check off. Measured from the media
    /// layer's periodic statistics.
    pub no_packet_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 0,
            client_start_timeout: Duration::from_millis(10_000),
            bitrate_interval: Duration::from_secs(5),
            play_once_per_session: true,
            ice_servers: IceServers::default(),
            max_track_count: -1,
            limits: Limits::default(),
            no_packet_timeout: Duration::from_millis(10_000),
        }
    }
}

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

/// An output of [`Signalling`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this message on that connection.
    Send(ConnId, ServerMessage),
    /// Close that connection (after sending what was queued before).
    Close(ConnId),
    /// A command for the media layer.
    Media(MediaCmd),
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

/// One open WebSocket connection and what it owns.
#[derive(Debug)]
struct Conn {
    app: String,
    /// stream id -> publish session.
    publishes: BTreeMap<String, SessionId>,
    /// stream id -> play session.
    plays: BTreeMap<String, SessionId>,
    /// p2p ids joined.
    p2p: BTreeSet<String>,
    /// `(room, member stream id)` of legacy `joinRoom` memberships.
    rooms: BTreeSet<(String, String)>,
    /// Credential refusals so far (see [`MAX_AUTH_FAILURES_PER_CONN`]).
    auth_failures: u32,
}

/// One media session: a publisher or a player.
#[derive(Debug)]
struct Session {
    conn: ConnId,
    app: String,
    stream: String,
    subscriber_id: Option<String>,
    /// The media layer knows this session (StartPublish/StartPlay was sent).
    media_known: bool,
    /// Last measurements.
    stats: Option<SessionStats>,
    /// Publish start timeout (publisher) or next `bitrateMeasurement` (player).
    deadline: Option<Instant>,
    role: Role,
}

impl Session {
    /// A new session with no measurements and no deadline yet.
    fn new(
        conn: ConnId,
        app: &str,
        stream: String,
        subscriber_id: Option<String>,
        media_known: bool,
        role: Role,
    ) -> Self {
        Session {
            conn,
            app: app.to_string(),
            stream,
            subscriber_id,
            media_known,
            stats: None,
            deadline: None,
            role,
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

#[derive(Debug)]
enum Role {
    Publish(PublishState),
    Play(PlayState),
    /// Play of a main track (room): its subtracks in one peer connection.
    RoomPlay(maintrack::RoomPlayState),
}

#[derive(Debug, Default)]
struct PublishState {
    /// Media started.
    live: bool,
    main_track: Option<String>,
    name: Option<String>,
    meta: Option<String>,
    role: Option<String>,
    players: BTreeSet<SessionId>,
    /// Held after its connection dropped: ends at this instant unless published again.
    held_until: Option<Instant>,
    /// Resumed by a new publish: `session_restored` goes out when its new media starts.
    restoring: bool,
    /// The last statistics that showed media arriving (none yet: never checked for silence).
    media_seen: Option<Instant>,
}

#[derive(Debug)]
struct PlayState {
    publisher: SessionId,
    connected: bool,
    /// Height asked for with `forceStreamQuality` (0 = automatic).
    forced_height: u32,
}

#[derive(Debug)]
struct Member {
    conn: ConnId,
    name: Option<String>,
    meta: Option<String>,
}

#[derive(Debug, Default)]
struct Room {
    /// member stream id -> member.
    members: BTreeMap<String, Member>,
}

/// How a session ends.
#[derive(Debug, Clone, Copy)]
struct End {
    /// Tell the media layer to close the session.
    close_media: bool,
    /// Error sent to the owner first.
    error: Option<SignalError>,
    /// Send the owner `publish_finished` / `play_finished`.
    finished: bool,
}

impl End {
    const STOP: End = End {
        close_media: true,
        error: None,
        finished: true,
    };
    const CONN_CLOSED: End = End {
        close_media: true,
        error: None,
        finished: false,
    };
    const REPLACED: End = End::CONN_CLOSED;
    const MEDIA_CLOSED: End = End {
        close_media: false,
        error: None,
        finished: true,
    };
    const TIMEOUT: End = End {
        close_media: true,
        error: Some(SignalError::PublishTimeoutError),
        finished: false,
    };
    fn failed(remote_description: bool) -> End {
        End {
            close_media: false,
            error: Some(if remote_description {
                SignalError::NotSetRemoteDescription
            } else {
                SignalError::ServerErrorCheckLogs
            }),
            finished: true,
        }
    }
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
    }
    /// A player's (or room player's) peer connection came up: the webhook event and the
    /// client's `play_started`.
    fn play_started(
        &mut self,
        conn: ConnId,
        app: String,
        stream: String,
        subscriber_id: Option<String>,
    ) {
        self.record(|| events::StreamEvent {
            kind: events::EventKind::PlayStarted,
            app,
            stream: stream.clone(),
            name: None,
            main_track: None,
            subscriber_id: subscriber_id.clone(),
        });
        self.send(
            conn,
            ServerMessage::Notification(Notification::PlayStarted {
                stream_id: stream,
                subscriber_id,
            }),
        );
    }

    /// An event from the media layer.
    pub fn handle_media(&mut self, now: Instant, event: MediaEvent) {
        self.now = now;
        let sid = event.session();
        if self.held_media_event(now, &event) {
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            trace!(%sid, "media event for an unknown session ignored");
            return;
        };
        if !s.media_known {
            debug!(%sid, "media event for a session not started in the media layer ignored");
            return;
        }
        let conn = s.conn;
        let stream = s.stream.clone();
        match event {
            MediaEvent::Answer { sdp, .. } => {
                // A publisher's, or a WHEP player's (it offered).
                if matches!(s.role, Role::Publish(_) | Role::Play(_)) {
                    self.send(
                        conn,
                        ServerMessage::TakeConfiguration {
                            stream_id: stream,
                            sdp_type: SdpType::Answer,
                            sdp,
                            id_mapping: None,
                        },
                    );
                } else {
                    debug!(%sid, "answer for a play session ignored");
                }
            }
            MediaEvent::Offer { sdp, tracks, .. } => {
                if matches!(s.role, Role::Play(_) | Role::RoomPlay(_)) {
                    let id_mapping = tracks
                        .iter()
                        .map(|t| {
                            let prefix = match t.kind {
                                TrackKind::Video => "ARDAMSv",
                                TrackKind::Audio => "ARDAMSa",
                            };
                            let source = t.source.as_deref().unwrap_or(&stream);
                            (t.mid.clone(), format!("{prefix}{source}"))
                        })
                        .collect();
                    self.send(
                        conn,
                        ServerMessage::TakeConfiguration {
                            stream_id: stream,
                            sdp_type: SdpType::Offer,
                            sdp,
                            id_mapping: Some(id_mapping),
                        },
                    );
                } else {
                    debug!(%sid, "offer for a publish session ignored");
                }
            }
            MediaEvent::Candidate { candidate, .. } => self.send(
                conn,
                ServerMessage::TakeCandidate {
                    stream_id: stream,
                    label: candidate.mline_index,
                    id: candidate.mid,
                    candidate: candidate.candidate,
                },
            ),
            MediaEvent::Connected { .. } => {
                let subscriber_id = s.subscriber_id.clone();
                if let Role::RoomPlay(p) = &mut s.role {
                    // The media layer asks the subtracks' publishers for keyframes itself.
                    if !std::mem::replace(&mut p.connected, true) {
                        let app = s.app.clone();
                        self.play_started(conn, app, stream, subscriber_id);
                    }
                    return;
                }
                if let Role::Play(p) = &mut s.role {
                    if p.connected {
                        return;
                    }
                    p.connected = true;
                    let publisher = p.publisher;
                    let app = s.app.clone();
                    self.play_started(conn, app, stream, subscriber_id);
                    self.request_keyframe(publisher);
                    if !self.config.bitrate_interval.is_zero() {
                        self.set_deadline(sid, Some(now + self.config.bitrate_interval));
                    }
                }
            }
            MediaEvent::MediaStarted { .. } => {
                let subscriber_id = s.subscriber_id.clone();
                let Role::Publish(p) = &mut s.role else {
                    return;
                };
                if p.restoring {
                    p.restoring = false;
                    self.set_deadline(sid, None);
                    return self.send(
                        conn,
                        ServerMessage::Notification(Notification::SessionRestored {
                            stream_id: stream,
                            subscriber_id,
                        }),
                    );
                }
                if p.live {
                    return;
                }
                p.live = true;
                self.access.on_publish_started(now, &s.app, &stream);
                let (name, main_track) = (p.name.clone(), p.main_track.clone());
                let mut room = p.main_track.clone();
                let app = s.app.clone();
                if room.is_none() {
                    room = self.member_room(&app, &stream).map(str::to_string);
                }
                let refresh = self.rooms_listing(&app, &stream, main_track.as_deref());
                self.record(|| events::StreamEvent {
                    kind: events::EventKind::PublishStarted,
                    app,
                    stream: stream.clone(),
                    name,
                    main_track,
                    subscriber_id: subscriber_id.clone(),
                });
                self.set_deadline(sid, None);
                self.send(
                    conn,
                    ServerMessage::Notification(Notification::PublishStarted {
                        stream_id: stream,
                        subscriber_id,
                        attr_room_name: room.clone(),
                        room: room.clone(),
                    }),
                );
                let app = self.sessions.get(&sid).map(|s| s.app.clone());
                if let Some(app) = app {
                    for room in refresh {
                        self.refresh_room(&app, &room);
                    }
                }
            }
            MediaEvent::KeyframeRequested { .. } => {
                if let Role::Play(p) = &s.role {
                    let publisher = p.publisher;
                    self.request_keyframe(publisher);
                }
            }
            MediaEvent::Stats { stats, .. } => {
                let media = stats.video_bitrate + stats.audio_bitrate > 0;
                s.stats = Some(stats);
                self.check_media_silence(now, sid, media);
            }
            MediaEvent::Failed { reason, .. } => {
                debug!(%sid, %reason, "media session failed");
                self.end_session(sid, End::failed(reason.is_remote_description()));
            }
            MediaEvent::Closed { .. } => self.end_session(sid, End::MEDIA_CLOSED),
        }
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

    /// Checks the internal indexes against each other; `Err` describes the first violation.
    /// For tests and fuzzing.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut timers = BTreeSet::new();
        for (sid, s) in &self.sessions {
            if let Some(at) = s.deadline {
                timers.insert((at, *sid));
            }
            if let Role::Publish(p) = &s.role {
                if p.held_until.is_some() {
                    // Held: its connection is gone; it waits for a re-publish or its deadline.
                    // (Its old connection id may have been reused by a new connection, which
                    // must not list it.)
                    let listed = self
                        .conns
                        .get(&s.conn)
                        .is_some_and(|c| c.publishes.get(&s.stream) == Some(sid));
                    if s.deadline != p.held_until || !p.live || listed {
                        return Err(format!("held {sid} is inconsistent"));
                    }
                    if self.publishers.get(&key(&s.app, &s.stream)) != Some(sid) {
                        return Err(format!("held {sid} is not the publisher of {}", s.stream));
                    }
                    continue;
                }
            }
            let c = self
                .conns
                .get(&s.conn)
                .ok_or(format!("{sid} owned by closed {:?}", s.conn))?;
            if c.app != s.app {
                return Err(format!("{sid} app differs from its connection's"));
            }
            match &s.role {
                Role::Publish(p) => {
                    if c.publishes.get(&s.stream) != Some(sid) {
                        return Err(format!("{sid} missing from its conn's publishes"));
                    }
                    if self.publishers.get(&key(&s.app, &s.stream)) != Some(sid) {
                        return Err(format!("{sid} is not the publisher of {}", s.stream));
                    }
                    if let Some(m) = &p.main_track {
                        let indexed = self
                            .main_track_streams
                            .get(&key(&s.app, m))
                            .is_some_and(|ids| ids.contains(&s.stream));
                        if !indexed {
                            return Err(format!("{sid} missing from the main-track index of {m}"));
                        }
                    }
                    if p.live && !p.restoring && s.deadline.is_some() {
                        return Err(format!("live {sid} has a start deadline"));
                    }
                    for player in &p.players {
                        match self.sessions.get(player).map(|x| &x.role) {
                            Some(Role::Play(pl)) if pl.publisher == *sid => {}
                            _ => return Err(format!("{sid} lists bad player {player}")),
                        }
                    }
                }
                Role::Play(p) => {
                    if c.plays.get(&s.stream) != Some(sid) {
                        return Err(format!("{sid} missing from its conn's plays"));
                    }
                    let Some(publisher) = self.sessions.get(&p.publisher) else {
                        return Err(format!("{sid} plays a gone publisher"));
                    };
                    match &publisher.role {
                        Role::Publish(ps)
                            if ps.players.contains(sid)
                                && ps.live
                                && publisher.stream == s.stream
                                && publisher.app == s.app => {}
                        _ => return Err(format!("{sid} has an inconsistent publisher")),
                    }
                    if !s.media_known {
                        return Err(format!("player {sid} unknown to media"));
                    }
                }
                Role::RoomPlay(p) => {
                    if c.plays.get(&s.stream) != Some(sid) {
                        return Err(format!("{sid} missing from its conn's plays"));
                    }
                    let listed = self
                        .room_players
                        .get(&key(&s.app, &s.stream))
                        .is_some_and(|set| set.contains(sid));
                    if !listed || !s.media_known || s.deadline.is_some() {
                        return Err(format!("room player {sid} badly indexed"));
                    }
                    for (id, publisher) in &p.sent {
                        let ok = self.publishers.get(&key(&s.app, id)) == Some(publisher);
                        if !ok {
                            return Err(format!("room player {sid} sent a gone subtrack {id}"));
                        }
                    }
                }
            }
        }
        if timers != self.timers {
            return Err("timer index differs from session deadlines".into());
        }
        for ((app, room), set) in &self.room_players {
            if set.is_empty() {
                return Err(format!("empty room player set of {room} kept"));
            }
            for sid in set {
                match self.sessions.get(sid) {
                    Some(s)
                        if matches!(s.role, Role::RoomPlay(_))
                            && s.app == *app
                            && s.stream == *room => {}
                    _ => return Err(format!("room player index of {room} is stale")),
                }
            }
        }
        for ((app, id), sid) in &self.publishers {
            match self.sessions.get(sid) {
                Some(s) if s.app == *app && s.stream == *id => {}
                _ => return Err(format!("publisher index of {id} is stale")),
            }
        }
        for (cid, c) in &self.conns {
            for sid in c.publishes.values().chain(c.plays.values()) {
                if self.sessions.get(sid).map(|s| s.conn) != Some(*cid) {
                    return Err(format!("{cid:?} lists foreign or gone {sid}"));
                }
            }
            for id in &c.p2p {
                if !self.is_p2p_member(*cid, &c.app, id) {
                    return Err(format!("{cid:?} p2p {id} not in the group"));
                }
            }
            for (room, id) in &c.rooms {
                let ok = self
                    .rooms
                    .get(&key(&c.app, room))
                    .and_then(|r| r.members.get(id))
                    .is_some_and(|m| m.conn == *cid);
                if !ok {
                    return Err(format!("{cid:?} membership {room}/{id} not in the room"));
                }
            }
        }
        for ((app, id), peers) in &self.p2p {
            if peers.is_empty() || peers.len() > 2 {
                return Err(format!("p2p {id} has {} peers", peers.len()));
            }
            for p in peers {
                let ok = self
                    .conns
                    .get(p)
                    .is_some_and(|c| c.app == *app && c.p2p.contains(id));
                if !ok {
                    return Err(format!("p2p {id} lists {p:?} wrongly"));
                }
            }
            if peers.len() == 2 && peers.first() == peers.get(1) {
                return Err(format!("p2p {id} lists a peer twice"));
            }
        }
        for ((app, room), ids) in &self.main_track_streams {
            if ids.is_empty() {
                return Err(format!("empty main-track index entry {room} kept"));
            }
            for id in ids {
                let ok = self
                    .publishers
                    .get(&key(app, id))
                    .and_then(|sid| self.sessions.get(sid))
                    .is_some_and(|s| {
                        matches!(&s.role, Role::Publish(p) if p.main_track.as_deref() == Some(room))
                    });
                if !ok {
                    return Err(format!("main-track index lists {id} in {room} wrongly"));
                }
            }
        }
        for ((app, id), rooms) in &self.member_rooms {
            if rooms.is_empty() {
                return Err(format!("empty member index entry {id} kept"));
            }
            for room in rooms {
                let ok = self
                    .rooms
                    .get(&key(app, room))
                    .is_some_and(|r| r.members.contains_key(id));
                if !ok {
                    return Err(format!("member index lists {id} in {room} wrongly"));
                }
            }
        }
        for ((app, room), r) in &self.rooms {
            if r.members.is_empty() {
                return Err(format!("empty room {room} kept"));
            }
            for id in r.members.keys() {
                let indexed = self
                    .member_rooms
                    .get(&key(app, id))
                    .is_some_and(|rooms| rooms.contains(room));
                if !indexed {
                    return Err(format!(
                        "member {id} of {room} missing from the member index"
                    ));
                }
            }
            for (id, m) in &r.members {
                let ok = self.conns.get(&m.conn).is_some_and(|c| {
                    c.app == *app && c.rooms.contains(&(room.clone(), id.clone()))
                });
                if !ok {
                    return Err(format!("room {room} member {id} wrongly owned"));
                }
            }
        }
        Ok(())
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
mod access_tests;

#[cfg(test)]
mod mainstore_tests;
