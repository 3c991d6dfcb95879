//! Room players: one peer connection that carries several publishers (the subtracks of a main
//! track), renegotiated with new server offers as signalling changes the set.
//!
//! # The m-lines of a room player
//!
//! - Every m-line is sendonly audio or video and carries one subtrack's track of that kind
//!   ([`Source::From`]), or nothing ([`Source::Idle`], direction inactive). Each subtrack gets
//!   one m-line per kind its publisher sends, audio first.
//! - Each m-line's msid is `<subtrack id> ARDAMS{a|v}<subtrack id>`, so a browser groups a
//!   participant's audio and video in one `MediaStream`; the offer's `idMapping` names the
//!   mid `ARDAMS{a|v}<subtrack id>` (signalling builds it from [`OfferedTrack::source`]).
//! - A room play with nothing to send yet offers one inactive audio m-line, so the peer
//!   connection can come up and wait for the first subtrack.
//!
//! # Renegotiation
//!
//! [`MediaCmd::SetSubtracks`](proto_core::MediaCmd::SetSubtracks) replaces the wanted set.
//! If an offer is pending (not answered yet) the change waits for the answer; otherwise one new
//! offer is made at once:
//! 1. m-lines whose subtrack is no longer wanted go inactive (the browser mutes the track and
//!    fires `removetrack`, which is how the SDK's pages drop the tile);
//! 2. each wanted subtrack kind without an m-line takes an inactive m-line of that kind that
//!    was inactive before this offer (reactivating one in the same offer that freed it would
//!    change its subtrack without the browser noticing a new track), or else a new m-line.
//!    So m-lines are reused, and their number is bounded by the most subtracks ever sent at
//!    once, not by how many came and went.
//!
//! A reused m-line keeps its SSRC and sequence space: its rewriter is re-targeted
//! (`SeqRewriter::retarget`) so the new source continues the numbering, and its payload type
//! map is recomputed for the new publisher's codecs. Once the browser answers, the newly
//! activated publishers are asked for a keyframe.
//!
//! # Last-N
//!
//! With video slots (`lastn.rs`) the plan has audio only per subtrack, and N video m-lines
//! named `videoTrack<k>` are kept (added or reactivated in step 2's way, deactivated from the
//! end when N shrinks); slot m-lines are never taken for a subtrack. What a slot carries is
//! set by `Sfu::apply_slots`, never negotiated.
//!
//! (A little over 600 lines: the m-line planner and the msid rewriting of its offers belong
//! together; the slot switching lives in `lastn.rs`.)

use std::collections::BTreeSet;
use std::time::Instant;

use proto_core::{MediaEvent, OfferedTrack, SessionId, Subtrack, TrackKind};
use str0m::change::SdpApi;
use str0m::media::{Direction, MediaKind, Mid};
use tracing::{debug, trace};

use super::lastn::slot_label;
use super::sdp_text::rewrite_msids;
use super::Sfu;
use crate::forward::{OutTrack, Source};
use crate::session::{Player, Role};
use crate::SfuOutput;

/// What the SFU keeps for a room player besides its tracks.
#[derive(Debug, Default)]
pub(crate) struct RoomPlayer {
    /// The subtracks signalling wants sent.
    desired: Vec<Subtrack>,
    /// `desired` changed while an offer was pending: renegotiate once it is answered.
    dirty: bool,
    /// The subtrack each m-line carries or last carried: its msid and `idMapping` name.
    names: Vec<(Mid, String)>,
    /// Publishers the pending offer gives m-lines to: asked for a keyframe on the answer.
    activated: Vec<SessionId>,
    /// Last-N: what each `videoTrack<k>` slot should carry (`None`: one video m-line per
    /// subtrack). See `lastn.rs`.
    pub(super) slots: Option<Vec<Option<Subtrack>>>,
    /// The m-line of each slot that has one (fewer than the slots while an offer adding
    /// them is being made).
    pub(super) slot_mids: Vec<Mid>,
    /// `(publisher, is video)` this player does not receive (`toggleVideo`/`toggleAudio`).
    pub(super) muted: BTreeSet<(SessionId, bool)>,
    /// The last `VIDEO_TRACK_ASSIGNMENT_LIST` event and whether it went out on the channel.
    pub(super) event: Option<(String, bool)>,
}

impl RoomPlayer {
    /// Whether `publisher`'s media of `kind` is switched off for this player.
    pub(crate) fn is_muted(&self, publisher: SessionId, kind: MediaKind) -> bool {
        !self.muted.is_empty() && self.muted.contains(&(publisher, kind == MediaKind::Video))
    }
}

/// One m-line of a room player, for tests and diagnostics ([`Sfu::room_lines`]).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLine {
    /// Its mid.
    pub mid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// The publisher it carries, `None` if inactive.
    pub source: Option<SessionId>,
    /// The subtrack it carries or last carried.
    pub name: Option<String>,
}

/// The msid track id (and `idMapping` value) of a subtrack's track of `kind`.
pub(super) fn track_name(kind: MediaKind, id: &str) -> String {
    match kind {
        MediaKind::Audio => format!("ARDAMSa{id}"),
        MediaKind::Video => format!("ARDAMSv{id}"),
    }
}

impl Sfu {
    /// The m-lines of room player `session` in order, and whether an offer awaits its answer;
    /// `None` if it is not a room player.
    #[doc(hidden)]
    pub fn room_lines(&self, session: SessionId) -> Option<(Vec<RoomLine>, bool)> {
        let s = self.sessions.get(*self.ids.get(&session)?)?;
        let Role::Player(p) = &s.role else {
            return None;
        };
        let room = p.room.as_ref()?;
        let lines = offered_tracks(&p.tracks, &room.names)
            .into_iter()
            .zip(&p.tracks)
            .map(|(o, t)| RoomLine {
                mid: o.mid,
                kind: o.kind,
                source: match t.source {
                    Source::From(x) => Some(x),
                    Source::Any | Source::Idle => None,
                },
                name: o.source,
            })
            .collect();
        Some((lines, p.pending.is_some()))
    }

    /// The kinds each subtrack's publisher sends (audio first; both if not known yet).
    /// Subtracks whose publisher is gone are left out.
    fn source_kinds(&self, subtracks: &[Subtrack]) -> Vec<(Subtrack, Vec<MediaKind>)> {
        subtracks
            .iter()
            .filter_map(|t| {
                let s = self.sessions.get(*self.ids.get(&t.publisher)?)?;
                let Role::Publisher(p) = &s.role else {
                    return None;
                };
                let mut kinds: Vec<MediaKind> = [MediaKind::Audio, MediaKind::Video]
                    .into_iter()
                    .filter(|k| p.tracks.iter().any(|x| x.kind == *k))
                    .collect();
                if p.tracks.is_empty() {
                    kinds = vec![MediaKind::Audio, MediaKind::Video];
                }
                Some((t.clone(), kinds))
            })
            .collect()
    }

    /// `StartRoomPlay`: a player of a main track, with an m-line per subtrack kind.
    pub(super) fn start_room_play(
        &mut self,
        now: Instant,
        id: SessionId,
        stream: String,
        subtracks: Vec<Subtrack>,
    ) {
        if self.ids.contains_key(&id) {
            debug!(session = %id, "StartRoomPlay for an existing session ignored");
            return;
        }
        let plan = self.source_kinds(&subtracks);
        // Publishers differ in payload types: offer the usual codecs and map each publisher's
        // payload types per m-line (`map_pt`).
        let config = self.player_config(&[]);
        let mut rtc = config.build(now);
        let candidates = self.add_local_candidates(&mut rtc);
        let mut api = rtc.sdp_api();
        let mut tracks = Vec::new();
        let mut names = Vec::new();
        // Stable mids, as for plain players (see `start_play`).
        let mids = crate::rng::StableMids::enter(self.seed(), &stream);
        for (sub, kinds) in &plan {
            for kind in kinds {
                let source = Source::From(sub.publisher);
                let t = add_line(&mut api, *kind, Direction::SendOnly, &sub.id, source);
                names.push((t.mid, sub.id.clone()));
                tracks.push(t);
            }
        }
        if tracks.is_empty() {
            let t = add_line(
                &mut api,
                MediaKind::Audio,
                Direction::Inactive,
                &stream,
                Source::Idle,
            );
            names.push((t.mid, stream.clone()));
            tracks.push(t);
        }
        // The data channel (labelled with the main track, as for a plain play) after the media
        // lines and inside the stable-mid section; the subtracks' messages reach it once the
        // player is registered with its main track (`SetMainTrack`).
        if self.data.config.enabled {
            api.add_channel(stream.clone());
        }
        drop(mids);
        let Some((offer, pending)) = api.apply() else {
            return self.no_offer(id);
        };
        let sdp = rewrite_msids(&offer.to_sdp_string(), &names);
        let offered = offered_tracks(&tracks, &names);
        let activated: Vec<SessionId> = plan.iter().map(|(t, _)| t.publisher).collect();
        let player = Player {
            stream,
            publisher: id,
            room: Some(RoomPlayer {
                desired: subtracks,
                names,
                activated: activated.clone(),
                ..RoomPlayer::default()
            }),
            pending: Some(pending),
            tracks,
            video_on: true,
            audio_on: true,
            forced_height: 0,
            video_gate: crate::resume::KeyframeGate::default(),
        };
        let key = self.insert(now, id, rtc, Role::Player(player));
        self.link_sources(id, &activated, &[]);
        debug!(session = %id, subtracks = activated.len(), "room play session created");
        self.first_offer(key, id, sdp, offered, candidates);
    }

    /// `SetSubtracks`: the wanted set of a room player changed.
    pub(super) fn set_subtracks(&mut self, now: Instant, id: SessionId, subtracks: Vec<Subtrack>) {
        let Some(&key) = self.ids.get(&id) else {
            trace!(session = %id, "SetSubtracks for an unknown session");
            return;
        };
        let Some(Role::Player(Player {
            room: Some(room), ..
        })) = self.sessions.get_mut(key).map(|s| &mut s.role)
        else {
            trace!(session = %id, "SetSubtracks for a session that is not a room player");
            return;
        };
        room.desired = subtracks;
        self.renegotiate(now, key);
    }

    /// The browser answered a room player's offer: keyframes for what it activated, then the
    /// change that waited for the answer, if any.
    pub(super) fn room_answered(&mut self, now: Instant, key: usize) {
        let Some(Role::Player(Player {
            room: Some(room), ..
        })) = self.sessions.get_mut(key).map(|s| &mut s.role)
        else {
            return;
        };
        let mut activated = std::mem::take(&mut room.activated);
        let dirty = room.dirty;
        // Slots whose m-line was just answered: their video starts from a keyframe.
        activated.extend(self.restart_new_slots(now, key));
        if self.sessions.get(key).is_some_and(|s| s.connected) {
            for publisher in activated {
                self.request_keyframe(now, publisher);
            }
        }
        if dirty {
            self.renegotiate(now, key);
        }
    }

    /// Brings a room player's m-lines to its wanted set with one new offer (see the module
    /// documentation), or marks it for after the pending answer.
    pub(super) fn renegotiate(&mut self, now: Instant, key: usize) {
        let (desired, last_n) = match self.sessions.get_mut(key).map(|s| &mut s.role) {
            Some(Role::Player(Player {
                room: Some(room),
                pending,
                ..
            })) => {
                if pending.is_some() {
                    room.dirty = true;
                    self.apply_slots(now, key);
                    return;
                }
                room.dirty = false;
                (room.desired.clone(), room.slots.as_ref().map(Vec::len))
            }
            _ => return,
        };
        let mut plan = self.source_kinds(&desired);
        if last_n.is_some() {
            // Last-N: video goes out on the slots only.
            for (_, kinds) in plan.iter_mut() {
                kinds.retain(|k| *k == MediaKind::Audio);
            }
            plan.retain(|(_, kinds)| !kinds.is_empty());
        }
        let n_slots = last_n.unwrap_or(0);
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let id = s.id;
        let Role::Player(p) = &mut s.role else {
            return;
        };
        let Some(room) = p.room.as_mut() else {
            return;
        };
        let wanted: BTreeSet<(SessionId, bool)> = plan
            .iter()
            .flat_map(|(t, kinds)| kinds.iter().map(|k| (t.publisher, *k == MediaKind::Video)))
            .collect();
        let mut api = s.rtc.sdp_api();
        let mut freed: Vec<Mid> = Vec::new();
        let mut dropped: Vec<SessionId> = Vec::new();
        // Slots beyond N go inactive.
        while room.slot_mids.len() > n_slots {
            let Some(mid) = room.slot_mids.pop() else {
                break;
            };
            if let Some(t) = p.tracks.iter_mut().find(|t| t.mid == mid) {
                api.set_direction(t.mid, Direction::Inactive);
                if let Source::From(src) = t.source {
                    dropped.push(src);
                }
                t.source = Source::Idle;
                t.seq.pause();
                t.gate.stop();
                freed.push(t.mid);
            }
        }
        for t in p.tracks.iter_mut() {
            if room.slot_mids.contains(&t.mid) {
                continue;
            }
            if let Source::From(src) = t.source {
                if !wanted.contains(&(src, t.kind == MediaKind::Video)) {
                    api.set_direction(t.mid, Direction::Inactive);
                    t.source = Source::Idle;
                    t.seq.pause();
                    freed.push(t.mid);
                    dropped.push(src);
                }
            }
        }
        let mut activated = Vec::new();
        for (sub, kinds) in &plan {
            for kind in kinds {
                let has = p
                    .tracks
                    .iter()
                    .any(|t| t.kind == *kind && t.source == Source::From(sub.publisher));
                if has {
                    continue;
                }
                let free = p
                    .tracks
                    .iter_mut()
                    .find(|t| reusable(t, *kind, &freed, &room.slot_mids));
                let mid = match free {
                    Some(t) => {
                        api.set_direction(t.mid, Direction::SendOnly);
                        t.source = Source::From(sub.publisher);
                        t.seq.retarget();
                        t.pt_map.clear();
                        t.mid
                    }
                    None => {
                        let source = Source::From(sub.publisher);
                        let t = add_line(&mut api, *kind, Direction::SendOnly, &sub.id, source);
                        let mid = t.mid;
                        p.tracks.push(t);
                        mid
                    }
                };
                set_name(&mut room.names, mid, &sub.id);
                activated.push(sub.publisher);
            }
        }
        // Slots up to N: an inactive video m-line (not freed by this offer) or a new one,
        // named `videoTrack<k>`; what they carry is set by `apply_slots`, not negotiated.
        for k in room.slot_mids.len()..n_slots {
            let label = slot_label(k);
            let free = p
                .tracks
                .iter_mut()
                .find(|t| reusable(t, MediaKind::Video, &freed, &room.slot_mids));
            let mid = match free {
                Some(t) => {
                    api.set_direction(t.mid, Direction::SendOnly);
                    t.seq.retarget();
                    t.pt_map.clear();
                    t.mid
                }
                None => {
                    let t = add_line(
                        &mut api,
                        MediaKind::Video,
                        Direction::SendOnly,
                        &label,
                        Source::Idle,
                    );
                    let mid = t.mid;
                    p.tracks.push(t);
                    mid
                }
            };
            set_name(&mut room.names, mid, &label);
            room.slot_mids.push(mid);
        }
        activated.dedup();
        let offer = if api.has_changes() {
            api.apply()
        } else {
            drop(api);
            None
        };
        let Some((offer, pending)) = offer else {
            trace!(session = %id, "room player already up to date");
            self.link_sources(id, &[], &dropped);
            self.apply_slots(now, key);
            return;
        };
        p.pending = Some(pending);
        room.activated = activated.clone();
        let sdp = rewrite_msids(&offer.to_sdp_string(), &room.names);
        let offered = offered_tracks(&p.tracks, &room.names);
        debug!(session = %id, lines = offered.len(), "room player renegotiates");
        self.link_sources(id, &activated, &dropped);
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Offer {
            session: id,
            sdp,
            tracks: offered,
        }));
        self.mutate(key, |_| Ok(()));
        self.apply_slots(now, key);
    }

    /// Keeps publishers' player lists in step with a room player's sources: `added` gain it,
    /// `dropped` that it no longer receives lose it.
    pub(super) fn link_sources(
        &mut self,
        player: SessionId,
        added: &[SessionId],
        dropped: &[SessionId],
    ) {
        let current = match self.session_mut(player).map(|s| &s.role) {
            Some(Role::Player(p)) => p.sources(),
            _ => Vec::new(),
        };
        for publisher in added {
            if let Some(Role::Publisher(pb)) = self.session_mut(*publisher).map(|s| &mut s.role) {
                if !pb.players.contains(&player) {
                    pb.players.push(player);
                }
            }
        }
        for publisher in dropped.iter().filter(|p| !current.contains(p)) {
            if let Some(Role::Publisher(pb)) = self.session_mut(*publisher).map(|s| &mut s.role) {
                pb.players.retain(|x| *x != player);
            }
        }
    }
}

/// The offered m-lines with the subtrack each names.
fn offered_tracks(tracks: &[OutTrack], names: &[(Mid, String)]) -> Vec<OfferedTrack> {
    tracks
        .iter()
        .map(|t| OfferedTrack {
            mid: t.mid.to_string(),
            kind: if t.kind == MediaKind::Audio {
                TrackKind::Audio
            } else {
                TrackKind::Video
            },
            source: names
                .iter()
                .find(|(m, _)| *m == t.mid)
                .map(|(_, n)| n.clone()),
        })
        .collect()
}

/// A new m-line of `kind` named `name` (its msid stream; the track is [`track_name`]), fed by
/// `source`: the one way a room player's offer gains an m-line.
fn add_line(
    api: &mut SdpApi<'_>,
    kind: MediaKind,
    direction: Direction,
    name: &str,
    source: Source,
) -> OutTrack {
    let mid = api.add_media(
        kind,
        direction,
        Some(name.to_string()),
        Some(track_name(kind, name)),
        None,
    );
    let mut t = OutTrack::new(mid, kind);
    t.source = source;
    t
}

/// Whether `t` may carry a new source of `kind` in this offer: idle since before it (not in
/// `freed`) and not a Last-N slot.
fn reusable(t: &OutTrack, kind: MediaKind, freed: &[Mid], slots: &[Mid]) -> bool {
    t.kind == kind && t.source == Source::Idle && !freed.contains(&t.mid) && !slots.contains(&t.mid)
}

/// Names m-line `mid` `name` (replacing the name it had).
fn set_name(names: &mut Vec<(Mid, String)>, mid: Mid, name: &str) {
    match names.iter_mut().find(|(m, _)| *m == mid) {
        Some((_, n)) => n.replace_range(.., name),
        None => names.push((mid, name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_names_are_the_sdk_prefixes() {
        assert_eq!(track_name(MediaKind::Audio, "x"), "ARDAMSax");
        assert_eq!(track_name(MediaKind::Video, "x"), "ARDAMSvx");
    }
}
