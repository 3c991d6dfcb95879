//! Synthetic media: VP8- and Opus-shaped RTP payloads carrying a send timestamp, and a
//! plain RTP header parser for counting packets without decrypting them.
//!
//! Every payload carries, at [`STAMP_OFFSET`], the magic [`MAGIC`] and the send time in
//! nanoseconds since the load generator's start (publishers and players are in one process, so
//! one clock). SFUs forward payloads untouched, so a player that decrypts (a *probe*) reads the
//! one-way latency from it.

use std::time::Duration;

/// Marks a payload written by this generator.
pub const MAGIC: [u8; 4] = *b"ALd1";
/// Where the magic and timestamp start in every payload.
pub const STAMP_OFFSET: usize = 12;
/// Smallest payload that still holds the stamp.
pub const MIN_PAYLOAD: usize = STAMP_OFFSET + 4 + 8;

/// Media shape of a publisher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaProfile {
    /// Video bitrate (bits/s); 0 = no video.
    pub video_bps: u64,
    /// Video frames per second.
    pub fps: u32,
    /// Seconds between keyframes.
    pub keyframe_interval: Duration,
    /// A keyframe is this many times a delta frame.
    pub keyframe_factor: u32,
    /// Opus packets per second; 0 = no audio.
    pub audio_pps: u32,
    /// Opus payload bytes.
    pub audio_bytes: usize,
    /// Largest RTP payload.
    pub max_payload: usize,
}

impl Default for MediaProfile {
    /// 2 Mbit/s VP8 at 30 fps, keyframe every 2 s (4x a delta frame); Opus 50 packets/s of
    /// 120 bytes (48 kbit/s); payloads up to 1200 bytes.
    fn default() -> Self {
        MediaProfile {
            video_bps: 2_000_000,
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            keyframe_factor: 4,
            audio_pps: 50,
            audio_bytes: 120,
            max_payload: 1200,
        }
    }
}

impl MediaProfile {
    /// Bytes of one delta frame.
    pub fn delta_frame_bytes(&self) -> usize {
        if self.fps == 0 {
            return 0;
        }
        (self.video_bps / 8 / u64::from(self.fps)) as usize
    }

    /// Payload sizes of one video frame's packets.
    pub fn frame_packets(&self, keyframe: bool) -> Vec<usize> {
        let mut total = self.delta_frame_bytes();
        if keyframe {
            total *= self.keyframe_factor.max(1) as usize;
        }
        let max = self.max_payload.max(MIN_PAYLOAD + 16);
        let n = total.div_ceil(max).max(1);
        let each = (total / n).max(MIN_PAYLOAD + 16);
        vec![each; n]
    }

    /// Average packets per second (video and audio) this profile sends.
    pub fn packets_per_second(&self) -> f64 {
        if self.video_bps == 0 || self.fps == 0 {
            return f64::from(self.audio_pps);
        }
        let per_key = self.keyframe_interval.as_secs_f64() * f64::from(self.fps);
        let key = self.frame_packets(true).len() as f64;
        let delta = self.frame_packets(false).len() as f64;
        let video =
            f64::from(self.fps) * (key + (per_key - 1.0).max(0.0) * delta) / per_key.max(1.0);
        video + f64::from(self.audio_pps)
    }
}

/// One VP8 packet's payload: a 1-byte payload descriptor (S bit on the first packet of a
/// frame), a VP8 frame header on the first packet (key or inter frame, 640x360), the stamp,
/// filler.
pub fn vp8_payload(len: usize, first: bool, keyframe: bool, sent_ns: u64, index: u32) -> Vec<u8> {
    let mut p = vec![0u8; len.max(MIN_PAYLOAD)];
    let header: &[u8] = match (first, keyframe) {
        // descriptor S=1 PID=0; frame tag: key frame (P=0), version 0, shown; start code; size.
        (true, true) => &[
            0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
        ],
        // descriptor S=1; frame tag: inter frame (P=1), shown.
        (true, false) => &[0x10, 0x51, 0x02, 0x00],
        // continuation: descriptor S=0.
        (false, _) => &[0x00],
    };
    write_into(&mut p, header, sent_ns, index, 0xcd);
    p
}

/// An Opus payload: a TOC byte (CELT FB 20 ms), the stamp, filler.
pub fn opus_payload(len: usize, sent_ns: u64, index: u32) -> Vec<u8> {
    let mut p = vec![0u8; len.max(MIN_PAYLOAD)];
    write_into(&mut p, &[0xfc], sent_ns, index, 0x55);
    p
}

fn write_into(p: &mut [u8], header: &[u8], sent_ns: u64, index: u32, fill: u8) {
    for (i, b) in p.iter_mut().enumerate() {
        *b = header.get(i).copied().unwrap_or(fill);
    }
    let stamp = MAGIC
        .into_iter()
        .chain(sent_ns.to_le_bytes())
        .chain(index.to_le_bytes());
    for (dst, src) in p.iter_mut().skip(STAMP_OFFSET).zip(stamp) {
        *dst = src;
    }
}

/// The send time (ns since start) stamped in a payload, if it carries one.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let magic = payload.get(STAMP_OFFSET..STAMP_OFFSET + 4)?;
    if magic != MAGIC {
        return None;
    }
    let ns = payload.get(STAMP_OFFSET + 4..STAMP_OFFSET + 12)?;
    Some(u64::from_le_bytes(ns.try_into().ok()?))
}

/// Whether a VP8 payload is the first packet of a key frame.
pub fn is_vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&desc) = payload.first() else {
        return false;
    };
    if desc & 0x10 == 0 || desc & 0x0f != 0 {
        return false;
    }
    // Skip the extended descriptor fields when X is set.
    let mut i = 1;
    if desc & 0x80 != 0 {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        i = 2;
        if x & 0x80 != 0 {
            // I: picture id, 1 or 2 bytes.
            let Some(&pid) = payload.get(i) else {
                return false;
            };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    payload.get(i).is_some_and(|b| b & 0x01 == 0)
}

/// The fields of an RTP header this generator needs, read from a (S)RTP datagram in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    /// Payload type.
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Marker bit.
    pub marker: bool,
}

/// Parses the RTP header of an (S)RTP packet; `None` for anything else (STUN, DTLS, RTCP).
pub fn parse_rtp(d: &[u8]) -> Option<RtpInfo> {
    let b0 = *d.first()?;
    let b1 = *d.get(1)?;
    if b0 >> 6 != 2 || d.len() < 12 {
        return None;
    }
    // RTCP packet types 192..=223 share the first byte range (RFC 5761).
    if (192..=223).contains(&b1) {
        return None;
    }
    let u16_at =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*d.get(i)?, *d.get(i + 1)?])) };
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes([
            *d.get(i)?,
            *d.get(i + 1)?,
            *d.get(i + 2)?,
            *d.get(i + 3)?,
        ]))
    };
    Some(RtpInfo {
        pt: b1 & 0x7f,
        marker: b1 & 0x80 != 0,
        seq: u16_at(2)?,
        timestamp: u32_at(4)?,
        ssrc: u32_at(8)?,
    })
}

/// Primary VP8 and Opus payload types of an SDP (from `a=rtpmap`), as `(pt, is_video)`.
pub fn media_pts(sdp: &str) -> Vec<(u8, bool)> {
    let mut out = Vec::new();
    for line in sdp.lines() {
        let Some(rest) = line.trim().strip_prefix("a=rtpmap:") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let (Some(pt), Some(enc)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(pt) = pt.parse::<u8>() else { continue };
        let enc = enc.to_ascii_lowercase();
        if enc.starts_with("vp8/") {
            out.push((pt, true));
        } else if enc.starts_with("opus/") {
            out.push((pt, false));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_in_both_codecs() {
        let v = vp8_payload(1200, true, true, 123_456_789, 7);
        assert_eq!(v.len(), 1200);
        assert_eq!(read_stamp(&v), Some(123_456_789));
        assert!(is_vp8_keyframe_start(&v));
        let d = vp8_payload(1200, true, false, 5, 8);
        assert!(!is_vp8_keyframe_start(&d));
        let c = vp8_payload(1200, false, true, 5, 9);
        assert!(!is_vp8_keyframe_start(&c));
        assert_eq!(read_stamp(&c), Some(5));
        let a = opus_payload(120, 42, 1);
        assert_eq!(read_stamp(&a), Some(42));
        assert_eq!(read_stamp(&[0u8; 40]), None);
        assert_eq!(read_stamp(&[0u8; 3]), None);
    }

    #[test]
    fn profile_rates() {
        let p = MediaProfile::default();
        assert_eq!(p.delta_frame_bytes(), 8333);
        assert_eq!(p.frame_packets(false).len(), 7);
        assert_eq!(p.frame_packets(true).len(), 28);
        let pps = p.packets_per_second();
        // 30 fps * 7 packets + keyframe extra (21 packets every 2 s) + 50 audio.
        assert!((pps - (210.0 + 10.5 + 50.0)).abs() < 1.0, "{pps}");
    }

    #[test]
    fn rtp_header_parsing() {
        let mut d = vec![
            0x80,
            0x80 | 96,
            0x12,
            0x34,
            0,
            0,
            0,
            9,
            0xde,
            0xad,
            0xbe,
            0xef,
            1,
            2,
        ];
        let i = parse_rtp(&d).expect("rtp");
        assert_eq!(
            (i.pt, i.seq, i.timestamp, i.ssrc, i.marker),
            (96, 0x1234, 9, 0xdead_beef, true)
        );
        d[1] = 200; // RTCP SR
        assert_eq!(parse_rtp(&d), None);
        assert_eq!(parse_rtp(&[0x00, 0x01, 0, 0]), None); // STUN
        assert_eq!(parse_rtp(&[22, 254, 253]), None); // DTLS
    }

    #[test]
    fn sdp_payload_types() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n";
        assert_eq!(media_pts(sdp), vec![(111, false), (96, true)]);
    }
}
