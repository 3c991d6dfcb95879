//! Resilience AMS users rely on: a publisher held after its WebSocket drops, publishers whose
//! media stops, and `forceStreamQuality` that reports only real changes.
//!
//! # Decisions
//!
//! - A live publisher whose connection closes without `stop` is *held* for
//!   `webRTCClientStartTimeoutMs` (AMS uses the same setting "to let publisher reconnect in
//!   fluctuating networks or ungraceful termination"). Its players keep their sessions and get
//!   no `play_finished`. A `publish` of the same id (from any connection of the application)
//!   within that window takes the session over: the client gets `start` as usual, the media
//!   layer's old peer connection of the session is closed, the client's new offer creates the
//!   new one under the same session id (so the media layer re-attaches the waiting players),
//!   and `session_restored` replaces `publish_started` when its media starts. The restored
//!   session must bring media within `webRTCClientStartTimeoutMs` again, else
//!   `publishTimeoutError`. A publisher still held at the deadline ends as if its connection had
//!   closed (players get `play_finished`). A publisher whose media had not started is not held.
//! - `noPacketReceivedForTimeoutDuration`: once statistics have shown a publisher's media, a
//!   run of statistics without any audio or video for [`Config::no_packet_timeout`] ends it with
//!   that error, then `publish_finished` (and `play_finished` to its players). A data-only
//!   publisher never shows media, so it is never checked.
//! - `forceStreamQuality` answers `resolutionChangeInfo` only when the height the player gets
//!   changes. Without simulcast or transcoding, a stream has one layer (the publisher's
//!   height), so the delivered height never changes and nothing is answered; the request is
//!   still recorded and handed to the media layer.
//!
//! [`Config::no_packet_timeout`]: super::Config::no_packet_timeout

use std::time::Instant;

use tracing::{debug, trace};

use super::{ConnId, End, Key, Role, Signalling};
use crate::error::SignalError;
use crate::media::{MediaCmd, MediaEvent, SessionId};
use crate::message::{ForceStreamQuality, Notification, ServerMessage};

/// How a held publisher that nobody resumed ends: its players are told.
const HELD_EXPIRED: End = End {
    close_media: true,
    error: None,
    finished: false,
};

/// How a silent publisher ends.
const NO_PACKETS: End = End {
    close_media: true,
    error: Some(SignalError::NoPacketReceivedForTimeoutDuration),
    finished: true,
};

/// The height a player receives when it asks for `requested` (0 = automatic) and the stream has
/// the layers `available`: automatic takes the highest, otherwise the highest not above the
/// request, or the lowest if all are above it. `None` when no layer is known.
pub(super) fn delivered_height(available: &[u32], requested: u32) -> Option<u32> {
    let highest = available.iter().copied().max()?;
    if requested == 0 {
        return Some(highest);
    }
    available
        .iter()
        .copied()
        .filter(|h| *h <= requested)
        .max()
        .or_else(|| available.iter().copied().min())
}

impl Signalling {
    /// The connection of a live publisher closed: holds the session instead of ending it.
    /// Returns false when the session is not held (the caller ends it).
    pub(super) fn hold_publisher(&mut self, now: Instant, sid: SessionId) -> bool {
        let timeout = self.config.client_start_timeout;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return false;
        };
        let Role::Publish(p) = &mut s.role else {
            return false;
        };
        if !p.live || p.restoring || timeout.is_zero() {
            return false;
        }
        let until = now + timeout;
        p.held_until = Some(until);
        debug!(%sid, stream = %s.stream, "publisher connection dropped: held for a re-publish");
        self.set_deadline(sid, Some(until));
        true
    }

    /// Media events of a held publisher: its old peer connection may close meanwhile, which
    /// does not end the session. Returns true if the event was consumed.
    pub(super) fn held_media_event(&mut self, _now: Instant, event: &MediaEvent) -> bool {
        let sid = event.session();
        let Some(s) = self.sessions.get_mut(&sid) else {
            return false;
        };
        let held = matches!(&s.role, Role::Publish(p) if p.held_until.is_some());
        if !held {
            return false;
        }
        match event {
            MediaEvent::Closed { .. } | MediaEvent::Failed { .. } => {
                trace!(%sid, "held publisher's peer connection ended");
                s.media_known = false;
                // A subtrack without media leaves its room players until it is restored (its
                // restored media start refreshes them again).
                let (app, stream) = (s.app.clone(), s.stream.clone());
                let main_track = match &s.role {
                    Role::Publish(p) => p.main_track.clone(),
                    _ => None,
                };
                for room in self.rooms_listing(&app, &stream, main_track.as_deref()) {
                    self.refresh_room(&app, &room);
                }
            }
            MediaEvent::Stats { stats, .. } => s.stats = Some(stats.clone()),
            _ => trace!(%sid, "media event for a held publisher ignored"),
        }
        true
    }

    /// A held publisher was not resumed in time.
    pub(super) fn held_expired(&mut self, sid: SessionId) {
        debug!(%sid, "held publisher not resumed in time");
        self.end_session(sid, HELD_EXPIRED);
    }

    /// A `publish` of `k` from `conn`: if a held publisher has that id, this connection takes it
    /// over and gets `start`. Returns true if it did.
    pub(super) fn restore_publisher(
        &mut self,
        now: Instant,
        conn: ConnId,
        k: &Key,
        subscriber_id: Option<&str>,
    ) -> bool {
        let Some(&sid) = self.publishers.get(k) else {
            return false;
        };
        let timeout = self.config.client_start_timeout;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return false;
        };
        let Role::Publish(p) = &mut s.role else {
            return false;
        };
        if p.held_until.is_none() {
            return false;
        }
        p.held_until = None;
        p.restoring = true;
        p.media_seen = None;
        s.conn = conn;
        if let Some(id) = subscriber_id {
            s.subscriber_id = Some(id.to_string());
        }
        let close_old = std::mem::replace(&mut s.media_known, false);
        let stream = s.stream.clone();
        let subscriber_id = s.subscriber_id.clone();
        debug!(%sid, %stream, ?conn, "held publisher resumed by a new publish");
        if close_old {
            self.media(MediaCmd::Close { session: sid });
        }
        self.set_deadline(sid, Some(now + timeout));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.publishes.insert(stream.clone(), sid);
        }
        self.send(
            conn,
            ServerMessage::Start {
                stream_id: stream,
                subscriber_id,
            },
        );
        true
    }

    /// Statistics of a session arrived; `media` is whether they show audio or video. Ends a
    /// publisher whose media stopped for `no_packet_timeout`.
    pub(super) fn check_media_silence(&mut self, now: Instant, sid: SessionId, media: bool) {
        let limit = self.config.no_packet_timeout;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Role::Publish(p) = &mut s.role else {
            return;
        };
        if media {
            p.media_seen = Some(now);
            return;
        }
        let Some(seen) = p.media_seen else {
            return;
        };
        if limit.is_zero() || !p.live || p.restoring || p.held_until.is_some() {
            return;
        }
        if now.saturating_duration_since(seen) >= limit {
            debug!(%sid, stream = %s.stream, silent_ms = now.saturating_duration_since(seen).as_millis() as u64,
                "no media from the publisher: ending it");
            self.end_session(sid, NO_PACKETS);
        }
    }

    /// `forceStreamQuality`: records the height and reports a change only if the player's
    /// delivered height changes.
    pub(super) fn force_quality(&mut self, conn: ConnId, id: String, q: ForceStreamQuality) {
        let Some(sid) = self
            .conns
            .get(&conn)
            .and_then(|c| c.plays.get(&id))
            .copied()
        else {
            trace!(?conn, %id, "forceStreamQuality for a stream not played");
            return;
        };
        let height = q
            .stream_height
            .map_or(0, |h| u32::try_from(h.max(0)).unwrap_or(u32::MAX));
        let Some(Role::Play(pl)) = self.sessions.get(&sid).map(|s| &s.role) else {
            return;
        };
        let before = pl.forced_height;
        let publisher = pl.publisher;
        if before == height {
            return;
        }
        // The layers the stream has: one, the publisher's (no simulcast, no transcoding).
        let layers: Vec<u32> = self
            .sessions
            .get(&publisher)
            .and_then(|s| s.stats.as_ref())
            .map(|st| st.height)
            .filter(|h| *h > 0)
            .into_iter()
            .collect();
        if let Some(Role::Play(pl)) = self.sessions.get_mut(&sid).map(|s| &mut s.role) {
            pl.forced_height = height;
        }
        self.media(MediaCmd::ForceQuality {
            session: sid,
            height,
        });
        let old = delivered_height(&layers, before);
        let new = delivered_height(&layers, height);
        match new {
            Some(h) if old != new => self.send(
                conn,
                ServerMessage::Notification(Notification::ResolutionChangeInfo {
                    stream_id: id,
                    stream_height: h,
                }),
            ),
            _ => trace!(%sid, height, ?new, "forceStreamQuality: delivered height unchanged"),
        }
    }

    /// Whether the media layer has no peer connection for this publisher now (held or being
    /// restored after its old one ended): no keyframe to ask for, no new player to attach.
    pub(super) fn publisher_media_gone(&self, publisher: SessionId) -> bool {
        self.sessions.get(&publisher).is_some_and(|s| {
            !s.media_known
                && matches!(&s.role, Role::Publish(p) if p.held_until.is_some() || p.restoring)
        })
    }

    /// Asks a publisher for a keyframe, if the media layer has it.
    pub(super) fn request_keyframe(&mut self, publisher: SessionId) {
        if !self.publisher_media_gone(publisher) {
            self.media(MediaCmd::RequestKeyframe { session: publisher });
        }
    }

    /// Whether `app`/`id` is a held publisher (for tests).
    #[cfg(test)]
    pub(super) fn is_held(&self, app: &str, id: &str) -> bool {
        self.publishers
            .get(&super::key(app, id))
            .and_then(|sid| self.sessions.get(sid))
            .is_some_and(|s| matches!(&s.role, Role::Publish(p) if p.held_until.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::delivered_height;
    use proptest::prelude::*;

    #[test]
    fn one_layer_never_changes() {
        for req in [0, 144, 240, 360, 720, 2160] {
            assert_eq!(delivered_height(&[360], req), Some(360));
        }
        assert_eq!(delivered_height(&[], 240), None);
    }

    #[test]
    fn picks_the_highest_layer_not_above_the_request() {
        let layers = [240, 360, 720];
        assert_eq!(delivered_height(&layers, 0), Some(720));
        assert_eq!(delivered_height(&layers, 480), Some(360));
        assert_eq!(delivered_height(&layers, 100), Some(240));
        assert_eq!(delivered_height(&layers, 720), Some(720));
    }

    proptest! {
        #[test]
        fn delivered_is_always_an_available_layer(
            layers in proptest::collection::vec(1u32..4000, 0..5),
            req in 0u32..5000,
        ) {
            match delivered_height(&layers, req) {
                None => prop_assert!(layers.is_empty()),
                Some(h) => prop_assert!(layers.contains(&h)),
            }
        }
    }
}

#[cfg(test)]
#[path = "resilience_tests.rs"]
mod flow_tests;
