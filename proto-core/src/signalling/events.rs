//! Stream lifecycle events for the runtime (webhooks): a publish went live or ended, a publish
//! timed out, a player started or stopped. Recorded only after
//! [`Signalling::set_record_events`], in a bounded queue the runtime drains with
//! [`Signalling::poll_event`] (a full queue drops the oldest event and counts it).

use std::collections::VecDeque;

use super::Signalling;

/// Events kept at most before the oldest is dropped.
pub const MAX_EVENTS: usize = 4096;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A publish went live (its media started).
    PublishStarted,
    /// A live publish ended.
    PublishEnded,
    /// A publish did not go live within the start timeout.
    PublishTimeout,
    /// A player's peer connection came up.
    PlayStarted,
    /// A player that had started ended.
    PlayStopped,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// What happened.
    pub kind: EventKind,
    /// Application.
    pub app: String,
    /// Stream id (for a room play: the main track).
    pub stream: String,
    /// `streamName` given at publish.
    pub name: Option<String>,
    /// Main track (room) of a publish.
    pub main_track: Option<String>,
    /// `subscriberId` of the session.
    pub subscriber_id: Option<String>,
}

/// The bounded event queue.
#[derive(Debug, Default)]
pub(super) struct EventLog {
    on: bool,
    queue: VecDeque<StreamEvent>,
    dropped: u64,
}

impl Signalling {
    /// Starts (or stops) recording [`StreamEvent`]s.
    pub fn set_record_events(&mut self, on: bool) {
        self.events.on = on;
        if !on {
            self.events.queue.clear();
        }
    }

    /// The next recorded event.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.queue.pop_front()
    }

    /// Events dropped because nobody drained the queue.
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped
    }

    pub(super) fn record(&mut self, ev: impl FnOnce() -> StreamEvent) {
        if !self.events.on {
            return;
        }
        if self.events.queue.len() >= MAX_EVENTS {
            self.events.queue.pop_front();
            self.events.dropped += 1;
        }
        self.events.queue.push_back(ev());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::fuzzing::Harness;
    use crate::media::{MediaCmd, MediaEvent, SessionId};
    use crate::{Config, Output};

    const APP: &str = "LiveApp";

    fn session(outs: &[Output]) -> SessionId {
        outs.iter()
            .find_map(|o| match o {
                Output::Media(
                    MediaCmd::StartPublish { session, .. } | MediaCmd::StartPlay { session, .. },
                ) => Some(*session),
                _ => None,
            })
            .expect("a session started")
    }

    fn events(h: &mut Harness) -> Vec<(EventKind, String, Option<String>)> {
        std::iter::from_fn(|| h.sig.poll_event())
            .map(|e| (e.kind, e.stream, e.subscriber_id))
            .collect()
    }

    fn offer(h: &mut Harness, conn: u64, id: &str) -> SessionId {
        let m = json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"O"});
        session(&h.text(conn, &m.to_string()))
    }

    #[test]
    fn nothing_is_recorded_unless_asked() {
        let mut h = Harness::new(Config::default());
        h.open(1, APP);
        h.text(1, &json!({"command":"publish","streamId":"s"}).to_string());
        let s = offer(&mut h, 1, "s");
        h.media_event(MediaEvent::MediaStarted { session: s });
        assert_eq!(h.sig.poll_event(), None);
    }

    #[test]
    fn publish_play_stop_and_timeout_in_order() {
        use EventKind::*;
        let mut h = Harness::new(Config::default());
        h.sig.set_record_events(true);
        h.open(1, APP);
        h.open(2, APP);
        let publish = json!({"command":"publish","streamId":"s","streamName":"cam",
            "mainTrack":"room","subscriberId":"p1"});
        h.text(1, &publish.to_string());
        let s = offer(&mut h, 1, "s");
        assert!(events(&mut h).is_empty(), "not live yet");
        h.media_event(MediaEvent::MediaStarted { session: s });
        let ev = h.sig.poll_event().expect("started");
        assert_eq!(
            (
                ev.kind,
                ev.app.as_str(),
                ev.name.as_deref(),
                ev.main_track.as_deref()
            ),
            (PublishStarted, APP, Some("cam"), Some("room"))
        );
        let play = json!({"command":"play","streamId":"s","subscriberId":"v1"});
        let p = session(&h.text(2, &play.to_string()));
        assert!(events(&mut h).is_empty(), "a player counts once connected");
        h.media_event(MediaEvent::Connected { session: p });
        h.media_event(MediaEvent::Connected { session: p });
        h.text(2, &json!({"command":"stop","streamId":"s"}).to_string());
        h.text(1, &json!({"command":"stop","streamId":"s"}).to_string());
        assert_eq!(
            events(&mut h),
            vec![
                (PlayStarted, "s".into(), Some("v1".into())),
                (PlayStopped, "s".into(), Some("v1".into())),
                (PublishEnded, "s".into(), Some("p1".into())),
            ]
        );
        // A publisher that stops first ends its players before itself.
        h.text(1, &json!({"command":"publish","streamId":"u"}).to_string());
        let u = offer(&mut h, 1, "u");
        h.media_event(MediaEvent::MediaStarted { session: u });
        let p = session(&h.text(2, &json!({"command":"play","streamId":"u"}).to_string()));
        h.media_event(MediaEvent::Connected { session: p });
        h.text(1, &json!({"command":"stop","streamId":"u"}).to_string());
        let kinds: Vec<EventKind> = events(&mut h).into_iter().map(|e| e.0).collect();
        assert_eq!(
            kinds,
            [PublishStarted, PlayStarted, PlayStopped, PublishEnded]
        );
        // A publish that never goes live: only the timeout.
        h.text(1, &json!({"command":"publish","streamId":"t"}).to_string());
        offer(&mut h, 1, "t");
        h.advance(Duration::from_secs(11));
        assert_eq!(events(&mut h), vec![(PublishTimeout, "t".into(), None)]);
    }

    #[test]
    fn the_queue_is_bounded_and_drops_the_oldest() {
        let mut h = Harness::new(Config::default());
        h.sig.set_record_events(true);
        for n in 0..MAX_EVENTS + 3 {
            h.sig.record(|| StreamEvent {
                kind: EventKind::PlayStarted,
                app: APP.into(),
                stream: n.to_string(),
                name: None,
                main_track: None,
                subscriber_id: None,
            });
        }
        assert_eq!(h.sig.events_dropped(), 3);
        assert_eq!(h.sig.poll_event().map(|e| e.stream), Some("3".into()));
    }
}
