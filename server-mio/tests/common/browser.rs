//! A fake browser for end-to-end media tests: a str0m `Rtc` on a real loopback UDP socket.
//!
//! Written for these tests (independent of rtc-core's in-memory harness): it offers like the
//! SDK's publisher (sendonly audio + video + a data channel), answers server offers like its
//! player, writes Opus/VP8-shaped frames and counts what it receives.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A str0m peer on its own UDP socket.
pub struct Browser {
    rtc: Rtc,
    sock: UdpSocket,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    /// The last answer accepted (an ICE restart's answer is made from it).
    answer: Option<String>,
    send_mids: Vec<(Mid, MediaKind)>,
    deadline: Instant,
    audio_time: u64,
    video_time: u64,
    next_frame: Instant,
    next_keyframe: Instant,
    keyframe_wanted: bool,
    /// ICE+DTLS connected.
    pub connected: bool,
    /// Times str0m reported `Connected` (a DTLS handshake each).
    pub connects: usize,
    /// Media frames received, by kind.
    pub audio_frames: usize,
    /// Video frames received.
    pub video_frames: usize,
    /// Data channels opened towards this peer.
    pub channels: usize,
}

impl Browser {
    /// A peer on a fresh loopback UDP port, with VP8 and Opus only.
    pub fn new() -> Browser {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        sock.set_nonblocking(true).expect("nonblocking");
        let addr = sock.local_addr().expect("addr");
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        Browser {
            rtc,
            sock,
            addr,
            pending: None,
            answer: None,
            send_mids: Vec::new(),
            deadline: now,
            audio_time: 0,
            video_time: 0,
            next_frame: now,
            next_keyframe: now,
            keyframe_wanted: true,
            connected: false,
            connects: 0,
            audio_frames: 0,
            video_frames: 0,
            channels: 0,
        }
    }

    /// A publisher's offer (candidates inside the SDP).
    pub fn publish_offer(&mut self) -> String {
        let mut api = self.rtc.sdp_api();
        let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        api.add_channel("publisher".into());
        let (offer, pending) = api.apply().expect("offer");
        self.pending = Some(pending);
        self.send_mids = vec![(a, MediaKind::Audio), (v, MediaKind::Video)];
        self.pump();
        offer.to_sdp_string()
    }

    /// A WHEP player's offer: receive-only audio and video (candidates inside the SDP).
    pub fn play_offer(&mut self) -> String {
        let mut api = self.rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        self.pending = Some(pending);
        self.pump();
        offer.to_sdp_string()
    }

    /// Applies the server's answer.
    pub fn accept_answer(&mut self, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("answer parses");
        let pending = self.pending.take().expect("an offer is pending");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        self.answer = Some(sdp.to_string());
        self.pump();
    }

    /// Moves to a new UDP socket (a new address: the old one is closed) and starts an ICE
    /// restart as a WHIP/WHEP client does (RFC 9725 §4.3.3): new credentials, in an offer
    /// that is never sent; returns the `PATCH` body (new `ice-ufrag`/`ice-pwd`, first m-line
    /// and mid, the candidate at the new address).
    pub fn start_ice_restart(&mut self) -> String {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        sock.set_nonblocking(true).expect("nonblocking");
        self.addr = sock.local_addr().expect("addr");
        self.sock = sock;
        let mut api = self.rtc.sdp_api();
        api.ice_restart(false);
        let (offer, pending) = api.apply().expect("restart offer");
        self.pending = Some(pending);
        self.pump();
        let offer = offer.to_sdp_string();
        let attr = |name: &str| {
            offer
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .expect("attribute")
                .to_string()
        };
        let m_line = offer.lines().find(|l| l.starts_with("m=")).expect("m-line");
        let candidate = Candidate::host(self.addr, "udp")
            .expect("host candidate")
            .to_sdp_string();
        format!(
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n{}\r\na=mid:{}\r\na={candidate}\r\na=end-of-candidates\r\n",
            attr("a=ice-ufrag:"),
            attr("a=ice-pwd:"),
            m_line.trim(),
            attr("a=mid:")
        )
    }

    /// Completes an ICE restart with the server's `200 OK` sdpfrag: the answer accepted
    /// before with the server's new credentials, then the local candidate at the new address
    /// and the server's candidates.
    pub fn finish_ice_restart(&mut self, frag: &str) {
        let attr = |name: &str| {
            frag.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .expect("credential in the fragment")
        };
        let (ufrag, pwd) = (attr("a=ice-ufrag:"), attr("a=ice-pwd:"));
        let mut answer = String::new();
        for line in self.answer.clone().expect("an answer").lines() {
            let line = line.trim_end();
            if line.starts_with("a=ice-ufrag:") {
                answer.push_str(&format!("a=ice-ufrag:{ufrag}"));
            } else if line.starts_with("a=ice-pwd:") {
                answer.push_str(&format!("a=ice-pwd:{pwd}"));
            } else if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
                continue;
            } else {
                answer.push_str(line);
            }
            answer.push_str("\r\n");
        }
        let parsed = SdpAnswer::from_sdp_string(&answer).expect("answer parses");
        let pending = self.pending.take().expect("a restart is pending");
        self.rtc
            .sdp_api()
            .accept_answer(pending, parsed)
            .expect("restart answer accepted");
        self.answer = Some(answer);
        self.rtc
            .add_local_candidate(Candidate::host(self.addr, "udp").expect("host candidate"));
        for line in frag.lines() {
            self.add_candidate(line.trim());
        }
        self.pump();
    }

    /// Applies a server offer and returns the answer.
    pub fn accept_offer(&mut self, sdp: &str) -> String {
        let offer = SdpOffer::from_sdp_string(sdp).expect("offer parses");
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("offer accepted");
        self.pump();
        answer.to_sdp_string()
    }

    /// Adds a trickled candidate (`candidate:...`; empty = end of candidates).
    pub fn add_candidate(&mut self, line: &str) {
        if line.is_empty() {
            return;
        }
        let line = line.strip_prefix("a=").unwrap_or(line);
        if let Ok(c) = Candidate::from_sdp_string(line) {
            self.rtc.add_remote_candidate(c);
            self.pump();
        }
    }

    /// Drives the peer without blocking: receives what arrived, fires timers, sends.
    pub fn poll(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            match self.sock.recv_from(&mut buf) {
                Ok((n, source)) => {
                    let Some(data) = buf.get(..n) else { continue };
                    let Ok(contents) = data.try_into() else {
                        continue;
                    };
                    let input = Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.addr,
                            contents,
                        },
                    );
                    if self.rtc.accepts(&input) {
                        self.rtc.handle_input(input).expect("rtc input");
                        self.pump();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("udp recv: {e}"),
            }
        }
        let now = Instant::now();
        if now >= self.deadline {
            self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
            self.pump();
        }
    }

    /// Sends media when due: 50 audio and 25 video frames a second, a keyframe every second
    /// and whenever one is requested.
    pub fn send_media(&mut self) {
        let now = Instant::now();
        if !self.connected || now < self.next_frame {
            return;
        }
        self.next_frame = now + Duration::from_millis(40);
        let key = self.keyframe_wanted || now >= self.next_keyframe;
        if key {
            self.keyframe_wanted = false;
            self.next_keyframe = now + Duration::from_secs(1);
        }
        let video = if key {
            // VP8 key frame: frame tag (key, shown), start code, 320x240.
            let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
            f.resize(1200, 0xab);
            f
        } else {
            let mut f = vec![0x11, 0x02, 0x00];
            f.resize(400, 0xcd);
            f
        };
        self.write(now, MediaKind::Video, &video);
        self.write(now, MediaKind::Audio, &[0xfc; 80]);
        self.write(now, MediaKind::Audio, &[0xfc; 80]);
    }

    fn write(&mut self, now: Instant, kind: MediaKind, data: &[u8]) {
        let Some(mid) = self
            .send_mids
            .iter()
            .find(|(_, k)| *k == kind)
            .map(|(m, _)| *m)
        else {
            return;
        };
        let (time, step, codec) = match kind {
            MediaKind::Audio => (&mut self.audio_time, 960, Codec::Opus),
            MediaKind::Video => (&mut self.video_time, 3600, Codec::Vp8),
        };
        let rtp_time = match kind {
            MediaKind::Audio => MediaTime::new(*time, Frequency::FORTY_EIGHT_KHZ),
            MediaKind::Video => MediaTime::from_90khz(*time),
        };
        *time += step;
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return;
        };
        writer
            .write(pt, now, rtp_time, data.to_vec())
            .expect("write media");
        self.pump();
    }

    fn pump(&mut self) {
        while self.rtc.is_alive() {
            match self.rtc.poll_output().expect("poll_output") {
                Output::Timeout(t) => {
                    self.deadline = t;
                    return;
                }
                Output::Transmit(t) => {
                    let _ = self.sock.send_to(&t.contents, t.destination);
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.connects += 1;
                    }
                    Event::MediaData(d) => match self.rtc.media(d.mid).map(|m| m.kind()) {
                        Some(MediaKind::Audio) => self.audio_frames += 1,
                        Some(MediaKind::Video) => self.video_frames += 1,
                        None => {}
                    },
                    Event::KeyframeRequest(_) => self.keyframe_wanted = true,
                    Event::ChannelOpen(..) => self.channels += 1,
                    _ => {}
                },
            }
        }
    }
}
