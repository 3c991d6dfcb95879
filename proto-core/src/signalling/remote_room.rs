//! Cluster mode: a room (main track) played here whose members publish on other nodes.
//!
//! While a room has players on this node, signalling asks the cluster for the room's members
//! ([`Output::FindRoom`]) at once for its first player and then every [`ROOM_POLL`]; the
//! answer ([`Signalling::room_members`]) names streams published with `mainTrack` = room on
//! any node. Each member that is not published here and not relayed yet is looked up like a
//! waiting play's stream ([`Output::FindStream`]); [`Signalling::open_relay`] then opens a
//! relay publisher that is a subtrack of the local room, so the room's players get it by
//! renegotiation once its media is live. A member whose origin stream ends ends its relay
//! (the room's players lose it the same way); the relays of a room with no player left here
//! end at the next poll. Bounds: [`MAX_REMOTE_ROOMS`] rooms asked per poll,
//! [`MAX_RELAYED_PER_ROOM`] members relayed per room (more are counted and logged).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::{key, End, Key, Output, Role, Signalling};

/// Period of the look-ups of the rooms played here.
pub const ROOM_POLL: Duration = Duration::from_secs(2);
/// Most rooms looked up per poll.
pub const MAX_REMOTE_ROOMS: usize = 64;
/// Most members of one room relayed to this node.
pub const MAX_RELAYED_PER_ROOM: usize = 16;

/// The remote rooms' state (inside the cluster edge's `Remote`).
#[derive(Debug, Default)]
pub(super) struct RemoteRooms {
    /// When the rooms played here are looked up next (`None`: no room is played here).
    next_poll: Option<Instant>,
    /// Members being looked up → their room.
    pending: BTreeMap<Key, String>,
}

impl RemoteRooms {
    pub(super) fn next_poll(&self) -> Option<Instant> {
        self.next_poll
    }

    /// The room of member `k` if it is being looked up (it is no longer).
    pub(super) fn take_pending(&mut self, k: &Key) -> Option<String> {
        self.pending.remove(k)
    }
}

impl Signalling {
    /// A room play started here: the rooms are looked up now if they were not polled yet.
    pub(super) fn remote_room_watch(&mut self) {
        let Some(r) = self.remote.as_mut() else {
            return;
        };
        if r.rooms.next_poll.is_none() {
            r.rooms.next_poll = Some(self.now);
            self.room_poll(self.now);
        }
    }

    /// Polls the rooms played here if due, and ends the member relays of rooms that have no
    /// player here any more.
    pub(super) fn room_poll(&mut self, now: Instant) {
        let Some(r) = self.remote.as_mut() else {
            return;
        };
        if r.rooms.next_poll.is_none_or(|at| at > now) {
            return;
        }
        let played: Vec<Key> = self
            .room_players
            .keys()
            .take(MAX_REMOTE_ROOMS)
            .cloned()
            .collect();
        r.rooms.next_poll = (!played.is_empty()).then(|| now + ROOM_POLL);
        let mut orphans = Vec::new();
        for (k, ids) in &self.main_track_streams {
            if self.room_players.contains_key(k) {
                continue;
            }
            for id in ids {
                let Some(sid) = self.publishers.get(&key(&k.0, id)).copied() else {
                    continue;
                };
                if matches!(self.sessions.get(&sid).map(|s| &s.role),
                    Some(Role::Publish(p)) if p.relay && p.players.is_empty())
                {
                    orphans.push(sid);
                }
            }
        }
        for sid in orphans {
            debug!(%sid, "the room's last player here left: its member's relay ends");
            self.end_session(sid, End::STOP);
        }
        for (app, room) in played {
            self.outputs.push_back(Output::FindRoom { app, room });
        }
    }

    /// The answer to [`Output::FindRoom`]: the streams published as members of `app`/`room`
    /// on any node (this one's too). Each one not published or relayed here is looked up
    /// ([`Output::FindStream`]) for a relay that joins the local room.
    pub fn room_members(&mut self, now: Instant, app: &str, room: &str, members: &[String]) {
        self.now = now;
        let rk = key(app, room);
        if !self.room_players.contains_key(&rk) {
            return;
        }
        let max_id = self.config.limits.max_id_len;
        let relayed = self.main_track_streams.get(&rk).map_or(0, |ids| {
            ids.iter()
                .filter(|id| {
                    self.publishers
                        .get(&key(app, id))
                        .is_some_and(|sid| self.is_relay(*sid))
                })
                .count()
        });
        let Some(r) = self.remote.as_mut() else {
            return;
        };
        let mut count = relayed + r.rooms.pending.values().filter(|x| *x == room).count();
        for m in members {
            let k = key(app, m);
            if m.is_empty()
                || m.len() > max_id
                || self.publishers.contains_key(&k)
                || r.rooms.pending.contains_key(&k)
            {
                continue;
            }
            if count >= MAX_RELAYED_PER_ROOM {
                r.counters.room_overflow += 1;
                info!(
                    app,
                    room,
                    member = %m,
                    bound = MAX_RELAYED_PER_ROOM,
                    "room member not relayed: the room has the most relayed members"
                );
                continue;
            }
            count += 1;
            r.counters.room_members += 1;
            debug!(app, room, member = %m, "room member on another node: looking it up");
            r.rooms.pending.insert(k, room.to_string());
            self.outputs.push_back(Output::FindStream {
                app: app.to_string(),
                stream: m.clone(),
            });
        }
    }
}
