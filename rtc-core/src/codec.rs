//! Codec helpers that look into forwarded RTP payloads without depacketising them: codec names
//! for stats, and the picture size carried by keyframes (VP8 frame header, VP9 scalability
//! structure, H.264 SPS).
//!
//! Every parser here reads peer bytes: it returns `None` on anything short or odd, never panics.

use str0m::format::Codec;

/// The name signalling reports for a codec (`VP8`, `VP9`, `H264`, `AV1`, `opus`, ...).
pub(crate) fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        Codec::H264 => "H264",
        Codec::H265 => "H265",
        Codec::Av1 => "AV1",
        Codec::Opus => "opus",
        Codec::PCMU => "PCMU",
        Codec::PCMA => "PCMA",
        Codec::G722 => "G722",
        _ => "",
    }
}

/// Picture size `(width, height)` if this RTP payload starts a keyframe that carries it.
pub(crate) fn keyframe_size(codec: Codec, payload: &[u8]) -> Option<(u32, u32)> {
    match codec {
        Codec::Vp8 => vp8_keyframe_size(payload),
        Codec::Vp9 => vp9_keyframe_size(payload),
        Codec::H264 => h264_sps_size(payload),
        _ => None,
    }
}

/// VP8 (RFC 7741): skip the payload descriptor; a keyframe's first partition starts with the
/// frame tag, the start code `9d 01 2a` and 14-bit width and height.
pub(crate) fn vp8_keyframe_size(payload: &[u8]) -> Option<(u32, u32)> {
    let b0 = *payload.first()?;
    let start_of_partition = b0 & 0x10 != 0;
    let partition_id = b0 & 0x07;
    if !start_of_partition || partition_id != 0 {
        return None;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID, 7 or 15 bits.
            let m = *payload.get(i)?;
            i += if m & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    let frame = payload.get(i..)?;
    let tag = *frame.first()?;
    if tag & 0x01 != 0 {
        return None; // inter frame
    }
    if frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([*frame.get(6)?, *frame.get(7)?]) & 0x3fff;
    let h = u16::from_le_bytes([*frame.get(8)?, *frame.get(9)?]) & 0x3fff;
    Some((u32::from(w), u32::from(h)))
}

/// VP9 (RFC 9628 draft payload format): the scalability structure (V bit) of a keyframe lists
/// the size of each spatial layer; report the largest.
pub(crate) fn vp9_keyframe_size(payload: &[u8]) -> Option<(u32, u32)> {
    let b0 = *payload.first()?;
    let has_pid = b0 & 0x80 != 0;
    let inter_picture = b0 & 0x40 != 0;
    let has_layers = b0 & 0x20 != 0;
    let flexible = b0 & 0x10 != 0;
    let has_ss = b0 & 0x02 != 0;
    if inter_picture || !has_ss {
        return None;
    }
    let mut i = 1;
    if has_pid {
        let m = *payload.get(i)?;
        i += if m & 0x80 != 0 { 2 } else { 1 };
    }
    if has_layers {
        i += 1;
        if !flexible {
            i += 1; // TL0PICIDX
        }
    }
    // P is 0 here, so no reference indices in flexible mode.
    let ss = *payload.get(i)?;
    i += 1;
    let layers = usize::from(ss >> 5) + 1;
    if ss & 0x10 == 0 {
        return None; // no resolutions present
    }
    let mut best = None;
    for _ in 0..layers {
        let w = u16::from_be_bytes([*payload.get(i)?, *payload.get(i + 1)?]);
        let h = u16::from_be_bytes([*payload.get(i + 2)?, *payload.get(i + 3)?]);
        i += 4;
        best = Some((u32::from(w), u32::from(h)));
    }
    best
}

/// H.264 (RFC 6184): find an SPS in a single NAL unit or STAP-A and decode its picture size.
pub(crate) fn h264_sps_size(payload: &[u8]) -> Option<(u32, u32)> {
    let nal_type = payload.first()? & 0x1f;
    match nal_type {
        7 => sps_size(payload.get(1..)?),
        24 => {
            let mut i = 1;
            while let (Some(&a), Some(&b)) = (payload.get(i), payload.get(i + 1)) {
                let len = usize::from(u16::from_be_bytes([a, b]));
                let nal = payload.get(i + 2..i + 2 + len)?;
                if nal.first().map(|h| h & 0x1f) == Some(7) {
                    return sps_size(nal.get(1..)?);
                }
                i += 2 + len;
            }
            None
        }
        _ => None,
    }
}

/// Exp-Golomb bit reader over an RBSP (emulation prevention bytes already removed).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Decodes the picture size from an SPS body (after the NAL header byte).
fn sps_size(body: &[u8]) -> Option<(u32, u32)> {
    // Remove emulation prevention bytes (00 00 03).
    let mut rbsp = Vec::with_capacity(body.len());
    let mut zeros = 0;
    for &b in body.iter().take(256) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = Bits {
        data: &rbsp,
        pos: 0,
    };
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags + level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    let poc_type = r.ue()?;
    if poc_type == 0 {
        r.ue()?;
    } else if poc_type == 1 {
        r.bit()?;
        r.se()?;
        r.se()?;
        let n = r.ue()?;
        if n > 255 {
            return None;
        }
        for _ in 0..n {
            r.se()?;
        }
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let w_mbs = u64::from(r.ue()?) + 1;
    let h_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        cl = u64::from(r.ue()?);
        cr = u64::from(r.ue()?);
        ct = u64::from(r.ue()?);
        cb = u64::from(r.ue()?);
    }
    let (sub_w, sub_h) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_x = if chroma_format_idc == 0 { 1 } else { sub_w };
    let crop_y = if chroma_format_idc == 0 {
        2 - frame_mbs_only
    } else {
        sub_h * (2 - frame_mbs_only)
    };
    let width = (w_mbs * 16).checked_sub((cl + cr) * crop_x)?;
    let height = ((2 - frame_mbs_only) * h_units * 16).checked_sub((ct + cb) * crop_y)?;
    Some((u32::try_from(width).ok()?, u32::try_from(height).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vp8_keyframe_header_gives_size() {
        // Descriptor with X, I (15-bit picture id), then a 640x480 keyframe header.
        let p = [
            0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01,
        ];
        assert_eq!(vp8_keyframe_size(&p), Some((640, 480)));
        // Same without the extension.
        let p = [
            0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02,
        ];
        assert_eq!(vp8_keyframe_size(&p), Some((1280, 720)));
    }

    #[test]
    fn vp8_delta_or_continuation_gives_nothing() {
        let delta = [
            0x10, 0x11, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01,
        ];
        assert_eq!(vp8_keyframe_size(&delta), None);
        let continuation = [
            0x00, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01,
        ];
        assert_eq!(vp8_keyframe_size(&continuation), None);
    }

    /// A baseline SPS (profile 66, level 3.0) for 720x404 (cropped from 720x416), with
    /// emulation prevention bytes; the vector of videojs/mux.js `test/test-sps.js`.
    const SPS_720X404: [u8; 24] = [
        103, 66, 192, 30, 217, 0, 180, 53, 249, 225, 0, 0, 3, 0, 1, 0, 0, 3, 0, 60, 15, 22, 46, 72,
    ];

    #[test]
    fn h264_sps_single_nal_gives_cropped_size() {
        assert_eq!(h264_sps_size(&SPS_720X404), Some((720, 404)));
    }

    #[test]
    fn h264_sps_in_stap_a() {
        let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
        let mut p = vec![0x18];
        p.extend_from_slice(&(SPS_720X404.len() as u16).to_be_bytes());
        p.extend_from_slice(&SPS_720X404);
        p.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        p.extend_from_slice(&pps);
        assert_eq!(h264_sps_size(&p), Some((720, 404)));
        // A slice NAL alone carries no size.
        assert_eq!(h264_sps_size(&[0x65, 0x88, 0x84]), None);
    }

    #[test]
    fn vp9_scalability_structure_gives_size() {
        // I=1 (7-bit pid), B, E, V; SS with one layer (N_S=0), Y=1, G=0; 640x360.
        let p = [0x8e, 0x05, 0x10, 0x02, 0x80, 0x01, 0x68, 0x00];
        assert_eq!(vp9_keyframe_size(&p), Some((640, 360)));
    }

    #[test]
    fn codec_names() {
        assert_eq!(codec_name(Codec::Vp8), "VP8");
        assert_eq!(codec_name(Codec::H264), "H264");
        assert_eq!(codec_name(Codec::Opus), "opus");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = vp8_keyframe_size(&data);
            let _ = vp9_keyframe_size(&data);
            let _ = h264_sps_size(&data);
            let _ = sps_size(&data);
        }
    }
}
