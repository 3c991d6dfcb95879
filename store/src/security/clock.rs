//! Wall time for stream security: a closure, or one anchor plus the `now` of each call.

use std::time::Instant;

use super::WallClock;

/// Wall-clock time derived from a monotonic `now`: unix ms `unix_ms` at the instant `at`. The
/// runtime reads the wall clock once at start; every later wall time is that anchor plus the
/// `now` a call is given, so a virtual clock drives it in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallAnchor {
    /// The instant of the reading.
    pub at: Instant,
    /// Unix milliseconds at `at`.
    pub unix_ms: u64,
}

impl WallAnchor {
    /// Unix ms at `now` (saturating at both ends).
    pub fn wall_ms(&self, now: Instant) -> u64 {
        if now >= self.at {
            let d = u64::try_from(now.duration_since(self.at).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_add(d)
        } else {
            let d = u64::try_from(self.at.duration_since(now).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_sub(d)
        }
    }
}

/// Where wall-clock time comes from.
pub(super) enum Clock {
    /// A closure (tests, tools).
    Fn(WallClock),
    /// Wall time follows the `now: Instant` of each call.
    Anchor(WallAnchor),
}

impl Clock {
    pub(super) fn wall_ms(&self, now: Instant) -> u64 {
        match self {
            Clock::Fn(f) => f(),
            Clock::Anchor(anchor) => anchor.wall_ms(now),
        }
    }
}
