//! The rooms of the registry: each node lists its live room members (streams published with
//! `mainTrack` = room) in the room's hash, and a node with room players reads it (see the
//! DESIGN notes in `lib.rs`).

use std::collections::BTreeSet;
use std::time::Instant;

use super::{Cluster, ClusterEvent, ClusterOutput, Waiting, MAX_ROOM_MEMBERS};
use crate::resp::{Command, Reply};

impl Cluster {
    pub(super) fn set_member(&mut self, now: Instant, app: &str, room: &str, stream: &str) {
        let key = self.config.room_key(app, room);
        let ttl = self.config.ttl.as_millis().to_string();
        let node = self.config.node_id.clone();
        let set = Command::new(["HSET", key.as_str(), stream, &node]);
        let expire = Command::new(["PEXPIRE", key.as_str(), &ttl]);
        if self.send(now, set, Waiting::Write("member set"))
            && self.send(now, expire, Waiting::Write("member expire"))
        {
            self.stats.member_sets += 1;
        } else {
            self.stats.skipped += 1;
        }
    }

    /// A stream of this node went live as a member (subtrack) of main track `room`: listed in
    /// the room's key at once (and refreshed, with the key's TTL, by each heartbeat).
    pub fn member_started(&mut self, now: Instant, app: &str, room: &str, stream: &str) {
        self.members
            .insert((app.to_string(), room.to_string(), stream.to_string()));
        self.set_member(now, app, room, stream);
    }

    /// A room member of this node ended: it leaves the room's key.
    pub fn member_ended(&mut self, now: Instant, app: &str, room: &str, stream: &str) {
        let m = (app.to_string(), room.to_string(), stream.to_string());
        if !self.members.remove(&m) {
            return;
        }
        let key = self.config.room_key(app, room);
        if self.send(
            now,
            Command::new(["HDEL", key.as_str(), stream]),
            Waiting::Write("member del"),
        ) {
            self.stats.member_dels += 1;
        } else {
            self.stats.skipped += 1;
        }
    }

    /// Asks which streams are members of `room` on any node; answered by
    /// [`ClusterEvent::RoomMembers`] or, if Redis is away, [`ClusterEvent::RoomUnavailable`].
    pub fn lookup_room(&mut self, now: Instant, app: &str, room: &str) {
        let key = self.config.room_key(app, room);
        let waiting = Waiting::RoomLookup {
            app: app.to_string(),
            room: room.to_string(),
        };
        if self.send(now, Command::new(["HGETALL", key.as_str()]), waiting) {
            self.stats.room_lookups += 1;
        } else {
            self.out
                .push_back(ClusterOutput::Event(ClusterEvent::RoomUnavailable {
                    app: app.to_string(),
                    room: room.to_string(),
                }));
        }
    }
}

/// The member ids of an `HGETALL` reply (field, value, field, value...), sorted, at most
/// [`MAX_ROOM_MEMBERS`]; `None` if the reply is not such an array.
pub(super) fn room_members(reply: &Reply) -> Option<Vec<String>> {
    let Reply::Array(items) = reply else {
        return None;
    };
    let mut ids = BTreeSet::new();
    for field in items.iter().step_by(2) {
        let Reply::Bulk(b) = field else {
            return None;
        };
        ids.insert(String::from_utf8_lossy(b).into_owned());
    }
    Some(ids.into_iter().take(MAX_ROOM_MEMBERS).collect())
}
