//! The str0m "browser" of the harness ([`Client`]), the datagrams it exchanges, and the media
//! frames it sends (VP8, VP9, H.264, Opus).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};

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
    /// The last answer accepted (an ICE restart's answer is made from it).
    answer: Option<String>,
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
            answer: None,
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
        if r.is_ok() {
            self.answer = Some(sdp.to_string());
        }
        r
    }

    /// Starts an ICE restart as a WHIP/WHEP client does (RFC 9725 §4.3.3): the client moves
    /// to `new_addr` and makes new ICE credentials (in an offer it never sends), and returns
    /// the SDP fragment of its `PATCH`: the new `ice-ufrag`/`ice-pwd`, its first m-line and
    /// mid, and its candidate at the new address.
    pub fn start_ice_restart(&mut self, new_addr: SocketAddr) -> String {
        let mut api = self.rtc.sdp_api();
        api.ice_restart(false);
        let (offer, pending) = api.apply().expect("restart offer");
        self.pending = Some(pending);
        self.addr = new_addr;
        self.drain();
        let offer = offer.to_sdp_string();
        let attr = |name: &str| {
            offer
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .expect("attribute")
                .to_string()
        };
        let m_line = offer
            .lines()
            .find(|l| l.starts_with("m="))
            .expect("m-line")
            .trim()
            .to_string();
        let candidate = Candidate::host(new_addr, "udp")
            .expect("host candidate")
            .to_sdp_string();
        format!(
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n{m_line}\r\na=mid:{}\r\na={candidate}\r\na=end-of-candidates\r\n",
            attr("a=ice-ufrag:"),
            attr("a=ice-pwd:"),
            attr("a=mid:")
        )
    }

    /// Completes an ICE restart with the server's fragment (the `200 OK` body): the answer
    /// accepted before with the server's new credentials, then the new local candidate and
    /// the server's candidates.
    pub fn finish_ice_restart(&mut self, now: Instant, frag: &str) -> Result<(), RtcError> {
        let attr = |name: &str| frag.lines().find_map(|l| l.trim().strip_prefix(name));
        let (ufrag, pwd) = (
            attr("a=ice-ufrag:").expect("ufrag in the fragment"),
            attr("a=ice-pwd:").expect("pwd in the fragment"),
        );
        let old = self.answer.clone().expect("an accepted answer");
        let mut answer = String::new();
        for line in old.lines().map(str::trim_end) {
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
        let parsed = SdpAnswer::from_sdp_string(&answer)?;
        let pending = self.pending.take().expect("pending restart offer");
        self.rtc.sdp_api().accept_answer(pending, parsed)?;
        self.answer = Some(answer);
        self.rtc
            .add_local_candidate(Candidate::host(self.addr, "udp").expect("host candidate"));
        for line in frag.lines().filter_map(|l| l.trim().strip_prefix("a=")) {
            if line.starts_with("candidate:") {
                self.rtc
                    .add_remote_candidate(Candidate::from_sdp_string(line)?);
            }
        }
        self.handle_timeout(now);
        Ok(())
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
