//! Main tracks (multitrack, the 2.16 conference): playing a room in one peer connection, the
//! selection of its subtracks, `enableTrack`, and the subtrack queries.
//!
//! A main track `M` has as subtracks every stream published with `mainTrack = M` and every
//! stream of a legacy `joinRoom` member of room `M` ([`Signalling::room_streams`]). `play(M)`
//! of an `M` that is not itself published, while at least one subtrack is live, makes a
//! *room play*: signalling keeps, per room player, the selection the client asked for and the
//! set of live selected subtracks it last handed to the media layer; whenever a subtrack starts
//! or ends (or a selection changes) it hands the media layer the new set
//! ([`MediaCmd::SetSubtracks`]), which renegotiates, and tells the player `subtrackAdded` /
//! `subtrackRemoved`.
//!
//! # Selection (decisions where AMS is silent)
//!
//! A live subtrack `id` is sent to a room player when, in this order:
//! 1. `enableTrack {trackId: id, enabled}` was received: `enabled` decides;
//! 2. `id` is excluded (`!id` in `trackList`, or the player's own `userPublishId`): not sent;
//! 3. `trackList` names subtracks without `!` and `id` was live at `play` but not named: not
//!    sent. Subtracks that start later are not held back by the names: the SDK's
//!    `conference-room.html` plays the room once, naming the members it knew then
//!    (`[ids…, "!me"]`), and shows every later member;
//! 4. otherwise: sent unless `disableTracksByDefault`.
//!
//! A room player whose subtracks all end stays connected with inactive m-lines and receives
//! the next subtrack that starts (AMS keeps the main track while it has subtracks; the SDK's
//! pages play a room once).

use std::collections::{BTreeMap, BTreeSet};

use tracing::{debug, trace};

use super::{key, ConnId, End, Role, Session, Signalling};
use crate::error::SignalError;
use crate::media::{MediaCmd, SessionId, Subtrack};
use crate::message::{Notification, Play, ServerMessage, TrackToggle};

/// The most `enableTrack` decisions remembered per room player for ids that are not (yet)
/// subtracks of its room; decisions about current subtracks are always kept.
const MAX_FOREIGN_OVERRIDES: usize = 64;
/// The most ids of a `trackList` kept (the 80 KB frame limit bounds it anyway).
const MAX_TRACK_LIST: usize = 256;

/// What a room player asked for and what it is sent.
#[derive(Debug, Default)]
pub(super) struct RoomPlayState {
    /// `!id` entries of `trackList`, and `userPublishId`.
    exclude: BTreeSet<String>,
    /// `enableTrack` decisions.
    overrides: BTreeMap<String, bool>,
    /// `disableTracksByDefault`.
    disabled_by_default: bool,
    /// The subtracks last handed to the media layer: id -> publish session.
    pub(super) sent: BTreeMap<String, SessionId>,
    /// Live subtracks the player was told about (`subtrackAdded`/`subtrackRemoved`).
    pub(super) known: BTreeSet<String>,
    /// The live subtracks in the order they went live (the Last-N slot policy).
    pub(super) order: Vec<String>,
    /// Subtracks whose video (`toggleVideo`) or audio (`toggleAudio`) this player switched off.
    pub(super) video_off: BTreeSet<String>,
    /// See `video_off`.
    pub(super) audio_off: BTreeSet<String>,
    /// Last-N video slots (`lastn.rs`).
    pub(super) lastn: super::lastn::LastN,
    /// `play_started` was sent.
    pub(super) connected: bool,
}

impl RoomPlayState {
    /// The selection of a `play` while subtracks `live` are live.
    fn new(p: &Play, live: &[(String, SessionId)]) -> Self {
        let mut st = RoomPlayState {
            disabled_by_default: p.disable_tracks_by_default.unwrap_or(false),
            ..RoomPlayState::default()
        };
        let mut include = BTreeSet::new();
        for t in p.track_list.iter().take(MAX_TRACK_LIST) {
            match t.strip_prefix('!') {
                Some(ex) if !ex.is_empty() => {
                    st.exclude.insert(ex.to_string());
                }
                Some(_) => {}
                None if !t.is_empty() => {
                    include.insert(t.as_str());
                }
                None => {}
            }
        }
        if let Some(me) = &p.user_publish_id {
            st.exclude.insert(me.clone());
        }
        if !include.is_empty() {
            for (t, _) in live {
                if !include.contains(t.as_str()) && !st.exclude.contains(t) {
                    st.overrides.insert(t.clone(), false);
                }
            }
        }
        st
    }

    /// Whether subtrack `id` is to be sent (see the module documentation).
    pub(super) fn selects(&self, id: &str) -> bool {
        if let Some(on) = self.overrides.get(id) {
            return *on;
        }
        if self.exclude.contains(id) {
            return false;
        }
        !self.disabled_by_default
    }
}

impl Signalling {
    /// Whether main track `id` of `app` has a live subtrack.
    pub(super) fn has_live_subtrack(&self, app: &str, id: &str) -> bool {
        !self.live_subtracks(app, id).is_empty()
    }

    /// Every room whose players may receive `stream` as a subtrack: its main track, then the
    /// rooms it joined with `joinRoom` (a stream can be both, and in several rooms).
    pub(super) fn rooms_listing(
        &self,
        app: &str,
        stream: &str,
        main_track: Option<&str>,
    ) -> Vec<String> {
        let mut rooms: Vec<String> = main_track.map(str::to_string).into_iter().collect();
        for r in self
            .member_rooms
            .get(&key(app, stream))
            .into_iter()
            .flatten()
        {
            if !rooms.contains(r) {
                rooms.push(r.clone());
            }
        }
        rooms
    }

    pub(super) fn is_room_play(&self, sid: SessionId) -> bool {
        self.sessions
            .get(&sid)
            .is_some_and(|s| matches!(s.role, Role::RoomPlay(_)))
    }

    /// Live subtracks of `room` with their publish sessions.
    fn live_subtracks(&self, app: &str, room: &str) -> Vec<(String, SessionId)> {
        self.room_streams(app, room, true)
            .into_iter()
            .filter_map(|id| {
                let sid = *self.publishers.get(&key(app, &id))?;
                // A held publisher whose peer connection is gone has no media to send.
                (!self.publisher_media_gone(sid)).then_some((id, sid))
            })
            .collect()
    }

    /// `play` of main track `id`, which has a live subtrack; access is already checked.
    pub(super) fn room_play(&mut self, conn: ConnId, app: &str, id: String, p: Play) {
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
        let live = self.live_subtracks(app, &id);
        let mut st = RoomPlayState::new(&p, &live);
        let subtracks: Vec<Subtrack> = live
            .iter()
            .filter(|(t, _)| st.selects(t))
            .map(|(t, publisher)| Subtrack {
                id: t.clone(),
                publisher: *publisher,
            })
            .collect();
        st.sent = subtracks
            .iter()
            .map(|t| (t.id.clone(), t.publisher))
            .collect();
        st.order = live.iter().map(|(t, _)| t.clone()).collect();
        st.known = live.into_iter().map(|(t, _)| t).collect();
        let sid = self.alloc_session();
        debug!(%sid, room = %id, sent = subtracks.len(), "room play");
        self.sessions.insert(
            sid,
            Session::new(
                conn,
                app,
                id.clone(),
                p.subscriber_id,
                true,
                Role::RoomPlay(st),
            ),
        );
        self.room_players
            .entry(key(app, &id))
            .or_default()
            .insert(sid);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.plays.insert(id.clone(), sid);
        }
        self.media(MediaCmd::StartRoomPlay {
            session: sid,
            stream: id.clone(),
            subtracks,
        });
        // The media layer's data relay keys main tracks by application, as `SetMainTrack` for
        // a subtrack publisher does: the room player gets the subtracks' messages.
        self.media(MediaCmd::SetMainTrack {
            session: sid,
            main_track: format!("{app}/{id}"),
        });
        self.start_last_n(sid);
        // Cluster mode: the room's members on other nodes are looked up (`remote_room.rs`).
        self.remote_room_watch();
    }

    /// The live subtracks of `room` changed, or may have: brings every room player of it up
    /// to date (media layer first, then `subtrackAdded`/`subtrackRemoved`).
    pub(super) fn refresh_room(&mut self, app: &str, room: &str) {
        let Some(players) = self.room_players.get(&key(app, room)).cloned() else {
            return;
        };
        let live = self.live_subtracks(app, room);
        for sid in players {
            self.refresh_player(sid, &live);
        }
    }

    fn refresh_player(&mut self, sid: SessionId, live: &[(String, SessionId)]) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let conn = s.conn;
        let room = s.stream.clone();
        let Role::RoomPlay(st) = &mut s.role else {
            return;
        };
        let sent: BTreeMap<String, SessionId> = live
            .iter()
            .filter(|(t, _)| st.selects(t))
            .map(|(t, p)| (t.clone(), *p))
            .collect();
        let now_live: BTreeSet<String> = live.iter().map(|(t, _)| t.clone()).collect();
        let added: Vec<String> = now_live.difference(&st.known).cloned().collect();
        let removed: Vec<String> = st.known.difference(&now_live).cloned().collect();
        st.order.retain(|t| now_live.contains(t));
        st.order.extend(added.iter().cloned());
        st.known = now_live;
        let mut newly_sent = Vec::new();
        if sent != st.sent {
            newly_sent = sent
                .iter()
                .filter(|(id, p)| st.sent.get(*id) != Some(*p))
                .map(|(id, publisher)| Subtrack {
                    id: id.clone(),
                    publisher: *publisher,
                })
                .collect();
            let subtracks = sent
                .iter()
                .map(|(id, publisher)| Subtrack {
                    id: id.clone(),
                    publisher: *publisher,
                })
                .collect();
            st.sent = sent;
            self.media(MediaCmd::SetSubtracks {
                session: sid,
                subtracks,
            });
        }
        self.after_room_refresh(sid, newly_sent);
        for track_id in removed {
            self.send(
                conn,
                ServerMessage::Notification(Notification::SubtrackRemoved {
                    stream_id: room.clone(),
                    track_id,
                }),
            );
        }
        for track_id in added {
            self.send(
                conn,
                ServerMessage::Notification(Notification::SubtrackAdded {
                    stream_id: room.clone(),
                    track_id,
                }),
            );
        }
    }

    /// `enableTrack` on a room play: switches one subtrack on or off for this player.
    pub(super) fn room_enable_track(&mut self, sid: SessionId, t: TrackToggle) {
        let Some(track) = t.track_id else {
            trace!(%sid, "enableTrack without trackId");
            return;
        };
        let enabled = t.enabled.unwrap_or(true);
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (app, room) = (s.app.clone(), s.stream.clone());
        let is_subtrack = self.room_streams(&app, &room, false).contains(&track);
        let Some(Role::RoomPlay(st)) = self.sessions.get_mut(&sid).map(|s| &mut s.role) else {
            return;
        };
        let foreign = st
            .overrides
            .keys()
            .filter(|k| !st.known.contains(*k))
            .count();
        if !is_subtrack && !st.overrides.contains_key(&track) && foreign >= MAX_FOREIGN_OVERRIDES {
            debug!(%sid, %track, "enableTrack for an unknown track refused: too many");
            return;
        }
        st.overrides.insert(track, enabled);
        let live = self.live_subtracks(&app, &room);
        self.refresh_player(sid, &live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::Harness;
    use crate::media::MediaEvent;
    use crate::signalling::{Config, Output};
    use proptest::prelude::*;
    use serde_json::json;

    const APP: &str = "WebRTCAppEE";
    const IDS: [&str; 4] = ["s0", "s1", "s2", "s3"];

    #[derive(Debug, Clone)]
    enum Op {
        Publish(usize),
        Stop(usize),
        Enable(usize, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize).prop_map(Op::Publish),
            (0..4usize).prop_map(Op::Stop),
            (0..4usize, any::<bool>()).prop_map(|(i, on)| Op::Enable(i, on)),
        ]
    }

    /// Applies outputs to the model of what the player (conn 1) was given and told.
    fn observe(outs: &[Output], sent: &mut BTreeSet<String>, told: &mut BTreeSet<String>) {
        for o in outs {
            match o {
                Output::Media(MediaCmd::StartRoomPlay { subtracks, .. })
                | Output::Media(MediaCmd::SetSubtracks { subtracks, .. }) => {
                    *sent = subtracks.iter().map(|t| t.id.clone()).collect();
                }
                Output::Send(c, ServerMessage::Notification(n)) if c.0 == 1 => match n {
                    Notification::SubtrackAdded { track_id, .. } => {
                        assert!(told.insert(track_id.clone()), "added twice: {track_id}");
                    }
                    Notification::SubtrackRemoved { track_id, .. } => {
                        assert!(told.remove(track_id), "removed unknown: {track_id}");
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    fn publish(h: &mut Harness, i: usize) -> Vec<Output> {
        let conn = 10 + i as u64;
        let id = IDS[i];
        let mut outs = h.text(
            conn,
            &json!({"command":"publish","streamId":id,"mainTrack":"room","video":true}).to_string(),
        );
        outs.extend(
            h.text(
                conn,
                &json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"O"})
                    .to_string(),
            ),
        );
        let session = outs.iter().find_map(|o| match o {
            Output::Media(MediaCmd::StartPublish { session, .. }) => Some(*session),
            _ => None,
        });
        if let Some(session) = session {
            outs.extend(h.media_event(MediaEvent::MediaStarted { session }));
        }
        outs
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Subtracks starting and ending in any order, and enableTrack at any time: after every
        /// step the room player has been handed exactly the live subtracks its selection
        /// picks (trackList `!s1`, userPublishId `s3`, enableTrack overrides), and told of
        /// exactly the live ones.
        #[test]
        fn room_player_gets_exactly_the_live_selected_subtracks(
            ops in prop::collection::vec(op(), 1..40)
        ) {
            let mut h = Harness::new(Config::default());
            h.open(1, APP);
            for i in 0..4 {
                h.open(10 + i, APP);
            }
            let (mut sent, mut told) = (BTreeSet::new(), BTreeSet::new());
            let mut live = BTreeSet::new();
            let outs = publish(&mut h, 0);
            observe(&outs, &mut sent, &mut told);
            live.insert(IDS[0].to_string());
            let outs = h.text(1, &json!({"command":"play","streamId":"room",
                "trackList":["!s1"],"userPublishId":"s3"}).to_string());
            let started = outs
                .iter()
                .any(|o| matches!(o, Output::Media(MediaCmd::StartRoomPlay { .. })));
            prop_assert!(started, "no room play: {:?}", outs);
            observe(&outs, &mut sent, &mut told);
            told.clone_from(&live); // the play starts knowing the live subtracks
            let mut model = RoomPlayState::new(&Play {
                track_list: vec!["!s1".into()],
                user_publish_id: Some("s3".into()),
                ..Play::default()
            }, &[]);
            for op in ops {
                let outs = match op {
                    Op::Publish(i) => {
                        let outs = publish(&mut h, i);
                        live.insert(IDS[i].to_string());
                        outs
                    }
                    Op::Stop(i) => {
                        live.remove(IDS[i]);
                        h.text(10 + i as u64, &json!({"command":"stop","streamId":IDS[i]}).to_string())
                    }
                    Op::Enable(i, on) => {
                        model.overrides.insert(IDS[i].to_string(), on);
                        h.text(1, &json!({"command":"enableTrack","streamId":"room",
                            "trackId":IDS[i],"enabled":on}).to_string())
                    }
                };
                observe(&outs, &mut sent, &mut told);
                let expected: BTreeSet<String> =
                    live.iter().filter(|t| model.selects(t)).cloned().collect();
                prop_assert_eq!(&sent, &expected);
                prop_assert_eq!(&told, &live);
            }
            h.finish();
        }
    }

    fn play(list: &[&str], me: Option<&str>, off: bool) -> RoomPlayState {
        let live: Vec<(String, SessionId)> = ["a", "b", "c", "me"]
            .iter()
            .map(|s| (s.to_string(), SessionId(1)))
            .collect();
        RoomPlayState::new(
            &Play {
                track_list: list.iter().map(|s| s.to_string()).collect(),
                user_publish_id: me.map(str::to_string),
                disable_tracks_by_default: Some(off),
                ..Play::default()
            },
            &live,
        )
    }

    #[test]
    fn selection_rules() {
        let st = play(&[], None, false);
        assert!(st.selects("a"));
        // Named: the live ones not named are held back, later ones are not.
        let st = play(&["a", "b", "!me"], Some("me"), false);
        assert!(st.selects("a") && st.selects("b") && st.selects("later"));
        assert!(!st.selects("c") && !st.selects("me"));
        let st = play(&["!me"], None, false);
        assert!(st.selects("a") && !st.selects("me"));
        let st = play(&["!"], Some("me"), false);
        assert!(st.selects("a") && !st.selects("me"));
        let mut st = play(&[], None, true);
        assert!(!st.selects("a"));
        st.overrides.insert("a".into(), true);
        assert!(st.selects("a") && !st.selects("b"));
        let mut st = play(&["!x"], None, false);
        st.overrides.insert("x".into(), true);
        assert!(st.selects("x"), "enableTrack overrides an exclusion");
    }
}
