//! Wrong-token lock-out for WHIP/WHEP: an address that sends [`MAX_BAD_TOKENS`] wrong bearer
//! tokens within [`WINDOW`] is refused (`429` with `Retry-After`) for [`LOCKOUT`], before its
//! offer reaches the access policy. Pure: `now` comes in. At most [`MAX_TRACKED`] addresses
//! are remembered; when full, expired entries go first, then the one seen longest ago.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong tokens from one address within [`WINDOW`] that lock it out.
pub const MAX_BAD_TOKENS: u32 = 5;
/// The window the wrong tokens are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a locked-out address is refused.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses remembered at most.
pub const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    first: Instant,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Wrong tokens by client address.
#[derive(Debug, Default)]
pub struct BadTokens {
    by_ip: HashMap<IpAddr, Entry>,
    /// Addresses locked out so far.
    pub lockouts: u64,
    /// Requests refused while locked out.
    pub refused: u64,
}

impl BadTokens {
    /// While `ip` is locked out: how long is left.
    pub fn locked(&mut self, now: Instant, ip: IpAddr) -> Option<Duration> {
        let left = self
            .by_ip
            .get(&ip)
            .and_then(|e| e.locked_until)
            .map(|t| t.saturating_duration_since(now))
            .filter(|d| !d.is_zero());
        if left.is_some() {
            self.refused += 1;
        }
        left
    }

    /// A wrong token from `ip`. `true`: this one locked it out.
    pub fn record_failure(&mut self, now: Instant, ip: IpAddr) -> bool {
        if !self.by_ip.contains_key(&ip) && self.by_ip.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let e = self.by_ip.entry(ip).or_insert(Entry {
            failures: 0,
            first: now,
            last: now,
            locked_until: None,
        });
        if now.saturating_duration_since(e.first) > WINDOW || e.locked_until.is_some() {
            // A new window (also after a served lock-out).
            *e = Entry {
                failures: 0,
                first: now,
                last: now,
                locked_until: None,
            };
        }
        e.failures += 1;
        e.last = now;
        if e.failures >= MAX_BAD_TOKENS {
            e.locked_until = Some(now + LOCKOUT);
            self.lockouts += 1;
            return true;
        }
        false
    }

    /// A right token from `ip`: its count starts again.
    pub fn record_success(&mut self, ip: IpAddr) {
        if self
            .by_ip
            .get(&ip)
            .is_some_and(|e| e.locked_until.is_none())
        {
            self.by_ip.remove(&ip);
        }
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// None remembered.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        self.by_ip.retain(|_, e| match e.locked_until {
            Some(t) => t > now,
            None => now.saturating_duration_since(e.first) <= WINDOW,
        });
        if self.by_ip.len() >= MAX_TRACKED {
            if let Some(oldest) = self
                .by_ip
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(ip, _)| *ip)
            {
                self.by_ip.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn wrong_tokens_lock_an_address_out_for_a_while() {
        let t0 = Instant::now();
        let mut b = BadTokens::default();
        for i in 0..MAX_BAD_TOKENS - 1 {
            assert!(!b.record_failure(t0 + Duration::from_secs(u64::from(i)), ip(1)));
            assert_eq!(b.locked(t0, ip(1)), None);
        }
        let t = t0 + Duration::from_secs(10);
        assert!(b.record_failure(t, ip(1)));
        assert_eq!(b.locked(t, ip(1)), Some(LOCKOUT));
        assert_eq!(b.locked(t, ip(2)), None, "another address is not affected");
        assert_eq!(b.locked(t + LOCKOUT, ip(1)), None, "over after LOCKOUT");
        assert_eq!((b.lockouts, b.refused), (1, 1));
        // A right token while locked out does not end the lock-out.
        b.record_success(ip(1));
        assert!(b.locked(t + Duration::from_secs(1), ip(1)).is_some());
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_lock() {
        let t0 = Instant::now();
        let mut b = BadTokens::default();
        for i in 0..3 * MAX_BAD_TOKENS {
            let t = t0 + (WINDOW + Duration::from_secs(1)) * i;
            assert!(!b.record_failure(t, ip(1)), "{i}");
        }
        // A right token clears the count.
        for _ in 0..2 * MAX_BAD_TOKENS {
            b.record_failure(t0, ip(1));
            b.record_success(ip(1));
        }
        assert_eq!(b.lockouts, 0);
        assert!(b.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut b = BadTokens::default();
        for n in 0..(MAX_TRACKED as u32 + 100) {
            b.record_failure(t0, ip(n));
        }
        assert_eq!(b.len(), MAX_TRACKED);
    }
}
