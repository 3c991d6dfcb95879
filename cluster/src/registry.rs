//! The cluster core: this node's presence in the shared registry, its live streams, and
//! look-ups of other nodes' streams, over one [`RedisConn`]. Sans-IO like the connection: the
//! runtime moves [`ClusterOutput`]s to the socket and reports what happened.
//!
//! Writes are idempotent `SET ... PX ttl`, so a heartbeat after Redis lost its data (a
//! restart) registers everything again; while Redis is away writes are skipped (the next
//! heartbeat after [`ClusterEvent::Up`] repeats them at once) and look-ups fail at once with
//! [`ClusterEvent::Unavailable`], which signalling turns into `data_store_not_available`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::conn::{ConnConfig, ConnEvent, ConnOutput, RedisConn, Tag};
use crate::resp::{Command, Reply};

mod rooms;
mod viewers;

pub use viewers::{MAX_VIEWER_FIELDS, MAX_VIEWER_NODES, MAX_VIEWER_STREAMS};

/// Default period of the heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Default lifetime of a registry entry not refreshed: a node that stops heartbeating and its
/// streams are gone from Redis at most this long after its last heartbeat.
pub const TTL: Duration = Duration::from_secs(6);
/// Most members of one room read from a room look-up (the first ones by id).
pub const MAX_ROOM_MEMBERS: usize = 256;

/// Tunables of the cluster core.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id, unique in the cluster.
    pub node_id: String,
    /// Key prefix (`antenna` by default): several clusters may share one Redis database.
    pub prefix: String,
    /// This node's HTTP/WebSocket address, as other nodes reach it.
    pub http: SocketAddr,
    /// This node's UDP media address.
    pub udp: SocketAddr,
    /// Period of the heartbeat.
    pub heartbeat: Duration,
    /// Lifetime of the registry entries (several heartbeats).
    pub ttl: Duration,
    /// The connection's tunables.
    pub conn: ConnConfig,
}

impl ClusterConfig {
    /// A configuration with the default heartbeat, TTL and connection settings.
    pub fn new(node_id: &str, http: SocketAddr, udp: SocketAddr, db: u32) -> ClusterConfig {
        ClusterConfig {
            node_id: node_id.to_string(),
            prefix: "antenna".to_string(),
            http,
            udp,
            heartbeat: HEARTBEAT,
            ttl: TTL,
            conn: ConnConfig {
                db,
                ..ConnConfig::default()
            },
        }
    }

    /// Key of a node: `{prefix}:node:{id}`.
    pub fn node_key(&self, id: &str) -> String {
        format!("{}:node:{id}", self.prefix)
    }

    /// Key of a room's members (a hash: member stream id → its origin node id):
    /// `{prefix}:room:{app}/{room}`.
    pub fn room_key(&self, app: &str, room: &str) -> String {
        format!("{}:room:{app}/{room}", self.prefix)
    }

    /// Key of a stream's viewer counts (a hash: node id → its WebRTC viewers of the stream):
    /// `{prefix}:viewers:{app}/{stream}`.
    pub fn viewers_key(&self, app: &str, stream: &str) -> String {
        format!("{}:viewers:{app}/{stream}", self.prefix)
    }

    /// Key of a live stream: `{prefix}:stream:{app}/{stream}`.
    pub fn stream_key(&self, app: &str, stream: &str) -> String {
        format!("{}:stream:{app}/{stream}", self.prefix)
    }
}

/// A node as registered (the JSON value of its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: String,
    /// HTTP/WebSocket address.
    pub http: SocketAddr,
    /// UDP media address.
    pub udp: SocketAddr,
    /// Load: open connections (WebSockets, players, publishers) on the node.
    pub load: u64,
}

/// A live stream as registered (the JSON value of its key): where to pull it from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    /// The origin node's id.
    pub origin: String,
    /// The origin's HTTP/WebSocket address (where an edge opens its relay session).
    pub http: SocketAddr,
}

/// What the cluster core reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// Redis is reachable: cluster-wide operations work.
    Up,
    /// Redis is not reachable: cluster-wide operations answer `data_store_not_available`.
    Down {
        /// Why.
        reason: String,
    },
    /// The answer to [`Cluster::lookup_stream`]: `None` if no node has the stream live.
    StreamOrigin {
        /// Application.
        app: String,
        /// Stream id.
        stream: String,
        /// Where it is live.
        entry: Option<StreamEntry>,
    },
    /// The answer to [`Cluster::lookup_room`]: the room's members on every node, sorted (at
    /// most [`MAX_ROOM_MEMBERS`]; a member whose node died stays listed until the room's key
    /// expires, and its stream look-up finds nothing).
    RoomMembers {
        /// Application.
        app: String,
        /// Main track (room) id.
        room: String,
        /// Member stream ids.
        members: Vec<String>,
    },
    /// A room look-up could not be answered: Redis is away.
    RoomUnavailable {
        /// Application.
        app: String,
        /// Main track (room) id.
        room: String,
    },
    /// The other nodes' WebRTC viewers of a stream set with [`Cluster::set_viewers`] changed
    /// (read at a heartbeat; dead nodes' counts left out; 0 when Redis goes away).
    Viewers {
        /// Application.
        app: String,
        /// Stream id.
        stream: String,
        /// The sum of the other live nodes' viewers.
        others: usize,
    },
    /// A look-up could not be answered: Redis is away.
    Unavailable {
        /// Application.
        app: String,
        /// Stream id.
        stream: String,
    },
}

/// What the runtime does for the cluster core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterOutput {
    /// Connect the Redis socket.
    Connect,
    /// Close the Redis socket.
    Close,
    /// Write to the Redis socket.
    Transmit(Vec<u8>),
    /// Something happened.
    Event(ClusterEvent),
}

/// Redis operations sent, by kind (the DESIGN notes' per-operation counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Node heartbeats (one SET each).
    pub heartbeats: u64,
    /// Stream registrations and refreshes (one SET each).
    pub stream_sets: u64,
    /// Stream removals (one DEL each).
    pub stream_dels: u64,
    /// Look-ups (one GET each).
    pub lookups: u64,
    /// Room member registrations and refreshes (one HSET and one PEXPIRE each).
    pub member_sets: u64,
    /// Room member removals (one HDEL each).
    pub member_dels: u64,
    /// Room look-ups (one HGETALL each).
    pub room_lookups: u64,
    /// Viewer count writes (one HSET each).
    pub viewer_sets: u64,
    /// Viewer count removals (one HDEL each).
    pub viewer_dels: u64,
    /// Viewer hashes kept alive (one PEXPIRE each).
    pub viewer_expires: u64,
    /// Viewer hashes read (one HGETALL each).
    pub viewer_reads: u64,
    /// Other nodes' liveness checked for their viewer counts (one EXISTS each).
    pub viewer_node_checks: u64,
    /// Writes skipped because Redis was away.
    pub skipped: u64,
    /// Replies that were Redis errors or could not be read.
    pub bad_replies: u64,
}

#[derive(Debug)]
enum Waiting {
    /// A write: its reply is checked for an error only.
    Write(&'static str),
    Lookup {
        app: String,
        stream: String,
    },
    RoomLookup {
        app: String,
        room: String,
    },
    /// A stream's viewer counts (`registry/viewers.rs`).
    ViewerHash {
        app: String,
        stream: String,
    },
    /// Whether a node with viewer counts is alive.
    ViewerNode(String),
}

/// The cluster core. See the module docs.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    conn: RedisConn,
    load: u64,
    /// This node's live streams, `(app, stream)`.
    streams: BTreeSet<(String, String)>,
    /// This node's live room members, `(app, room, stream)`.
    members: BTreeSet<(String, String, String)>,
    next_heartbeat: Instant,
    next_tag: Tag,
    waiting: HashMap<Tag, Waiting>,
    out: VecDeque<ClusterOutput>,
    stats: ClusterStats,
    /// Redis came (back) up: register everything at once.
    register_due: bool,
    /// Viewer counts across nodes (`registry/viewers.rs`).
    viewers: viewers::Viewers,
}

impl Cluster {
    /// A cluster core that connects at its first `handle_timeout`.
    pub fn new(config: ClusterConfig, now: Instant) -> Cluster {
        Cluster {
            conn: RedisConn::new(config.conn.clone(), now),
            config,
            load: 0,
            streams: BTreeSet::new(),
            members: BTreeSet::new(),
            next_heartbeat: now,
            next_tag: 0,
            waiting: HashMap::new(),
            out: VecDeque::new(),
            stats: ClusterStats::default(),
            register_due: false,
            viewers: viewers::Viewers::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Whether Redis is reachable.
    pub fn is_up(&self) -> bool {
        self.conn.is_up()
    }

    /// Operation counters.
    pub fn stats(&self) -> ClusterStats {
        self.stats
    }

    /// The connection's counters.
    pub fn conn_stats(&self) -> crate::conn::ConnStats {
        self.conn.stats()
    }

    /// This node's live streams.
    pub fn local_streams(&self) -> impl Iterator<Item = &(String, String)> {
        self.streams.iter()
    }

    /// The node's load, sent with the next heartbeat.
    pub fn set_load(&mut self, load: u64) {
        self.load = load;
    }

    fn send(&mut self, now: Instant, cmd: Command, waiting: Waiting) -> bool {
        self.next_tag += 1;
        let tag = self.next_tag;
        match self.conn.send(now, tag, &cmd) {
            Ok(()) => {
                self.waiting.insert(tag, waiting);
                self.pump(now);
                true
            }
            Err(_) => false,
        }
    }

    fn set_stream(&mut self, now: Instant, app: &str, stream: &str) {
        let entry = StreamEntry {
            origin: self.config.node_id.clone(),
            http: self.config.http,
        };
        let value = serde_json::to_string(&entry).unwrap_or_default();
        let key = self.config.stream_key(app, stream);
        let ttl = self.config.ttl.as_millis().to_string();
        if self.send(
            now,
            Command::new(["SET", key.as_str(), &value, "PX", &ttl]),
            Waiting::Write("stream set"),
        ) {
            self.stats.stream_sets += 1;
        } else {
            self.stats.skipped += 1;
        }
    }

    /// A stream went live on this node: registered at once (and refreshed by each heartbeat).
    pub fn stream_started(&mut self, now: Instant, app: &str, stream: &str) {
        self.streams.insert((app.to_string(), stream.to_string()));
        self.set_stream(now, app, stream);
    }

    /// A stream of this node ended: its entry is removed.
    pub fn stream_ended(&mut self, now: Instant, app: &str, stream: &str) {
        if !self.streams.remove(&(app.to_string(), stream.to_string())) {
            return;
        }
        let key = self.config.stream_key(app, stream);
        if self.send(
            now,
            Command::new(["DEL", key.as_str()]),
            Waiting::Write("stream del"),
        ) {
            self.stats.stream_dels += 1;
        } else {
            self.stats.skipped += 1;
        }
    }

    /// Asks where a stream is live; answered by [`ClusterEvent::StreamOrigin`] or, if Redis is
    /// away, [`ClusterEvent::Unavailable`] (at once or when the connection drops).
    pub fn lookup_stream(&mut self, now: Instant, app: &str, stream: &str) {
        let key = self.config.stream_key(app, stream);
        let waiting = Waiting::Lookup {
            app: app.to_string(),
            stream: stream.to_string(),
        };
        if self.send(now, Command::new(["GET", key.as_str()]), waiting) {
            self.stats.lookups += 1;
        } else {
            self.out
                .push_back(ClusterOutput::Event(ClusterEvent::Unavailable {
                    app: app.to_string(),
                    stream: stream.to_string(),
                }));
        }
    }

    /// A graceful stop: this node and its streams leave the registry now rather than at
    /// their TTL.
    pub fn leave(&mut self, now: Instant) {
        let mut keys = vec![
            "DEL".to_string(),
            self.config.node_key(&self.config.node_id),
        ];
        keys.extend(
            self.streams
                .iter()
                .map(|(a, s)| self.config.stream_key(a, s)),
        );
        self.streams.clear();
        self.send(now, Command::new(keys), Waiting::Write("leave"));
        let members = std::mem::take(&mut self.members);
        for (app, room, stream) in members {
            let key = self.config.room_key(&app, &room);
            let del = Command::new(["HDEL", key.as_str(), &stream]);
            self.send(now, del, Waiting::Write("leave member"));
        }
        self.viewers_leave(now);
    }

    fn heartbeat(&mut self, now: Instant) {
        self.next_heartbeat = now + self.config.heartbeat;
        if !self.conn.is_up() {
            return;
        }
        let info = NodeInfo {
            id: self.config.node_id.clone(),
            http: self.config.http,
            udp: self.config.udp,
            load: self.load,
        };
        let value = serde_json::to_string(&info).unwrap_or_default();
        let key = self.config.node_key(&self.config.node_id);
        let ttl = self.config.ttl.as_millis().to_string();
        if self.send(
            now,
            Command::new(["SET", key.as_str(), &value, "PX", &ttl]),
            Waiting::Write("heartbeat"),
        ) {
            self.stats.heartbeats += 1;
        }
        let streams: Vec<_> = self.streams.iter().cloned().collect();
        for (app, stream) in streams {
            self.set_stream(now, &app, &stream);
        }
        let members: Vec<_> = self.members.iter().cloned().collect();
        for (app, room, stream) in members {
            self.set_member(now, &app, &room, &stream);
        }
        self.viewers_heartbeat(now);
    }

    /// The Redis socket connected.
    pub fn handle_connected(&mut self, now: Instant) {
        self.conn.handle_connected(now);
        self.pump(now);
    }

    /// Bytes read from the Redis socket.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.conn.handle_input(now, data);
        self.pump(now);
    }

    /// The Redis socket closed or failed.
    pub fn handle_closed(&mut self, now: Instant, reason: &str) {
        self.conn.handle_closed(now, reason);
        self.pump(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
        self.pump(now);
        if now >= self.next_heartbeat {
            self.heartbeat(now);
        }
    }

    /// When [`Cluster::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.conn.poll_timeout();
        Some(conn.map_or(self.next_heartbeat, |t| t.min(self.next_heartbeat)))
    }

    /// The next thing for the runtime to do.
    pub fn poll_output(&mut self) -> Option<ClusterOutput> {
        self.out.pop_front()
    }

    /// Moves the connection's outputs into the cluster's, handling its events.
    fn pump(&mut self, now: Instant) {
        while let Some(o) = self.conn.poll_output() {
            match o {
                ConnOutput::Connect => self.out.push_back(ClusterOutput::Connect),
                ConnOutput::Close => self.out.push_back(ClusterOutput::Close),
                ConnOutput::Transmit(b) => self.out.push_back(ClusterOutput::Transmit(b)),
                ConnOutput::Event(e) => self.on_event(e),
            }
        }
        if self.register_due {
            self.register_due = false;
            self.heartbeat(now);
        }
    }

    fn on_event(&mut self, e: ConnEvent) {
        match e {
            ConnEvent::Up => {
                info!(node = %self.config.node_id, "cluster: Redis connected");
                // Register (again) now: Redis may have lost everything.
                self.register_due = true;
                self.viewers_up();
                self.out.push_back(ClusterOutput::Event(ClusterEvent::Up));
            }
            ConnEvent::Down { reason, retry_at } => {
                warn!(node = %self.config.node_id, %reason, ?retry_at, "cluster: Redis unavailable");
                self.out
                    .push_back(ClusterOutput::Event(ClusterEvent::Down { reason }));
                self.viewers_down();
            }
            ConnEvent::Reply { tag, reply } => match self.waiting.remove(&tag) {
                Some(Waiting::Write(what)) => {
                    if let Reply::Error(e) = reply {
                        self.stats.bad_replies += 1;
                        warn!(what, error = %e, "cluster: Redis refused a write");
                    }
                }
                Some(Waiting::Lookup { app, stream }) => {
                    let entry = match &reply {
                        Reply::Bulk(b) => match serde_json::from_slice::<StreamEntry>(b) {
                            Ok(e) => Some(e),
                            Err(e) => {
                                self.stats.bad_replies += 1;
                                warn!(%app, %stream, error = %e, "cluster: unreadable stream entry");
                                None
                            }
                        },
                        Reply::Nil => None,
                        other => {
                            self.stats.bad_replies += 1;
                            warn!(%app, %stream, reply = ?other, "cluster: bad look-up reply");
                            None
                        }
                    };
                    self.out
                        .push_back(ClusterOutput::Event(ClusterEvent::StreamOrigin {
                            app,
                            stream,
                            entry,
                        }));
                }
                Some(Waiting::RoomLookup { app, room }) => {
                    let members = rooms::room_members(&reply);
                    if members.is_none() {
                        self.stats.bad_replies += 1;
                        warn!(%app, %room, reply = ?reply, "cluster: bad room look-up reply");
                    }
                    let members = members.unwrap_or_default();
                    self.out
                        .push_back(ClusterOutput::Event(ClusterEvent::RoomMembers {
                            app,
                            room,
                            members,
                        }));
                }
                Some(w @ (Waiting::ViewerHash { .. } | Waiting::ViewerNode(_))) => {
                    self.viewers_reply(w, &reply);
                }
                None => debug!(tag, "cluster: reply to a forgotten command"),
            },
            ConnEvent::Failed { tag } => match self.waiting.remove(&tag) {
                Some(Waiting::Lookup { app, stream }) => {
                    self.out
                        .push_back(ClusterOutput::Event(ClusterEvent::Unavailable {
                            app,
                            stream,
                        }));
                }
                Some(Waiting::RoomLookup { app, room }) => {
                    self.out
                        .push_back(ClusterOutput::Event(ClusterEvent::RoomUnavailable {
                            app,
                            room,
                        }));
                }
                Some(Waiting::ViewerHash { .. } | Waiting::ViewerNode(_)) => self.viewers_failed(),
                _ => {}
            },
            ConnEvent::Message { .. } => {}
        }
    }
}
