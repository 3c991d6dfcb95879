//! Publish and play: media sessions, their ends, and the queries about published streams.
//! (About 630 lines: publish, play and their ends share the stream indexes they update; the
//! queries about published streams read the same. The cluster edge's waiting plays are in
//! `remote.rs`, the viewer counts in `viewers.rs`.)

use std::collections::BTreeSet;
use std::time::Instant;

use tracing::{debug, trace};

use super::events::{EventKind, StreamEvent};
use super::limits::Held;
use super::{
    key, unindex, ConnId, End, PlayRequest, PlayState, PublishRequest, PublishState, Role, Session,
    Signalling,
};
use crate::error::SignalError;
use crate::is_valid_stream_id;
use crate::media::{MediaCmd, SessionId};
use crate::message::{
    Notification, Play, Publish, SdpType, ServerMessage, StreamInfo, TakeCandidate,
    TakeConfiguration, TrackToggle, UpdateMetaData,
};

impl Signalling {
    pub(super) fn publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        app: &str,
        id: String,
        p: Publish,
    ) {
        if self.overloaded {
            return self.error(conn, SignalError::HighResourceUsage, Some(&id));
        }
        if self.refuse_publish_by_role(conn, &id) {
            return;
        }
        let main_track = p.main_track.clone().filter(|m| *m != id);
        if let Some(m) = &main_track {
            if !is_valid_stream_id(m) {
                let m = m.clone();
                return self.error(conn, SignalError::InvalidStreamName, Some(&m));
            }
        }
        if !self.holds(conn, Held::Publishes, &id) && !self.check_count(conn, Held::Publishes, &id)
        {
            return;
        }
        let req = PublishRequest {
            app,
            stream_id: &id,
            token: p.token.as_deref(),
            subscriber_id: p.subscriber_id.as_deref(),
            subscriber_code: p.subscriber_code.as_deref(),
            main_track: main_track.as_deref(),
            room_member: main_track
                .as_deref()
                .is_some_and(|m| self.is_member(app, m, &id)),
        };
        let grant = match self.access.check_publish(now, &req) {
            Ok(g) => g,
            Err(e) => return self.refuse(now, conn, e, Some(&id)),
        };
        let k = key(app, &id);
        if self.restore_publisher(now, conn, &k, p.subscriber_id.as_deref()) {
            return;
        }
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
            return self.refuse(now, conn, e, Some(&id));
        }
        if let Some(m) = &main_track {
            if let Err(e) = self.check_subtracks_limit(app, m, &id) {
                return self.refuse(now, conn, e, Some(&id));
            }
        }
        // Accepted: only now is a single-use credential spent.
        if let Err(e) = self.access.commit(now, grant) {
            return self.refuse(now, conn, e, Some(&id));
        }
        let sid = self.alloc_session();
        self.sessions.insert(
            sid,
            Session::new(
                conn,
                app,
                id.clone(),
                p.subscriber_id.clone(),
                false,
                Role::Publish(PublishState {
                    live: false,
                    main_track: main_track.clone(),
                    name: p.stream_name,
                    meta: p.meta_data,
                    role: p.role,
                    players: BTreeSet::new(),
                    ..PublishState::default()
                }),
            ),
        );
        self.set_deadline(sid, Some(now + self.config.client_start_timeout));
        self.publishers.insert(k, sid);
        if let Some(m) = main_track {
            self.main_track_streams
                .entry(key(app, &m))
                .or_default()
                .insert(id.clone());
        }
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

    pub(super) fn play(&mut self, now: Instant, conn: ConnId, app: &str, id: String, p: Play) {
        if self.overloaded {
            return self.error(conn, SignalError::HighResourceUsage, Some(&id));
        }
        let k = key(app, &id);
        let publisher = self.publishers.get(&k).copied().and_then(|sid| {
            match self.sessions.get(&sid).map(|s| &s.role) {
                Some(Role::Publish(ps)) => Some((sid, ps.live)),
                _ => None,
            }
        });
        if !self.holds(conn, Held::Plays, &id) && !self.check_count(conn, Held::Plays, &id) {
            return;
        }
        let req = PlayRequest {
            app,
            stream_id: &id,
            token: p.token.as_deref(),
            subscriber_id: p.subscriber_id.as_deref(),
            subscriber_code: p.subscriber_code.as_deref(),
            room: p.room.as_deref(),
            room_member: p
                .room
                .as_deref()
                .filter(|r| !r.is_empty())
                .is_some_and(|r| self.in_room(app, r, &id)),
            viewers: self.cluster_viewers(app, &id, publisher.map(|(sid, _)| sid)),
        };
        let grant = match self.access.check_play(now, &req) {
            Ok(g) => g,
            Err(e) => return self.refuse(now, conn, e, Some(&id)),
        };
        let Some((publisher, true)) = publisher else {
            // A WHEP player brings its own offer; a room play needs server offers.
            let live_subtracks = self.has_live_subtrack(app, &id);
            if publisher.is_none() && self.whep_offer.is_none() && live_subtracks {
                // Accepted as a room play: only now is a single-use credential spent.
                if let Err(e) = self.access.commit(now, grant) {
                    return self.refuse(now, conn, e, Some(&id));
                }
                return self.room_play(conn, app, id, p);
            }
            // Cluster edge: another node may publish it (see `remote.rs`).
            if !live_subtracks && self.wait_remote(now, conn, app, &id, p) {
                return;
            }
            return self.refuse(now, conn, SignalError::NoStreamExist, Some(&id));
        };
        if self.publisher_media_gone(publisher) {
            // Held after a drop, its peer connection gone: nothing to play until it comes back.
            return self.refuse(now, conn, SignalError::NoStreamExist, Some(&id));
        }
        let playing = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.plays.contains_key(&id));
        if playing && self.config.play_once_per_session {
            return self.refuse(now, conn, SignalError::AlreadyPlaying, Some(&id));
        }
        // Accepted: only now is a single-use credential spent.
        let relay = grant.relay;
        if let Err(e) = self.access.commit(now, grant) {
            return self.refuse(now, conn, e, Some(&id));
        }
        if let Some(old) = self
            .conns
            .get(&conn)
            .and_then(|c| c.plays.get(&id))
            .copied()
        {
            self.replacing(|sig| sig.end_session(old, End::REPLACED));
        }
        let sid = self.alloc_session();
        self.sessions.insert(
            sid,
            Session::new(
                conn,
                app,
                id.clone(),
                p.subscriber_id,
                true,
                Role::Play(PlayState {
                    publisher,
                    connected: false,
                    forced_height: 0,
                    relay,
                }),
            ),
        );
        if let Some(Role::Publish(ps)) = self.sessions.get_mut(&publisher).map(|s| &mut s.role) {
            ps.players.insert(sid);
        }
        if !relay {
            self.viewers_changed(publisher);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.plays.insert(id.clone(), sid);
        }
        match self.whep_offer.take() {
            Some(offer) => self.media(MediaCmd::StartPlayAnswer {
                session: sid,
                stream: id,
                publisher,
                offer,
            }),
            None => self.media(MediaCmd::StartPlay {
                session: sid,
                stream: id,
                publisher,
            }),
        }
    }

    pub(super) fn stop(&mut self, conn: ConnId, id: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let publish = c.publishes.get(id).copied();
        let play = c.plays.get(id).copied();
        let app = c.app.clone();
        if publish.is_none() && play.is_none() && !self.remote_cancel(conn, &app, id) {
            trace!(?conn, id, "stop of nothing");
        }
        for sid in publish.into_iter().chain(play) {
            self.end_session(sid, End::STOP);
        }
    }

    pub(super) fn take_configuration(
        &mut self,
        conn: ConnId,
        app: &str,
        id: String,
        c: TakeConfiguration,
    ) {
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
                // Namespaced by application, as main tracks are (`Key`).
                let main_track = match &s.role {
                    Role::Publish(p) => p.main_track.as_ref().map(|m| format!("{app}/{m}")),
                    Role::Play(_) | Role::RoomPlay(_) => None,
                };
                self.media(MediaCmd::StartPublish {
                    session: sid,
                    stream: id,
                    offer: c.sdp,
                });
                if let Some(main_track) = main_track {
                    self.media(MediaCmd::SetMainTrack {
                        session: sid,
                        main_track,
                    });
                }
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

    pub(super) fn take_candidate(&mut self, conn: ConnId, app: &str, id: String, c: TakeCandidate) {
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

    pub(super) fn toggle(
        &mut self,
        conn: ConnId,
        id: String,
        t: TrackToggle,
        video: bool,
        audio: bool,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if let Some(sid) = c.plays.get(&id).copied().filter(|s| self.is_room_play(*s)) {
            if video && audio {
                return self.room_enable_track(sid, t);
            }
            if t.track_id.as_ref().is_some_and(|tr| *tr != id) {
                return self.room_toggle(conn, sid, t, video);
            }
        }
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

    pub(super) fn stream_info(&mut self, conn: ConnId, app: &str, id: String) {
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

    pub(super) fn track_list(&mut self, conn: ConnId, app: &str, id: String) {
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

    pub(super) fn update_meta(&mut self, conn: ConnId, app: &str, id: String, u: UpdateMetaData) {
        let k = key(app, &id);
        let publisher = self.publishers.get(&k).copied();
        if let Some(Role::Publish(p)) = publisher
            .and_then(|sid| self.sessions.get_mut(&sid))
            .map(|s| &mut s.role)
        {
            p.meta = u.meta_data;
            return;
        }
        // This connection's memberships under that id (bounded by `max_rooms_per_conn`).
        let rooms: Vec<String> = self
            .conns
            .get(&conn)
            .map(|c| {
                c.rooms
                    .iter()
                    .filter(|(_, member)| *member == id)
                    .map(|(room, _)| room.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut found = false;
        for room in rooms {
            if let Some(m) = self
                .rooms
                .get_mut(&key(app, &room))
                .and_then(|r| r.members.get_mut(&id))
            {
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

    pub(super) fn bitrate_measurement(&mut self, player: SessionId, publisher: SessionId) {
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
    pub(super) fn end_session(&mut self, sid: SessionId, end: End) {
        let Some(s) = self.sessions.remove(&sid) else {
            return;
        };
        if let Some(at) = s.deadline {
            self.timers.remove(&(at, sid));
        }
        if end.close_media && s.media_known {
            self.media(MediaCmd::Close { session: sid });
        }
        let connected = match s.role {
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
                if let Some(m) = &p.main_track {
                    unindex(&mut self.main_track_streams, &key(&s.app, m), &s.stream);
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
                let remote = self.remote_viewers.remove(&key(&s.app, &s.stream));
                if p.relay {
                    // Nothing of a relay is recorded here: the origin owns the stream.
                    let room = p.main_track.as_deref();
                    return self.relay_gone(&s.app, &s.stream, room, p.live);
                }
                if had_players || remote.is_some() {
                    self.access.on_viewer_count(&s.app, &s.stream, 0);
                }
                // After its players' `PlayStopped`.
                let kind = if p.live {
                    Some(EventKind::PublishEnded)
                } else if end.error == Some(SignalError::PublishTimeoutError) {
                    Some(EventKind::PublishTimeout)
                } else {
                    None
                };
                if let Some(kind) = kind {
                    self.record(|| StreamEvent {
                        kind,
                        app: s.app.clone(),
                        stream: s.stream.clone(),
                        name: p.name.clone(),
                        main_track: p.main_track.clone(),
                        subscriber_id: s.subscriber_id.clone(),
                    });
                }
                if p.live {
                    let now = self.now;
                    self.access.on_publish_finished(now, &s.app, &s.stream);
                    for room in self.rooms_listing(&s.app, &s.stream, p.main_track.as_deref()) {
                        self.refresh_room(&s.app, &room);
                    }
                }
                return;
            }
            Role::RoomPlay(rp) => {
                unindex(&mut self.room_players, &key(&s.app, &s.stream), &sid);
                rp.connected
            }
            Role::Play(p) => {
                if let Some(Role::Publish(ps)) =
                    self.sessions.get_mut(&p.publisher).map(|s| &mut s.role)
                {
                    ps.players.remove(&sid);
                    let relayed = ps.relay;
                    if relayed {
                        self.relay_player_left(p.publisher);
                    } else if !p.relay {
                        self.viewers_changed(p.publisher);
                    }
                }
                p.connected
            }
        };
        // A play of either kind (one stream or a room's streams) ends the same way.
        if let Some(c) = self.conns.get_mut(&s.conn) {
            if c.plays.get(&s.stream) == Some(&sid) {
                c.plays.remove(&s.stream);
            }
        }
        if connected {
            self.record(|| StreamEvent {
                kind: EventKind::PlayStopped,
                app: s.app.clone(),
                stream: s.stream.clone(),
                name: None,
                main_track: None,
                subscriber_id: s.subscriber_id.clone(),
            });
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

impl Signalling {
    /// Whether `conn` already publishes (plays) `id`: a repeat does not add to the count.
    fn holds(&self, conn: ConnId, what: Held, id: &str) -> bool {
        self.conns.get(&conn).is_some_and(|c| match what {
            Held::Publishes => c.publishes.contains_key(id),
            Held::Plays => c.plays.contains_key(id),
            Held::Rooms | Held::P2p => false,
        })
    }
}
