//! The shared data of a cluster (broadcasts, one-time tokens, TOTP subscribers, application
//! settings) in Redis, behind [`antenna_store::Store`]: [`SharedData`].
//! (About 600 lines: the store's reads, writes, token claims and the Redis link of one state
//! machine; its record codec and its sync are split off in `data/`.)
//!
//! Shape (the event loop never waits for Redis):
//!
//! - every node keeps the whole working set in memory ([`Data`], the same model the embedded
//!   store uses), so reads never block and never fail;
//! - a write is applied to memory at once and sent to Redis (`HSET`/`HDEL`/`SET` on the
//!   command connection, then `PUBLISH` on the data channel); it is durable when Redis
//!   acknowledges it, so a REST create is answered only once Redis has it (the runtime's
//!   held-response path waits for [`Store::durable_seq`]);
//! - other nodes hear the `PUBLISH` on their subscriber connection (a second connection: a
//!   RESP2 connection that subscribed takes no other commands) and reload that one record
//!   (`HGET`/`GET`), which is authoritative; their local writes still in flight are applied
//!   again over what they read, so a reload never undoes a newer local write;
//! - each time either connection comes (back) up, the node sends what it wrote while Redis was
//!   away and reloads every application (`HGETALL` of each hash, `GET` of the settings): a
//!   missed message costs nothing. A Redis that came back empty (its settings key is gone) is
//!   refilled from the node's memory (`SET NX`/`HSETNX`), not wiped into it, except for
//!   single-use tokens: which of them were spent meanwhile is lost with Redis, so they are
//!   dropped everywhere (clients ask for new ones) rather than risk a second use;
//! - a single-use token is spent with `HDEL` on its hash field: Redis runs commands one at a
//!   time, so of two nodes racing on one token exactly one gets `1` ([`SharedData::claim`]);
//!   the runtime holds the `play`/`publish` frame until that answer.
//!
//! Health: until the first load the store is [`StoreError::Unavailable`] (nothing is known);
//! afterwards, while Redis is away, [`StoreError::Degraded`]: reads and local streams go on,
//! REST answers 503, token spends are refused (`data_store_not_available`), other writes wait
//! in a bounded backlog.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use antenna_store::{Data, Store, StoreError, WriteOp, WriteSeq};
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::conn::{ConnConfig, ConnEvent, ConnOutput, RedisConn, Tag};

mod records;
mod sync;

use crate::resp::{Command, Reply};
pub use records::Kind;
use records::{command_of, json, Change};

/// Largest data-channel message read; longer ones are dropped and counted.
pub const MAX_MESSAGE: usize = 4096;
/// Writes kept while Redis is away at most; beyond, writes are refused.
pub const MAX_BACKLOG: usize = 4096;
/// Frames of one connection held while its token spend is asked of Redis, at most.
pub const MAX_HELD_FRAMES: usize = 16;

/// Tunables of the shared data.
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// This node's id (its own change messages are ignored).
    pub node_id: String,
    /// Key prefix (`antenna`).
    pub prefix: String,
    /// The applications whose data is shared.
    pub apps: Vec<String>,
    /// The connections' tunables.
    pub conn: ConnConfig,
}

impl DataConfig {
    /// Key of one kind of record of `app`: `{prefix}:data:{app}:{kind}`.
    pub fn key(&self, app: &str, kind: Kind) -> String {
        format!("{}:data:{app}:{}", self.prefix, kind.name())
    }

    /// The change channel: `{prefix}:data`.
    pub fn channel(&self) -> String {
        format!("{}:data", self.prefix)
    }
}

/// Which of the two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// Commands.
    Cmd,
    /// The subscriber connection (change messages).
    Sub,
}

/// What the shared data reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEvent {
    /// The settings of `app` may have changed (loaded, or changed by another node).
    SettingsChanged(String),
    /// The answer to [`SharedData::claim`]: `won` if this node spent the token.
    ClaimDone {
        /// The claim.
        claim: u64,
        /// This node spent it (false: spent elsewhere, or Redis went away).
        won: bool,
    },
}

/// What the runtime does for the shared data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutput {
    /// Connect that link's socket.
    Connect(Link),
    /// Close it.
    Close(Link),
    /// Write to it.
    Transmit(Link, Vec<u8>),
    /// Something happened.
    Event(DataEvent),
}

/// Counters (the DESIGN notes' per-operation counts, the refusals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataStats {
    /// Record writes sent (HSET, HDEL, SET).
    pub writes: u64,
    /// Change messages published.
    pub publishes: u64,
    /// Records reloaded after another node's change (HGET/GET).
    pub reloads: u64,
    /// Whole reloads (every application).
    pub resyncs: u64,
    /// Token spends asked (HDEL).
    pub claims: u64,
    /// Token spends lost to another node.
    pub claims_lost: u64,
    /// Writes refused (Redis away and a spend, or the backlog full).
    pub refused: u64,
    /// Values from Redis or messages that could not be read, or were too long.
    pub bad_values: u64,
}

#[derive(Debug)]
enum Wait {
    /// A record write: durable when answered.
    Write(u64),
    /// A reply that needs no handling (PUBLISH, SUBSCRIBE, a restore, a refill).
    Ignore,
    Reload(Change),
    Load {
        app: String,
        kind: Kind,
        last: bool,
    },
    Claim {
        claim: u64,
        app: String,
        token: String,
    },
}

/// The shared data. See the module docs.
#[derive(Debug)]
pub struct SharedData {
    config: DataConfig,
    cmd: RedisConn,
    sub: RedisConn,
    data: Data,
    seq: u64,
    durable: u64,
    next_tag: Tag,
    /// Inside [`Store::write`], which has no `now`: commands go out untimed
    /// ([`RedisConn::send_untimed`]).
    untimed: bool,
    waiting: HashMap<Tag, Wait>,
    /// Local writes sent and not yet answered, by tag (applied again over reloads).
    inflight: BTreeMap<Tag, (u64, WriteOp)>,
    /// Writes made while Redis was away (or before the first load), oldest first.
    backlog: VecDeque<(u64, WriteOp)>,
    loaded: bool,
    /// Applications whose settings key was missing at a resync: Redis lost its data and is
    /// refilled from memory; their snapshot replies merge instead of replacing.
    refilling: HashSet<String>,
    /// Tokens this node spent in Redis and not yet in memory.
    claimed: HashSet<(String, String)>,
    next_claim: u64,
    out: VecDeque<DataOutput>,
    stats: DataStats,
}

impl SharedData {
    /// Shared data that connects at its first `handle_timeout`.
    pub fn new(config: DataConfig, now: Instant) -> SharedData {
        SharedData {
            cmd: RedisConn::new(config.conn.clone(), now),
            sub: RedisConn::new(config.conn.clone(), now),
            config,
            data: Data::new(),
            seq: 0,
            durable: 0,
            next_tag: 0,
            untimed: false,
            waiting: HashMap::new(),
            inflight: BTreeMap::new(),
            backlog: VecDeque::new(),
            loaded: false,
            refilling: HashSet::new(),
            claimed: HashSet::new(),
            next_claim: 0,
            out: VecDeque::new(),
            stats: DataStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> DataStats {
        self.stats
    }

    /// Whether the data was loaded once and Redis is reachable now.
    pub fn is_up(&self) -> bool {
        self.loaded && self.cmd.is_up()
    }

    fn conn(&mut self, link: Link) -> &mut RedisConn {
        match link {
            Link::Cmd => &mut self.cmd,
            Link::Sub => &mut self.sub,
        }
    }

    fn send(&mut self, now: Instant, link: Link, cmd: Command, wait: Wait) -> Option<Tag> {
        self.next_tag += 1;
        let tag = self.next_tag;
        let untimed = self.untimed;
        let conn = self.conn(link);
        let sent = if untimed {
            conn.send_untimed(tag, &cmd)
        } else {
            conn.send(now, tag, &cmd)
        };
        match sent {
            Ok(()) => {
                self.waiting.insert(tag, wait);
                Some(tag)
            }
            Err(_) => None,
        }
    }

    pub(super) fn publish(&mut self, now: Instant, app: &str, kind: Kind, id: &str) {
        let change = Change {
            node: self.config.node_id.clone(),
            app: app.to_string(),
            kind,
            id: id.to_string(),
        };
        let channel = self.config.channel();
        let cmd = Command::new(["PUBLISH", channel.as_str(), &json(&change)]);
        if self.send(now, Link::Cmd, cmd, Wait::Ignore).is_some() {
            self.stats.publishes += 1;
        }
    }

    /// Sends one write (and its change message); false if the connection refused it.
    fn send_write(&mut self, now: Instant, seq: u64, op: WriteOp) -> bool {
        // Settings written before the first load are the configuration's seed: they must not
        // overwrite what the cluster already has.
        let seed = !self.loaded && matches!(op, WriteOp::PutSettings { .. });
        let (cmd, app, kind, id) = command_of(&self.config, &op, seed);
        let spent_here = match &op {
            WriteOp::DeleteToken { app, token_id } => {
                self.claimed.remove(&(app.clone(), token_id.clone()))
            }
            _ => false,
        };
        // A token this node already spent (HDEL answered 1) needs only its message.
        let sent = if spent_here {
            let channel = self.config.channel();
            let change = Change {
                node: self.config.node_id.clone(),
                app: app.clone(),
                kind,
                id: id.clone(),
            };
            let cmd = Command::new(["PUBLISH", channel.as_str(), &json(&change)]);
            self.send(now, Link::Cmd, cmd, Wait::Write(seq))
        } else {
            self.send(now, Link::Cmd, cmd, Wait::Write(seq))
        };
        let Some(tag) = sent else {
            return false;
        };
        self.stats.writes += 1;
        self.inflight.insert(tag, (seq, op));
        if !spent_here {
            self.publish(now, &app, kind, &id);
        }
        true
    }

    /// Asks Redis to spend single-use token `token` of `app` (`HDEL`): answered by
    /// [`DataEvent::ClaimDone`]. `None` if Redis is away or the data not loaded (the request
    /// then goes on and its spend is refused with `data_store_not_available`).
    pub fn claim(&mut self, now: Instant, app: &str, token: &str) -> Option<u64> {
        if !self.is_up() {
            return None;
        }
        self.next_claim += 1;
        let claim = self.next_claim;
        let key = self.config.key(app, Kind::Tokens);
        let wait = Wait::Claim {
            claim,
            app: app.to_string(),
            token: token.to_string(),
        };
        self.send(
            now,
            Link::Cmd,
            Command::new(["HDEL", key.as_str(), token]),
            wait,
        )?;
        self.stats.claims += 1;
        self.pump(now);
        Some(claim)
    }

    /// The request a claim was for has been handled: if the token was not used after all
    /// (the request was refused for another reason), it is put back in Redis.
    pub fn settle(&mut self, now: Instant, app: &str, token: &str) {
        let key = (app.to_string(), token.to_string());
        if !self.claimed.remove(&key) {
            return;
        }
        if let Some(t) = self.data.token(app, token).cloned() {
            debug!(app, "claimed token not used: put back");
            let (cmd, ..) = command_of(
                &self.config,
                &WriteOp::PutToken {
                    app: app.to_string(),
                    token: t,
                },
                true,
            );
            self.send(now, Link::Cmd, cmd, Wait::Ignore);
            self.pump(now);
        }
    }

    /// The one-time token a `play` or `publish` frame would spend, if this node's memory has
    /// it for the frame's stream: `(app, token id)`.
    pub fn token_in_frame(&self, text: &str) -> Option<(String, String)> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Frame<'a> {
            command: &'a str,
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            stream_id: Option<String>,
        }
        let f: Frame<'_> = serde_json::from_str(text).ok()?;
        if f.command != "play" && f.command != "publish" {
            return None;
        }
        let (token, stream) = (f.token?, f.stream_id?);
        self.config.apps.iter().find_map(|app| {
            let t = self.data.token(app, &token)?;
            (t.stream_id == stream || t.room_id.as_deref() == Some(stream.as_str()))
                .then(|| (app.clone(), token.clone()))
        })
    }

    /// The socket of `link` connected.
    pub fn handle_connected(&mut self, now: Instant, link: Link) {
        self.conn(link).handle_connected(now);
        self.pump(now);
    }

    /// Bytes read from the socket of `link`.
    pub fn handle_input(&mut self, now: Instant, link: Link, data: &[u8]) {
        self.conn(link).handle_input(now, data);
        self.pump(now);
    }

    /// The socket of `link` closed or failed.
    pub fn handle_closed(&mut self, now: Instant, link: Link, reason: &str) {
        self.conn(link).handle_closed(now, reason);
        self.pump(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.cmd.handle_timeout(now);
        self.sub.handle_timeout(now);
        self.pump(now);
    }

    /// When [`SharedData::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.cmd.poll_timeout(), self.sub.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing for the runtime to do.
    pub fn poll_output(&mut self) -> Option<DataOutput> {
        self.out.pop_front()
    }

    fn pump(&mut self, now: Instant) {
        loop {
            let mut any = false;
            for link in [Link::Cmd, Link::Sub] {
                while let Some(o) = self.conn(link).poll_output() {
                    any = true;
                    match o {
                        ConnOutput::Connect => self.out.push_back(DataOutput::Connect(link)),
                        ConnOutput::Close => self.out.push_back(DataOutput::Close(link)),
                        ConnOutput::Transmit(b) => {
                            self.out.push_back(DataOutput::Transmit(link, b))
                        }
                        ConnOutput::Event(e) => self.on_event(now, link, e),
                    }
                }
            }
            if !any {
                return;
            }
        }
    }

    fn on_event(&mut self, now: Instant, link: Link, e: ConnEvent) {
        match (link, e) {
            (Link::Cmd, ConnEvent::Up) => {
                info!(node = %self.config.node_id, "shared data: Redis connected; reloading");
                self.resync(now);
            }
            (Link::Sub, ConnEvent::Up) => {
                let channel = self.config.channel();
                self.send(
                    now,
                    Link::Sub,
                    Command::new(["SUBSCRIBE", &channel]),
                    Wait::Ignore,
                );
                // Messages sent while this connection was away are lost: reload everything.
                if self.loaded {
                    self.resync(now);
                }
            }
            (Link::Cmd, ConnEvent::Down { reason, .. }) => {
                if self.loaded {
                    warn!(%reason, "shared data: Redis not available; writes wait, token spends \
                          and REST are refused until it returns");
                }
                // Writes in flight go back to the front of the backlog, in order.
                let inflight = std::mem::take(&mut self.inflight);
                for (_, (seq, op)) in inflight.into_iter().rev() {
                    self.backlog.push_front((seq, op));
                }
            }
            (Link::Sub, ConnEvent::Down { .. }) => {}
            (_, ConnEvent::Reply { tag, reply }) => self.on_reply(now, tag, reply),
            (_, ConnEvent::Failed { tag }) => {
                if let Some(Wait::Claim { claim, .. }) = self.waiting.remove(&tag) {
                    self.out.push_back(DataOutput::Event(DataEvent::ClaimDone {
                        claim,
                        won: false,
                    }));
                }
            }
            (_, ConnEvent::Message { channel, payload }) => self.on_message(now, channel, payload),
        }
    }

    fn on_message(&mut self, now: Instant, channel: Vec<u8>, payload: Vec<u8>) {
        if channel != self.config.channel().as_bytes() {
            return;
        }
        let change = match serde_json::from_slice::<Change>(&payload) {
            Ok(c) if payload.len() <= MAX_MESSAGE => c,
            _ => {
                self.stats.bad_values += 1;
                debug!(
                    len = payload.len(),
                    "shared data: unreadable change message dropped"
                );
                return;
            }
        };
        if change.node == self.config.node_id || !self.config.apps.contains(&change.app) {
            return;
        }
        if change.id == "*" {
            // Another node refilled a Redis that had lost its data: reload everything.
            self.resync(now);
            return;
        }
        let key = self.config.key(&change.app, change.kind);
        let cmd = match change.kind {
            Kind::Settings => Command::new(["GET", key.as_str()]),
            _ => Command::new(["HGET", key.as_str(), &change.id]),
        };
        if self
            .send(now, Link::Cmd, cmd, Wait::Reload(change))
            .is_some()
        {
            self.stats.reloads += 1;
        }
    }

    fn on_reply(&mut self, now: Instant, tag: Tag, reply: Reply) {
        let Some(wait) = self.waiting.remove(&tag) else {
            return;
        };
        if let Reply::Error(e) = &reply {
            self.stats.bad_values += 1;
            warn!(error = %e, "shared data: Redis refused a command");
        }
        match wait {
            Wait::Ignore => {}
            Wait::Write(seq) => {
                self.inflight.remove(&tag);
                self.durable = self.durable.max(seq);
            }
            Wait::Claim { claim, app, token } => {
                let won = reply == Reply::Int(1);
                if won {
                    self.claimed.insert((app, token));
                } else {
                    self.stats.claims_lost += 1;
                    self.data.apply(&WriteOp::DeleteToken {
                        app,
                        token_id: token,
                    });
                }
                self.out
                    .push_back(DataOutput::Event(DataEvent::ClaimDone { claim, won }));
            }
            Wait::Reload(change) => {
                let value = match reply {
                    Reply::Bulk(b) => Some(b),
                    _ => None,
                };
                self.apply_value(&change.app, change.kind, &change.id, value.as_deref());
                self.reapply_after(tag);
                if change.kind == Kind::Settings {
                    self.out
                        .push_back(DataOutput::Event(DataEvent::SettingsChanged(change.app)));
                }
            }
            Wait::Load { app, kind, last } => {
                self.load(now, &app, kind, reply);
                self.reapply_after(tag);
                if last {
                    self.loaded = true;
                    for app in self.config.apps.clone() {
                        self.out
                            .push_back(DataOutput::Event(DataEvent::SettingsChanged(app)));
                    }
                }
            }
        }
    }

    /// Local writes sent after `tag` are newer than what Redis answered to it.
    fn reapply_after(&mut self, tag: Tag) {
        for (_, (_, op)) in self.inflight.range(tag + 1..) {
            self.data.apply(op);
        }
    }
}

impl Store for SharedData {
    fn data(&self) -> &Data {
        &self.data
    }

    fn write(&mut self, op: WriteOp) -> Result<WriteSeq, StoreError> {
        // A spend must reach Redis before it counts (another node could accept the token).
        if op.needs_durability() && !self.is_up() {
            self.stats.refused += 1;
            return Err(StoreError::Degraded("Redis not reachable".into()));
        }
        let connected = self.cmd.is_up();
        if !connected && self.backlog.len() >= MAX_BACKLOG {
            self.stats.refused += 1;
            return Err(StoreError::Degraded(format!(
                "Redis not reachable and {MAX_BACKLOG} writes waiting"
            )));
        }
        self.data.apply(&op);
        self.seq += 1;
        let seq = self.seq;
        // No `now` in the Store trait: the commands go out untimed, their reply timeout
        // counted from the loop's next timer check (the connection's last `now` may be long
        // past after an idle spell). `now` below only orders the connection's own clock.
        let now = self.cmd.last_activity();
        self.untimed = true;
        let sent = connected && self.send_write(now, seq, op.clone());
        self.untimed = false;
        if !sent {
            self.backlog.push_back((seq, op));
        }
        self.pump(now);
        Ok(WriteSeq(seq))
    }

    fn durable_seq(&self) -> WriteSeq {
        WriteSeq(self.durable)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.durable >= self.seq {
            Ok(())
        } else {
            Err(StoreError::Degraded(format!(
                "{} writes not yet in Redis",
                self.seq - self.durable
            )))
        }
    }

    fn health(&self) -> Result<(), StoreError> {
        if !self.loaded {
            Err(StoreError::Unavailable(
                "shared data not loaded from Redis yet".into(),
            ))
        } else if !self.cmd.is_up() {
            Err(StoreError::Degraded("Redis not reachable".into()))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests;
