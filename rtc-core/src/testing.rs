//! In-memory test harness: str0m "browser" clients, an [`Sfu`], zero-latency datagram routing
//! and a virtual clock. Used by this crate's tests and reusable by simulation tests.
//!
//! Time is virtual: the harness starts from one `Instant` given by the caller and only ever adds
//! durations to it.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::{MediaCmd, MediaEvent};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};

use crate::{Sfu, SfuConfig, SfuOutput};

/// A UDP datagram in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// A fake browser: a regular (non-lite, frame-mode) str0m `Rtc`.
#[derive(Debug)]
pub struct Client {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    /// Every event the client's `Rtc` emitted, with the virtual time.
    pub events: Vec<(Instant, Event)>,
    pub deadline: Instant,
    pub outbox: VecDeque<Datagram>,
    pending: Option<SdpPendingOffer>,
    /// Sending mids (publisher), by kind.
    pub send_mids: Vec<(Mid, MediaKind)>,
    /// Media time of the next audio/video frame written.
    audio_time: u64,
    video_time: u64,
}

impl Client {
    pub fn new(now: Instant, addr: SocketAddr) -> Self {
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        Client {
            rtc,
            addr,
            events: Vec::new(),
            deadline: now,
            outbox: VecDeque::new(),
            pending: None,
            send_mids: Vec::new(),
            audio_time: 0,
            video_time: 0,
        }
    }

    /// The client's host candidate line (`candidate:...`).
    pub fn candidate_line(&self) -> String {
        Candidate::host(self.addr, "udp")
            .expect("host candidate")
            .to_sdp_string()
    }

    /// A publish offer like the SDK's: sendonly audio and/or video, plus a data channel.
    pub fn publish_offer(&mut self, audio: bool, video: bool) -> String {
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
        api.add_channel("data".into());
        let (offer, pending) = api.apply().expect("offer");
        self.pending = Some(pending);
        self.send_mids = mids;
        self.drain();
        offer.to_sdp_string()
    }

    /// A WHEP player's offer: receive-only audio and/or video, no data channel.
    pub fn whep_offer(&mut self, audio: bool, video: bool) -> String {
        let mut api = self.rtc.sdp_api();
        if audio {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        if video {
            api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = api.apply().expect("offer");
        self.pending = Some(pending);
        self.drain();
        offer.to_sdp_string()
    }

    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), RtcError> {
        let answer = SdpAnswer::from_sdp_string(sdp)?;
        let pending = self.pending.take().expect("pending offer");
        let r = self.rtc.sdp_api().accept_answer(pending, answer);
        self.drain();
        r
    }

    /// Accepts a server offer (player) and returns the answer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, RtcError> {
        let offer = SdpOffer::from_sdp_string(sdp)?;
        let r = self.rtc.sdp_api().accept_offer(offer);
        self.drain();
        Ok(r?.to_sdp_string())
    }

    pub fn handle_datagram(&mut self, now: Instant, d: &Datagram) {
        let Ok(contents) = d.contents.as_slice().try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: d.source,
                destination: d.destination,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            self.rtc.handle_input(input).expect("client input");
            self.drain();
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.rtc
            .handle_input(Input::Timeout(now))
            .expect("client timeout");
        self.drain();
    }

    fn drain(&mut self) {
        while self.rtc.is_alive() {
            match self.rtc.poll_output().expect("client poll") {
                Output::Timeout(t) => {
                    self.deadline = t;
                    return;
                }
                Output::Transmit(t) => self.outbox.push_back(Datagram {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Output::Event(e) => {
                    let at = self.deadline;
                    self.events.push((at, e));
                }
            }
        }
    }

    fn mid(&self, kind: MediaKind) -> Mid {
        self.send_mids
            .iter()
            .find(|(_, k)| *k == kind)
            .expect("mid of kind")
            .0
    }

    /// Writes one media frame with the first negotiated payload type of `codec`.
    pub fn write_frame(&mut self, now: Instant, kind: MediaKind, codec: Codec, data: &[u8]) {
        let mid = self.mid(kind);
        let (time, step) = match kind {
            MediaKind::Audio => (&mut self.audio_time, 960),
            MediaKind::Video => (&mut self.video_time, 3000),
        };
        let rtp_time = match kind {
            MediaKind::Audio => MediaTime::new(*time, str0m::media::Frequency::FORTY_EIGHT_KHZ),
            MediaKind::Video => MediaTime::from_90khz(*time),
        };
        *time += step;
        let writer = self.rtc.writer(mid).expect("writer");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .expect("negotiated codec")
            .pt();
        writer
            .write(pt, now, rtp_time, data.to_vec())
            .expect("write");
        self.drain();
    }

    /// Media frames received so far, by kind.
    pub fn media_count(&self, kind: MediaKind) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| {
                matches!(e, Event::MediaData(d)
                    if self.rtc.media(d.mid).map(|m| m.kind()) == Some(kind))
            })
            .count()
    }

    /// Media frames received on `mid` among the events from index `since` on.
    pub fn media_count_mid(&self, mid: &str, since: usize) -> usize {
        self.events
            .iter()
            .skip(since)
            .filter(|(_, e)| matches!(e, Event::MediaData(d) if d.mid.to_string() == mid))
            .count()
    }

    /// Whether this client receives on `mid` (an m-line it knows, recvonly or sendrecv).
    pub fn is_receiving(&self, mid: &str) -> bool {
        self.rtc
            .media(Mid::from(mid))
            .is_some_and(|m| m.direction().is_receiving())
    }

    pub fn keyframe_requests(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::KeyframeRequest(_)))
            .count()
    }

    pub fn is_connected(&self) -> bool {
        self.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Connected))
    }

    /// The first data channel that opened (the publisher's own, or the one a server offered).
    pub fn channel_id(&self) -> Option<str0m::channel::ChannelId> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::ChannelOpen(id, _) => Some(*id),
            _ => None,
        })
    }

    /// Labels of the data channels that opened.
    pub fn channel_labels(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::ChannelOpen(_, label) => Some(label.clone()),
                _ => None,
            })
            .collect()
    }

    /// Sends one data-channel message on [`Client::channel_id`]; false if str0m refused it
    /// (no open channel, or its send buffer is full).
    pub fn send_data(&mut self, binary: bool, data: &[u8]) -> bool {
        let Some(id) = self.channel_id() else {
            return false;
        };
        let ok = self
            .rtc
            .channel(id)
            .is_some_and(|mut ch| ch.write(binary, data).unwrap_or(false));
        self.drain();
        ok
    }

    /// Data-channel messages received so far: `(binary, bytes)` in arrival order.
    pub fn data_received(&self) -> Vec<(bool, Vec<u8>)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::ChannelData(d) => Some((d.binary, d.data.clone())),
                _ => None,
            })
            .collect()
    }
}

/// A VP8 keyframe of `w`x`h` (frame header only, filler body).
pub fn vp8_keyframe(w: u16, h: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
    f.extend_from_slice(&w.to_le_bytes());
    f.extend_from_slice(&h.to_le_bytes());
    f.resize(len.max(10), 0xab);
    f
}

/// A VP8 inter frame (filler body).
pub fn vp8_delta(len: usize) -> Vec<u8> {
    let mut f = vec![0x11, 0x02, 0x00];
    f.resize(len.max(3), 0xcd);
    f
}

/// A baseline SPS for 720x404 (the vector of videojs/mux.js `test/test-sps.js`).
pub const H264_SPS_720X404: [u8; 24] = [
    103, 66, 192, 30, 217, 0, 180, 53, 249, 225, 0, 0, 3, 0, 1, 0, 0, 3, 0, 60, 15, 22, 46, 72,
];

/// An H.264 keyframe in Annex B: SPS, PPS and an IDR slice (filler body).
pub fn h264_keyframe(len: usize) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1];
    f.extend_from_slice(&H264_SPS_720X404);
    f.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
    f.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
    f.resize(len.max(f.len()), 0xab);
    f
}

/// An H.264 non-IDR slice in Annex B (filler body).
pub fn h264_delta(len: usize) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0x41, 0x9a];
    f.resize(len.max(6), 0xcd);
    f
}

/// A VP9-looking frame: a profile 0 uncompressed header start (keyframe or not), filler body.
pub fn vp9_frame(key: bool, len: usize) -> Vec<u8> {
    // frame_marker 2, profile 0, show_existing 0, frame_type (0 = key), show_frame 1.
    let mut f = vec![if key { 0x82 } else { 0x86 }, 0x49, 0x83, 0x42, 0x00];
    f.resize(len.max(5), 0xee);
    f
}

/// An Opus-looking frame.
pub fn opus_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0xfc];
    f.resize(len.max(1), 0x55);
    f
}

/// An [`Sfu`] and clients, wired in memory with a virtual clock.
#[derive(Debug)]
pub struct Harness {
    pub sfu: Sfu,
    pub sfu_addr: SocketAddr,
    pub clients: Vec<Client>,
    pub start: Instant,
    pub now: Instant,
    /// Media events from the SFU, with the virtual time since start.
    pub events: Vec<(Duration, MediaEvent)>,
    /// Datagrams the SFU sent to addresses no client has.
    pub undeliverable: usize,
    /// Datagrams delivered SFU -> clients.
    pub delivered_to_clients: usize,
    /// Wall-clock time spent inside the SFU's calls (for cost figures).
    pub sfu_busy: Duration,
    /// Clients whose incoming datagrams are dropped (a receiver that stopped reading).
    pub blackholed: Vec<SocketAddr>,
    stuck: usize,
}

impl Harness {
    /// Stats every second; SFU at 10.0.0.1:5000.
    pub fn new(start: Instant) -> Self {
        let sfu_addr: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        Self::with_config(
            start,
            SfuConfig::new(vec![sfu_addr], Duration::from_secs(1)),
        )
    }

    /// An SFU with this configuration, at its first local address.
    pub fn with_config(start: Instant, config: SfuConfig) -> Self {
        let sfu_addr = config.local_addrs[0];
        Harness {
            sfu: Sfu::new(config, start),
            sfu_addr,
            clients: Vec::new(),
            start,
            now: start,
            events: Vec::new(),
            undeliverable: 0,
            delivered_to_clients: 0,
            sfu_busy: Duration::ZERO,
            blackholed: Vec::new(),
            stuck: 0,
        }
    }

    /// A new client at 10.0.0.(n+2):4000; returns its index.
    pub fn add_client(&mut self) -> usize {
        let n = self.clients.len();
        let addr: SocketAddr = format!("10.0.{}.{}:4000", n / 200, n % 200 + 2)
            .parse()
            .expect("addr");
        self.clients.push(Client::new(self.now, addr));
        n
    }

    pub fn command(&mut self, cmd: MediaCmd) {
        self.sfu.handle_command(self.now, cmd);
        self.pump();
    }

    /// Moves datagrams and events until nothing is in flight.
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(out) = self.sfu.poll_output() {
                moved = true;
                match out {
                    SfuOutput::Event(e) => self.events.push((self.now - self.start, e)),
                    SfuOutput::Transmit(t) => {
                        let d = Datagram {
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents,
                        };
                        let to = self.clients.iter_mut().find(|c| c.addr == d.destination);
                        match to.filter(|c| !self.blackholed.contains(&c.addr)) {
                            Some(c) => {
                                self.delivered_to_clients += 1;
                                c.handle_datagram(self.now, &d);
                            }
                            None => self.undeliverable += 1,
                        }
                    }
                }
            }
            for i in 0..self.clients.len() {
                while let Some(d) = self.clients[i].outbox.pop_front() {
                    moved = true;
                    if d.destination == self.sfu_addr {
                        #[allow(clippy::disallowed_methods)] // measures real CPU cost only
                        let t0 = Instant::now();
                        self.sfu
                            .handle_receive(self.now, d.source, d.destination, &d.contents);
                        self.sfu.flush(self.now);
                        self.sfu_busy += t0.elapsed();
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("harness did not quiesce");
    }

    /// Advances the clock to the next deadline, at most by `max_step`, and fires timeouts.
    pub fn step(&mut self, max_step: Duration) {
        self.pump();
        let mut next = self.now + max_step;
        if let Some(t) = self.sfu.poll_timeout() {
            next = next.min(t);
        }
        for c in &self.clients {
            if c.rtc.is_alive() {
                next = next.min(c.deadline);
            }
        }
        if next <= self.now {
            self.stuck += 1;
            if self.stuck == 1000 {
                eprintln!(
                    "harness stuck at {:?}: sfu {:?}",
                    self.now - self.start,
                    self.sfu
                        .poll_timeout()
                        .map(|t| t.saturating_duration_since(self.start))
                );
                for l in self.sfu.debug_deadlines() {
                    eprintln!("  {l}");
                }
                for c in &self.clients {
                    eprintln!(
                        "  client {} deadline {:?} reason {:?}",
                        c.addr,
                        c.deadline.saturating_duration_since(self.start),
                        c.rtc.last_timeout_reason()
                    );
                }
            }
        } else {
            self.stuck = 0;
        }
        self.now = self.now.max(next);
        if self.sfu.poll_timeout().is_some_and(|t| t <= self.now) {
            #[allow(clippy::disallowed_methods)] // measures real CPU cost only
            let t0 = Instant::now();
            self.sfu.handle_timeout(self.now);
            self.sfu_busy += t0.elapsed();
        }
        let now = self.now;
        for c in &mut self.clients {
            if c.rtc.is_alive() && c.deadline <= now {
                c.handle_timeout(now);
            }
        }
        self.pump();
    }

    /// Steps until `cond` holds or `limit` of virtual time passed; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&Harness) -> bool) -> bool {
        let end = self.now + limit;
        let mut guard = 0u32;
        while self.now < end {
            if cond(self) {
                return true;
            }
            self.step(Duration::from_millis(10));
            guard += 1;
            if guard > 1_000_000 {
                break;
            }
        }
        cond(self)
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step((end - self.now).min(Duration::from_millis(10)));
        }
    }

    /// Runs for `d` while client `c` sends Opus every 20 ms and VP8 every 40 ms (a 640x480
    /// keyframe first and then every 25th frame). Returns (audio, video) frames written.
    pub fn run_media(&mut self, c: usize, d: Duration) -> (usize, usize) {
        self.run_media_codec(c, d, Codec::Vp8)
    }

    /// [`Harness::run_media`] with VP8 or H.264 video (H.264: SPS+PPS+IDR every 25th frame).
    pub fn run_media_codec(&mut self, c: usize, d: Duration, codec: Codec) -> (usize, usize) {
        let end = self.now + d;
        let (mut audio, mut video) = (0usize, 0usize);
        let mut next_audio = self.now;
        let mut next_video = self.now;
        while self.now < end {
            let now = self.now;
            let client = &mut self.clients[c];
            let has = |k| client.send_mids.iter().any(|(_, kind)| *kind == k);
            let (has_audio, has_video) = (has(MediaKind::Audio), has(MediaKind::Video));
            if has_audio && now >= next_audio {
                client.write_frame(now, MediaKind::Audio, Codec::Opus, &opus_frame(80));
                audio += 1;
                next_audio += Duration::from_millis(20);
            }
            if has_video && now >= next_video {
                let key = video % 25 == 0;
                let frame = match (codec, key) {
                    (Codec::H264, true) => h264_keyframe(3000),
                    (Codec::H264, false) => h264_delta(1200),
                    (Codec::Vp9, true) => vp9_frame(true, 3000),
                    (Codec::Vp9, false) => vp9_frame(false, 1200),
                    (_, true) => vp8_keyframe(640, 480, 3000),
                    (_, false) => vp8_delta(1200),
                };
                client.write_frame(now, MediaKind::Video, codec, &frame);
                video += 1;
                next_video += Duration::from_millis(40);
            }
            let next = next_audio.min(next_video).min(end);
            self.step(
                next.saturating_duration_since(self.now)
                    .max(Duration::from_millis(1)),
            );
        }
        (audio, video)
    }

    pub fn has_event(&self, f: impl Fn(&MediaEvent) -> bool) -> bool {
        self.events.iter().any(|(_, e)| f(e))
    }

    /// Publishes from client `c` as `session`: offer, StartPublish, answer applied.
    pub fn publish(&mut self, c: usize, session: proto_core::SessionId, stream: &str) {
        self.publish_kinds(c, session, stream, true, true);
    }

    /// [`Harness::publish`] with a choice of tracks; with neither, a data-only publish (an
    /// offer with only `m=application`, like the SDK's `onlyDataChannel`).
    pub fn publish_kinds(
        &mut self,
        c: usize,
        session: proto_core::SessionId,
        stream: &str,
        audio: bool,
        video: bool,
    ) {
        let offer = self.clients[c].publish_offer(audio, video);
        self.command(MediaCmd::StartPublish {
            session,
            stream: stream.into(),
            offer,
        });
        let answer = self
            .events
            .iter()
            .rev()
            .find_map(|(_, e)| match e {
                MediaEvent::Answer { session: s, sdp } if *s == session => Some(sdp.clone()),
                _ => None,
            })
            .expect("answer");
        self.clients[c]
            .accept_answer(&answer)
            .expect("client accepts answer");
        self.pump();
    }

    /// Plays `publisher` on client `c` as `session`: StartPlay, offer applied, answer sent.
    pub fn play(
        &mut self,
        c: usize,
        session: proto_core::SessionId,
        stream: &str,
        publisher: proto_core::SessionId,
    ) {
        self.command(MediaCmd::StartPlay {
            session,
            stream: stream.into(),
            publisher,
        });
        let offer = self
            .events
            .iter()
            .rev()
            .find_map(|(_, e)| match e {
                MediaEvent::Offer {
                    session: s, sdp, ..
                } if *s == session => Some(sdp.clone()),
                _ => None,
            })
            .expect("offer");
        let answer = self.clients[c]
            .accept_offer(&offer)
            .expect("client accepts offer");
        self.command(MediaCmd::RemoteAnswer {
            session,
            sdp: answer,
        });
        let candidate = self.clients[c].candidate_line();
        self.command(MediaCmd::RemoteCandidate { session, candidate });
    }

    /// Plays `publisher` on client `c` as a WHEP player (`session`): the client offers,
    /// StartPlayAnswer, the server's answer applied. `None` if the SFU failed the session.
    pub fn play_whep(
        &mut self,
        c: usize,
        session: proto_core::SessionId,
        stream: &str,
        publisher: proto_core::SessionId,
    ) -> Option<String> {
        let offer = self.clients[c].whep_offer(true, true);
        self.command(MediaCmd::StartPlayAnswer {
            session,
            stream: stream.into(),
            publisher,
            offer,
        });
        let answer = self.events.iter().rev().find_map(|(_, e)| match e {
            MediaEvent::Answer { session: s, sdp } if *s == session => Some(sdp.clone()),
            _ => None,
        })?;
        self.clients[c]
            .accept_answer(&answer)
            .expect("client accepts answer");
        self.pump();
        Some(answer)
    }
}
