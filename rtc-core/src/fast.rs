//! The forwarding fast path: a player's RTP written and sealed here, not by str0m.
//!
//! str0m's general send path costs about 15-20 k instructions per forwarded packet
//! (`StreamTx::write_rtp`, then the player's `Input::Timeout` and `poll_output`: the header and
//! its extensions written anew, every timer of the session evaluated, large values moved),
//! five times the plain AES-GCM forwarder of `antenna-load udp-forwarder` (BENCHMARKS.md,
//! "Per forwarded packet"). Once a player's DTLS is up with an AEAD-AES-GCM SRTP profile,
//! [`FastTx`] sends its RTP instead: a 12-byte header (the player's SSRC, sequence number,
//! payload type and timestamp, the publisher's marker bit), the publisher's payload, sealed
//! with the player's SRTP key (RFC 7714), straight into the SFU's outputs. No str0m call per
//! packet, and nothing to flush.
//!
//! str0m keeps ICE, DTLS, the data channel, keyframe requests and everything the player
//! sends. What its send path did besides sending is done here:
//! - **Retransmission.** The last [`RTX_CACHE_AGE`] of sealed video packets are kept (at most
//!   [`RTX_CACHE_PACKETS`] per stream). A Generic NACK read from the player's SRTCP sends a
//!   kept packet again as it was: an SRTP receiver accepts an index it never received. Each
//!   packet is resent at most [`MAX_RESENDS`] times, and one NACK resends at most
//!   [`MAX_RESENDS_PER_NACK`] packets.
//! - **Sender reports.** str0m still writes them (it owns the SRTCP index), but it knows
//!   nothing of the packets sent here: its RTP time would be 0 and its counts too. Before
//!   such a report leaves, [`FastTx::rewrite_rtcp`] opens it, writes this stream's RTP time
//!   (extrapolated from the last packet sent, as str0m does) and counts, and seals it again
//!   under the same index. str0m's own ciphertext never leaves, so no nonce is used twice.
//!
//! A player with AES-CM-HMAC-SHA1 SRTP, or whose keys are not known, stays on str0m's path.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::crypto::dtls::SrtpProfile;
use str0m::crypto::{AeadAes128GcmCipher, AeadAes256GcmCipher, SrtpProvider};

use crate::dtls::SrtpKeys;
use crate::session::{RTX_CACHE_AGE, RTX_CACHE_PACKETS};
use crate::{SfuOutput, Transmit};

/// Times one kept packet may be sent again.
pub(crate) const MAX_RESENDS: u8 = 2;
/// Packets one NACK may have sent again.
pub(crate) const MAX_RESENDS_PER_NACK: usize = 64;

const RTP_HEADER: usize = 12;
const TAG: usize = 16;
const SALT: usize = 12;
/// SRTCP trailer: the E flag and the 31-bit index.
const SRTCP_TRAILER: usize = 4;
/// RFC 3711 section 4.3.1 key derivation labels.
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_KEY: u8 = 3;
const LABEL_RTCP_SALT: u8 = 5;

/// AES-GCM with a 128- or 256-bit key (str0m's provider's ciphers).
enum Aead {
    A128(Box<dyn AeadAes128GcmCipher>),
    A256(Box<dyn AeadAes256GcmCipher>),
}

impl Aead {
    fn new(p: &dyn SrtpProvider, key: &[u8], encrypt: bool) -> Option<Self> {
        Some(match key.len() {
            16 => Aead::A128(
                p.aead_aes_128_gcm()
                    .create_cipher(key.try_into().ok()?, encrypt),
            ),
            32 => Aead::A256(
                p.aead_aes_256_gcm()
                    .create_cipher(key.try_into().ok()?, encrypt),
            ),
            _ => return None,
        })
    }

    /// `output` = sealed `input` followed by the tag (`input.len() + TAG` bytes).
    fn seal(&mut self, iv: &[u8; 12], aad: &[u8], input: &[u8], output: &mut [u8]) -> bool {
        match self {
            Aead::A128(c) => c.encrypt(iv, aad, input, output).is_ok(),
            Aead::A256(c) => c.encrypt(iv, aad, input, output).is_ok(),
        }
    }

    /// Opens `input` (ciphertext and tag, at least `TAG` bytes) into `output`.
    fn open(&mut self, iv: &[u8; 12], aads: &[&[u8]], input: &[u8], output: &mut [u8]) -> bool {
        if input.len() < TAG || output.len() + TAG < input.len() {
            return false;
        }
        match self {
            Aead::A128(c) => c.decrypt(iv, aads, input, output).is_ok(),
            Aead::A256(c) => c.decrypt(iv, aads, input, output).is_ok(),
        }
    }
}

/// RFC 3711 section 4.3 key derivation (AES in counter mode, key derivation rate 0), with the
/// master salt at the front of the 16-byte block and the label at byte 7.
fn derive(p: &dyn SrtpProvider, master: &[u8], salt: &[u8], label: u8, out: &mut [u8]) {
    let mut x = [0u8; 16];
    for (b, s) in x.iter_mut().zip(salt) {
        *b = *s;
    }
    x[7] ^= label;
    let mut block = [0u8; 32];
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        let [c0, c1] = (i as u16).to_be_bytes();
        x[14] = c0;
        x[15] = c1;
        if master.len() == 16 {
            p.srtp_aes_128_ecb_round(master, &x, &mut block);
        } else {
            p.srtp_aes_256_ecb_round(master, &x, &mut block);
        }
        for (o, b) in chunk.iter_mut().zip(block) {
            *o = b;
        }
    }
}

/// The 12-byte AES-GCM IV of RFC 7714: `00 00 || SSRC || word || low` XOR the session salt,
/// where `word` is the ROC (SRTP) or `00 00` and the high index half (SRTCP).
fn iv(salt: &[u8; SALT], ssrc: [u8; 4], mid: [u8; 4], low: [u8; 2]) -> [u8; 12] {
    let [s0, s1, s2, s3] = ssrc;
    let [m0, m1, m2, m3] = mid;
    let [l0, l1] = low;
    let mut iv = [0, 0, s0, s1, s2, s3, m0, m1, m2, m3, l0, l1];
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// SRTCP IV: the 31-bit index in the last four bytes.
fn rtcp_iv(salt: &[u8; SALT], ssrc: [u8; 4], index: u32) -> [u8; 12] {
    let [i0, i1, i2, i3] = index.to_be_bytes();
    iv(salt, ssrc, [0, 0, i0, i1], [i2, i3])
}

/// Four bytes at `at`, if there are.
fn word(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at.checked_add(4)?)?.try_into().ok()
}

/// A big-endian u16 at `at`, if there is one.
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let p: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(p))
}

/// A video packet kept for retransmission: its header and the payload all players share
/// (a few dozen bytes per player, not a copy of the datagram).
struct Kept {
    header: RtpFields,
    at: Instant,
    resent: u8,
    payload: Arc<[u8]>,
}

/// One stream sent on the fast path.
struct TxStream {
    ssrc: u32,
    clock_rate: u32,
    packets: u32,
    octets: u32,
    /// RTP time and send time of the last packet.
    last: Option<(u32, Instant)>,
    /// Video only: packets kept for NACKs, oldest first.
    kept: VecDeque<Kept>,
}

/// What the fast path did, for the SFU's counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastCounters {
    /// Players that took the fast path (1 for one player's sender).
    pub players: u64,
    pub resent: u64,
    pub reports_rewritten: u64,
    pub rtcp_unreadable: u64,
}

impl FastCounters {
    pub(crate) fn add(&mut self, o: &FastCounters) {
        self.players += o.players;
        self.resent += o.resent;
        self.reports_rewritten += o.reports_rewritten;
        self.rtcp_unreadable += o.rtcp_unreadable;
    }
}

/// A player's RTP sender: its SRTP keys, streams and retransmission cache.
pub(crate) struct FastTx {
    rtp: Aead,
    rtp_salt: [u8; SALT],
    /// Our SRTCP (str0m's sender reports, opened and sealed again).
    rtcp_open: Aead,
    rtcp_seal: Aead,
    rtcp_salt: [u8; SALT],
    /// The player's SRTCP (its NACKs).
    peer_rtcp: Aead,
    peer_rtcp_salt: [u8; SALT],
    streams: Vec<TxStream>,
    scratch: Vec<u8>,
    pub counters: FastCounters,
}

impl std::fmt::Debug for FastTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastTx")
            .field("streams", &self.streams.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl FastTx {
    /// A sender for `keys`, if their profile is AEAD-AES-GCM (`None` otherwise: the player
    /// stays on str0m's path).
    pub(crate) fn new(p: &dyn SrtpProvider, keys: &SrtpKeys) -> Option<Self> {
        let key_len = match keys.profile {
            SrtpProfile::AEAD_AES_128_GCM => 16,
            SrtpProfile::AEAD_AES_256_GCM => 32,
            _ => return None,
        };
        let m = &keys.material;
        if m.len() != 2 * key_len + 2 * SALT {
            return None;
        }
        let (client_key, rest) = m.split_at(key_len);
        let (server_key, rest) = rest.split_at(key_len);
        let (client_salt, server_salt) = rest.split_at(SALT);
        let (ours, theirs) = if keys.active {
            ((client_key, client_salt), (server_key, server_salt))
        } else {
            ((server_key, server_salt), (client_key, client_salt))
        };
        let session = |(master, salt): (&[u8], &[u8]), label_key: u8, label_salt: u8| {
            let mut k = vec![0u8; key_len];
            derive(p, master, salt, label_key, &mut k);
            let mut s = [0u8; SALT];
            derive(p, master, salt, label_salt, &mut s);
            (k, s)
        };
        let (rtp_key, rtp_salt) = session(ours, LABEL_RTP_KEY, LABEL_RTP_SALT);
        let (rtcp_key, rtcp_salt) = session(ours, LABEL_RTCP_KEY, LABEL_RTCP_SALT);
        let (peer_key, peer_rtcp_salt) = session(theirs, LABEL_RTCP_KEY, LABEL_RTCP_SALT);
        Some(FastTx {
            rtp: Aead::new(p, &rtp_key, true)?,
            rtp_salt,
            rtcp_open: Aead::new(p, &rtcp_key, false)?,
            rtcp_seal: Aead::new(p, &rtcp_key, true)?,
            rtcp_salt,
            peer_rtcp: Aead::new(p, &peer_key, false)?,
            peer_rtcp_salt,
            streams: Vec::new(),
            scratch: Vec::new(),
            counters: FastCounters {
                players: 1,
                ..FastCounters::default()
            },
        })
    }

    fn stream(&mut self, ssrc: u32, clock_rate: u32) -> &mut TxStream {
        if !self.streams.iter().any(|s| s.ssrc == ssrc) {
            self.streams.push(TxStream {
                ssrc,
                clock_rate,
                packets: 0,
                octets: 0,
                last: None,
                kept: VecDeque::new(),
            });
        }
        let found = self.streams.iter_mut().find(|s| s.ssrc == ssrc);
        found.unwrap_or_else(|| unreachable!("pushed above"))
    }

    /// Seals one RTP packet and queues it for `path` (local, remote). `seq` is the extended
    /// sequence number (its high bits are the rollover counter). A video packet is kept for
    /// NACKs as its header fields and the payload every player shares.
    pub(crate) fn send_rtp(
        &mut self,
        now: Instant,
        path: (SocketAddr, SocketAddr),
        header: RtpFields,
        payload: &Arc<[u8]>,
        out: &mut VecDeque<SfuOutput>,
    ) -> bool {
        let Some(datagram) = self.seal_rtp(&header, payload) else {
            return false;
        };
        let s = self.stream(header.ssrc, header.clock_rate);
        s.packets = s.packets.wrapping_add(1);
        s.octets = s.octets.wrapping_add(payload.len() as u32);
        s.last = Some((header.timestamp, now));
        if header.keep {
            while s.kept.front().is_some_and(|k| {
                now.saturating_duration_since(k.at) > RTX_CACHE_AGE
                    || s.kept.len() >= RTX_CACHE_PACKETS
            }) {
                s.kept.pop_front();
            }
            s.kept.push_back(Kept {
                header,
                at: now,
                resent: 0,
                payload: payload.clone(),
            });
        }
        out.push_back(SfuOutput::Transmit(Transmit {
            source: path.0,
            destination: path.1,
            contents: datagram,
        }));
        true
    }

    /// The SRTP datagram of one packet (RFC 7714 AEAD: the header authenticated, the payload
    /// encrypted, the tag appended). The same packet always seals to the same bytes.
    fn seal_rtp(&mut self, header: &RtpFields, payload: &[u8]) -> Option<Vec<u8>> {
        let ssrc = header.ssrc.to_be_bytes();
        let seq = header.seq as u16;
        let roc = (header.seq >> 16) as u32;
        let [q0, q1] = seq.to_be_bytes();
        let [t0, t1, t2, t3] = header.timestamp.to_be_bytes();
        let [s0, s1, s2, s3] = ssrc;
        let m_pt = (u8::from(header.marker) << 7) | (header.pt & 0x7f);
        let head = [0x80, m_pt, q0, q1, t0, t1, t2, t3, s0, s1, s2, s3];
        let mut datagram = Vec::with_capacity(RTP_HEADER + payload.len() + TAG);
        datagram.extend_from_slice(&head);
        datagram.resize(RTP_HEADER + payload.len() + TAG, 0);
        let iv = iv(&self.rtp_salt, ssrc, roc.to_be_bytes(), [q0, q1]);
        let body = datagram.get_mut(RTP_HEADER..)?;
        self.rtp.seal(&iv, &head, payload, body).then_some(datagram)
    }

    /// A datagram from the player: if it is SRTCP, reads its NACKs and sends the kept packets
    /// again. The datagram still goes to str0m afterwards.
    pub(crate) fn on_receive(
        &mut self,
        now: Instant,
        path: (SocketAddr, SocketAddr),
        data: &[u8],
        out: &mut VecDeque<SfuOutput>,
    ) {
        if !is_rtcp(data) {
            return;
        }
        let Some(plain) = open_srtcp(
            &mut self.peer_rtcp,
            &self.peer_rtcp_salt,
            data,
            &mut self.scratch,
        ) else {
            self.counters.rtcp_unreadable += 1;
            return;
        };
        let mut budget = MAX_RESENDS_PER_NACK;
        let plain = std::mem::take(plain);
        let mut again: Vec<(RtpFields, Arc<[u8]>)> = Vec::new();
        for_each_rtcp(&plain, |pt, fmt, p| {
            if pt != 205 || fmt != 1 {
                return;
            }
            let (Some(media), Some(fcis)) = (word(p, 8), p.get(12..)) else {
                return;
            };
            let media = u32::from_be_bytes(media);
            let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == media) else {
                return;
            };
            for fci in fcis.chunks_exact(4) {
                let (Some(pid), Some(blp)) = (be16(fci, 0), be16(fci, 2)) else {
                    continue;
                };
                let lost = std::iter::once(pid).chain(
                    (0..16u16)
                        .filter(|i| blp & (1 << i) != 0)
                        .map(|i| pid.wrapping_add(i + 1)),
                );
                for seq in lost {
                    if budget == 0 {
                        return;
                    }
                    let found = s.kept.iter_mut().rev().find(|k| k.header.seq as u16 == seq);
                    let Some(k) = found else {
                        continue;
                    };
                    if k.resent >= MAX_RESENDS
                        || now.saturating_duration_since(k.at) > RTX_CACHE_AGE
                    {
                        continue;
                    }
                    k.resent += 1;
                    budget -= 1;
                    again.push((k.header, k.payload.clone()));
                }
            }
        });
        // Sealed again as first sent: the same index and bytes, which the player's SRTP
        // accepts because it never received them.
        for (header, payload) in again {
            if let Some(datagram) = self.seal_rtp(&header, &payload) {
                self.counters.resent += 1;
                out.push_back(SfuOutput::Transmit(Transmit {
                    source: path.0,
                    destination: path.1,
                    contents: datagram,
                }));
            }
        }
        self.scratch = plain;
    }

    /// An SRTCP datagram str0m is sending: its sender reports of fast-path streams get this
    /// side's RTP time and counts. Returns the datagram to send instead, if it changed.
    pub(crate) fn rewrite_rtcp(&mut self, now: Instant, data: &[u8]) -> Option<Vec<u8>> {
        if !is_rtcp(data) || self.streams.is_empty() {
            return None;
        }
        let trailer = data.len().checked_sub(SRTCP_TRAILER)?;
        let index_word = word(data, trailer)?;
        let mut plain = {
            let opened = open_srtcp(
                &mut self.rtcp_open,
                &self.rtcp_salt,
                data,
                &mut self.scratch,
            );
            let Some(p) = opened else {
                self.counters.rtcp_unreadable += 1;
                return None;
            };
            std::mem::take(p)
        };
        // Where each sender report of a fast-path stream is, and what goes in its sender info.
        let mut edits: Vec<(usize, [u8; 12])> = Vec::new();
        for_each_rtcp_at(&plain, |off, pt, p| {
            if pt != 200 || p.len() < 28 {
                return;
            }
            let Some(ssrc) = word(p, 4).map(u32::from_be_bytes) else {
                return;
            };
            let Some(s) = self.streams.iter().find(|s| s.ssrc == ssrc) else {
                return;
            };
            let Some((ts, at)) = s.last else {
                return;
            };
            let rtp = ts.wrapping_add(rtp_units(now.saturating_duration_since(at), s.clock_rate));
            let mut info = [0u8; 12];
            for (d, b) in info.iter_mut().zip(
                rtp.to_be_bytes()
                    .into_iter()
                    .chain(s.packets.to_be_bytes())
                    .chain(s.octets.to_be_bytes()),
            ) {
                *d = b;
            }
            edits.push((off + 16, info));
        });
        for (at, info) in &edits {
            if let Some(d) = plain.get_mut(*at..at + 12) {
                d.copy_from_slice(info);
            }
        }
        let sealed = if edits.is_empty() {
            None
        } else {
            self.seal_srtcp(&plain, index_word)
        };
        self.scratch = plain;
        sealed
    }

    /// Seals compound RTCP `plain` under SRTCP index word `index_word` (E flag set).
    fn seal_srtcp(&mut self, plain: &[u8], index_word: [u8; 4]) -> Option<Vec<u8>> {
        let index = u32::from_be_bytes(index_word) & 0x7fff_ffff;
        let head = plain.get(..8)?;
        let body = plain.get(8..)?;
        let iv = rtcp_iv(&self.rtcp_salt, word(plain, 4)?, index);
        let mut aad = Vec::with_capacity(12);
        aad.extend_from_slice(head);
        aad.extend_from_slice(&index_word);
        let mut out = Vec::with_capacity(plain.len() + TAG + SRTCP_TRAILER);
        out.extend_from_slice(head);
        out.resize(plain.len() + TAG, 0);
        if !self.rtcp_seal.seal(&iv, &aad, body, out.get_mut(8..)?) {
            return None;
        }
        out.extend_from_slice(&index_word);
        self.counters.reports_rewritten += 1;
        Some(out)
    }

    /// Packets kept for retransmission, over all streams (tests and memory accounting).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.streams.iter().map(|s| s.kept.len()).sum()
    }
}

/// The header fields of one packet sent on the fast path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtpFields {
    pub ssrc: u32,
    pub pt: u8,
    /// Extended sequence number.
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub clock_rate: u32,
    /// Keep it for retransmission (video).
    pub keep: bool,
}

fn rtp_units(d: Duration, clock_rate: u32) -> u32 {
    (d.as_micros() * u128::from(clock_rate) / 1_000_000) as u32
}

/// RTCP by RFC 5761's demultiplexing rule: version 2, packet type 192-223.
fn is_rtcp(data: &[u8]) -> bool {
    match data {
        [b0, pt, _, _, _, _, _, _, ..] => b0 >> 6 == 2 && (192..=223).contains(pt),
        _ => false,
    }
}

/// Opens an SRTCP packet (RFC 7714 section 9): the first 8 bytes in clear, the rest sealed,
/// then the E flag and index. Returns the whole compound RTCP packet in `scratch`.
fn open_srtcp<'a>(
    aead: &mut Aead,
    salt: &[u8; SALT],
    data: &[u8],
    scratch: &'a mut Vec<u8>,
) -> Option<&'a mut Vec<u8>> {
    if data.len() < 8 + TAG + SRTCP_TRAILER {
        return None;
    }
    let trailer = data.len() - SRTCP_TRAILER;
    let index_word = word(data, trailer)?;
    if index_word[0] & 0x80 == 0 {
        // Not encrypted (authentication only): nothing of ours sends or expects that.
        return None;
    }
    let index = u32::from_be_bytes(index_word) & 0x7fff_ffff;
    let iv = rtcp_iv(salt, word(data, 4)?, index);
    let head = data.get(..8)?;
    let sealed = data.get(8..trailer)?;
    scratch.clear();
    scratch.extend_from_slice(head);
    scratch.resize(8 + sealed.len() - TAG, 0);
    if !aead.open(&iv, &[head, &index_word], sealed, scratch.get_mut(8..)?) {
        return None;
    }
    Some(scratch)
}

/// Calls `f(packet type, count/format field, packet)` for each packet of a compound RTCP
/// packet; stops at the first malformed one.
fn for_each_rtcp(data: &[u8], mut f: impl FnMut(u8, u8, &[u8])) {
    for_each_rtcp_at(data, |_, pt, p| {
        let fmt = p.first().map_or(0, |b| b & 0x1f);
        f(pt, fmt, p)
    });
}

/// [`for_each_rtcp`] with each packet's offset, and without the format field.
fn for_each_rtcp_at(data: &[u8], mut f: impl FnMut(usize, u8, &[u8])) {
    let mut off = 0;
    while let (Some(&b0), Some(&pt), Some(words)) =
        (data.get(off), data.get(off + 1), be16(data, off + 2))
    {
        if b0 >> 6 != 2 {
            return;
        }
        let size = (usize::from(words) + 1) * 4;
        let Some(p) = data.get(off..off + size) else {
            return;
        };
        f(off, pt, p);
        off += size;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Instant::now(): a start time for the tests' clock
mod tests {
    use super::*;

    fn keys(profile: SrtpProfile, active: bool) -> SrtpKeys {
        let len = match profile {
            SrtpProfile::AEAD_AES_128_GCM => 2 * 16 + 2 * SALT,
            _ => 2 * 32 + 2 * SALT,
        };
        SrtpKeys {
            material: (0..len as u8).collect(),
            profile,
            active,
        }
    }

    /// One side's sender with the test keys.
    fn sender(profile: SrtpProfile, active: bool) -> FastTx {
        FastTx::new(
            str0m::crypto::from_feature_flags().srtp_provider,
            &keys(profile, active),
        )
        .unwrap()
    }

    /// Sends packets `seqs` of `len` bytes at `t`.
    fn send(tx: &mut FastTx, t: Instant, seqs: std::ops::Range<u64>, len: usize) -> Vec<Vec<u8>> {
        let mut out = VecDeque::new();
        let payload: Arc<[u8]> = Arc::from(vec![7u8; len].as_slice());
        for seq in seqs {
            assert!(tx.send_rtp(t, path(), fields(seq), &payload, &mut out));
        }
        out.into_iter()
            .map(|o| match o {
                SfuOutput::Transmit(t) => t.contents,
                _ => unreachable!(),
            })
            .collect()
    }

    fn path() -> (SocketAddr, SocketAddr) {
        (
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:6000".parse().unwrap(),
        )
    }

    fn fields(seq: u64) -> RtpFields {
        RtpFields {
            ssrc: 0x1234_5678,
            pt: 96,
            seq,
            timestamp: 9000,
            marker: true,
            clock_rate: 90_000,
            keep: true,
        }
    }

    /// SRTCP as the other side would seal it, with its own `FastTx` (whose "ours" keys are
    /// our "theirs").
    fn seal_rtcp(tx: &mut FastTx, plain: &[u8], index: u32) -> Vec<u8> {
        let word = (0x8000_0000 | index).to_be_bytes();
        let iv = rtcp_iv(&tx.rtcp_salt, plain[4..8].try_into().unwrap(), index);
        let mut aad = [0u8; 12];
        aad[..8].copy_from_slice(&plain[..8]);
        aad[8..].copy_from_slice(&word);
        let body = &plain[8..];
        let mut out = vec![0u8; 8 + body.len() + TAG + 4];
        out[..8].copy_from_slice(&plain[..8]);
        let end = 8 + body.len() + TAG;
        assert!(tx.rtcp_seal.seal(&iv, &aad, body, &mut out[8..end]));
        out[end..].copy_from_slice(&word);
        out
    }

    fn nack(media: u32, pid: u16, blp: u16) -> Vec<u8> {
        let mut p = vec![0x81, 205, 0, 3];
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&media.to_be_bytes());
        p.extend_from_slice(&pid.to_be_bytes());
        p.extend_from_slice(&blp.to_be_bytes());
        p
    }

    #[test]
    fn cm_profile_stays_on_str0m() {
        let c = str0m::crypto::from_feature_flags();
        let k = SrtpKeys {
            material: vec![0; 60],
            profile: SrtpProfile::AES128_CM_SHA1_80,
            active: true,
        };
        assert!(FastTx::new(c.srtp_provider, &k).is_none());
        let short = SrtpKeys {
            material: vec![0; 10],
            profile: SrtpProfile::AEAD_AES_128_GCM,
            active: true,
        };
        assert!(FastTx::new(c.srtp_provider, &short).is_none());
    }

    #[test]
    fn nack_resends_kept_packet_once_per_allowance() {
        for profile in [SrtpProfile::AEAD_AES_128_GCM, SrtpProfile::AEAD_AES_256_GCM] {
            let mut server = sender(profile, false);
            let mut client = sender(profile, true);
            let t0 = Instant::now();
            let mut out = VecDeque::new();
            let sent = send(&mut server, t0, 100..110, 50);
            assert_eq!(sent.len(), 10);
            // 103 and 105 (pid 103, bit 1 = 105).
            let n = seal_rtcp(&mut client, &nack(0x1234_5678, 103, 0b10), 1);
            server.on_receive(t0, path(), &n, &mut out);
            let again: Vec<Vec<u8>> = out
                .drain(..)
                .map(|o| match o {
                    SfuOutput::Transmit(t) => t.contents,
                    _ => unreachable!(),
                })
                .collect();
            assert_eq!(again, vec![sent[3].clone(), sent[5].clone()]);
            for i in 2..5 {
                let n = seal_rtcp(&mut client, &nack(0x1234_5678, 103, 0), i);
                server.on_receive(t0, path(), &n, &mut out);
            }
            assert_eq!(out.len(), usize::from(MAX_RESENDS) - 1, "{profile:?}");
            out.clear();
            // Too old to be useful: not sent.
            let late = t0 + RTX_CACHE_AGE + Duration::from_millis(1);
            let n = seal_rtcp(&mut client, &nack(0x1234_5678, 104, 0), 9);
            server.on_receive(late, path(), &n, &mut out);
            assert!(out.is_empty());
            // A forged or damaged packet is counted, not read.
            let mut bad = seal_rtcp(&mut client, &nack(0x1234_5678, 106, 0), 10);
            bad[12] ^= 1;
            server.on_receive(t0, path(), &bad, &mut out);
            assert!(out.is_empty());
            assert_eq!(server.counters.rtcp_unreadable, 1);
        }
    }

    #[test]
    fn cache_is_bounded_by_age_and_count() {
        let mut tx = sender(SrtpProfile::AEAD_AES_256_GCM, true);
        let t0 = Instant::now();
        send(&mut tx, t0, 0..RTX_CACHE_PACKETS as u64 + 50, 10);
        assert_eq!(tx.kept(), RTX_CACHE_PACKETS);
        send(&mut tx, t0 + RTX_CACHE_AGE * 2, 1000..1001, 10);
        assert_eq!(tx.kept(), 1);
    }

    #[test]
    fn sender_report_gets_our_rtp_time_and_counts() {
        let mut tx = sender(SrtpProfile::AEAD_AES_128_GCM, true);
        // The same keys seen from the sending side's own SRTCP: a second FastTx of the same
        // side seals what str0m would.
        let mut str0m_side = sender(SrtpProfile::AEAD_AES_128_GCM, true);
        let t0 = Instant::now();
        send(&mut tx, t0, 0..3, 100);
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        sr.extend_from_slice(&[0xAA; 8]); // NTP, kept
        sr.extend_from_slice(&[0; 12]); // RTP time and counts, str0m's zeros
        let sealed = seal_rtcp(&mut str0m_side, &sr, 7);
        let now = t0 + Duration::from_millis(100);
        let rewritten = tx.rewrite_rtcp(now, &sealed).expect("rewritten");
        assert_eq!(rewritten.len(), sealed.len());
        assert_eq!(rewritten[rewritten.len() - 4..], sealed[sealed.len() - 4..]);
        let mut scratch = Vec::new();
        let plain = open_srtcp(
            &mut str0m_side.rtcp_open,
            &str0m_side.rtcp_salt,
            &rewritten,
            &mut scratch,
        )
        .expect("opens with the same keys")
        .clone();
        assert_eq!(&plain[8..16], &[0xAA; 8]);
        assert_eq!(
            u32::from_be_bytes(plain[16..20].try_into().unwrap()),
            9000 + 9000
        );
        assert_eq!(u32::from_be_bytes(plain[20..24].try_into().unwrap()), 3);
        assert_eq!(u32::from_be_bytes(plain[24..28].try_into().unwrap()), 300);
        // A report of a stream this side never sent is left alone.
        sr[4..8].copy_from_slice(&1u32.to_be_bytes());
        let other = seal_rtcp(&mut str0m_side, &sr, 8);
        assert!(tx.rewrite_rtcp(now, &other).is_none());
    }

    proptest::proptest! {
        /// A player holds its keys, so it can send any compound RTCP it likes, well sealed:
        /// reading it never panics, and one packet resends at most `MAX_RESENDS_PER_NACK`.
        #[test]
        fn any_sealed_rtcp_from_the_player_is_bounded(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            pt in proptest::prop_oneof![proptest::strategy::Just(205u8), 192u8..224],
        ) {
            let mut server = sender(SrtpProfile::AEAD_AES_128_GCM, false);
            let mut client = sender(SrtpProfile::AEAD_AES_128_GCM, true);
            let t0 = Instant::now();
            let mut out = VecDeque::new();
            send(&mut server, t0, 0..400, 20);
            let mut plain = if pt == 205 {
                // A well-formed NACK of our stream, its FCIs whatever the body says.
                let fcis = &body[..body.len() / 4 * 4];
                let mut p = nack(0x1234_5678, 0, 0);
                p.truncate(12);
                p[2..4].copy_from_slice(&((2 + fcis.len() / 4) as u16).to_be_bytes());
                p.extend_from_slice(fcis);
                p
            } else {
                vec![0x80, pt, 0, 0, 0x12, 0x34, 0x56, 0x78]
            };
            if pt != 205 {
                plain.extend_from_slice(&body);
            }
            let sealed = seal_rtcp(&mut client, &plain, 5);
            server.on_receive(t0, path(), &sealed, &mut out);
            proptest::prop_assert!(out.len() <= MAX_RESENDS_PER_NACK);
            // The same bytes as str0m's own report: rewritten or left alone, never longer.
            let mut own = sender(SrtpProfile::AEAD_AES_128_GCM, false);
            let as_ours = seal_rtcp(&mut own, &plain, 6);
            if let Some(r) = server.rewrite_rtcp(t0, &as_ours) {
                proptest::prop_assert_eq!(r.len(), as_ours.len());
            }
        }
    }

    #[test]
    fn hostile_rtcp_is_bounded() {
        let mut tx = sender(SrtpProfile::AEAD_AES_128_GCM, false);
        let mut out = VecDeque::new();
        let t0 = Instant::now();
        for len in 0..64 {
            let mut d = vec![0x80u8; len];
            if len > 1 {
                d[1] = 205;
            }
            tx.on_receive(t0, path(), &d, &mut out);
            assert!(tx.rewrite_rtcp(t0, &d).is_none());
        }
        assert!(out.is_empty());
        for_each_rtcp(&[0x80, 200, 0xff, 0xff, 0, 0, 0, 0], |_, _, _| {
            panic!("too long")
        });
    }
}
