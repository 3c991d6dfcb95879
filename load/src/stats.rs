//! Loss and latency accounting for received RTP streams.
//!
//! [`SeqTracker`] counts one RTP stream (one SSRC) from its 16-bit sequence numbers: it extends
//! them across wrap-around (RFC 3550 A.1 style, relative to the highest number seen), counts each
//! number once (duplicates and retransmissions are counted apart), notices reordering, and
//! derives loss as `expected - received` where `expected` spans the lowest to the highest
//! extended number seen. Packets that arrive so late they fall out of the duplicate window are
//! counted as `too_old` and never as received, so loss can be over-stated by them but never
//! hidden.
//!
//! [`Histogram`] keeps latency samples in microsecond buckets with bounded memory.

/// How many sequence numbers behind the highest one duplicates are still detected.
pub const WINDOW: u64 = 4096;

/// Counters of one RTP stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounts {
    /// Distinct sequence numbers received.
    pub received: u64,
    /// Sequence numbers spanned from the lowest to the highest seen.
    pub expected: u64,
    /// Packets whose number was already received.
    pub duplicates: u64,
    /// Packets that arrived after a higher number (late but still counted once).
    pub reordered: u64,
    /// Packets too far behind the highest number to tell whether they are duplicates; not
    /// counted as received.
    pub too_old: u64,
}

impl SeqCounts {
    /// `expected - received` (never negative).
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &SeqCounts) {
        self.received += other.received;
        self.expected += other.expected;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        self.too_old += other.too_old;
    }

    /// `self - earlier`, field by field (saturating).
    pub fn since(&self, earlier: &SeqCounts) -> SeqCounts {
        SeqCounts {
            received: self.received.saturating_sub(earlier.received),
            expected: self.expected.saturating_sub(earlier.expected),
            duplicates: self.duplicates.saturating_sub(earlier.duplicates),
            reordered: self.reordered.saturating_sub(earlier.reordered),
            too_old: self.too_old.saturating_sub(earlier.too_old),
        }
    }
}

/// Sequence-number accounting of one RTP stream.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    /// Highest extended sequence number seen, and the lowest.
    range: Option<(u64, u64)>,
    /// Bit `i` of the window: extended number `highest - i` was received.
    seen: Vec<u64>,
    counts: SeqCounts,
}

impl Default for SeqTracker {
    fn default() -> Self {
        SeqTracker::new()
    }
}

/// Offset of the first extended number, so numbers just below the first one do not underflow.
const BASE: u64 = 1 << 32;

impl SeqTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> Self {
        SeqTracker {
            range: None,
            seen: vec![0; (WINDOW / 64) as usize],
            counts: SeqCounts::default(),
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> SeqCounts {
        self.counts
    }

    /// Extends a 16-bit number to the one nearest the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        match self.range {
            None => BASE + u64::from(seq),
            Some((high, _)) => {
                let delta = seq.wrapping_sub(high as u16) as i16;
                (high as i64 + i64::from(delta)) as u64
            }
        }
    }

    fn bit(&self, age: u64) -> bool {
        let (w, b) = ((age / 64) as usize, age % 64);
        self.seen.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    fn set_bit(&mut self, age: u64) {
        let (w, b) = ((age / 64) as usize, age % 64);
        if let Some(x) = self.seen.get_mut(w) {
            *x |= 1 << b;
        }
    }

    /// Shifts the window so that the highest number moves up by `by`.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen.iter_mut().for_each(|x| *x = 0);
            return;
        }
        let words = (by / 64) as usize;
        let bits = by % 64;
        let n = self.seen.len();
        for i in (0..n).rev() {
            let src = i.checked_sub(words);
            let hi = src.and_then(|s| self.seen.get(s)).copied().unwrap_or(0);
            let lo = src
                .and_then(|s| s.checked_sub(1))
                .and_then(|s| self.seen.get(s))
                .copied()
                .unwrap_or(0);
            let v = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
            if let Some(x) = self.seen.get_mut(i) {
                *x = v;
            }
        }
    }

    /// Records one received packet with sequence number `seq`.
    pub fn record(&mut self, seq: u16) {
        let ext = self.extend(seq);
        let Some((high, low)) = self.range else {
            self.range = Some((ext, ext));
            self.set_bit(0);
            self.counts.received = 1;
            self.counts.expected = 1;
            return;
        };
        if ext > high {
            self.shift(ext - high);
            self.set_bit(0);
            self.range = Some((ext, low));
            self.counts.received += 1;
        } else {
            let age = high - ext;
            if age >= WINDOW {
                self.counts.too_old += 1;
                return;
            }
            if self.bit(age) {
                self.counts.duplicates += 1;
                return;
            }
            self.set_bit(age);
            self.counts.received += 1;
            self.counts.reordered += 1;
            if ext < low {
                self.range = Some((high, ext));
            }
        }
        if let Some((h, l)) = self.range {
            self.counts.expected = h - l + 1;
        }
    }
}

/// Latency samples in 10 µs buckets up to 10 s (larger values go to the last bucket).
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_us: u64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 1_000_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            max_us: 0,
        }
    }

    /// Adds one sample in microseconds.
    pub fn record_us(&mut self, us: u64) {
        let i = ((us / BUCKET_US) as usize).min(BUCKETS - 1);
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest sample (µs).
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The `p`-th percentile (0..=100) in microseconds (upper edge of its bucket), or `None`
    /// without samples.
    pub fn percentile_us(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                return Some(((i as u64 + 1) * BUCKET_US).min(self.max_us));
            }
        }
        Some(self.max_us)
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.buckets.iter_mut().for_each(|b| *b = 0);
        self.count = 0;
        self.max_us = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: impl IntoIterator<Item = u16>) -> SeqCounts {
        let mut t = SeqTracker::new();
        for s in seqs {
            t.record(s);
        }
        t.counts()
    }

    #[test]
    fn in_order_no_loss() {
        let c = feed(0..1000);
        assert_eq!(c.received, 1000);
        assert_eq!(c.expected, 1000);
        assert_eq!(c.lost(), 0);
        assert_eq!((c.duplicates, c.reordered, c.too_old), (0, 0, 0));
    }

    #[test]
    fn wrap_around_is_not_loss() {
        let c = feed((65_000u32..65_536 + 2_000).map(|s| s as u16));
        assert_eq!(c.received, 2_536);
        assert_eq!(c.expected, 2_536);
        assert_eq!(c.lost(), 0);
    }

    #[test]
    fn gaps_are_counted_across_wrap() {
        // 65530..=65535, then 2..=9: 0 and 1 are missing.
        let seqs: Vec<u16> = (65_530..=65_535).chain(2..10).collect();
        let c = feed(seqs);
        assert_eq!(c.received, 14);
        assert_eq!(c.expected, 16);
        assert_eq!(c.lost(), 2);
    }

    #[test]
    fn many_wraps_with_periodic_loss() {
        // Five full cycles; every 100th packet dropped.
        let seqs = (0u32..5 * 65_536)
            .filter(|i| i % 100 != 7)
            .map(|i| i as u16);
        let c = feed(seqs);
        assert_eq!(c.expected, 5 * 65_536);
        assert_eq!(
            c.lost(),
            (0u32..5 * 65_536).filter(|i| i % 100 == 7).count() as u64
        );
    }

    #[test]
    fn duplicates_are_counted_once() {
        let c = feed([1, 2, 2, 3, 3, 3, 4]);
        assert_eq!(c.received, 4);
        assert_eq!(c.duplicates, 3);
        assert_eq!(c.lost(), 0);
    }

    #[test]
    fn reordering_is_not_loss() {
        let c = feed([10, 12, 11, 14, 13, 15]);
        assert_eq!(c.received, 6);
        assert_eq!(c.expected, 6);
        assert_eq!(c.reordered, 2);
        assert_eq!(c.lost(), 0);
    }

    #[test]
    fn reordering_across_wrap_and_before_first() {
        // 0 arrives before 65535; 4 arrives before 3 and 2; 1 never arrives.
        let c = feed([0, 65_535, 4, 3, 2]);
        assert_eq!(c.expected, 6); // 65535, 0, 1, 2, 3, 4
        assert_eq!(c.received, 5);
        assert_eq!(c.lost(), 1);
        assert_eq!(c.reordered, 3);
    }

    #[test]
    fn late_duplicate_after_window_is_not_received() {
        let mut t = SeqTracker::new();
        for s in 0..6000u16 {
            t.record(s);
        }
        t.record(10); // far behind: cannot tell, never counted as received
        let c = t.counts();
        assert_eq!(c.too_old, 1);
        assert_eq!(c.received, 6000);
        assert_eq!(c.duplicates, 0);
    }

    #[test]
    fn big_jump_forward_counts_as_loss() {
        let c = feed([1, 2, 20_000, 20_001]);
        assert_eq!(c.received, 4);
        assert_eq!(c.expected, 20_001);
        assert_eq!(c.lost(), 19_997);
    }

    #[test]
    fn duplicate_detection_survives_word_shifts() {
        let mut t = SeqTracker::new();
        let mut expect_dups = 0;
        for s in 0..3000u16 {
            t.record(s);
            if s >= 130 && s % 7 == 0 {
                t.record(s - 130);
                expect_dups += 1;
            }
        }
        assert_eq!(t.counts().duplicates, expect_dups);
        assert_eq!(t.counts().received, 3000);
        assert_eq!(t.counts().lost(), 0);
    }

    #[test]
    fn since_gives_interval_counts() {
        let mut t = SeqTracker::new();
        (0..100u16).for_each(|s| t.record(s));
        let a = t.counts();
        (100..200u16)
            .filter(|s| s % 10 != 0)
            .for_each(|s| t.record(s));
        let d = t.counts().since(&a);
        assert_eq!(d.expected, 100); // up to 199; 100, 110, ..., 190 are lost
        assert_eq!(d.received, 90);
    }

    /// Random streams (drops, duplicates, local reordering, several wraps) against a
    /// set-based reference count over the true extended numbers.
    #[test]
    fn matches_reference_model() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..20 {
            let start = rnd(65_536);
            let len = 20_000 + rnd(150_000);
            // True extended numbers that arrive, with duplicates.
            let mut arrivals: Vec<u64> = Vec::new();
            for i in 0..len {
                if rnd(100) < 3 {
                    continue; // dropped
                }
                arrivals.push(start + i);
                if rnd(200) == 0 {
                    arrivals.push(start + i); // duplicate
                }
            }
            // Local reordering: swap neighbours within 50 positions.
            for i in 0..arrivals.len() {
                if rnd(20) == 0 {
                    let j = (i + 1 + rnd(50) as usize).min(arrivals.len() - 1);
                    arrivals.swap(i, j);
                }
            }
            let mut t = SeqTracker::new();
            for a in &arrivals {
                t.record(*a as u16);
            }
            let set: std::collections::BTreeSet<u64> = arrivals.iter().copied().collect();
            let lo = *set.first().unwrap();
            let hi = *set.last().unwrap();
            let c = t.counts();
            assert_eq!(c.received, set.len() as u64, "round {round}");
            assert_eq!(c.expected, hi - lo + 1, "round {round}");
            assert_eq!(
                c.duplicates,
                (arrivals.len() - set.len()) as u64,
                "round {round}"
            );
            assert_eq!(c.lost(), hi - lo + 1 - set.len() as u64, "round {round}");
            assert_eq!(c.too_old, 0);
        }
    }

    #[test]
    fn histogram_percentiles() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile_us(50.0), None);
        for us in 1..=1000 {
            h.record_us(us);
        }
        let p50 = h.percentile_us(50.0).unwrap_or(0);
        assert!((500..=510).contains(&p50), "{p50}");
        let p99 = h.percentile_us(99.0).unwrap_or(0);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.percentile_us(100.0), Some(1000));
        h.record_us(5_000_000);
        assert_eq!(h.max_us(), 5_000_000);
        assert_eq!(h.count(), 1001);
    }
}
