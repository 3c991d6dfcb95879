//! Last-N video slots of a room player and per-subtrack forwarding switches.
//!
//! With [`MediaCmd::SetVideoSlots`](proto_core::MediaCmd::SetVideoSlots) a room player gets
//! N video m-lines labelled `videoTrack0 … videoTrack<N-1>` (msid `videoTrack<k>
//! ARDAMSvvideoTrack<k>`, `idMapping` `ARDAMSvvideoTrack<k>`, as AMS names them) instead of
//! one per subtrack; audio stays one m-line per subtrack. Changing N renegotiates
//! (`multitrack.rs`); changing what a slot carries does not:
//!
//! - the slot's [`OutTrack`](crate::forward::OutTrack) gets the new source; its
//!   sequence/timestamp rewriter is re-targeted, so the browser sees one continuous stream
//!   (same SSRC, sequence numbers and timestamps going on);
//! - its keyframe gate drops the new source's packets until one starts a keyframe, and the
//!   new publisher is asked for one at once (and again while the gate waits, `resume.rs`), so
//!   the browser never gets inter frames of a picture it has not seen;
//! - the player is told on its data channel: `{"eventType":"VIDEO_TRACK_ASSIGNMENT_LIST",
//!   "streamId":<main track>,"payload":[{"videoLabel":"videoTrack0","trackId":<subtrack>},…]}`
//!   (sent when the mapping changes, or when the channel opens if it was not open yet).

use std::time::Instant;

use proto_core::{SessionId, Subtrack};
use serde_json::json;
use str0m::media::MediaKind;
use tracing::{debug, trace};

use super::Sfu;
use crate::forward::Source;
use crate::resume::RESUME_REQUEST_GAP;
use crate::session::{DataWrite, Player, Role};

/// The label (msid stream id, `idMapping` suffix) of slot `k`.
pub(super) fn slot_label(k: usize) -> String {
    format!("videoTrack{k}")
}

/// The data-channel event telling a player what its slots carry.
fn assignment_event(main_track: &str, slots: &[Option<Subtrack>]) -> String {
    let payload: Vec<_> = slots
        .iter()
        .enumerate()
        .filter_map(|(k, s)| {
            let s = s.as_ref()?;
            Some(json!({"videoLabel": slot_label(k), "trackId": s.id, "reserved": false}))
        })
        .collect();
    json!({
        "eventType": "VIDEO_TRACK_ASSIGNMENT_LIST",
        "streamId": main_track,
        "payload": payload,
    })
    .to_string()
}

impl Sfu {
    /// `SetVideoSlots`: Last-N on, off, or new slot contents.
    pub(super) fn set_video_slots(
        &mut self,
        now: Instant,
        id: SessionId,
        slots: Option<Vec<Option<Subtrack>>>,
    ) {
        let Some(&key) = self.ids.get(&id) else {
            trace!(session = %id, "SetVideoSlots for an unknown session");
            return;
        };
        let Some(Role::Player(Player {
            room: Some(room), ..
        })) = self.sessions.get_mut(key).map(|s| &mut s.role)
        else {
            trace!(session = %id, "SetVideoSlots for a session that is not a room player");
            return;
        };
        let reshape = room.slots.as_ref().map(Vec::len) != slots.as_ref().map(Vec::len);
        room.slots = slots;
        if reshape {
            self.renegotiate(now, key);
        } else {
            self.apply_slots(now, key);
        }
    }

    /// Points each slot m-line at the publisher it should carry, without renegotiation, and
    /// tells the player if the mapping changed.
    pub(super) fn apply_slots(&mut self, now: Instant, key: usize) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let (id, connected) = (s.id, s.connected);
        let Role::Player(p) = &mut s.role else {
            return;
        };
        let Some(room) = p.room.as_mut() else {
            return;
        };
        let mut added = Vec::new();
        let mut dropped = Vec::new();
        let wanted = room.slots.clone().unwrap_or_default();
        for (k, mid) in room.slot_mids.iter().enumerate() {
            let want = match wanted.get(k) {
                Some(Some(t)) => Source::From(t.publisher),
                _ => Source::Idle,
            };
            let Some(t) = p.tracks.iter_mut().find(|t| t.mid == *mid) else {
                continue;
            };
            if t.source == want {
                continue;
            }
            if let Source::From(old) = t.source {
                dropped.push(old);
            }
            t.source = want;
            match want {
                Source::From(new) => {
                    t.seq.retarget();
                    t.pt_map.clear();
                    t.gate.start(now);
                    t.gate.take_request();
                    added.push(new);
                }
                Source::Any | Source::Idle => {
                    t.seq.pause();
                    t.gate.stop();
                }
            }
            debug!(session = %id, slot = k, source = ?want, "video slot switched");
        }
        let event = room
            .slots
            .as_ref()
            .map(|slots| assignment_event(&p.stream, slots));
        if let Some(text) = event {
            if room.event.as_ref().is_none_or(|(old, _)| *old != text) {
                room.event = Some((text, false));
            }
        }
        self.link_sources(id, &added, &dropped);
        if connected {
            for publisher in added {
                self.request_keyframe_within(now, publisher, RESUME_REQUEST_GAP);
            }
        }
        self.send_assignment_event(key);
    }

    /// Sends a room player's pending `VIDEO_TRACK_ASSIGNMENT_LIST` if its channel is open.
    pub(super) fn send_assignment_event(&mut self, key: usize) {
        if !self.data.config.enabled {
            return;
        }
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let text = match &s.role {
            Role::Player(Player {
                room: Some(room), ..
            }) => match &room.event {
                Some((text, false)) => text.clone(),
                _ => return,
            },
            _ => return,
        };
        match s.write_data(false, text.as_bytes()) {
            DataWrite::Written => {
                if let Role::Player(Player {
                    room: Some(room), ..
                }) = &mut s.role
                {
                    room.event = Some((text, true));
                }
                self.mutate(key, |_| Ok(()));
            }
            DataWrite::Congested | DataWrite::NotOpen => {
                trace!(session = %s.id, "assignment event waits for the data channel");
            }
        }
    }

    /// Slot m-lines just answered that carry a source: their gates restart (packets before
    /// the answer could not be sent). Returns the publishers to ask for a keyframe.
    pub(super) fn restart_new_slots(&mut self, now: Instant, key: usize) -> Vec<SessionId> {
        let Some(Role::Player(p)) = self.sessions.get_mut(key).map(|s| &mut s.role) else {
            return Vec::new();
        };
        let Some(room) = p.room.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for t in p.tracks.iter_mut() {
            if !room.slot_mids.contains(&t.mid) || t.ssrc.is_some() {
                continue;
            }
            if let Source::From(x) = t.source {
                t.gate.start(now);
                t.gate.take_request();
                out.push(x);
            }
        }
        out
    }

    /// `SetSubtrackForwarding`: one subtrack's video or audio to a room player on or off.
    pub(super) fn set_subtrack_forwarding(
        &mut self,
        now: Instant,
        id: SessionId,
        publisher: SessionId,
        video: Option<bool>,
        audio: Option<bool>,
    ) {
        let Some(Role::Player(p)) = self.session_mut(id).map(|s| &mut s.role) else {
            return;
        };
        let Some(room) = p.room.as_mut() else {
            trace!(session = %id, "SetSubtrackForwarding for a session that is not a room player");
            return;
        };
        let mut resume = false;
        for (kind, want) in [(MediaKind::Video, video), (MediaKind::Audio, audio)] {
            let Some(on) = want else { continue };
            let k = (publisher, kind == MediaKind::Video);
            let was_on = !room.muted.contains(&k);
            if on {
                room.muted.remove(&k);
            } else {
                room.muted.insert(k);
            }
            for t in p
                .tracks
                .iter_mut()
                .filter(|t| t.kind == kind && t.source == Source::From(publisher))
            {
                if was_on && !on {
                    t.seq.pause();
                    t.gate.stop();
                }
                if !was_on && on && kind == MediaKind::Video {
                    t.gate.start(now);
                    t.gate.take_request();
                    resume = true;
                }
            }
        }
        if resume {
            self.request_keyframe_within(now, publisher, RESUME_REQUEST_GAP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_the_assigned_slots() {
        let slots = vec![
            None,
            Some(Subtrack {
                id: "bob".into(),
                publisher: SessionId(4),
            }),
        ];
        let v: serde_json::Value = serde_json::from_str(&assignment_event("room", &slots)).unwrap();
        assert_eq!(v["eventType"], "VIDEO_TRACK_ASSIGNMENT_LIST");
        assert_eq!(v["streamId"], "room");
        assert_eq!(v["payload"].as_array().unwrap().len(), 1);
        assert_eq!(v["payload"][0]["videoLabel"], "videoTrack1");
        assert_eq!(v["payload"][0]["trackId"], "bob");
    }
}
