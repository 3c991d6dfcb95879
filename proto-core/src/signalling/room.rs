//! Conference: legacy `joinRoom` rooms, their members, and the streams published in them.

use std::collections::BTreeSet;

use std::time::Instant;

use rand_core::Rng;
use tracing::debug;

use super::limits::Held;
use super::{
    key, unindex, ConnId, End, Key, Member, Role, Session, Signalling, ALPHANUMERIC,
    GENERATED_ID_LEN,
};
use crate::access::JoinRoomRequest;
use crate::error::SignalError;
use crate::is_valid_stream_id;
use crate::media::SessionId;
use crate::message::{
    ErrorMessage, JoinRoom, Notification, RoomRef, ServerMessage, StreamListEntry,
};

impl Signalling {
    /// The first room of `app` (in name order) that has `id` as a legacy member, if any.
    /// O(log n): from the member index.
    pub(super) fn member_room(&self, app: &str, id: &str) -> Option<&str> {
        self.member_rooms
            .get(&key(app, id))
            .and_then(|rooms| rooms.first())
            .map(String::as_str)
    }

    /// Is `id` a legacy `joinRoom` member of `room`?
    pub(super) fn is_member(&self, app: &str, room: &str, id: &str) -> bool {
        self.rooms
            .get(&key(app, room))
            .is_some_and(|r| r.members.contains_key(id))
    }

    /// Does stream `id` belong to `room`: published live with `mainTrack` = room, or a legacy
    /// member of it? (What signalling vouches for to the access policy.)
    pub(super) fn in_room(&self, app: &str, room: &str, id: &str) -> bool {
        if self.is_member(app, room, id) {
            return true;
        }
        let publisher = self
            .publishers
            .get(&key(app, id))
            .and_then(|sid| self.sessions.get(sid));
        matches!(
            publisher,
            Some(Session { role: Role::Publish(p), .. })
                if p.live && p.main_track.as_deref() == Some(room)
        )
    }

    /// Streams being published in room `room` of `app` (`mainTrack` = room, or legacy members),
    /// sorted; only live ones if `live_only`. O(room size): from the main-track index and the
    /// room's members.
    pub(super) fn room_streams(&self, app: &str, room: &str, live_only: bool) -> Vec<String> {
        let k = key(app, room);
        let mut ids: BTreeSet<&String> = BTreeSet::new();
        if let Some(subtracks) = self.main_track_streams.get(&k) {
            ids.extend(subtracks);
        }
        if let Some(r) = self.rooms.get(&k) {
            ids.extend(r.members.keys());
        }
        ids.into_iter()
            .filter(|id| {
                let publish = self
                    .publishers
                    .get(&key(app, id))
                    .and_then(|sid| self.sessions.get(sid));
                matches!(publish, Some(Session { role: Role::Publish(p), .. }) if p.live || !live_only)
            })
            .cloned()
            .collect()
    }

    pub(super) fn stream_list(
        &self,
        app: &str,
        room: &str,
        ids: &[String],
    ) -> Vec<StreamListEntry> {
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
                        Role::Play(_) | Role::RoomPlay(_) => None,
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

    pub(super) fn room_of(
        &mut self,
        conn: ConnId,
        r: Option<String>,
        id: Option<&str>,
    ) -> Option<String> {
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

    pub(super) fn generate_id(&mut self, app: &str) -> String {
        loop {
            let id: String = (0..GENERATED_ID_LEN)
                .map(|_| {
                    let i = self.rng.next_u32() as usize % ALPHANUMERIC.len();
                    char::from(ALPHANUMERIC.get(i).copied().unwrap_or(b'x'))
                })
                .collect();
            if !self.publishers.contains_key(&key(app, &id)) && self.member_room(app, &id).is_none()
            {
                return id;
            }
        }
    }

    pub(super) fn join_room(&mut self, now: Instant, conn: ConnId, app: &str, j: JoinRoom) {
        let room_name = j.room.clone().or(j.main_track.clone());
        let Some(room) = self.room_of(conn, room_name, j.stream_id.as_deref()) else {
            return;
        };
        if let Some(id) = j.stream_id.as_deref().filter(|id| !is_valid_stream_id(id)) {
            let id = id.to_string();
            return self.error(conn, SignalError::InvalidStreamName, Some(&id));
        }
        let req = JoinRoomRequest {
            app,
            room: &room,
            stream_id: j.stream_id.as_deref(),
        };
        if let Err(e) = self.access.check_join_room(now, &req) {
            let mut m = ErrorMessage::new(e, j.stream_id.clone());
            m.room = Some(room.clone());
            self.refusals.count(e);
            debug!(?conn, %room, definition = e.definition(), "joinRoom refused");
            return self.send(conn, ServerMessage::Error(m));
        }
        let id = match j.stream_id {
            Some(id) => id,
            None => self.generate_id(app),
        };
        if !self.check_member_count(conn, &room, &id) {
            return;
        }
        // A member id held by another open connection is not taken over: a stranger could
        // otherwise evict any member. A reconnecting client's old connection is gone (its
        // close ended the membership), so its new joinRoom finds the id free.
        let holder = self
            .rooms
            .get(&key(app, &room))
            .and_then(|r| r.members.get(&id))
            .map(|m| m.conn)
            .filter(|c| *c != conn);
        if holder.is_some() {
            return self.refuse(now, conn, SignalError::StreamIdInUse, Some(&id));
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
        self.member_rooms
            .entry(key(app, &id))
            .or_default()
            .insert(room.clone());
        let streams: Vec<String> = self
            .room_streams(app, &room, true)
            .into_iter()
            .filter(|s| *s != id)
            .collect();
        let stream_list = self.stream_list(app, &room, &streams);
        // A member's live stream published without `mainTrack` joins the room's subtracks.
        self.refresh_room(app, &room);
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

    pub(super) fn room_info(&mut self, conn: ConnId, app: &str, r: RoomRef) {
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

    pub(super) fn leave_room(&mut self, conn: ConnId, app: &str, r: RoomRef) {
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
        self.refresh_room(app, &room);
        self.send(
            conn,
            ServerMessage::Notification(Notification::LeavedFromRoom {
                attr_room_name: room.clone(),
                room,
            }),
        );
    }

    pub(super) fn room_remove_member(&mut self, k: &Key, id: &str) {
        if let Some(room) = self.rooms.get_mut(k) {
            room.members.remove(id);
            if room.members.is_empty() {
                self.rooms.remove(k);
            }
        }
        unindex(&mut self.member_rooms, &key(&k.0, id), &k.1);
    }

    /// A `joinRoom` adds a membership unless the connection already holds this one.
    fn check_member_count(&mut self, conn: ConnId, room: &str, id: &str) -> bool {
        let held = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.rooms.contains(&(room.to_string(), id.to_string())));
        held || self.check_count(conn, Held::Rooms, id)
    }
}
