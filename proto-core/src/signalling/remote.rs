//! Cluster edge: plays of streams that another node publishes.
//!
//! With [`Signalling::set_remote_streams`] on, a `play` of a stream this node does not have
//! (after the access checks, nothing spent yet) waits instead of getting `no_stream_exist`:
//! the first waiter of a stream makes signalling ask where it is live
//! ([`Output::FindStream`]). The node answers with [`Signalling::open_relay`] (another node
//! is its origin: a *relay publisher* session stands for the stream here, and the node starts
//! the relay's media and signalling) or [`Signalling::remote_failed`]. When the relay
//! publisher's media starts, every waiting play is handled again, as a play of a live local
//! stream. Bounds: [`REMOTE_PLAY_TIMEOUT`] per stream, [`MAX_WAITING_PER_STREAM`] players
//! and [`MAX_WAITING_STREAMS`] streams; a waiter over them, past the time or whose stream
//! cannot be relayed gets `no_stream_exist` (as a node outside a cluster answers), or
//! `data_store_not_available` when the registry could not be asked.
//!
//! A relay publisher belongs to no connection (its [`Session::conn`] is the node's id of the
//! relay's WebSocket, never open here, so nothing is ever sent to it). It records no stream
//! events and tells the access policy nothing (the origin owns the stream's record, and the
//! registry must not list this node as the origin). It ends when the relay ends, when its
//! media fails or falls silent, or when its last player leaves; its players then get
//! `play_finished` and its media session is closed ([`MediaCmd::Close`], which the node turns
//! into the relay's `stop`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::{key, ConnId, End, Key, Output, PublishState, Role, Session, Signalling};
use crate::error::SignalError;
use crate::media::SessionId;
use crate::message::{ErrorMessage, Play, ServerMessage};

/// How long a play waits for its stream's relay to go live.
pub const REMOTE_PLAY_TIMEOUT: Duration = Duration::from_secs(15);
/// Most plays waiting for one stream's relay; more are refused.
pub const MAX_WAITING_PER_STREAM: usize = 64;
/// Most streams with plays waiting for a relay; more are refused.
pub const MAX_WAITING_STREAMS: usize = 256;

/// One play waiting for its relay.
#[derive(Debug)]
pub(super) struct Waiter {
    conn: ConnId,
    play: Play,
}

/// Counters of the cluster edge's plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteCounters {
    /// Plays that waited for a relay.
    pub waited: u64,
    /// Waiting plays handled again once their relay went live.
    pub released: u64,
    /// Waiting plays refused (no origin, relay failed, timeout, registry away).
    pub failed: u64,
    /// Plays refused because too many were waiting already.
    pub overflow: u64,
    /// Relay publishers opened.
    pub relays_opened: u64,
    /// Members of rooms played here, published on other nodes, looked up for a relay.
    pub room_members: u64,
    /// Such members not relayed: the room had `MAX_RELAYED_PER_ROOM` already.
    pub room_overflow: u64,
}

/// The waiting plays (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Remote {
    /// Stream → its deadline and waiting plays.
    waiting: BTreeMap<Key, (Instant, Vec<Waiter>)>,
    timers: BTreeSet<(Instant, Key)>,
    pub(super) counters: RemoteCounters,
    /// A play is being replaced by the same connection's new play: its relay stays.
    replacing: bool,
    /// Rooms played here whose members publish on other nodes (`remote_room.rs`).
    pub(super) rooms: super::remote_room::RemoteRooms,
}

impl Signalling {
    /// Cluster edge mode on or off (see the module docs). Off, plays of streams not published
    /// here get `no_stream_exist` at once.
    pub fn set_remote_streams(&mut self, on: bool) {
        if on != self.remote.is_some() {
            self.remote = on.then(Remote::default);
        }
    }

    /// The cluster edge's counters (zero when off).
    pub fn remote_counters(&self) -> RemoteCounters {
        self.remote.as_ref().map(|r| r.counters).unwrap_or_default()
    }

    /// Streams with plays waiting for a relay.
    pub fn remote_waiting(&self) -> usize {
        self.remote.as_ref().map_or(0, |r| r.waiting.len())
    }

    /// Whether the session is a relay publisher.
    pub fn is_relay(&self, sid: SessionId) -> bool {
        matches!(self.sessions.get(&sid).map(|s| &s.role), Some(Role::Publish(p)) if p.relay)
    }

    /// Whether the session is a relay publisher whose media has not started yet.
    fn relay_connecting(&self, sid: SessionId) -> bool {
        matches!(self.sessions.get(&sid).map(|s| &s.role),
            Some(Role::Publish(p)) if p.relay && !p.live)
    }

    /// A play that found no live local stream: `true` if it waits for a relay (or was refused
    /// over the bounds), `false` if it is not one for the cluster (edge mode off, or the
    /// stream is published here but not live).
    pub(super) fn wait_remote(
        &mut self,
        now: Instant,
        conn: ConnId,
        app: &str,
        id: &str,
        play: Play,
    ) -> bool {
        let k = key(app, id);
        let local = self.publishers.get(&k).copied();
        if local.is_some_and(|sid| !self.is_relay(sid)) {
            return false;
        }
        let Some(remote) = self.remote.as_ref() else {
            return false;
        };
        // A connection's waiting plays count against its plays (`max_plays_per_conn`).
        let waits_here = |w: &Vec<Waiter>| w.iter().any(|x| x.conn == conn);
        let repeat = remote.waiting.get(&k).is_some_and(|(_, w)| waits_here(w));
        let waiting = remote
            .waiting
            .values()
            .filter(|(_, w)| waits_here(w))
            .count();
        let playing = self.conns.get(&conn).map_or(0, |c| c.plays.len());
        let bound = self.config.limits.max_plays_per_conn;
        if !repeat && waiting + playing >= bound {
            self.limit_counters.too_many += 1;
            info!(
                ?conn,
                bound, "refused: per-connection limit reached (plays waiting for relays)"
            );
            let mut m =
                ErrorMessage::new(SignalError::ConnectionLimitReached, Some(id.to_string()));
            m.information = Some(format!("at most {bound} plays per connection"));
            self.send(conn, ServerMessage::Error(m));
            return true;
        }
        let Some(remote) = self.remote.as_mut() else {
            return false;
        };
        let full = match remote.waiting.get(&k) {
            Some((_, w)) => w.len() >= MAX_WAITING_PER_STREAM,
            None => remote.waiting.len() >= MAX_WAITING_STREAMS,
        };
        if full {
            remote.counters.overflow += 1;
            info!(
                ?conn,
                app,
                stream = id,
                "play refused: too many plays waiting for relays"
            );
            self.refuse(now, conn, SignalError::NoStreamExist, Some(id));
            return true;
        }
        remote.counters.waited += 1;
        let waiter = Waiter { conn, play };
        if let Some((_, w)) = remote.waiting.get_mut(&k) {
            // A repeated play of one connection waits once.
            w.retain(|x| x.conn != conn);
            w.push(waiter);
            return true;
        }
        let deadline = now + REMOTE_PLAY_TIMEOUT;
        remote.waiting.insert(k.clone(), (deadline, vec![waiter]));
        remote.timers.insert((deadline, k));
        debug!(
            app,
            stream = id,
            "play waits: looking the stream up in the cluster"
        );
        if local.is_none() {
            self.outputs.push_back(Output::FindStream {
                app: app.to_string(),
                stream: id.to_string(),
            });
        }
        true
    }

    /// The cluster says another node is the origin of `app`/`stream`: a relay publisher
    /// session stands for it here, owned by `relay` (the node's id of the relay's WebSocket).
    /// `None` when no play waits for it any more, or the stream is published here meanwhile
    /// (the waiting plays are then handled again at once): the node starts no relay.
    pub fn open_relay(
        &mut self,
        now: Instant,
        relay: ConnId,
        app: &str,
        stream: &str,
    ) -> Option<SessionId> {
        self.now = now;
        let k = key(app, stream);
        let room = self.remote.as_mut().and_then(|r| r.rooms.take_pending(&k));
        if room.is_none()
            && !self
                .remote
                .as_ref()
                .is_some_and(|r| r.waiting.contains_key(&k))
        {
            debug!(
                app,
                stream, "no play waits for this stream any more: no relay"
            );
            return None;
        }
        if let Some(existing) = self.publishers.get(&k).copied() {
            // Published here meanwhile, or already relayed (a second answer for the same
            // stream): the waiting plays go to that publisher if it is live; a relay that is not
            // live yet keeps them waiting (its media start releases them).
            if !self.relay_connecting(existing) {
                self.release_waiters(now, &k);
                if self.is_relay(existing) {
                    // Every waiter may have been refused on its second look: nobody plays it.
                    self.relay_player_left(existing);
                }
            }
            return None;
        }
        let sid = self.alloc_session();
        let role = Role::Publish(PublishState {
            relay: true,
            main_track: room.clone(),
            ..PublishState::default()
        });
        self.sessions.insert(
            sid,
            Session::new(relay, app, stream.to_string(), None, true, role),
        );
        self.publishers.insert(k, sid);
        if let Some(room) = room {
            // A member of a room played here: a subtrack of the local room once live.
            self.main_track_streams
                .entry(key(app, &room))
                .or_default()
                .insert(stream.to_string());
        }
        if let Some(r) = self.remote.as_mut() {
            r.counters.relays_opened += 1;
        }
        info!(%sid, app, stream, "relay publisher opened for the waiting plays");
        Some(sid)
    }

    /// `app`/`stream` cannot be played from the cluster: its waiting plays get `error` (and
    /// a relay publisher of it that is not live yet ends).
    pub fn remote_failed(&mut self, now: Instant, app: &str, stream: &str, e: SignalError) {
        self.now = now;
        let k = key(app, stream);
        if let Some(r) = self.remote.as_mut() {
            r.rooms.take_pending(&k);
        }
        self.fail_waiters(now, &k, e);
        if let Some(sid) = self.publishers.get(&k).copied() {
            if self.relay_connecting(sid) {
                self.end_session(sid, End::STOP);
            }
        }
    }

    /// The relay of `sid` ended (its origin's stream ended, the origin refused, the WebSocket
    /// closed): its players get `play_finished`, its waiting plays `no_stream_exist`.
    pub fn relay_ended(&mut self, now: Instant, sid: SessionId) {
        self.now = now;
        if self.is_relay(sid) {
            self.end_session(sid, End::STOP);
        }
    }

    /// The relay publisher `sid`'s media started: the plays waiting for it are handled again.
    pub(super) fn relay_live(&mut self, now: Instant, sid: SessionId) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let k = key(&s.app, &s.stream);
        let room = match &s.role {
            Role::Publish(p) => p.main_track.clone(),
            _ => None,
        };
        info!(%sid, stream = %s.stream, "relay live");
        if let Some(room) = room {
            // The room's players here get the member (a renegotiation each).
            self.refresh_room(&k.0, &room);
        }
        self.release_waiters(now, &k);
        // Every waiter may have been refused on its second look (or gone): nobody plays it.
        self.relay_player_left(sid);
    }

    /// A relay publisher ended: the plays still waiting for it are refused; a live room
    /// member leaves the room's players here.
    pub(super) fn relay_gone(&mut self, app: &str, stream: &str, room: Option<&str>, live: bool) {
        let now = self.now;
        self.fail_waiters(now, &key(app, stream), SignalError::NoStreamExist);
        if let Some(room) = room.filter(|_| live) {
            self.refresh_room(app, room);
        }
    }

    /// A player of relay publisher `publisher` ended: the relay ends with its last player,
    /// unless plays still wait for it or a play of the same connection replaces this one.
    pub(super) fn relay_player_left(&mut self, publisher: SessionId) {
        let Some(remote) = self.remote.as_ref() else {
            return;
        };
        if remote.replacing {
            return;
        }
        let Some(s) = self.sessions.get(&publisher) else {
            return;
        };
        // A room member's relay ends with the room's last player here (`remote_room.rs`).
        let room_played = |room: &String| self.room_players.contains_key(&key(&s.app, room));
        let orphan = matches!(&s.role,
            Role::Publish(p) if p.relay && p.players.is_empty()
                && !p.main_track.as_ref().is_some_and(room_played))
            && !remote.waiting.contains_key(&key(&s.app, &s.stream));
        if orphan {
            debug!(%publisher, stream = %s.stream, "the relay's last player left");
            self.end_session(publisher, End::STOP);
        }
    }

    /// Runs `f` (ending a play that a new play of the same connection replaces) without
    /// ending the relay it played.
    pub(super) fn replacing(&mut self, f: impl FnOnce(&mut Signalling)) {
        if let Some(r) = self.remote.as_mut() {
            r.replacing = true;
        }
        f(self);
        if let Some(r) = self.remote.as_mut() {
            r.replacing = false;
        }
    }

    /// `stop` of a play that waits: it waits no more (a relay that nobody waits for or plays
    /// any longer ends). `true` if it was waiting.
    pub(super) fn remote_cancel(&mut self, conn: ConnId, app: &str, id: &str) -> bool {
        let k = key(app, id);
        let Some(remote) = self.remote.as_mut() else {
            return false;
        };
        let Some((deadline, w)) = remote.waiting.get_mut(&k) else {
            return false;
        };
        let before = w.len();
        w.retain(|x| x.conn != conn);
        if w.len() == before {
            return false;
        }
        if w.is_empty() {
            let deadline = *deadline;
            remote.waiting.remove(&k);
            remote.timers.remove(&(deadline, k.clone()));
            if let Some(sid) = self.publishers.get(&k).copied() {
                self.relay_player_left(sid);
            }
        }
        debug!(?conn, app, stream = id, "waiting play stopped");
        true
    }

    /// `conn` closed: it waits for nothing any more; a relay not live that nobody waits for
    /// any longer ends.
    pub(super) fn remote_conn_closed(&mut self, conn: ConnId) {
        let Some(remote) = self.remote.as_mut() else {
            return;
        };
        let mut emptied = Vec::new();
        for (k, (deadline, w)) in &mut remote.waiting {
            let before = w.len();
            w.retain(|x| x.conn != conn);
            if w.is_empty() && before > 0 {
                emptied.push((k.clone(), *deadline));
            }
        }
        for (k, deadline) in &emptied {
            remote.waiting.remove(k);
            remote.timers.remove(&(*deadline, k.clone()));
        }
        for (k, _) in emptied {
            if let Some(sid) = self.publishers.get(&k).copied() {
                self.relay_player_left(sid);
            }
        }
    }

    /// Shutdown: nothing waits any more (the waiting connections are being closed).
    pub(super) fn remote_clear(&mut self) {
        if let Some(r) = self.remote.as_mut() {
            r.waiting.clear();
            r.timers.clear();
            r.rooms = super::remote_room::RemoteRooms::default();
        }
    }

    /// The earliest waiting deadline.
    pub(super) fn remote_deadline(&self) -> Option<Instant> {
        let r = self.remote.as_ref()?;
        let waits = r.timers.first().map(|(at, _)| *at);
        match (waits, r.rooms.next_poll()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Waiting deadlines that passed: those plays are refused, their relays not live end.
    pub(super) fn remote_timeout(&mut self, now: Instant) {
        self.room_poll(now);
        loop {
            let Some(remote) = self.remote.as_ref() else {
                return;
            };
            let Some((at, k)) = remote.timers.first().cloned() else {
                return;
            };
            if at > now {
                return;
            }
            info!(app = %k.0, stream = %k.1, "plays waited too long for their relay");
            let (app, stream) = k;
            self.remote_failed(now, &app, &stream, SignalError::NoStreamExist);
        }
    }

    fn take_waiters(&mut self, k: &Key) -> Vec<Waiter> {
        let Some(remote) = self.remote.as_mut() else {
            return Vec::new();
        };
        match remote.waiting.remove(k) {
            Some((deadline, w)) => {
                remote.timers.remove(&(deadline, k.clone()));
                w
            }
            None => Vec::new(),
        }
    }

    fn fail_waiters(&mut self, now: Instant, k: &Key, e: SignalError) {
        let waiters = self.take_waiters(k);
        if let Some(r) = self.remote.as_mut() {
            r.counters.failed += waiters.len() as u64;
        }
        for w in waiters {
            self.refuse(now, w.conn, e, Some(&k.1));
        }
    }

    fn release_waiters(&mut self, now: Instant, k: &Key) {
        let waiters = self.take_waiters(k);
        if let Some(r) = self.remote.as_mut() {
            r.counters.released += waiters.len() as u64;
        }
        for w in waiters {
            if self.conns.get(&w.conn).is_some_and(|c| c.app == k.0) {
                self.play(now, w.conn, &k.0, k.1.clone(), w.play);
            }
        }
    }
}
