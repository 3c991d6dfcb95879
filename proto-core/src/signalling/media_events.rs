//! What the media layer reports ([`MediaEvent`]) and what signalling makes of it: answers,
//! offers and candidates to the client, `publish_started` / `play_started`, failures, and
//! measurements.

use std::time::Instant;

use crate::media::MediaEvent;

use super::*;

impl Signalling {
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
                if p.relay {
                    self.set_deadline(sid, None);
                    return self.relay_live(now, sid);
                }
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
}
