//! Last-N video of a room play and per-subtrack toggles.
//!
//! A room player may ask for at most N video tracks (`setMaxVideoTrackCountCommand`, or the
//! application's `maxVideoTrackCount` when it is 0 or more). Its peer connection then carries
//! N video m-lines labelled `videoTrack0 … videoTrack<N-1>` (the *slots*) instead of one per
//! subtrack, while audio stays one m-line per subtrack. Signalling decides which subtrack each
//! slot carries ([`assign`]) and hands the media layer the whole mapping
//! ([`MediaCmd::SetVideoSlots`]); the media layer switches a slot's source without
//! renegotiation and tells the player on the data channel (`VIDEO_TRACK_ASSIGNMENT_LIST`).
//!
//! # Slot policy (AMS picks the most recent speakers; Antenna is deterministic)
//!
//! The candidates are the subtracks the room player receives (its selection, see
//! `maintrack.rs`) whose video it has not switched off (`toggleVideo`), in the order they
//! went live (first first). Then:
//! 1. pinned slots (`assignVideoTrackCommand`) carry their subtrack while it is a candidate;
//! 2. the *window* is the unpinned candidates from `offset`, at most `size` (default N) of
//!    them and no more than the free slots (`updateVideoTrackAssignmentsCommand` pages);
//! 3. a slot keeps its subtrack while that subtrack is in the window (no needless switch);
//! 4. the other window members fill the empty slots in slot order.
//!
//! # Bounds
//!
//! N is capped at [`MAX_VIDEO_SLOTS`] (a larger `maxTrackCount` is lowered, logged); a
//! negative one turns Last-N off (AMS's -1, unlimited). `offset` is capped at
//! [`MAX_OFFSET`], `size` at [`MAX_VIDEO_SLOTS`]; pins at one per slot. An unknown subtrack
//! or slot label is answered `no_stream_exist`; a missing field `missingParameter`.

use std::collections::{BTreeMap, BTreeSet};

use tracing::debug;

use super::{ConnId, Role, Signalling};
use crate::error::SignalError;
use crate::media::{MediaCmd, SessionId, Subtrack};
use crate::message::{
    Notification, ServerMessage, TrackToggle, VideoTrackAssignment, VideoTrackCmd,
};

/// The most video slots a room player may have.
pub const MAX_VIDEO_SLOTS: usize = 16;
/// The largest `offset` of `updateVideoTrackAssignmentsCommand`.
pub const MAX_OFFSET: usize = 10_000;
/// The label prefix of a slot.
pub const SLOT_PREFIX: &str = "videoTrack";

/// The Last-N state of one room player.
#[derive(Debug, Default)]
pub(super) struct LastN {
    /// N; `None`: Last-N is off (one video m-line per subtrack).
    pub(super) max: Option<usize>,
    /// Slot -> pinned subtrack.
    pins: BTreeMap<usize, String>,
    /// First unpinned candidate shown.
    offset: usize,
    /// How many unpinned candidates are shown (`None`: N).
    size: Option<usize>,
    /// What the slots carry now.
    pub(super) slots: Vec<Option<String>>,
    /// The last [`MediaCmd::SetVideoSlots`] sent (`None` inside: Last-N off was sent or
    /// nothing was ever sent).
    told: Option<Vec<Option<Subtrack>>>,
}

/// The subtrack each of `max` slots carries (see the module documentation). `candidates` in
/// order of preference; `current` what the slots carried before.
pub(super) fn assign(
    max: usize,
    pins: &BTreeMap<usize, String>,
    offset: usize,
    size: Option<usize>,
    candidates: &[String],
    current: &[Option<String>],
) -> Vec<Option<String>> {
    let mut slots: Vec<Option<String>> = vec![None; max];
    for (k, id) in pins {
        let taken = slots.iter().flatten().any(|s| s == id);
        if let Some(slot) = slots.get_mut(*k) {
            if !taken && candidates.contains(id) {
                *slot = Some(id.clone());
            }
        }
    }
    let pinned: BTreeSet<String> = slots.iter().flatten().cloned().collect();
    let free = slots.iter().filter(|s| s.is_none()).count();
    let window: Vec<&String> = candidates
        .iter()
        .filter(|c| !pinned.contains(*c))
        .skip(offset)
        .take(size.unwrap_or(max).min(free))
        .collect();
    for k in 0..max {
        let keep = match (slots.get(k), current.get(k)) {
            (Some(None), Some(Some(c))) => {
                window.contains(&c) && !slots.iter().flatten().any(|s| s == c)
            }
            _ => false,
        };
        if keep {
            if let (Some(slot), Some(Some(c))) = (slots.get_mut(k), current.get(k)) {
                *slot = Some(c.clone());
            }
        }
    }
    let mut rest = window
        .into_iter()
        .filter(|c| !slots.iter().flatten().any(|s| s == *c))
        .cloned()
        .collect::<Vec<_>>()
        .into_iter();
    for slot in slots.iter_mut().filter(|s| s.is_none()) {
        *slot = rest.next();
    }
    slots
}

/// `videoTrack<k>` -> k.
fn slot_index(label: &str) -> Option<usize> {
    let k = label.strip_prefix(SLOT_PREFIX)?;
    if k.is_empty() || k.len() > 3 || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    k.parse().ok()
}

impl Signalling {
    /// The room play of `conn` for main track `id`.
    fn room_play_of(&self, conn: ConnId, id: &str) -> Option<SessionId> {
        self.conns
            .get(&conn)?
            .plays
            .get(id)
            .copied()
            .filter(|s| self.is_room_play(*s))
    }

    /// The room play of `conn` whose room has subtrack `track` (the SDK's
    /// `assignVideoTrack(videoTrackId, streamId)` names the subtrack, not the room).
    fn room_play_with_subtrack(&self, conn: ConnId, track: &str) -> Option<SessionId> {
        let c = self.conns.get(&conn)?;
        c.plays.values().copied().find(|sid| {
            self.sessions.get(sid).is_some_and(|s| {
                matches!(s.role, Role::RoomPlay(_))
                    && self
                        .room_streams(&s.app, &s.stream, false)
                        .iter()
                        .any(|t| t == track)
            })
        })
    }

    /// Sets a new room player's N from the application's `maxVideoTrackCount`.
    pub(super) fn start_last_n(&mut self, sid: SessionId) {
        if self.config.max_track_count < 0 {
            return;
        }
        let n = usize::try_from(self.config.max_track_count)
            .unwrap_or(MAX_VIDEO_SLOTS)
            .min(MAX_VIDEO_SLOTS);
        if let Some(Role::RoomPlay(st)) = self.sessions.get_mut(&sid).map(|s| &mut s.role) {
            st.lastn.max = Some(n);
        }
        self.refresh_slots(sid);
    }

    /// Recomputes a room player's slots and tells the media layer if they changed.
    pub(super) fn refresh_slots(&mut self, sid: SessionId) {
        let Some(Role::RoomPlay(st)) = self.sessions.get_mut(&sid).map(|s| &mut s.role) else {
            return;
        };
        let wanted = match st.lastn.max {
            None => {
                st.lastn.slots.clear();
                None
            }
            Some(n) => {
                let candidates: Vec<String> = st
                    .order
                    .iter()
                    .filter(|t| st.sent.contains_key(*t) && !st.video_off.contains(*t))
                    .cloned()
                    .collect();
                let l = &st.lastn;
                let slots = assign(n, &l.pins, l.offset, l.size, &candidates, &l.slots);
                let told: Vec<Option<Subtrack>> = slots
                    .iter()
                    .map(|s| {
                        let id = s.as_ref()?;
                        Some(Subtrack {
                            id: id.clone(),
                            publisher: *st.sent.get(id)?,
                        })
                    })
                    .collect();
                st.lastn.slots = slots;
                Some(told)
            }
        };
        if wanted == st.lastn.told {
            return;
        }
        st.lastn.told.clone_from(&wanted);
        debug!(%sid, slots = ?st.lastn.slots, "video slots");
        self.media(MediaCmd::SetVideoSlots {
            session: sid,
            slots: wanted,
        });
    }

    /// After a room player's subtracks changed: mutes for the newly sent ones, then slots.
    pub(super) fn after_room_refresh(&mut self, sid: SessionId, newly_sent: Vec<Subtrack>) {
        let Some(Role::RoomPlay(st)) = self.sessions.get(&sid).map(|s| &s.role) else {
            return;
        };
        let mut cmds = Vec::new();
        for t in newly_sent {
            let video = st.video_off.contains(&t.id).then_some(false);
            let audio = st.audio_off.contains(&t.id).then_some(false);
            if video.is_some() || audio.is_some() {
                cmds.push(MediaCmd::SetSubtrackForwarding {
                    session: sid,
                    publisher: t.publisher,
                    video,
                    audio,
                });
            }
        }
        for c in cmds {
            self.media(c);
        }
        self.refresh_slots(sid);
    }

    /// `toggleVideo`/`toggleAudio` with a `trackId` on a room play: that subtrack's video or
    /// audio to this player on or off (in Last-N mode a subtrack without video leaves its slot).
    pub(super) fn room_toggle(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        t: TrackToggle,
        video: bool,
    ) {
        let Some(track) = t.track_id else {
            return;
        };
        let enabled = t.enabled.unwrap_or(true);
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        if !self.room_streams(&s.app, &s.stream, false).contains(&track) {
            debug!(%sid, %track, "toggle of an unknown subtrack refused");
            return self.error(conn, SignalError::NoStreamExist, Some(&track));
        }
        let Some(Role::RoomPlay(st)) = self.sessions.get_mut(&sid).map(|s| &mut s.role) else {
            return;
        };
        let set = if video {
            &mut st.video_off
        } else {
            &mut st.audio_off
        };
        if enabled {
            set.remove(&track);
        } else {
            set.insert(track.clone());
        }
        // Off-sets hold only subtrack ids (bounded by the room); drop ended ones lazily.
        let known = st.known.clone();
        st.video_off.retain(|t| known.contains(t) || *t == track);
        st.audio_off.retain(|t| known.contains(t) || *t == track);
        if let Some(publisher) = st.sent.get(&track).copied() {
            self.media(MediaCmd::SetSubtrackForwarding {
                session: sid,
                publisher,
                video: video.then_some(enabled),
                audio: (!video).then_some(enabled),
            });
        }
        if video {
            self.refresh_slots(sid);
        }
    }

    /// `getVideoTrackAssignmentsCommand`: the `videoTrackAssignmentList` notification.
    pub(super) fn video_assignments(&mut self, conn: ConnId, id: String) {
        let Some(sid) = self.room_play_of(conn, &id) else {
            return self.error(conn, SignalError::NoStreamExist, Some(&id));
        };
        let payload = match self.sessions.get(&sid).map(|s| &s.role) {
            Some(Role::RoomPlay(st)) => assignment_list(&st.lastn.slots),
            _ => Vec::new(),
        };
        self.send(
            conn,
            ServerMessage::Notification(Notification::VideoTrackAssignmentList {
                stream_id: id,
                payload,
            }),
        );
    }

    /// `setMaxVideoTrackCountCommand`.
    pub(super) fn set_max_video_tracks(&mut self, conn: ConnId, id: String, v: VideoTrackCmd) {
        let Some(sid) = self.room_play_of(conn, &id) else {
            return self.error(conn, SignalError::NoStreamExist, Some(&id));
        };
        let Some(n) = v.max_track_count else {
            return self.error(conn, SignalError::MissingParameter, Some(&id));
        };
        let max = if n < 0 {
            None
        } else {
            let capped = usize::try_from(n)
                .unwrap_or(MAX_VIDEO_SLOTS)
                .min(MAX_VIDEO_SLOTS);
            if i64::try_from(capped).ok() != Some(n) {
                debug!(%sid, asked = n, capped, "maxTrackCount capped");
            }
            Some(capped)
        };
        if let Some(Role::RoomPlay(st)) = self.sessions.get_mut(&sid).map(|s| &mut s.role) {
            st.lastn.max = max;
            st.lastn.pins.retain(|k, _| max.is_some_and(|m| *k < m));
        }
        self.refresh_slots(sid);
    }

    /// `assignVideoTrackCommand`: pins a subtrack to a slot (`enabled: false` unpins it).
    pub(super) fn assign_video_track(&mut self, conn: ConnId, id: String, v: VideoTrackCmd) {
        let (sid, track) = match (self.room_play_of(conn, &id), v.track_id) {
            (Some(sid), Some(track)) => (sid, track),
            (Some(_), None) => return self.error(conn, SignalError::MissingParameter, Some(&id)),
            (None, _) => match self.room_play_with_subtrack(conn, &id) {
                Some(sid) => (sid, id.clone()),
                None => return self.error(conn, SignalError::NoStreamExist, Some(&id)),
            },
        };
        let Some(label) = v.video_track_id else {
            return self.error(conn, SignalError::MissingParameter, Some(&id));
        };
        let enabled = v.enabled.unwrap_or(true);
        let Some(Role::RoomPlay(st)) = self.sessions.get_mut(&sid).map(|s| &mut s.role) else {
            return;
        };
        let k = slot_index(&label).filter(|k| st.lastn.max.is_some_and(|m| *k < m));
        let Some(k) = k else {
            debug!(%sid, %label, "assignVideoTrack to an unknown slot refused");
            return self.error(conn, SignalError::NoStreamExist, Some(&label));
        };
        if !enabled {
            st.lastn.pins.retain(|slot, t| *slot != k && *t != track);
        } else {
            if !st.sent.contains_key(&track) {
                debug!(%sid, %track, "assignVideoTrack of a subtrack not received refused");
                return self.error(conn, SignalError::NoStreamExist, Some(&track));
            }
            st.lastn.pins.retain(|_, t| *t != track);
            st.lastn.pins.insert(k, track);
        }
        self.refresh_slots(sid);
    }

    /// `updateVideoTrackAssignmentsCommand`: which page of subtracks the free slots show.
    pub(super) fn update_video_assignments(&mut self, conn: ConnId, id: String, v: VideoTrackCmd) {
        let Some(sid) = self.room_play_of(conn, &id) else {
            return self.error(conn, SignalError::NoStreamExist, Some(&id));
        };
        if let Some(Role::RoomPlay(st)) = self.sessions.get_mut(&sid).map(|s| &mut s.role) {
            if let Some(o) = v.offset {
                st.lastn.offset = usize::try_from(o).unwrap_or(0).min(MAX_OFFSET);
            }
            if let Some(s) = v.size {
                st.lastn.size = Some(usize::try_from(s).unwrap_or(0).min(MAX_VIDEO_SLOTS));
            }
        }
        self.refresh_slots(sid);
    }
}

/// The `payload` of `videoTrackAssignmentList` (and of the data-channel event).
fn assignment_list(slots: &[Option<String>]) -> Vec<VideoTrackAssignment> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(k, s)| {
            Some(VideoTrackAssignment {
                video_label: format!("{SLOT_PREFIX}{k}"),
                track_id: s.clone()?,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "lastn_tests.rs"]
mod tests;
