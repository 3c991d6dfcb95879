//! Resuming a player's video after a pause (`toggleVideo`/`enableTrack` off, then on).
//!
//! While video is off nothing is forwarded to the player. When it comes back on, the next
//! packets the publisher sends are mostly inter frames that refer to pictures the player never
//! got: a browser cannot decode them and shows nothing until a keyframe arrives. Forwarding them
//! anyway made resumption depend on luck: the keyframe request sent on resume was dropped by the
//! per-publisher throttle whenever any request had gone out in the 300 ms before (the player's
//! own decoder asks for keyframes while its video is starved, and those keyframes were
//! discarded because video was still off), and the publisher's encoder also ignores requests
//! that come too soon after its last keyframe. Nothing asked again.
//!
//! The [`KeyframeGate`] makes it deterministic: on resume it asks for a keyframe at once (with a
//! short per-publisher gap of its own, [`RESUME_REQUEST_GAP`]), drops the player's video until a
//! packet that starts a keyframe, and asks again every [`KEYFRAME_RETRY`] while it waits. The same applies to players of a
//! publisher that starts again (a publisher restored after its connection dropped). The
//! sequence-number rewriter (`forward::SeqRewriter`) was paused when video went off, so the
//! keyframe continues the player's sequence without a gap.

use std::time::{Duration, Instant};

use str0m::format::Codec;

/// How often a waiting player asks again. A browser's encoder ignores requests that come
/// within about 300 ms of its last keyframe; a retry 350 ms after an ignored request is always
/// past that window.
pub(crate) const KEYFRAME_RETRY: Duration = Duration::from_millis(350);

/// Minimum gap between two resume keyframe requests sent to one publisher (shared by all its
/// waiting players), instead of the general 300 ms.
pub(crate) const RESUME_REQUEST_GAP: Duration = Duration::from_millis(100);

/// Per-player state of a video resume.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyframeGate {
    /// Video is dropped until a keyframe starts.
    waiting: bool,
    /// When this player last asked for a keyframe.
    last_request: Option<Instant>,
    /// A request is due; taken by the SFU with [`KeyframeGate::take_request`].
    request: bool,
}

impl KeyframeGate {
    /// Video forwarding resumed: wait for a keyframe and ask for one now.
    pub(crate) fn start(&mut self, now: Instant) {
        self.waiting = true;
        self.request = true;
        self.last_request = Some(now);
    }

    /// Video forwarding stopped (or the session goes): nothing to wait for.
    pub(crate) fn stop(&mut self) {
        self.waiting = false;
        self.request = false;
    }

    /// True while video is held back waiting for a keyframe.
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// Decides one video packet: `true` forwards it. The first packet that starts a keyframe
    /// opens the gate; a packet dropped while waiting may schedule another request.
    pub(crate) fn admit(&mut self, now: Instant, starts_keyframe: bool) -> bool {
        if !self.waiting {
            return true;
        }
        if starts_keyframe {
            self.waiting = false;
            self.request = false;
            return true;
        }
        if self
            .last_request
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_RETRY)
        {
            self.request = true;
            self.last_request = Some(now);
        }
        false
    }

    /// Whether a keyframe request is due (and clears it).
    pub(crate) fn take_request(&mut self) -> bool {
        std::mem::take(&mut self.request)
    }
}

/// True if this RTP payload is the first packet of a keyframe (VP8, VP9, H.264).
pub(crate) fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8_starts_keyframe(payload),
        Codec::Vp9 => vp9_starts_keyframe(payload),
        Codec::H264 => h264_starts_keyframe(payload),
        // Other codecs: no way to tell, never hold them back.
        _ => true,
    }
}

/// VP8 (RFC 7741): the start of partition 0 whose frame tag says key frame (P bit 0).
fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = payload.get(i) else {
            return false;
        };
        i += 1;
        if x & 0x80 != 0 {
            let Some(&m) = payload.get(i) else {
                return false;
            };
            i += if m & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    payload.get(i).is_some_and(|tag| tag & 0x01 == 0)
}

/// VP9: a packet that begins a frame (B bit) of a picture that is not inter-predicted (P bit 0)
/// in the base spatial layer.
fn vp9_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let inter_picture = b0 & 0x40 != 0;
    let begins_frame = b0 & 0x08 != 0;
    if inter_picture || !begins_frame {
        return false;
    }
    if b0 & 0x20 == 0 {
        return true; // no layer indices: a single spatial layer
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&m) = payload.get(i) else {
            return false;
        };
        i += if m & 0x80 != 0 { 2 } else { 1 };
    }
    // Layer indices: TID(3) U(1) SID(3) D(1); the base spatial layer has SID 0.
    payload.get(i).is_some_and(|l| (l >> 1) & 0x07 == 0)
}

/// H.264 (RFC 6184): an SPS or IDR NAL unit, alone, first in a STAP-A, or at the start of an
/// FU-A.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let is_key = |t: u8| matches!(t, 5 | 7);
    match b0 & 0x1f {
        24 => {
            let mut i = 1;
            while let (Some(&a), Some(&b)) = (payload.get(i), payload.get(i + 1)) {
                let len = usize::from(u16::from_be_bytes([a, b]));
                match payload.get(i + 2) {
                    Some(h) if is_key(h & 0x1f) => return true,
                    Some(_) => {}
                    None => return false,
                }
                i += 2 + len;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        t => is_key(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)]
        Instant::now()
    }

    #[test]
    fn forwards_freely_until_started() {
        let now = t0();
        let mut g = KeyframeGate::default();
        assert!(g.admit(now, false));
        assert!(!g.take_request());
    }

    #[test]
    fn holds_inter_frames_until_a_keyframe() {
        let now = t0();
        let mut g = KeyframeGate::default();
        g.start(now);
        assert!(g.take_request(), "resume asks for a keyframe at once");
        assert!(!g.take_request());
        assert!(!g.admit(now + Duration::from_millis(10), false));
        assert!(
            !g.take_request(),
            "no second request before the retry interval"
        );
        assert!(g.admit(now + Duration::from_millis(40), true));
        assert!(!g.is_waiting());
        // Inter frames after the keyframe flow.
        assert!(g.admit(now + Duration::from_millis(70), false));
    }

    #[test]
    fn asks_again_while_no_keyframe_comes() {
        let now = t0();
        let mut g = KeyframeGate::default();
        g.start(now);
        g.take_request();
        let mut asked = 0;
        for ms in (33..2000).step_by(33) {
            assert!(!g.admit(now + Duration::from_millis(ms), false));
            asked += u32::from(g.take_request());
        }
        // 2 s of inter frames: a request every 350 ms.
        assert_eq!(asked, 5, "retries in 2 s");
        assert!(g.is_waiting());
    }

    #[test]
    fn stop_clears_the_wait() {
        let now = t0();
        let mut g = KeyframeGate::default();
        g.start(now);
        g.stop();
        assert!(!g.take_request());
        assert!(g.admit(now, false));
    }

    #[test]
    fn vp8_keyframe_start_is_recognised() {
        use crate::testing::{vp8_delta, vp8_keyframe};
        assert!(starts_keyframe(Codec::Vp8, &vp8_keyframe(640, 360, 100)));
        assert!(!starts_keyframe(Codec::Vp8, &vp8_delta(100)));
        // A continuation packet of a keyframe (S bit clear).
        let mut cont = vp8_keyframe(640, 360, 100);
        cont[0] &= !0x10;
        assert!(!starts_keyframe(Codec::Vp8, &cont));
        // With an extended descriptor and a 15-bit PictureID.
        let ext = [0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        assert!(starts_keyframe(Codec::Vp8, &ext));
        let ext_delta = [0x90, 0x80, 0x81, 0x23, 0x11, 0x02, 0x00];
        assert!(!starts_keyframe(Codec::Vp8, &ext_delta));
    }

    #[test]
    fn h264_keyframe_start_is_recognised() {
        // STAP-A with SPS, PPS; an IDR alone; FU-A start and middle of an IDR; a P slice.
        let stap = [24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
        assert!(starts_keyframe(Codec::H264, &stap));
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88]));
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 0x88]));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05, 0x88]));
        assert!(!starts_keyframe(Codec::H264, &[0x41, 0x9a]));
        assert!(!starts_keyframe(Codec::H264, &[24, 0, 2, 0x41, 0x9a]));
    }

    #[test]
    fn vp9_keyframe_start_is_recognised() {
        // I=1 (PictureID), B=1, P=0, no layers.
        assert!(starts_keyframe(Codec::Vp9, &[0x88, 0x12, 0x00]));
        // Inter picture.
        assert!(!starts_keyframe(Codec::Vp9, &[0xc8, 0x12, 0x00]));
        // Not the beginning of a frame.
        assert!(!starts_keyframe(Codec::Vp9, &[0x80, 0x12, 0x00]));
        // Layer indices: spatial layer 1 is not where decoding starts.
        assert!(!starts_keyframe(Codec::Vp9, &[0xa8, 0x12, 0x02, 0x00]));
        assert!(starts_keyframe(Codec::Vp9, &[0xa8, 0x12, 0x00, 0x00]));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            for c in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Opus] {
                let _ = starts_keyframe(c, &data);
            }
        }

        /// Whatever the packet pattern, a waiting gate asks at most once per retry interval
        /// (plus the first request), and opens exactly at the first keyframe.
        #[test]
        fn gate_requests_are_bounded(keys in proptest::collection::vec(any::<bool>(), 1..200),
                                     step_ms in 1u64..100) {
            let now = t0();
            let mut g = KeyframeGate::default();
            g.start(now);
            let mut requests = u64::from(g.take_request());
            let first_key = keys.iter().position(|k| *k);
            for (i, k) in keys.iter().enumerate() {
                let at = now + Duration::from_millis(step_ms * (i as u64 + 1));
                let fwd = g.admit(at, *k);
                prop_assert_eq!(fwd, first_key.is_some_and(|f| i >= f));
                requests += u64::from(g.take_request());
            }
            let span = step_ms * keys.len() as u64;
            prop_assert!(requests <= 1 + span / KEYFRAME_RETRY.as_millis() as u64);
        }
    }
}
