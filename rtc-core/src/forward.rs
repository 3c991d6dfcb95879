//! Per-player RTP rewriting: the sequence-number and timestamp mapping of one forwarded track.
//!
//! A player's outgoing track has its own SSRC (str0m's `StreamTx`) and its own sequence space.
//! Packets are mapped with a fixed offset (`out = in + offset`) so that a gap at the publisher
//! stays a gap at the player (and the player NACKs it), while a pause of forwarding or a switch
//! of source SSRC is hidden: the offset is re-based so the player sees `last_out + 1` next.

use std::time::{Duration, Instant};

use proto_core::SessionId;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;

use crate::resume::KeyframeGate;

/// How long the current source SSRC must be silent before another SSRC may take over.
///
/// Simulcast publishers send several SSRCs at once; we stay locked on the first one.
const SOURCE_SWITCH_SILENCE: Duration = Duration::from_secs(1);

/// Timestamp step used when re-basing onto a new source (one video frame at 30 fps, or 20 ms
/// of 48 kHz audio), so the player never sees time go backwards.
fn rebase_ts_step(kind: MediaKind) -> u32 {
    if kind == MediaKind::Video {
        3000
    } else {
        960
    }
}

/// The mapping state of one outgoing track.
#[derive(Debug, Default)]
pub(crate) struct SeqRewriter {
    /// Source SSRC we are locked on.
    source: Option<Ssrc>,
    /// When the locked source last sent.
    last_in_at: Option<Instant>,
    /// `out = in + offset` (extended sequence numbers).
    offset: i64,
    /// Packets older than this input sequence number belong to a previous run: dropped.
    run_start: u64,
    /// Highest output sequence number written, and its timestamp.
    last_out: Option<(u64, u32)>,
    /// Added to input timestamps.
    ts_offset: u32,
    /// The next packet starts a new run continuing from `last_out`.
    rebase: bool,
}

impl SeqRewriter {
    /// Marks a pause: the next forwarded packet continues the output sequence without a gap.
    pub(crate) fn pause(&mut self) {
        self.rebase = true;
    }

    /// The track is handed to another source (a room player's m-line reused for another
    /// subtrack): the next packet, whatever its SSRC, takes over at once and continues the
    /// output sequence and time.
    pub(crate) fn retarget(&mut self) {
        self.rebase = true;
        self.last_in_at = None;
    }

    /// Maps one input packet, or `None` to drop it.
    pub(crate) fn map(
        &mut self,
        now: Instant,
        kind: MediaKind,
        ssrc: Ssrc,
        in_seq: u64,
        in_ts: u32,
    ) -> Option<(u64, u32)> {
        let in_seq_i = i64::try_from(in_seq).ok()?;
        match self.source {
            None => {
                // Start at the low 16 bits of the source: ROC 0, as str0m expects for a new stream.
                self.offset = i64::from(in_seq as u16) - in_seq_i;
                self.ts_offset = 0;
                self.run_start = in_seq;
                self.source = Some(ssrc);
                self.rebase = false;
            }
            Some(s) if s != ssrc => {
                let silent = self
                    .last_in_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= SOURCE_SWITCH_SILENCE);
                if !silent {
                    return None;
                }
                self.source = Some(ssrc);
                self.rebase_onto(in_seq_i, in_seq);
                if let Some((_, last_ts)) = self.last_out {
                    self.ts_offset = last_ts
                        .wrapping_add(rebase_ts_step(kind))
                        .wrapping_sub(in_ts);
                }
            }
            Some(_) if self.rebase => self.rebase_onto(in_seq_i, in_seq),
            Some(_) => {}
        }
        if in_seq < self.run_start {
            return None;
        }
        self.last_in_at = Some(now);
        let out = u64::try_from(in_seq_i + self.offset).ok()?;
        let out_ts = in_ts.wrapping_add(self.ts_offset);
        if self.last_out.is_none_or(|(l, _)| out > l) {
            self.last_out = Some((out, out_ts));
        }
        Some((out, out_ts))
    }

    fn rebase_onto(&mut self, in_seq_i: i64, in_seq: u64) {
        let next = self.last_out.map_or(0, |(l, _)| l + 1);
        self.offset = i64::try_from(next).unwrap_or(i64::MAX) - in_seq_i;
        self.run_start = in_seq;
        self.rebase = false;
    }
}

/// Which publisher's packets an outgoing track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The player's one publisher (a plain play).
    Any,
    /// This publisher (a room player's m-line carrying a subtrack).
    From(SessionId),
    /// Nothing: an inactive m-line of a room player, free for the next subtrack.
    Idle,
}

/// One outgoing (sendonly) track of a player.
#[derive(Debug)]
pub(crate) struct OutTrack {
    /// The player's m-line.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Whose packets go out on it.
    pub source: Source,
    /// The player's SSRC for it, known once the answer is accepted.
    pub ssrc: Option<Ssrc>,
    /// Publisher PT -> player PT (`None`: the player did not accept that codec).
    pub pt_map: Vec<(Pt, Option<Pt>)>,
    /// Sequence/timestamp mapping.
    pub seq: SeqRewriter,
    /// Holds this track's video back until a keyframe after its source changed (a Last-N
    /// slot switched to another subtrack, or a subtrack's video toggled back on).
    pub gate: KeyframeGate,
}

impl OutTrack {
    pub(crate) fn new(mid: Mid, kind: MediaKind) -> Self {
        OutTrack {
            mid,
            kind,
            source: Source::Any,
            ssrc: None,
            pt_map: Vec::new(),
            seq: SeqRewriter::default(),
            gate: KeyframeGate::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)]
        Instant::now()
    }

    #[test]
    fn first_packet_starts_at_low_bits_and_gaps_are_kept() {
        let now = t0();
        let mut r = SeqRewriter::default();
        let s = Ssrc::from(1);
        assert_eq!(
            r.map(now, MediaKind::Video, s, 70_000, 100),
            Some((4_464, 100))
        );
        assert_eq!(
            r.map(now, MediaKind::Video, s, 70_001, 200),
            Some((4_465, 200))
        );
        // A loss at the publisher stays a loss at the player.
        assert_eq!(
            r.map(now, MediaKind::Video, s, 70_003, 300),
            Some((4_467, 300))
        );
        // A late (reordered or repaired) packet keeps its place.
        assert_eq!(
            r.map(now, MediaKind::Video, s, 70_002, 250),
            Some((4_466, 250))
        );
    }

    #[test]
    fn pause_hides_the_gap() {
        let now = t0();
        let mut r = SeqRewriter::default();
        let s = Ssrc::from(1);
        assert_eq!(r.map(now, MediaKind::Video, s, 10, 0), Some((10, 0)));
        assert_eq!(r.map(now, MediaKind::Video, s, 11, 3000), Some((11, 3000)));
        r.pause();
        // 100 packets were not forwarded; the player continues at 12.
        assert_eq!(r.map(now, MediaKind::Video, s, 111, 9000), Some((12, 9000)));
        assert_eq!(
            r.map(now, MediaKind::Video, s, 112, 12000),
            Some((13, 12000))
        );
        // A straggler from before the pause is dropped, not sent with a colliding number.
        assert_eq!(r.map(now, MediaKind::Video, s, 105, 8000), None);
    }

    #[test]
    fn retarget_takes_a_new_source_at_once() {
        let now = t0();
        let mut r = SeqRewriter::default();
        let (a, b) = (Ssrc::from(1), Ssrc::from(2));
        assert_eq!(
            r.map(now, MediaKind::Video, a, 500, 9000),
            Some((500, 9000))
        );
        r.retarget();
        // No silence needed: b continues a's sequence and time right away.
        assert_eq!(r.map(now, MediaKind::Video, b, 7, 100), Some((501, 12000)));
        assert_eq!(r.map(now, MediaKind::Video, b, 8, 3100), Some((502, 15000)));
        // a is now the stranger, held off while b sends.
        assert_eq!(r.map(now, MediaKind::Video, a, 501, 12000), None);
    }

    #[test]
    fn second_ssrc_is_ignored_until_first_is_silent() {
        let now = t0();
        let mut r = SeqRewriter::default();
        let a = Ssrc::from(1);
        let b = Ssrc::from(2);
        assert_eq!(r.map(now, MediaKind::Audio, a, 5, 1000), Some((5, 1000)));
        assert_eq!(r.map(now, MediaKind::Audio, b, 900, 77), None);
        let later = now + Duration::from_secs(2);
        // b takes over and continues a's sequence and time.
        assert_eq!(r.map(later, MediaKind::Audio, b, 901, 77), Some((6, 1960)));
        assert_eq!(
            r.map(later, MediaKind::Audio, b, 902, 1037),
            Some((7, 2920))
        );
    }
}
