//! One synthetic WebRTC client: a str0m `Rtc` (RTP mode) on its own loopback UDP socket.
//!
//! Every peer does real ICE, DTLS and SRTP with the server through str0m. What differs is how
//! a player treats incoming media once connected:
//!
//! - a [`PeerMode::Counter`] player reads sequence numbers from the clear RTP header of each
//!   SRTP packet and never hands the packet to str0m (no decryption, no NACK/TWCC feedback):
//!   cheap enough that one load core can receive what one server core sends (see CEILING.md);
//! - a [`PeerMode::Probe`] player hands everything to str0m, which decrypts; it reads the send
//!   stamp from the payload (one-way latency) and notices the first keyframe.
//!
//! Everything that is not media RTP (STUN, DTLS, RTCP) always goes to str0m, which keeps ICE
//! consent and RTCP alive.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::media::{self, MediaProfile};
use crate::stats::{Histogram, SeqCounts, SeqTracker};

/// One-way latency samples of probes, by kind.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Video packets.
    pub video: Histogram,
    /// Audio packets.
    pub audio: Histogram,
}

impl Latency {
    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.video.clear();
        self.audio.clear();
    }
}

/// How a peer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMode {
    /// Sends synthetic media.
    Publisher,
    /// Receives; counts from clear RTP headers without decrypting.
    Counter,
    /// Receives through str0m (decrypts); measures latency and keyframes.
    Probe,
}

/// Shared client configuration (one DTLS certificate for every peer).
#[derive(Clone)]
pub struct PeerFactory {
    config: RtcConfig,
    /// Time zero of the send stamps.
    pub epoch: Instant,
}

impl std::fmt::Debug for PeerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerFactory").finish_non_exhaustive()
    }
}

impl PeerFactory {
    /// A factory; `epoch` is time zero of the embedded send stamps.
    pub fn new(epoch: Instant) -> PeerFactory {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate();
        let mut config = RtcConfig::new()
            .set_crypto_provider(Arc::new(provider))
            .set_rtp_mode(true)
            .set_stats_interval(None)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true);
        if let Some(cert) = cert {
            config = config.set_dtls_cert(cert);
        }
        PeerFactory { config, epoch }
    }

    /// A peer on a fresh UDP socket at `ip:0`.
    pub fn peer(&self, now: Instant, ip: [u8; 4], mode: PeerMode) -> io::Result<Peer> {
        let sock = UdpSocket::bind(SocketAddr::from((ip, 0)))?;
        let addr = sock.local_addr()?;
        let mut rtc = self.config.clone().build(now);
        let cand = Candidate::host(addr, "udp").map_err(io::Error::other)?;
        rtc.add_local_candidate(cand);
        Ok(Peer {
            rtc,
            sock,
            addr,
            deadline: now,
            connected: false,
            failed: None,
            mode,
            epoch: self.epoch,
            pending: None,
            send: Vec::new(),
            keyframe_wanted: true,
            media_pts: Vec::new(),
            streams: Vec::new(),
            first_media: None,
            first_keyframe: None,
            connected_at: None,
            received_packets: 0,
            send_errors: 0,
        })
    }
}

/// One outgoing track of a publisher.
#[derive(Debug)]
struct SendTrack {
    mid: Mid,
    kind: MediaKind,
    pt: Option<Pt>,
    seq: u64,
    index: u32,
}

/// A received RTP stream (one SSRC).
#[derive(Debug)]
pub struct RecvStream {
    /// The SSRC.
    pub ssrc: u32,
    /// Video (else audio).
    pub video: bool,
    /// Sequence accounting.
    pub seq: SeqTracker,
}

/// A WebRTC client.
#[derive(Debug)]
pub struct Peer {
    rtc: Rtc,
    sock: UdpSocket,
    /// Local address (the host candidate).
    pub addr: SocketAddr,
    /// When str0m wants a timeout.
    pub deadline: Instant,
    /// ICE+DTLS up.
    pub connected: bool,
    /// Why the peer failed, if it did.
    pub failed: Option<String>,
    /// Behaviour.
    pub mode: PeerMode,
    epoch: Instant,
    pending: Option<SdpPendingOffer>,
    send: Vec<SendTrack>,
    /// A keyframe should go out with the next video frame.
    pub keyframe_wanted: bool,
    /// (Players) primary payload types from the server offer, `(pt, video)`.
    media_pts: Vec<(u8, bool)>,
    /// (Players) received streams.
    pub streams: Vec<RecvStream>,
    /// (Players) first media packet.
    pub first_media: Option<Instant>,
    /// (Probes) first packet of a keyframe.
    pub first_keyframe: Option<Instant>,
    /// When ICE and DTLS were up (`Event::Connected`).
    pub connected_at: Option<Instant>,
    /// Media packets received (all, including duplicates).
    pub received_packets: u64,
    /// Datagrams the socket refused to send.
    pub send_errors: u64,
}

impl Peer {
    /// The UDP socket, for registration with mio.
    pub fn socket(&mut self) -> &mut UdpSocket {
        &mut self.sock
    }

    /// A publisher offer: sendonly audio and video (with `profile`'s kinds).
    pub fn publish_offer(&mut self, audio: bool, video: bool) -> Option<String> {
        let mut api = self.rtc.sdp_api();
        let mut mids = Vec::new();
        if audio {
            mids.push((
                api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None),
                MediaKind::Audio,
            ));
        }
        if video {
            mids.push((
                api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None),
                MediaKind::Video,
            ));
        }
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        self.send = mids
            .into_iter()
            .map(|(mid, kind)| SendTrack {
                mid,
                kind,
                pt: None,
                seq: 1000,
                index: 0,
            })
            .collect();
        self.drain(None);
        Some(offer.to_sdp_string())
    }

    /// Applies the server's answer (publisher).
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let pending = self.pending.take().ok_or("no pending offer")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())?;
        for t in &mut self.send {
            let codec = if t.kind == MediaKind::Audio {
                Codec::Opus
            } else {
                Codec::Vp8
            };
            let remote: Vec<Pt> = self
                .rtc
                .media(t.mid)
                .map(|m| m.remote_pts().to_vec())
                .unwrap_or_default();
            t.pt = self
                .rtc
                .codec_config()
                .params()
                .iter()
                .filter(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .find(|pt| remote.is_empty() || remote.contains(pt));
        }
        self.drain(None);
        Ok(())
    }

    /// Applies a server offer (player) and returns the answer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, String> {
        self.media_pts = media::media_pts(sdp);
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?;
        self.drain(None);
        Ok(answer.to_sdp_string())
    }

    /// Adds a trickled server candidate.
    pub fn add_candidate(&mut self, line: &str) {
        let line = line.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if line.is_empty() {
            return;
        }
        if let Ok(c) = Candidate::from_sdp_string(line) {
            self.rtc.add_remote_candidate(c);
            self.drain(None);
        }
    }

    /// Receives everything the socket holds.
    pub fn poll_socket(&mut self, buf: &mut [u8], mut latency: Option<&mut Latency>) {
        loop {
            let (n, source) = match self.sock.recv_from(buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            let Some(data) = buf.get(..n) else { continue };
            if self.mode == PeerMode::Counter && self.connected {
                if let Some(info) = media::parse_rtp(data) {
                    if let Some(&(_, video)) = self.media_pts.iter().find(|(pt, _)| *pt == info.pt)
                    {
                        self.count(info.ssrc, video, info.seq);
                    }
                    continue;
                }
            }
            let now = Instant::now();
            let Ok(contents) = data.try_into() else {
                continue;
            };
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.addr,
                    contents,
                },
            );
            if self.rtc.accepts(&input) {
                if let Err(e) = self.rtc.handle_input(input) {
                    self.failed = Some(e.to_string());
                    return;
                }
                self.drain(latency.as_deref_mut());
            }
        }
    }

    fn count(&mut self, ssrc: u32, video: bool, seq: u16) {
        self.received_packets += 1;
        if self.first_media.is_none() {
            self.first_media = Some(Instant::now());
        }
        let s = match self.streams.iter_mut().position(|s| s.ssrc == ssrc) {
            Some(i) => self.streams.get_mut(i),
            None => {
                self.streams.push(RecvStream {
                    ssrc,
                    video,
                    seq: SeqTracker::new(),
                });
                self.streams.last_mut()
            }
        };
        if let Some(s) = s {
            s.seq.record(seq);
        }
    }

    /// Fires str0m's timer if due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.deadline || !self.rtc.is_alive() {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.failed = Some(e.to_string());
            return;
        }
        self.drain(None);
    }

    /// Sum of the sequence counters of the received streams (video, audio).
    pub fn counts(&self) -> (SeqCounts, SeqCounts) {
        let mut v = SeqCounts::default();
        let mut a = SeqCounts::default();
        for s in &self.streams {
            if s.video {
                v.add(&s.seq.counts());
            } else {
                a.add(&s.seq.counts());
            }
        }
        (v, a)
    }

    /// Writes one video frame (several packets) now. Returns packets written.
    pub fn send_video_frame(&mut self, now: Instant, profile: &MediaProfile) -> usize {
        let key = self.keyframe_wanted;
        self.keyframe_wanted = false;
        let sizes = profile.frame_packets(key);
        let ts90 = (now.saturating_duration_since(self.epoch).as_micros() * 9 / 100) as u32;
        self.write_packets(now, MediaKind::Video, &sizes, key, ts90)
    }

    /// Writes one Opus packet now.
    pub fn send_audio(&mut self, now: Instant, profile: &MediaProfile) -> usize {
        let ts48 = (now.saturating_duration_since(self.epoch).as_micros() * 48 / 1000) as u32;
        self.write_packets(now, MediaKind::Audio, &[profile.audio_bytes], false, ts48)
    }

    fn write_packets(
        &mut self,
        now: Instant,
        kind: MediaKind,
        sizes: &[usize],
        key: bool,
        ts: u32,
    ) -> usize {
        if !self.connected {
            return 0;
        }
        let Some(t) = self.send.iter_mut().find(|t| t.kind == kind) else {
            return 0;
        };
        let Some(pt) = t.pt else { return 0 };
        let mid = t.mid;
        let mut written = 0;
        for (i, &len) in sizes.iter().enumerate() {
            let sent_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
            let Some(t) = self.send.iter_mut().find(|t| t.kind == kind) else {
                return written;
            };
            let payload = if kind == MediaKind::Video {
                media::vp8_payload(len, i == 0, key, sent_ns, t.index)
            } else {
                media::opus_payload(len, sent_ns, t.index)
            };
            let seq = t.seq;
            t.seq += 1;
            t.index = t.index.wrapping_add(1);
            let last = i + 1 == sizes.len();
            let mut api = self.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, None) else {
                return written;
            };
            stream.write_rtp(
                RtpWrite::new(pt, seq.into(), ts, now, payload)
                    .marker(kind == MediaKind::Video && last)
                    .nackable(kind == MediaKind::Video),
            );
            self.drain(None);
            written += 1;
        }
        written
    }

    fn drain(&mut self, mut latency: Option<&mut Latency>) {
        // str0m asks for an immediate timeout when new media is queued (its send queue
        // snapshot is refreshed there): honour a few at once, so nothing waits for the next
        // timer scan.
        let mut immediate = 0;
        while self.rtc.is_alive() {
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    self.failed = Some(e.to_string());
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    let now = Instant::now();
                    if t <= now && immediate < 8 {
                        immediate += 1;
                        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                            self.failed = Some(e.to_string());
                            return;
                        }
                        continue;
                    }
                    self.deadline = t;
                    return;
                }
                Output::Transmit(t) => {
                    if self.sock.send_to(&t.contents, t.destination).is_err() {
                        self.send_errors += 1;
                    }
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.connected_at = Some(Instant::now());
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.failed = Some("ICE disconnected".into());
                    }
                    Event::KeyframeRequest(_) => self.keyframe_wanted = true,
                    Event::RtpPacket(p) => {
                        let pt = *p.header.payload_type;
                        let Some(&(_, video)) = self.media_pts.iter().find(|(x, _)| *x == pt)
                        else {
                            continue;
                        };
                        let now = Instant::now();
                        self.count(*p.header.ssrc, video, p.header.sequence_number);
                        if let (Some(h), Some(ns)) =
                            (latency.as_deref_mut(), media::read_stamp(&p.payload))
                        {
                            let sent = self.epoch + Duration::from_nanos(ns);
                            let us = now.saturating_duration_since(sent).as_micros() as u64;
                            if video {
                                h.video.record_us(us);
                            } else {
                                h.audio.record_us(us);
                            }
                        }
                        if video
                            && self.first_keyframe.is_none()
                            && media::is_vp8_keyframe_start(&p.payload)
                        {
                            self.first_keyframe = Some(now);
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    /// Closes the peer (DTLS close_notify) and sends what that produces.
    pub fn close(&mut self) {
        let _ = self.rtc.close();
        self.drain(None);
    }
}
