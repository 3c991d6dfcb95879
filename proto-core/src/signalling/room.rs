//! Conference: legacy `joinRoom` rooms, their members, and the streams published in them.

use std::collections::BTreeSet;

use rand_core::Rng;

use super::{
    key, ConnId, End, Key, Member, Role, Session, Signalling, ALPHANUMERIC, GENERATED_ID_LEN,
};
use crate::error::SignalError;
use crate::is_valid_stream_id;
use crate::media::SessionId;
use crate::message::{
    ErrorMessage, JoinRoom, Notification, RoomRef, ServerMessage, StreamListEntry,
};

impl Signalling {
    /// The first room of `app` (in name order) that has `id` as a legacy member, if any.
    pub(super) fn member_room(&self, app: &str, id: &str) -> Option<&str> {
        self.rooms
            .range(key(app, "")..)
            .take_while(|((a, _), _)| a == app)
            .find(|(_, room)| room.members.contains_key(id))
            .map(|((_, room), _)| room.as_str())
    }

    /// Streams being published in room `room` of `app` (`mainTrack` = room, or legacy members),
    /// sorted; only live ones if `live_only`.
    pub(super) fn room_streams(&self, app: &str, room: &str, live_only: bool) -> Vec<String> {
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

    pub(super) fn join_room(&mut self, conn: ConnId, app: &str, j: JoinRoom) {
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
    }
}
