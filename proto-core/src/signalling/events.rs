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
