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

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::{MediaCmd, MediaEvent};
use str0m::format::Codec;
use str0m::media::MediaKind;

use crate::{Sfu, SfuConfig, SfuOutput};

mod client;
mod nodes;

pub use client::*;
pub use nodes::{NodeSfu, Nodes};

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
