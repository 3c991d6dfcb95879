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
//! - Rooms (legacy `joinRoom`) exist while they have members. A `joinRoom` with a member id
//!   that another connection holds in that room takes the membership over (reconnects, pages
//!   that join with one adaptor and publish with another). A member's stream counts in the room
//!   whichever connection publishes it. `leaveFromRoom` ends the
//!   connection's memberships in the room and stops its publishes in it (members' ids and
//!   `mainTrack` = room).
//! - Playing a room id plays only a stream of that very id: one peer connection carrying all of
//!   a room's subtracks is not implemented, so playing a room gets `no_stream_exist`.
//! - The broadcast object exists only while the stream is published (status `preparing` before
//!   media, `broadcasting` after) or while the id is a room (`broadcasting` when one of its
//!   subtracks is live, else `finished`). Nothing is remembered once a publish ends.
//! - `toggleVideo`/`toggleAudio`/`enableTrack`/`forceStreamQuality` for a stream this connection
//!   does not play are accepted silently (nothing to forward).
//! - After [`Signalling::shutdown`], new connections get `server_will_stop` and are closed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tracing::{debug, trace};

use crate::error::SignalError;
use crate::is_valid_stream_id;
use crate::media::{MediaCmd, MediaEvent, SessionId, SessionStats, TrackKind};
use crate::message::{
    ClientMessage, ErrorMessage, ForceStreamQuality, Join, JoinRoom, Notification, PeerMessage,
    Play, Publish, RoomRef, SdpType, ServerMessage, StreamInfo, StreamListEntry, TakeCandidate,
    TakeConfiguration, TrackToggle, UpdateMetaData,
};

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
    /// Current WebRTC viewers of the stream (before this one).
    pub viewers: usize,
}

/// The seam for stream security and the datastore (tokens, TOTP, registered streams, planned
/// dates, viewer limits). Called synchronously; implementations answer from memory.
pub trait AccessPolicy: std::fmt::Debug {
    /// May this client publish? `Err` is sent to the client as that error definition.
    fn check_publish(&mut self, now: Instant, req: &PublishRequest<'_>) -> Result<(), SignalError>;
    /// May this client play?
    fn check_play(&mut self, now: Instant, req: &PlayRequest<'_>) -> Result<(), SignalError>;
    /// A publisher's media started (`publish_started`): a datastore records the stream as
    /// broadcasting. Default: nothing.
    fn on_publish_started(&mut self, _app: &str, _stream_id: &str) {}
    /// A publisher whose media had started ended. Default: nothing.
    fn on_publish_finished(&mut self, _app: &str, _stream_id: &str) {}
    /// The number of WebRTC players of a published stream changed. Default: nothing.
    fn on_viewer_count(&mut self, _app: &str, _stream_id: &str, _viewers: usize) {}
}

/// The policy of an open server: everything is allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAccess;

impl AccessPolicy for OpenAccess {
    fn check_publish(&mut self, _: Instant, _: &PublishRequest<'_>) -> Result<(), SignalError> {
        Ok(())
    }
    fn check_play(&mut self, _: Instant, _: &PlayRequest<'_>) -> Result<(), SignalError> {
        Ok(())
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

#[derive(Debug)]
enum Role {
    Publish(PublishState),
    Play(PlayState),
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
}

#[derive(Debug)]
struct PlayState {
    publisher: SessionId,
    connected: bool,
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
    /// p2p id -> its one or two peers, in join order.
    p2p: BTreeMap<Key, Vec<ConnId>>,
    /// Deadlines, mirrored from `Session::deadline`.
    timers: BTreeSet<(Instant, SessionId)>,
}

impl Signalling {
    /// A server with no connections.
    pub fn new(config: Config, _now: Instant) -> Self {
        Signalling {
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
            p2p: BTreeMap::new(),
            timers: BTreeSet::new(),
        }
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

    /// A WebSocket connection opened on application `app`.
    pub fn handle_open(&mut self, _now: Instant, conn: ConnId, app: &str) {
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
            },
        );
    }

    /// A text frame arrived on `conn`.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
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
        let Some(app) = self.conns.get(&conn).map(|c| c.app.clone()) else {
            trace!(?conn, "message on an unknown connection ignored");
            return;
        };
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
            ClientMessage::JoinRoom(j) => return self.join_room(conn, &app, j),
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
                        Role::Play(_) => 0,
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
            ClientMessage::Ping
            | ClientMessage::GetIceServerConfig
            | ClientMessage::JoinRoom(_)
            | ClientMessage::LeaveFromRoom(_)
            | ClientMessage::GetRoomInfo(_)
            | ClientMessage::Unsupported { .. } => {}
        }
    }

    /// `conn` closed (either side). Ends everything it owned.
    pub fn handle_closed(&mut self, _now: Instant, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            trace!(?conn, "close of an unknown connection ignored");
            return;
        };
        for sid in c.publishes.values() {
            self.end_session(*sid, End::CONN_CLOSED);
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
    }

    /// An event from the media layer.
    pub fn handle_media(&mut self, now: Instant, event: MediaEvent) {
        let sid = event.session();
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
                if matches!(s.role, Role::Publish(_)) {
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
                if matches!(s.role, Role::Play(_)) {
                    let id_mapping = tracks
                        .iter()
                        .map(|t| {
                            let prefix = match t.kind {
                                TrackKind::Video => "ARDAMSv",
                                TrackKind::Audio => "ARDAMSa",
                            };
                            (t.mid.clone(), format!("{prefix}{stream}"))
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
                if let Role::Play(p) = &mut s.role {
                    if p.connected {
                        return;
                    }
                    p.connected = true;
                    let publisher = p.publisher;
                    self.send(
                        conn,
                        ServerMessage::Notification(Notification::PlayStarted {
                            stream_id: stream,
                            subscriber_id,
                        }),
                    );
                    self.media(MediaCmd::RequestKeyframe { session: publisher });
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
                if p.live {
                    return;
                }
                p.live = true;
                self.access.on_publish_started(&s.app, &stream);
                let mut room = p.main_track.clone();
                if room.is_none() {
                    let app = s.app.clone();
                    room = self
                        .rooms
                        .range(key(&app, "")..)
                        .take_while(|((a, _), _)| *a == app)
                        .find(|(_, r)| r.members.contains_key(&stream))
                        .map(|((_, r), _)| r.clone());
                }
                self.set_deadline(sid, None);
                self.send(
                    conn,
                    ServerMessage::Notification(Notification::PublishStarted {
                        stream_id: stream,
                        subscriber_id,
                        attr_room_name: room.clone(),
                        room,
                    }),
                );
            }
            MediaEvent::KeyframeRequested { .. } => {
                if let Role::Play(p) = &s.role {
                    let publisher = p.publisher;
                    self.media(MediaCmd::RequestKeyframe { session: publisher });
                }
            }
            MediaEvent::Stats { stats, .. } => s.stats = Some(stats),
            MediaEvent::Failed {
                reason,
                remote_description,
                ..
            } => {
                debug!(%sid, %reason, "media session failed");
                self.end_session(sid, End::failed(remote_description));
            }
            MediaEvent::Closed { .. } => self.end_session(sid, End::MEDIA_CLOSED),
        }
    }

    /// Time passed; fire due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
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
                Role::Publish(p) => {
                    if !p.live {
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
            }
        }
    }

    /// The runtime reports CPU/memory over (or back under) the limit.
    pub fn set_overloaded(&mut self, _now: Instant, overloaded: bool) {
        self.overloaded = overloaded;
    }

    /// Graceful shutdown: `server_will_stop` to every connection, then close them all.
    pub fn shutdown(&mut self, _now: Instant) {
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
        self.timers.first().map(|(at, _)| *at)
    }

    // -----------------------------------------------------------------------------------------
    // Publish and play.

    fn publish(&mut self, now: Instant, conn: ConnId, app: &str, id: String, p: Publish) {
        if self.overloaded {
            return self.error(conn, SignalError::HighResourceUsage, Some(&id));
        }
        let main_track = p.main_track.clone().filter(|m| *m != id);
        if let Some(m) = &main_track {
            if !is_valid_stream_id(m) {
                let m = m.clone();
                return self.error(conn, SignalError::InvalidStreamName, Some(&m));
            }
        }
        let req = PublishRequest {
            app,
            stream_id: &id,
            token: p.token.as_deref(),
            subscriber_id: p.subscriber_id.as_deref(),
            subscriber_code: p.subscriber_code.as_deref(),
            main_track: main_track.as_deref(),
        };
        if let Err(e) = self.access.check_publish(now, &req) {
            return self.error(conn, e, Some(&id));
        }
        let k = key(app, &id);
        if let Some(owner) = self
            .publishers
            .get(&k)
            .and_then(|s| self.sessions.get(s))
            .map(|s| s.conn)
        {
            let e = if owner == conn {
                SignalError::AlreadyPublishing
            } else {
                SignalError::StreamIdInUse
            };
            return self.error(conn, e, Some(&id));
        }
        let sid = self.alloc_session();
        self.sessions.insert(
            sid,
            Session {
                conn,
                app: app.to_string(),
                stream: id.clone(),
                subscriber_id: p.subscriber_id.clone(),
                media_known: false,
                stats: None,
                deadline: None,
                role: Role::Publish(PublishState {
                    live: false,
                    main_track,
                    name: p.stream_name,
                    meta: p.meta_data,
                    role: p.role,
                    players: BTreeSet::new(),
                }),
            },
        );
        self.set_deadline(sid, Some(now + self.config.client_start_timeout));
        self.publishers.insert(k, sid);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.publishes.insert(id.clone(), sid);
        }
        self.send(
            conn,
            ServerMessage::Start {
                stream_id: id,
                subscriber_id: p.subscriber_id,
            },
        );
    }

    fn play(&mut self, now: Instant, conn: ConnId, app: &str, id: String, p: Play) {
        if self.overloaded {
            return self.error(conn, SignalError::HighResourceUsage, Some(&id));
        }
        let k = key(app, &id);
        let publisher = self.publishers.get(&k).copied().and_then(|sid| {
            match self.sessions.get(&sid).map(|s| &s.role) {
                Some(Role::Publish(ps)) => Some((sid, ps.live, ps.players.len())),
                _ => None,
            }
        });
        let req = PlayRequest {
            app,
            stream_id: &id,
            token: p.token.as_deref(),
            subscriber_id: p.subscriber_id.as_deref(),
            subscriber_code: p.subscriber_code.as_deref(),
            room: p.room.as_deref(),
            viewers: publisher.map_or(0, |(_, _, n)| n),
        };
        if let Err(e) = self.access.check_play(now, &req) {
            return self.error(conn, e, Some(&id));
        }
        let Some((publisher, true, _)) = publisher else {
            return self.error(conn, SignalError::NoStreamExist, Some(&id));
        };
        if let Some(old) = self
            .conns
            .get(&conn)
            .and_then(|c| c.plays.get(&id))
            .copied()
        {
            if self.config.play_once_per_session {
                return self.error(conn, SignalError::AlreadyPlaying, Some(&id));
            }
            self.end_session(old, End::REPLACED);
        }
        let sid = self.alloc_session();
        self.sessions.insert(
            sid,
            Session {
                conn,
                app: app.to_string(),
                stream: id.clone(),
                subscriber_id: p.subscriber_id,
                media_known: true,
                stats: None,
                deadline: None,
                role: Role::Play(PlayState {
                    publisher,
                    connected: false,
                }),
            },
        );
        if let Some(Role::Publish(ps)) = self.sessions.get_mut(&publisher).map(|s| &mut s.role) {
            ps.players.insert(sid);
            self.access.on_viewer_count(app, &id, ps.players.len());
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.plays.insert(id.clone(), sid);
        }
        self.media(MediaCmd::StartPlay {
            session: sid,
            stream: id,
            publisher,
        });
    }

    fn stop(&mut self, conn: ConnId, id: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let publish = c.publishes.get(id).copied();
        let play = c.plays.get(id).copied();
        if publish.is_none() && play.is_none() {
            trace!(?conn, id, "stop of nothing");
        }
        for sid in publish.into_iter().chain(play) {
            self.end_session(sid, End::STOP);
        }
    }

    fn take_configuration(&mut self, conn: ConnId, app: &str, id: String, c: TakeConfiguration) {
        if self.is_p2p_member(conn, app, &id) {
            let msg = ServerMessage::TakeConfiguration {
                stream_id: id.clone(),
                sdp_type: c.sdp_type,
                sdp: c.sdp,
                id_mapping: None,
            };
            return self.relay(conn, app, id, msg);
        }
        let Some(cn) = self.conns.get(&conn) else {
            return;
        };
        let publish = cn.publishes.get(&id).copied();
        let play = cn.plays.get(&id).copied();
        match (c.sdp_type, publish, play) {
            (SdpType::Offer, Some(sid), _) => {
                let Some(s) = self.sessions.get_mut(&sid) else {
                    return;
                };
                if s.media_known {
                    debug!(%sid, "second publisher offer ignored (no renegotiation)");
                    return;
                }
                s.media_known = true;
                self.media(MediaCmd::StartPublish {
                    session: sid,
                    stream: id,
                    offer: c.sdp,
                });
            }
            (SdpType::Answer, _, Some(sid)) => {
                self.media(MediaCmd::RemoteAnswer {
                    session: sid,
                    sdp: c.sdp,
                });
            }
            (_, Some(sid), _) | (_, _, Some(sid)) => {
                debug!(%sid, ?c.sdp_type, "unexpected SDP type ignored");
            }
            (_, None, None) => self.error(conn, SignalError::NoPeerAssociatedBefore, Some(&id)),
        }
    }

    fn take_candidate(&mut self, conn: ConnId, app: &str, id: String, c: TakeCandidate) {
        if self.is_p2p_member(conn, app, &id) {
            let msg = ServerMessage::TakeCandidate {
                stream_id: id.clone(),
                label: c
                    .label
                    .and_then(|l| u32::try_from(l).ok())
                    .unwrap_or_default(),
                id: c.id.unwrap_or_default(),
                candidate: c.candidate,
            };
            return self.relay(conn, app, id, msg);
        }
        let Some(cn) = self.conns.get(&conn) else {
            return;
        };
        let Some(sid) = cn.publishes.get(&id).or_else(|| cn.plays.get(&id)).copied() else {
            return self.error(conn, SignalError::NoPeerAssociatedBefore, Some(&id));
        };
        if c.candidate.trim().is_empty() {
            return;
        }
        if self.sessions.get(&sid).is_some_and(|s| s.media_known) {
            self.media(MediaCmd::RemoteCandidate {
                session: sid,
                candidate: c.candidate,
            });
        } else {
            debug!(%sid, "candidate before the publisher's offer dropped");
        }
    }

    fn toggle(&mut self, conn: ConnId, id: String, t: TrackToggle, video: bool, audio: bool) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let sid = t
            .track_id
            .as_ref()
            .and_then(|tr| c.plays.get(tr))
            .or_else(|| c.plays.get(&id))
            .copied();
        let Some(sid) = sid else {
            trace!(?conn, %id, "track toggle with nothing to forward");
            return;
        };
        let enabled = t.enabled.unwrap_or(true);
        self.media(MediaCmd::SetForwarding {
            session: sid,
            video: video.then_some(enabled),
            audio: audio.then_some(enabled),
        });
    }

    fn force_quality(&mut self, conn: ConnId, id: String, q: ForceStreamQuality) {
        let Some(sid) = self
            .conns
            .get(&conn)
            .and_then(|c| c.plays.get(&id))
            .copied()
        else {
            trace!(?conn, %id, "forceStreamQuality for a stream not played");
            return;
        };
        let height = q
            .stream_height
            .map_or(0, |h| u32::try_from(h.max(0)).unwrap_or(u32::MAX));
        self.media(MediaCmd::ForceQuality {
            session: sid,
            height,
        });
        self.send(
            conn,
            ServerMessage::Notification(Notification::ResolutionChangeInfo {
                stream_id: id,
                stream_height: height,
            }),
        );
    }

    fn stream_info(&mut self, conn: ConnId, app: &str, id: String) {
        let Some(s) = self
            .publishers
            .get(&key(app, &id))
            .and_then(|sid| self.sessions.get(sid))
        else {
            return self.error(conn, SignalError::NoStreamExist, Some(&id));
        };
        let st = s.stats.clone().unwrap_or_default();
        self.send(
            conn,
            ServerMessage::StreamInformation {
                stream_id: id,
                stream_info: vec![StreamInfo {
                    stream_width: st.width,
                    stream_height: st.height,
                    video_bitrate: st.video_bitrate,
                    audio_bitrate: st.audio_bitrate,
                    video_codec: st.video_codec,
                }],
            },
        );
    }

    fn track_list(&mut self, conn: ConnId, app: &str, id: String) {
        let k = key(app, &id);
        let tracks = self.room_streams(app, &id, false);
        if tracks.is_empty() && !self.rooms.contains_key(&k) && !self.publishers.contains_key(&k) {
            return self.error(conn, SignalError::NoStreamExist, Some(&id));
        }
        self.send(
            conn,
            ServerMessage::TrackList {
                stream_id: id,
                track_list: tracks,
            },
        );
    }

    fn update_meta(&mut self, conn: ConnId, app: &str, id: String, u: UpdateMetaData) {
        let k = key(app, &id);
        let publisher = self.publishers.get(&k).copied();
        if let Some(Role::Publish(p)) = publisher
            .and_then(|sid| self.sessions.get_mut(&sid))
            .map(|s| &mut s.role)
        {
            p.meta = u.meta_data;
            return;
        }
        let mut found = false;
        for room in self.rooms.values_mut() {
            if let Some(m) = room.members.get_mut(&id) {
                if m.conn == conn {
                    m.meta = u.meta_data.clone();
                    found = true;
                }
            }
        }
        if !found {
            self.error(conn, SignalError::NoStreamExist, Some(&id));
        }
    }

    fn broadcast_object(&mut self, conn: ConnId, app: &str, id: String) {
        let k = key(app, &id);
        let subtracks = self.room_streams(app, &id, false);
        let live_subtrack = !self.room_streams(app, &id, true).is_empty();
        let mut b = Map::new();
        b.insert("streamId".into(), json!(id));
        let publisher = self
            .publishers
            .get(&k)
            .and_then(|sid| self.sessions.get(sid));
        match publisher {
            Some(Session {
                role: Role::Publish(p),
                ..
            }) => {
                let status = if p.live { "broadcasting" } else { "preparing" };
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
                if let Some(m) = &p.main_track {
                    b.insert("mainTrackStreamId".into(), json!(m));
                }
                b.insert("webRTCViewerCount".into(), json!(p.players.len()));
            }
            _ if !subtracks.is_empty() || self.rooms.contains_key(&k) => {
                let status = if live_subtrack {
                    "broadcasting"
                } else {
                    "finished"
                };
                b.insert("status".into(), json!(status));
                b.insert("webRTCViewerCount".into(), json!(0));
            }
            _ => return self.error(conn, SignalError::NoStreamExist, Some(&id)),
        }
        b.insert("subTrackStreamIds".into(), json!(subtracks));
        b.insert("type".into(), json!("liveStream"));
        b.insert("publishType".into(), json!("WebRTC"));
        self.send(
            conn,
            ServerMessage::Notification(Notification::BroadcastObject {
                stream_id: id,
                broadcast: Value::Object(b).to_string(),
            }),
        );
    }

    fn bitrate_measurement(&mut self, player: SessionId, publisher: SessionId) {
        let Some(ps) = self.sessions.get(&player) else {
            return;
        };
        let pub_stats = self.sessions.get(&publisher).and_then(|s| s.stats.as_ref());
        let (video, audio) = match (pub_stats, &ps.stats) {
            (Some(p), _) => (p.video_bitrate, p.audio_bitrate),
            (None, Some(s)) => (s.video_bitrate, s.audio_bitrate),
            (None, None) => return,
        };
        let target = match &ps.stats {
            Some(s) if s.estimated_bitrate > 0 => s.estimated_bitrate,
            _ => video,
        };
        let msg = ServerMessage::Notification(Notification::BitrateMeasurement {
            stream_id: ps.stream.clone(),
            target_bitrate: target,
            video_bitrate: video,
            audio_bitrate: audio,
        });
        let conn = ps.conn;
        self.send(conn, msg);
    }

    /// Ends a session: media, owner, players, indexes, timers.
    fn end_session(&mut self, sid: SessionId, end: End) {
        let Some(s) = self.sessions.remove(&sid) else {
            return;
        };
        if let Some(at) = s.deadline {
            self.timers.remove(&(at, sid));
        }
        if end.close_media && s.media_known {
            self.media(MediaCmd::Close { session: sid });
        }
        match s.role {
            Role::Publish(p) => {
                if let Some(c) = self.conns.get_mut(&s.conn) {
                    if c.publishes.get(&s.stream) == Some(&sid) {
                        c.publishes.remove(&s.stream);
                    }
                }
                let k = key(&s.app, &s.stream);
                if self.publishers.get(&k) == Some(&sid) {
                    self.publishers.remove(&k);
                }
                if let Some(e) = end.error {
                    self.error(s.conn, e, Some(&s.stream));
                }
                if end.finished {
                    self.send(
                        s.conn,
                        ServerMessage::Notification(Notification::PublishFinished {
                            stream_id: s.stream.clone(),
                            subscriber_id: s.subscriber_id.clone(),
                        }),
                    );
                }
                let had_players = !p.players.is_empty();
                for player in p.players {
                    self.end_session(player, End::STOP);
                }
                if had_players {
                    self.access.on_viewer_count(&s.app, &s.stream, 0);
                }
                if p.live {
                    self.access.on_publish_finished(&s.app, &s.stream);
                }
            }
            Role::Play(p) => {
                if let Some(c) = self.conns.get_mut(&s.conn) {
                    if c.plays.get(&s.stream) == Some(&sid) {
                        c.plays.remove(&s.stream);
                    }
                }
                if let Some(Role::Publish(ps)) =
                    self.sessions.get_mut(&p.publisher).map(|s| &mut s.role)
                {
                    ps.players.remove(&sid);
                    self.access
                        .on_viewer_count(&s.app, &s.stream, ps.players.len());
                }
                if let Some(e) = end.error {
                    self.error(s.conn, e, Some(&s.stream));
                }
                if end.finished {
                    self.send(
                        s.conn,
                        ServerMessage::Notification(Notification::PlayFinished {
                            stream_id: s.stream,
                            subscriber_id: s.subscriber_id,
                        }),
                    );
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Peer to peer.

    fn is_p2p_member(&self, conn: ConnId, app: &str, id: &str) -> bool {
        self.p2p
            .get(&key(app, id))
            .is_some_and(|peers| peers.contains(&conn))
    }

    fn join(&mut self, conn: ConnId, app: &str, id: String, _j: Join) {
        let k = key(app, &id);
        let peers = self.p2p.get(&k).cloned().unwrap_or_default();
        if peers.contains(&conn) {
            return self.send(
                conn,
                ServerMessage::Notification(Notification::Joined { stream_id: id }),
            );
        }
        if peers.len() >= 2 {
            return self.error(conn, SignalError::NoSpaceForNewPeer, Some(&id));
        }
        self.p2p.entry(k).or_default().push(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.p2p.insert(id.clone());
        }
        self.send(
            conn,
            ServerMessage::Notification(Notification::Joined {
                stream_id: id.clone(),
            }),
        );
        if let Some(first) = peers.first() {
            self.send(
                *first,
                ServerMessage::Start {
                    stream_id: id,
                    subscriber_id: None,
                },
            );
        }
    }

    fn leave(&mut self, conn: ConnId, app: &str, id: String) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.p2p.remove(&id);
        }
        self.p2p_remove(conn, &key(app, &id));
        self.send(
            conn,
            ServerMessage::Notification(Notification::Leaved { stream_id: id }),
        );
    }

    /// Removes `conn` from a p2p group and tells the other peer `stop`.
    fn p2p_remove(&mut self, conn: ConnId, k: &Key) {
        let Some(peers) = self.p2p.get_mut(k) else {
            return;
        };
        if !peers.contains(&conn) {
            return;
        }
        peers.retain(|c| *c != conn);
        let others = peers.clone();
        if others.is_empty() {
            self.p2p.remove(k);
        }
        for other in others {
            self.send(
                other,
                ServerMessage::Stop {
                    stream_id: k.1.clone(),
                },
            );
        }
    }

    fn relay(&mut self, conn: ConnId, app: &str, id: String, msg: ServerMessage) {
        let partner = self
            .p2p
            .get(&key(app, &id))
            .and_then(|peers| peers.iter().find(|c| **c != conn).copied());
        match partner {
            Some(p) => self.send(p, msg),
            None => self.error(conn, SignalError::NoPeerAssociatedBefore, Some(&id)),
        }
    }

    fn peer_message(&mut self, conn: ConnId, app: &str, id: String, p: PeerMessage) {
        let msg = ServerMessage::PeerMessageCommand {
            stream_id: id.clone(),
            definition: p.definition,
            data: p.data,
        };
        if self.is_p2p_member(conn, app, &id) {
            self.relay(conn, app, id, msg);
        } else {
            self.error(conn, SignalError::NoPeerAssociatedBefore, Some(&id));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Conference.

    /// The connection holding `id` as a legacy room member in `app`, if any.
    fn member_owner(&self, app: &str, id: &str) -> Option<ConnId> {
        self.rooms
            .range(key(app, "")..)
            .take_while(|((a, _), _)| a == app)
            .find_map(|(_, room)| room.members.get(id).map(|m| m.conn))
    }

    /// Streams being published in room `room` of `app` (`mainTrack` = room, or legacy members),
    /// sorted; only live ones if `live_only`.
    fn room_streams(&self, app: &str, room: &str, live_only: bool) -> Vec<String> {
        let members = self.rooms.get(&key(app, room));
        self.publishers
            .range(key(app, "")..)
            .take_while(|((a, _), _)| a == app)
            .filter_map(|((_, id), sid)| {
                let Some(Session {
                    role: Role::Publish(p),
                    ..
                }) = self.sessions.get(sid)
                else {
                    return None;
                };
                let in_room = p.main_track.as_deref() == Some(room)
                    || members.is_some_and(|r| r.members.contains_key(id));
                (in_room && (p.live || !live_only)).then(|| id.clone())
            })
            .collect()
    }

    fn stream_list(&self, app: &str, room: &str, ids: &[String]) -> Vec<StreamListEntry> {
        let members = self.rooms.get(&key(app, room));
        ids.iter()
            .map(|id| {
                let member = members.and_then(|r| r.members.get(id));
                let publish = self
                    .publishers
                    .get(&key(app, id))
                    .and_then(|sid| self.sessions.get(sid))
                    .and_then(|s| match &s.role {
                        Role::Publish(p) => Some(p),
                        Role::Play(_) => None,
                    });
                StreamListEntry {
                    stream_id: id.clone(),
                    stream_name: publish
                        .and_then(|p| p.name.clone())
                        .or_else(|| member.and_then(|m| m.name.clone())),
                    meta_data: publish
                        .and_then(|p| p.meta.clone())
                        .or_else(|| member.and_then(|m| m.meta.clone())),
                }
            })
            .collect()
    }

    fn room_of(&mut self, conn: ConnId, r: Option<String>, id: Option<&str>) -> Option<String> {
        match r {
            None => {
                let id = id.map(str::to_string);
                self.send(
                    conn,
                    ServerMessage::Error(ErrorMessage::new(SignalError::NoRoomSpecified, id)),
                );
                None
            }
            Some(room) if !is_valid_stream_id(&room) => {
                self.error(conn, SignalError::InvalidStreamName, Some(&room));
                None
            }
            Some(room) => Some(room),
        }
    }

    fn generate_id(&mut self, app: &str) -> String {
        loop {
            let id: String = (0..GENERATED_ID_LEN)
                .map(|_| {
                    let i = self.rng.next_u32() as usize % ALPHANUMERIC.len();
                    char::from(ALPHANUMERIC.get(i).copied().unwrap_or(b'x'))
                })
                .collect();
            if !self.publishers.contains_key(&key(app, &id))
                && self.member_owner(app, &id).is_none()
            {
                return id;
            }
        }
    }

    fn join_room(&mut self, conn: ConnId, app: &str, j: JoinRoom) {
        let room_name = j.room.clone().or(j.main_track.clone());
        let Some(room) = self.room_of(conn, room_name, j.stream_id.as_deref()) else {
            return;
        };
        let id = match j.stream_id {
            Some(id) if !is_valid_stream_id(&id) => {
                return self.error(conn, SignalError::InvalidStreamName, Some(&id));
            }
            Some(id) => id,
            None => self.generate_id(app),
        };
        // The same member id from another connection (a reconnect, or a page that joins with
        // one adaptor and publishes with another) takes the membership over.
        let previous = self
            .rooms
            .get(&key(app, &room))
            .and_then(|r| r.members.get(&id))
            .map(|m| m.conn)
            .filter(|c| *c != conn);
        if let Some(c) = previous.and_then(|c| self.conns.get_mut(&c)) {
            c.rooms.remove(&(room.clone(), id.clone()));
        }
        self.rooms
            .entry(key(app, &room))
            .or_default()
            .members
            .insert(
                id.clone(),
                Member {
                    conn,
                    name: j.stream_name,
                    meta: j.metadata,
                },
            );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.insert((room.clone(), id.clone()));
        }
        let streams: Vec<String> = self
            .room_streams(app, &room, true)
            .into_iter()
            .filter(|s| *s != id)
            .collect();
        let stream_list = self.stream_list(app, &room, &streams);
        self.send(
            conn,
            ServerMessage::Notification(Notification::JoinedTheRoom {
                stream_id: id,
                streams,
                stream_list,
                attr_room_name: room.clone(),
                room,
                max_track_count: self.config.max_track_count,
            }),
        );
    }

    fn room_info(&mut self, conn: ConnId, app: &str, r: RoomRef) {
        let room_name = r.room.clone().or(r.main_track.clone());
        let Some(room) = self.room_of(conn, room_name, r.stream_id.as_deref()) else {
            return;
        };
        let streams: Vec<String> = self
            .room_streams(app, &room, true)
            .into_iter()
            .filter(|s| Some(s) != r.stream_id.as_ref())
            .collect();
        if streams.is_empty() {
            let mut m = ErrorMessage::new(SignalError::NoActiveStreamsInRoom, r.stream_id);
            m.room = Some(room);
            return self.send(conn, ServerMessage::Error(m));
        }
        let stream_list = self.stream_list(app, &room, &streams);
        self.send(
            conn,
            ServerMessage::RoomInformation {
                streams,
                stream_list,
                attr_room_name: room.clone(),
                room,
            },
        );
    }

    fn leave_room(&mut self, conn: ConnId, app: &str, r: RoomRef) {
        let room_name = r.room.clone().or(r.main_track.clone());
        let Some(room) = self.room_of(conn, room_name, r.stream_id.as_deref()) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mine: Vec<String> = c
            .rooms
            .iter()
            .filter(|(rm, _)| *rm == room)
            .map(|(_, id)| id.clone())
            .collect();
        for id in &mine {
            c.rooms.remove(&(room.clone(), id.clone()));
        }
        let mut to_stop: BTreeSet<SessionId> = mine
            .iter()
            .filter_map(|id| c.publishes.get(id).copied())
            .collect();
        for sid in c.publishes.values() {
            if let Some(Session {
                role: Role::Publish(p),
                ..
            }) = self.sessions.get(sid)
            {
                if p.main_track.as_deref() == Some(room.as_str()) {
                    to_stop.insert(*sid);
                }
            }
        }
        let k = key(app, &room);
        for id in &mine {
            self.room_remove_member(&k, id);
        }
        for sid in to_stop {
            self.end_session(sid, End::STOP);
        }
        self.send(
            conn,
            ServerMessage::Notification(Notification::LeavedFromRoom {
                attr_room_name: room.clone(),
                room,
            }),
        );
    }

    fn room_remove_member(&mut self, k: &Key, id: &str) {
        if let Some(room) = self.rooms.get_mut(k) {
            room.members.remove(id);
            if room.members.is_empty() {
                self.rooms.remove(k);
            }
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

    fn media(&mut self, cmd: MediaCmd) {
        self.outputs.push_back(Output::Media(cmd));
    }

    /// Checks the internal indexes against each other; `Err` describes the first violation.
    /// For tests and fuzzing.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut timers = BTreeSet::new();
        for (sid, s) in &self.sessions {
            let c = self
                .conns
                .get(&s.conn)
                .ok_or(format!("{sid} owned by closed {:?}", s.conn))?;
            if c.app != s.app {
                return Err(format!("{sid} app differs from its connection's"));
            }
            if let Some(at) = s.deadline {
                timers.insert((at, *sid));
            }
            match &s.role {
                Role::Publish(p) => {
                    if c.publishes.get(&s.stream) != Some(sid) {
                        return Err(format!("{sid} missing from its conn's publishes"));
                    }
                    if self.publishers.get(&key(&s.app, &s.stream)) != Some(sid) {
                        return Err(format!("{sid} is not the publisher of {}", s.stream));
                    }
                    if p.live && s.deadline.is_some() {
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
            }
        }
        if timers != self.timers {
            return Err("timer index differs from session deadlines".into());
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
        for ((app, room), r) in &self.rooms {
            if r.members.is_empty() {
                return Err(format!("empty room {room} kept"));
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

/// The `streamId` of a command that needs one.
fn stream_id_of(msg: &ClientMessage) -> Option<&str> {
    let id = match msg {
        ClientMessage::Publish(p) => &p.stream_id,
        ClientMessage::Play(p) => &p.stream_id,
        ClientMessage::TakeConfiguration(c) => &c.stream_id,
        ClientMessage::TakeCandidate(c) => &c.stream_id,
        ClientMessage::Stop(r)
        | ClientMessage::Leave(r)
        | ClientMessage::GetStreamInfo(r)
        | ClientMessage::GetBroadcastObject(r)
        | ClientMessage::GetSubscriberCount(r) => &r.stream_id,
        ClientMessage::Join(j) => &j.stream_id,
        ClientMessage::GetTrackList(t) => &t.stream_id,
        ClientMessage::EnableTrack(t)
        | ClientMessage::ToggleVideo(t)
        | ClientMessage::ToggleAudio(t) => &t.stream_id,
        ClientMessage::ForceStreamQuality(q) => &q.stream_id,
        ClientMessage::PeerMessageCommand(p) => &p.stream_id,
        ClientMessage::UpdateStreamMetaData(u) => &u.stream_id,
        ClientMessage::JoinRoom(j) => &j.stream_id,
        ClientMessage::LeaveFromRoom(r) | ClientMessage::GetRoomInfo(r) => &r.stream_id,
        ClientMessage::Ping
        | ClientMessage::GetIceServerConfig
        | ClientMessage::Unsupported { .. } => return None,
    };
    id.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::Harness;
    use crate::media::LocalCandidate;
    use crate::media::OfferedTrack;
    use serde_json::json;

    const APP: &str = "WebRTCAppEE";

    fn harness() -> Harness {
        Harness::new(Config::default())
    }

    /// The JSON of every message sent to `conn`.
    fn sent(outs: &[Output], conn: u64) -> Vec<Value> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Send(c, m) if c.0 == conn => serde_json::from_str(&m.to_json()).ok(),
                _ => None,
            })
            .collect()
    }

    fn cmds(outs: &[Output]) -> Vec<MediaCmd> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Media(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn send(h: &mut Harness, conn: u64, v: Value) -> Vec<Output> {
        h.text(conn, &v.to_string())
    }

    /// The one message sent to `conn`.
    fn one(outs: &[Output], conn: u64) -> Value {
        let s = sent(outs, conn);
        assert_eq!(s.len(), 1, "expected one message to {conn}: {outs:?}");
        s.into_iter().next().unwrap()
    }

    fn error_of(outs: &[Output], conn: u64) -> Value {
        let m = one(outs, conn);
        assert_eq!(m["command"], "error", "{m}");
        m
    }

    fn started(outs: &[Output]) -> SessionId {
        cmds(outs)
            .into_iter()
            .find_map(|c| match c {
                MediaCmd::StartPublish { session, .. } | MediaCmd::StartPlay { session, .. } => {
                    Some(session)
                }
                _ => None,
            })
            .expect("a session started")
    }

    /// Publishes `id` from `conn` until media flows; returns the session.
    fn live_publisher(h: &mut Harness, conn: u64, id: &str, main_track: &str) -> SessionId {
        let outs = send(
            h,
            conn,
            json!({"command":"publish","streamId":id,"mainTrack":main_track,"video":true,"audio":true}),
        );
        assert_eq!(one(&outs, conn), json!({"command":"start","streamId":id}));
        let outs = send(
            h,
            conn,
            json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"OFFER"}),
        );
        let s = started(&outs);
        h.media_event(MediaEvent::MediaStarted { session: s });
        s
    }

    fn player(h: &mut Harness, conn: u64, id: &str) -> SessionId {
        let outs = send(h, conn, json!({"command":"play","streamId":id}));
        started(&outs)
    }

    #[test]
    fn ping_ice_servers_and_parse_errors() {
        let mut h = Harness::new(Config {
            ice_servers: IceServers {
                stun_server_uri: "stun:127.0.0.1:3478".into(),
                turn_server_username: None,
                turn_server_credential: None,
            },
            ..Config::default()
        });
        h.open(1, APP);
        assert_eq!(
            one(&h.text(1, r#"{"command":"ping"}"#), 1),
            json!({"command":"pong"})
        );
        assert_eq!(
            one(&h.text(1, r#"{"command":"getIceServerConfig"}"#), 1),
            json!({"command":"iceServerConfig","stunServerUri":"stun:127.0.0.1:3478"})
        );
        let e = error_of(&h.text(1, "{nope"), 1);
        assert_eq!(e["definition"], "invalid_message");
        assert!(e["information"].as_str().unwrap().contains("invalid JSON"));
        let e = error_of(&h.text(1, r#"{"command":"fly"}"#), 1);
        assert_eq!(e["definition"], "unsupported_command");
        let e = error_of(
            &h.text(1, r#"{"command":"getSubtracks","streamId":"r"}"#),
            1,
        );
        assert_eq!(e["definition"], "unsupported_command");
        assert_eq!(e["streamId"], "r");
        // Still open.
        assert_eq!(
            one(&h.text(1, r#"{"command":"ping"}"#), 1),
            json!({"command":"pong"})
        );
        h.finish();
    }

    #[test]
    fn stream_id_checks() {
        let mut h = harness();
        h.open(1, APP);
        for cmd in [
            "publish",
            "play",
            "stop",
            "getStreamInfo",
            "join",
            "getBroadcastObject",
        ] {
            let e = error_of(&send(&mut h, 1, json!({"command":cmd})), 1);
            assert_eq!(e["definition"], "noStreamNameSpecified", "{cmd}");
            let e = error_of(&send(&mut h, 1, json!({"command":cmd,"streamId":""})), 1);
            assert_eq!(e["definition"], "noStreamNameSpecified", "{cmd}");
            let e = error_of(&send(&mut h, 1, json!({"command":cmd,"streamId":"a b"})), 1);
            assert_eq!(e["definition"], "invalidStreamName", "{cmd}");
            assert_eq!(e["streamId"], "a b");
        }
        h.finish();
    }

    #[test]
    fn publish_flow_and_republish_after_stop() {
        let mut h = harness();
        h.open(1, APP);
        let outs = send(
            &mut h,
            1,
            json!({"command":"publish","streamId":"s1","subscriberId":"u"}),
        );
        assert_eq!(
            one(&outs, 1),
            json!({"command":"start","streamId":"s1","subscriberId":"u"})
        );
        let outs = send(
            &mut h,
            1,
            json!({"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"OFFER"}),
        );
        let s = started(&outs);
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::StartPublish {
                session: s,
                stream: "s1".into(),
                offer: "OFFER".into()
            }]
        );
        let outs = h.media_event(MediaEvent::Answer {
            session: s,
            sdp: "ANSWER".into(),
        });
        assert_eq!(
            one(&outs, 1),
            json!({"command":"takeConfiguration","streamId":"s1","type":"answer","sdp":"ANSWER"})
        );
        let outs = h.media_event(MediaEvent::Candidate {
            session: s,
            candidate: LocalCandidate {
                mline_index: 1,
                mid: "1".into(),
                candidate: "candidate:x".into(),
            },
        });
        assert_eq!(
            one(&outs, 1),
            json!({"command":"takeCandidate","streamId":"s1","label":1,"id":"1","candidate":"candidate:x"})
        );
        let outs = send(
            &mut h,
            1,
            json!({"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":"candidate:c"}),
        );
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::RemoteCandidate {
                session: s,
                candidate: "candidate:c".into()
            }]
        );
        let outs = send(
            &mut h,
            1,
            json!({"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":""}),
        );
        assert!(outs.is_empty(), "end-of-candidates dropped");
        let outs = h.media_event(MediaEvent::MediaStarted { session: s });
        assert_eq!(
            one(&outs, 1),
            json!({"command":"notification","definition":"publish_started","streamId":"s1","subscriberId":"u"})
        );
        assert_eq!(h.sig.poll_timeout(), None, "start timeout cancelled");
        let e = error_of(
            &send(&mut h, 1, json!({"command":"publish","streamId":"s1"})),
            1,
        );
        assert_eq!(e["definition"], "already_publishing");
        let outs = send(&mut h, 1, json!({"command":"stop","streamId":"s1"}));
        assert_eq!(cmds(&outs), vec![MediaCmd::Close { session: s }]);
        assert_eq!(
            one(&outs, 1),
            json!({"command":"notification","definition":"publish_finished","streamId":"s1","subscriberId":"u"})
        );
        // The SDK watchdog: stop, then publish again.
        let outs = send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
        assert_eq!(one(&outs, 1)["command"], "start");
        h.finish();
    }

    #[derive(Debug)]
    struct Recorder {
        publish: Result<(), SignalError>,
        play: Result<(), SignalError>,
        viewers: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl AccessPolicy for Recorder {
        fn check_publish(&mut self, _: Instant, r: &PublishRequest<'_>) -> Result<(), SignalError> {
            assert_eq!(r.app, APP);
            self.publish
        }
        fn check_play(&mut self, _: Instant, r: &PlayRequest<'_>) -> Result<(), SignalError> {
            self.viewers.set(r.viewers);
            self.play
        }
    }

    #[test]
    fn publish_errors_in_order() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, APP);
        live_publisher(&mut h, 1, "s1", "");
        let e = error_of(
            &send(&mut h, 2, json!({"command":"publish","streamId":"s1"})),
            2,
        );
        assert_eq!(
            e,
            json!({"command":"error","definition":"streamIdInUse","streamId":"s1"})
        );
        h.overload(true);
        let e = error_of(
            &send(&mut h, 2, json!({"command":"publish","streamId":"s2"})),
            2,
        );
        assert_eq!(e["definition"], "highResourceUsage");
        let e = error_of(
            &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
            2,
        );
        assert_eq!(e["definition"], "highResourceUsage");
        h.overload(false);
        // The policy runs after the overload check and before the in-use checks.
        h.sig.set_access_policy(Box::new(Recorder {
            publish: Err(SignalError::UnauthorizedAccess),
            play: Ok(()),
            viewers: Default::default(),
        }));
        let e = error_of(
            &send(&mut h, 2, json!({"command":"publish","streamId":"s1"})),
            2,
        );
        assert_eq!(e["definition"], "unauthorized_access");
        h.finish();
    }

    #[test]
    fn publish_timeout_tears_down() {
        let mut h = harness();
        h.open(1, APP);
        let t0 = h.now;
        send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
        assert_eq!(h.sig.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        let s = started(&send(
            &mut h,
            1,
            json!({"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"O"}),
        ));
        assert!(h.advance(Duration::from_millis(9_999)).is_empty());
        let outs = h.advance(Duration::from_millis(1));
        assert_eq!(
            error_of(&outs, 1),
            json!({"command":"error","definition":"publishTimeoutError","streamId":"s1"})
        );
        assert_eq!(cmds(&outs), vec![MediaCmd::Close { session: s }]);
        assert_eq!(h.sig.publisher_count(), 0);
        // Without an offer, the media layer never heard of it: no Close.
        send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
        let outs = h.advance(Duration::from_secs(10));
        assert_eq!(error_of(&outs, 1)["definition"], "publishTimeoutError");
        assert!(cmds(&outs).is_empty());
        h.finish();
    }

    #[test]
    fn play_flow() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, APP);
        let e = error_of(
            &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
            2,
        );
        assert_eq!(
            e,
            json!({"command":"error","definition":"no_stream_exist","streamId":"s1","error_code":"404"})
        );
        let p = live_publisher(&mut h, 1, "s1", "");
        let outs = send(&mut h, 2, json!({"command":"play","streamId":"s1"}));
        let s = started(&outs);
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::StartPlay {
                session: s,
                stream: "s1".into(),
                publisher: p
            }]
        );
        let outs = h.media_event(MediaEvent::Offer {
            session: s,
            sdp: "SO".into(),
            tracks: vec![
                OfferedTrack {
                    mid: "0".into(),
                    kind: TrackKind::Audio,
                },
                OfferedTrack {
                    mid: "1".into(),
                    kind: TrackKind::Video,
                },
            ],
        });
        assert_eq!(
            one(&outs, 2),
            json!({"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"SO",
                   "idMapping":{"0":"ARDAMSas1","1":"ARDAMSvs1"}})
        );
        let outs = send(
            &mut h,
            2,
            json!({"command":"takeConfiguration","streamId":"s1","type":"answer","sdp":"A"}),
        );
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::RemoteAnswer {
                session: s,
                sdp: "A".into()
            }]
        );
        let outs = send(
            &mut h,
            2,
            json!({"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":"candidate:1"}),
        );
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::RemoteCandidate {
                session: s,
                candidate: "candidate:1".into()
            }]
        );
        let outs = h.media_event(MediaEvent::Connected { session: s });
        assert_eq!(
            one(&outs, 2),
            json!({"command":"notification","definition":"play_started","streamId":"s1"})
        );
        assert_eq!(cmds(&outs), vec![MediaCmd::RequestKeyframe { session: p }]);
        let outs = h.media_event(MediaEvent::KeyframeRequested { session: s });
        assert_eq!(cmds(&outs), vec![MediaCmd::RequestKeyframe { session: p }]);
        let e = error_of(
            &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
            2,
        );
        assert_eq!(e["definition"], "already_playing");
        let outs = send(
            &mut h,
            2,
            json!({"command":"getSubscriberCount","streamId":"s1"}),
        );
        assert_eq!(one(&outs, 2)["count"], 1);
        let outs = send(&mut h, 2, json!({"command":"stop","streamId":"s1"}));
        assert_eq!(cmds(&outs), vec![MediaCmd::Close { session: s }]);
        assert_eq!(
            one(&outs, 2),
            json!({"command":"notification","definition":"play_finished","streamId":"s1"})
        );
        h.finish();
    }

    #[test]
    fn play_policy_sees_viewers_and_replay_replaces_when_allowed() {
        let mut h = Harness::new(Config {
            play_once_per_session: false,
            ..Config::default()
        });
        let viewers = std::rc::Rc::new(std::cell::Cell::new(99));
        h.open(1, APP);
        h.open(2, APP);
        live_publisher(&mut h, 1, "s1", "");
        h.sig.set_access_policy(Box::new(Recorder {
            publish: Ok(()),
            play: Ok(()),
            viewers: viewers.clone(),
        }));
        let first = player(&mut h, 2, "s1");
        assert_eq!(viewers.get(), 0);
        let outs = send(&mut h, 2, json!({"command":"play","streamId":"s1"}));
        assert_eq!(viewers.get(), 1);
        let second = started(&outs);
        assert_eq!(
            cmds(&outs).first(),
            Some(&MediaCmd::Close { session: first })
        );
        assert_ne!(first, second);
        assert!(sent(&outs, 2).is_empty());
        h.sig.set_access_policy(Box::new(Recorder {
            publish: Ok(()),
            play: Err(SignalError::ViewerLimitReached),
            viewers,
        }));
        let e = error_of(
            &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
            2,
        );
        assert_eq!(e["definition"], "viewerLimitReached");
        h.finish();
    }

    #[test]
    fn publisher_end_finishes_players() {
        let mut h = harness();
        for c in 1..=3 {
            h.open(c, APP);
        }
        let p = live_publisher(&mut h, 1, "s1", "");
        let a = player(&mut h, 2, "s1");
        let b = player(&mut h, 3, "s1");
        let outs = send(&mut h, 1, json!({"command":"stop","streamId":"s1"}));
        assert_eq!(
            cmds(&outs),
            vec![
                MediaCmd::Close { session: p },
                MediaCmd::Close { session: a },
                MediaCmd::Close { session: b }
            ]
        );
        for c in [2, 3] {
            assert_eq!(one(&outs, c)["definition"], "play_finished");
        }
        // Connection close: the players hear of it, the closed one hears nothing.
        let p = live_publisher(&mut h, 1, "s1", "");
        let a = player(&mut h, 2, "s1");
        let outs = h.close(1);
        assert_eq!(
            cmds(&outs),
            vec![
                MediaCmd::Close { session: p },
                MediaCmd::Close { session: a }
            ]
        );
        assert_eq!(one(&outs, 2)["definition"], "play_finished");
        assert!(sent(&outs, 1).is_empty());
        h.finish();
    }

    #[test]
    fn media_failures() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, APP);
        let p = live_publisher(&mut h, 1, "s1", "");
        let a = player(&mut h, 2, "s1");
        let outs = h.media_event(MediaEvent::Failed {
            session: p,
            reason: "dtls".into(),
            remote_description: true,
        });
        let to1 = sent(&outs, 1);
        assert_eq!(
            to1,
            vec![
                json!({"command":"error","definition":"notSetRemoteDescription","streamId":"s1"}),
                json!({"command":"notification","definition":"publish_finished","streamId":"s1"})
            ]
        );
        assert_eq!(one(&outs, 2)["definition"], "play_finished");
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::Close { session: a }],
            "no Close for p"
        );
        let p = live_publisher(&mut h, 1, "s1", "");
        let a = player(&mut h, 2, "s1");
        let outs = h.media_event(MediaEvent::Failed {
            session: a,
            reason: "ice".into(),
            remote_description: false,
        });
        assert_eq!(
            sent(&outs, 2),
            vec![
                json!({"command":"error","definition":"server_error_check_logs","streamId":"s1"}),
                json!({"command":"notification","definition":"play_finished","streamId":"s1"})
            ]
        );
        assert!(cmds(&outs).is_empty());
        let outs = h.media_event(MediaEvent::Closed { session: p });
        assert_eq!(one(&outs, 1)["definition"], "publish_finished");
        assert!(cmds(&outs).is_empty());
        // Events for sessions that are gone are ignored.
        assert!(h
            .media_event(MediaEvent::Connected { session: a })
            .is_empty());
        h.finish();
    }

    #[test]
    fn stream_info_and_bitrate_measurement() {
        let mut h = Harness::new(Config {
            bitrate_interval: Duration::from_secs(5),
            ..Config::default()
        });
        h.open(1, APP);
        h.open(2, APP);
        let e = error_of(
            &send(
                &mut h,
                1,
                json!({"command":"getStreamInfo","streamId":"s1"}),
            ),
            1,
        );
        assert_eq!(e["definition"], "no_stream_exist");
        let p = live_publisher(&mut h, 1, "s1", "");
        h.media_event(MediaEvent::Stats {
            session: p,
            stats: SessionStats {
                width: 640,
                height: 360,
                video_bitrate: 900_000,
                audio_bitrate: 48_000,
                video_codec: "VP8".into(),
                ..SessionStats::default()
            },
        });
        let outs = send(
            &mut h,
            2,
            json!({"command":"getStreamInfo","streamId":"s1"}),
        );
        assert_eq!(
            one(&outs, 2),
            json!({"command":"streamInformation","streamId":"s1","streamInfo":[
                {"streamWidth":640,"streamHeight":360,"videoBitrate":900_000,"audioBitrate":48_000,"videoCodec":"VP8"}]})
        );
        let a = player(&mut h, 2, "s1");
        h.media_event(MediaEvent::Connected { session: a });
        let outs = h.advance(Duration::from_secs(5));
        assert_eq!(
            one(&outs, 2),
            json!({"command":"notification","definition":"bitrateMeasurement","streamId":"s1",
                   "targetBitrate":900_000,"videoBitrate":900_000,"audioBitrate":48_000})
        );
        h.media_event(MediaEvent::Stats {
            session: a,
            stats: SessionStats {
                estimated_bitrate: 300_000,
                ..SessionStats::default()
            },
        });
        let outs = h.advance(Duration::from_secs(5));
        assert_eq!(one(&outs, 2)["targetBitrate"], 300_000);
        h.finish();
    }

    #[test]
    fn track_toggles_and_quality() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, APP);
        live_publisher(&mut h, 1, "s1", "");
        let a = player(&mut h, 2, "s1");
        let outs = send(
            &mut h,
            2,
            json!({"command":"toggleVideo","streamId":"s1","enabled":false}),
        );
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::SetForwarding {
                session: a,
                video: Some(false),
                audio: None
            }]
        );
        let outs = send(
            &mut h,
            2,
            json!({"command":"toggleAudio","streamId":"s1","enabled":true}),
        );
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::SetForwarding {
                session: a,
                video: None,
                audio: Some(true)
            }]
        );
        let outs = send(
            &mut h,
            2,
            json!({"command":"enableTrack","streamId":"room","trackId":"s1","enabled":false}),
        );
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::SetForwarding {
                session: a,
                video: Some(false),
                audio: Some(false)
            }]
        );
        // The publisher toggling its own stream: accepted, nothing to forward.
        let outs = send(
            &mut h,
            1,
            json!({"command":"toggleVideo","streamId":"s1","enabled":false}),
        );
        assert!(outs.is_empty());
        let outs = send(
            &mut h,
            2,
            json!({"command":"forceStreamQuality","streamId":"s1","streamHeight":360}),
        );
        assert_eq!(
            cmds(&outs),
            vec![MediaCmd::ForceQuality {
                session: a,
                height: 360
            }]
        );
        assert_eq!(
            one(&outs, 2),
            json!({"command":"notification","definition":"resolutionChangeInfo","streamId":"s1","streamHeight":360})
        );
        h.finish();
    }

    #[test]
    fn peer_to_peer() {
        let mut h = harness();
        for c in 1..=3 {
            h.open(c, APP);
        }
        let join = json!({"command":"join","streamId":"p","multiPeer":false,"mode":"both"});
        let outs = send(&mut h, 1, join.clone());
        assert_eq!(
            one(&outs, 1),
            json!({"command":"notification","definition":"joined","streamId":"p"})
        );
        let e = error_of(
            &send(
                &mut h,
                1,
                json!({"command":"takeConfiguration","streamId":"p","type":"offer","sdp":"X"}),
            ),
            1,
        );
        assert_eq!(e["definition"], "no_peer_associated_before");
        let outs = send(&mut h, 2, join.clone());
        assert_eq!(one(&outs, 2)["definition"], "joined");
        assert_eq!(one(&outs, 1), json!({"command":"start","streamId":"p"}));
        let e = error_of(&send(&mut h, 3, join.clone()), 3);
        assert_eq!(
            e,
            json!({"command":"error","definition":"NoSpaceForNewPeer","streamId":"p"})
        );
        let offer = json!({"command":"takeConfiguration","streamId":"p","type":"offer","sdp":"X"});
        let outs = send(&mut h, 1, offer.clone());
        assert_eq!(one(&outs, 2), offer);
        let cand = json!({"command":"takeCandidate","streamId":"p","label":1,"id":"1","candidate":"candidate:z"});
        let outs = send(&mut h, 2, cand.clone());
        assert_eq!(one(&outs, 1), cand);
        let pm = json!({"command":"peerMessageCommand","streamId":"p","definition":"d","data":{"k":[1]}});
        let outs = send(&mut h, 2, pm.clone());
        assert_eq!(one(&outs, 1), pm);
        let e = error_of(&send(&mut h, 3, pm.clone()), 3);
        assert_eq!(e["definition"], "no_peer_associated_before");
        let outs = send(&mut h, 1, json!({"command":"leave","streamId":"p"}));
        assert_eq!(one(&outs, 2), json!({"command":"stop","streamId":"p"}));
        assert_eq!(
            one(&outs, 1),
            json!({"command":"notification","definition":"leaved","streamId":"p"})
        );
        let outs = send(&mut h, 3, join);
        assert_eq!(one(&outs, 3)["definition"], "joined");
        assert_eq!(one(&outs, 2)["command"], "start");
        let outs = h.close(3);
        assert_eq!(one(&outs, 2), json!({"command":"stop","streamId":"p"}));
        h.finish();
    }

    #[test]
    fn legacy_conference() {
        let mut h = Harness::new(Config {
            seed: 7,
            ..Config::default()
        });
        h.open(1, APP);
        h.open(2, APP);
        let e = error_of(&send(&mut h, 1, json!({"command":"joinRoom"})), 1);
        assert_eq!(e["definition"], "no_room_specified");
        let outs = send(
            &mut h,
            1,
            json!({"command":"joinRoom","room":"r1","mode":"legacy"}),
        );
        let j = one(&outs, 1);
        let gen = j["streamId"].as_str().unwrap().to_string();
        assert_eq!(gen.len(), 12);
        assert!(gen.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(
            j,
            json!({"command":"notification","definition":"joinedTheRoom","streamId":gen,"streams":[],
                   "streamList":[],"ATTR_ROOM_NAME":"r1","room":"r1","maxTrackCount":-1})
        );
        let e = error_of(
            &send(
                &mut h,
                1,
                json!({"command":"getRoomInfo","room":"r1","streamId":gen}),
            ),
            1,
        );
        assert_eq!(
            e,
            json!({"command":"error","definition":"no_active_streams_in_room","streamId":gen,"room":"r1"})
        );
        // The member publishes its id (legacy page: no mainTrack).
        live_publisher(&mut h, 1, &gen, "");
        let outs = send(
            &mut h,
            2,
            json!({"command":"joinRoom","room":"r1","streamId":"bob","streamName":"Bob","metadata":"m"}),
        );
        let j = one(&outs, 2);
        assert_eq!(j["streams"], json!([gen]));
        assert_eq!(j["streamList"], json!([{"streamId":gen}]));
        live_publisher(&mut h, 2, "bob", "");
        let outs = send(
            &mut h,
            1,
            json!({"command":"getRoomInfo","room":"r1","streamId":gen}),
        );
        assert_eq!(
            one(&outs, 1),
            json!({"command":"roomInformation","streams":["bob"],
                   "streamList":[{"streamId":"bob","streamName":"Bob","metaData":"m"}],
                   "ATTR_ROOM_NAME":"r1","room":"r1"})
        );
        let outs = send(
            &mut h,
            2,
            json!({"command":"leaveFromRoom","room":"r1","streamId":"bob"}),
        );
        assert_eq!(
            sent(&outs, 2),
            vec![
                json!({"command":"notification","definition":"publish_finished","streamId":"bob"}),
                json!({"command":"notification","definition":"leavedFromRoom","ATTR_ROOM_NAME":"r1","room":"r1"})
            ]
        );
        let e = error_of(
            &send(
                &mut h,
                1,
                json!({"command":"getRoomInfo","room":"r1","streamId":gen}),
            ),
            1,
        );
        assert_eq!(e["definition"], "no_active_streams_in_room");
        // Another connection joining with a held member id takes it over.
        h.open(3, APP);
        let outs = send(
            &mut h,
            3,
            json!({"command":"joinRoom","room":"r1","streamId":gen}),
        );
        assert_eq!(one(&outs, 3)["streamId"], gen.as_str());
        let outs = send(
            &mut h,
            2,
            json!({"command":"getRoomInfo","room":"r1","streamId":"x"}),
        );
        assert_eq!(
            one(&outs, 2)["streams"],
            json!([gen]),
            "published from conn 1, still counts"
        );
        h.close(3);
        let e = error_of(
            &send(
                &mut h,
                2,
                json!({"command":"getRoomInfo","room":"r1","streamId":"x"}),
            ),
            2,
        );
        assert_eq!(e["definition"], "no_active_streams_in_room");
        // Same seed, same generated id.
        let mut h2 = Harness::new(Config {
            seed: 7,
            ..Config::default()
        });
        h2.open(9, APP);
        let j2 = one(
            &send(&mut h2, 9, json!({"command":"joinRoom","room":"x"})),
            9,
        );
        assert_eq!(j2["streamId"], gen.as_str());
        h2.finish();
        h.finish();
    }

    #[test]
    fn main_track_conference_and_broadcast_objects() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, APP);
        let outs = send(
            &mut h,
            1,
            json!({"command":"publish","streamId":"alice","mainTrack":"room1","streamName":"Alice","metaData":"{\"mic\":true}"}),
        );
        assert_eq!(one(&outs, 1)["command"], "start");
        let s = started(&send(
            &mut h,
            1,
            json!({"command":"takeConfiguration","streamId":"alice","type":"offer","sdp":"O"}),
        ));
        let b = |h: &mut Harness, id: &str| -> Value {
            let m = one(
                &send(h, 2, json!({"command":"getBroadcastObject","streamId":id})),
                2,
            );
            assert_eq!(m["definition"], "broadcastObject");
            assert_eq!(m["streamId"], id);
            serde_json::from_str(m["broadcast"].as_str().unwrap()).unwrap()
        };
        assert_eq!(b(&mut h, "room1")["status"], "finished");
        assert_eq!(b(&mut h, "alice")["status"], "preparing");
        let outs = h.media_event(MediaEvent::MediaStarted { session: s });
        assert_eq!(
            one(&outs, 1),
            json!({"command":"notification","definition":"publish_started","streamId":"alice",
                   "ATTR_ROOM_NAME":"room1","room":"room1"})
        );
        let room = b(&mut h, "room1");
        assert_eq!(room["status"], "broadcasting");
        assert_eq!(room["subTrackStreamIds"], json!(["alice"]));
        let alice = b(&mut h, "alice");
        assert_eq!(alice["status"], "broadcasting");
        assert_eq!(alice["name"], "Alice");
        assert_eq!(alice["metaData"], "{\"mic\":true}");
        assert_eq!(alice["mainTrackStreamId"], "room1");
        assert_eq!(alice["webRTCViewerCount"], 0);
        send(
            &mut h,
            1,
            json!({"command":"updateStreamMetaData","streamId":"alice","metaData":"{\"mic\":false}"}),
        );
        assert_eq!(b(&mut h, "alice")["metaData"], "{\"mic\":false}");
        let outs = send(
            &mut h,
            2,
            json!({"command":"getTrackList","streamId":"room1"}),
        );
        assert_eq!(
            one(&outs, 2),
            json!({"command":"trackList","streamId":"room1","trackList":["alice"]})
        );
        let outs = send(
            &mut h,
            2,
            json!({"command":"getTrackList","streamId":"alice"}),
        );
        assert_eq!(one(&outs, 2)["trackList"], json!([]));
        let e = error_of(
            &send(&mut h, 2, json!({"command":"getTrackList","streamId":"zz"})),
            2,
        );
        assert_eq!(e["definition"], "no_stream_exist");
        let outs = send(
            &mut h,
            2,
            json!({"command":"getRoomInfo","room":"room1","streamId":"me"}),
        );
        assert_eq!(one(&outs, 2)["streams"], json!(["alice"]));
        // Playing the room itself (one PC for every subtrack) is not served.
        let e = error_of(
            &send(&mut h, 2, json!({"command":"play","streamId":"room1"})),
            2,
        );
        assert_eq!(e["definition"], "no_stream_exist");
        let e = error_of(
            &send(
                &mut h,
                2,
                json!({"command":"updateStreamMetaData","streamId":"zz"}),
            ),
            2,
        );
        assert_eq!(e["definition"], "no_stream_exist");
        h.close(1);
        let e = error_of(
            &send(
                &mut h,
                2,
                json!({"command":"getBroadcastObject","streamId":"room1"}),
            ),
            2,
        );
        assert_eq!(e["definition"], "no_stream_exist");
        h.finish();
    }

    #[test]
    fn routing_without_a_session() {
        let mut h = harness();
        h.open(1, APP);
        for v in [
            json!({"command":"takeConfiguration","streamId":"s9","type":"answer","sdp":"A"}),
            json!({"command":"takeCandidate","streamId":"s9","label":0,"candidate":"c"}),
        ] {
            let e = error_of(&send(&mut h, 1, v), 1);
            assert_eq!(e["definition"], "no_peer_associated_before");
        }
        assert!(send(&mut h, 1, json!({"command":"stop","streamId":"s9"})).is_empty());
        h.finish();
    }

    #[test]
    fn apps_are_separate_namespaces() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, "LiveApp");
        live_publisher(&mut h, 1, "s1", "");
        live_publisher(&mut h, 2, "s1", "");
        assert_eq!(h.sig.publisher_count(), 2);
        h.open(3, "LiveApp");
        let outs = send(&mut h, 3, json!({"command":"play","streamId":"s1"}));
        let MediaCmd::StartPlay { publisher, .. } = cmds(&outs).remove(0) else {
            panic!()
        };
        assert_eq!(h.sig.sessions.get(&publisher).unwrap().conn, ConnId(2));
        h.finish();
    }

    #[test]
    fn shutdown_closes_everything() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, APP);
        let p = live_publisher(&mut h, 1, "s1", "");
        let a = player(&mut h, 2, "s1");
        let outs = h.shutdown();
        assert_eq!(
            outs,
            vec![
                Output::Send(
                    ConnId(1),
                    ServerMessage::Notification(Notification::ServerWillStop)
                ),
                Output::Send(
                    ConnId(2),
                    ServerMessage::Notification(Notification::ServerWillStop)
                ),
                Output::Media(MediaCmd::Close { session: p }),
                Output::Media(MediaCmd::Close { session: a }),
                Output::Close(ConnId(1)),
                Output::Close(ConnId(2)),
            ]
        );
        assert!(h.sig.is_idle());
        let outs = h.open(3, APP);
        assert_eq!(outs.last(), Some(&Output::Close(ConnId(3))));
        h.finish();
    }

    #[test]
    fn edge_cases() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, APP);
        // An invalid mainTrack is an invalid stream name.
        let e = error_of(
            &send(
                &mut h,
                1,
                json!({"command":"publish","streamId":"s1","mainTrack":"r 1"}),
            ),
            1,
        );
        assert_eq!(e["definition"], "invalidStreamName");
        assert_eq!(e["streamId"], "r 1");
        // Overload only refuses publish and play.
        h.overload(true);
        assert_eq!(
            one(&h.text(1, r#"{"command":"ping"}"#), 1)["command"],
            "pong"
        );
        h.overload(false);
        // leaveFromRoom stops this connection's mainTrack=room publishes too.
        live_publisher(&mut h, 1, "s1", "room1");
        send(
            &mut h,
            1,
            json!({"command":"joinRoom","room":"room1","streamId":"s2"}),
        );
        let outs = send(&mut h, 1, json!({"command":"leaveFromRoom","room":"room1"}));
        assert_eq!(
            sent(&outs, 1)
                .iter()
                .map(|m| m["definition"].as_str().unwrap().to_string())
                .collect::<Vec<_>>(),
            ["publish_finished", "leavedFromRoom"]
        );
        assert_eq!(h.sig.publisher_count(), 0);
        assert!(h.sig.rooms.is_empty());
        // One stop ends this connection's publish and play of the same id.
        live_publisher(&mut h, 1, "s3", "");
        let a = player(&mut h, 1, "s3");
        let outs = send(&mut h, 1, json!({"command":"stop","streamId":"s3"}));
        assert!(cmds(&outs).contains(&MediaCmd::Close { session: a }));
        assert_eq!(
            sent(&outs, 1).len(),
            2,
            "publish_finished and play_finished"
        );
        assert_eq!(h.sig.session_count(), 0);
        // Closing a connection drops its memberships and p2p groups.
        send(
            &mut h,
            2,
            json!({"command":"joinRoom","room":"room1","streamId":"m2"}),
        );
        send(&mut h, 2, json!({"command":"join","streamId":"p"}));
        h.close(2);
        assert!(h.sig.rooms.is_empty() && h.sig.p2p.is_empty());
        h.finish();
    }

    #[test]
    fn media_events_before_the_media_layer_knows_a_session_are_ignored() {
        let mut h = harness();
        h.open(1, APP);
        h.open(2, APP);
        // Publish session allocated, but its offer never reached the media layer.
        send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
        let sid = SessionId(1);
        h.sig
            .handle_media(h.now, MediaEvent::MediaStarted { session: sid });
        assert!(h.drain().is_empty());
        let e = error_of(
            &send(&mut h, 2, json!({"command":"play","streamId":"s1"})),
            2,
        );
        assert_eq!(e["definition"], "no_stream_exist");
        h.finish();
    }

    #[test]
    fn unknown_connections_are_ignored() {
        let mut h = harness();
        assert!(h.text(5, r#"{"command":"ping"}"#).is_empty());
        h.sig.handle_closed(h.now, ConnId(5));
        assert!(h.drain().is_empty());
        h.open(1, APP);
        h.sig.handle_open(h.now, ConnId(1), "other");
        assert!(h.drain().is_empty());
        assert_eq!(h.sig.connection_count(), 1);
        h.finish();
    }
}
