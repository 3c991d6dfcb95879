//! One media session: a `str0m::Rtc` plus what the SFU knows about it (role, tracks, timers,
//! measurements), and the drain loop that turns str0m outputs into [`SfuOutput`]s.
//!
//! (About 600 lines: the session, its drain loop and its str0m event handling are read
//! together; the ICE-restart state added to them is a few lines, not worth a split.)

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto_core::{MediaEvent, SessionId, SessionStats};
use str0m::bwe::BweKind;
use str0m::change::SdpPendingOffer;
use str0m::channel::{ChannelData, ChannelId};
use str0m::crypto::SrtpProvider;
use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Event, IceConnectionState, Output, Rtc, RtcError};
use tracing::{debug, trace};

use crate::codec::{codec_name, keyframe_size};
use crate::dtls::KeySlot;
use crate::fast::{FastTx, RtpFields};
use crate::forward::{OutTrack, Source};
use crate::resume::{starts_keyframe, KeyframeGate};
use crate::sfu::RoomPlayer;
use crate::{SfuOutput, Transmit};

/// How long a player's sent video packets are kept for retransmission (NACK). str0m keeps
/// them 3 s (up to 2000 packets) by default: at 2 Mbit/s that is most of an active player's
/// memory, for resends that arrive far too late to be played (a receiver's jitter buffer
/// waits a few hundred milliseconds at most).
pub(crate) const RTX_CACHE_AGE: Duration = Duration::from_millis(500);
/// Most packets kept per player video stream for retransmission (about 6 Mbit/s of 1200-byte
/// packets over [`RTX_CACHE_AGE`]).
pub(crate) const RTX_CACHE_PACKETS: usize = 320;
/// str0m's default: queued resends are dropped once they exceed this share of what is sent.
const RTX_RATIO_CAP: Option<f32> = Some(0.15);

/// What a drain of one session asks the SFU to do next.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// RTP packets received from a publisher, to forward to its players.
    pub packets: Vec<RtpPacket>,
    /// The player's browser asked for a keyframe (PLI/FIR).
    pub keyframe_requested: bool,
    /// A player just connected: its publisher should send a keyframe.
    pub player_connected: bool,
    /// A data channel opened (a data-only publisher may now be live).
    pub channel_opened: bool,
    /// Data-channel messages received, to relay (`data.rs`).
    pub data: Vec<ChannelData>,
    /// The session is over; the SFU drops it and reports this event.
    pub dead: Option<MediaEvent>,
}

impl Effects {
    pub(crate) fn is_empty(&self) -> bool {
        self.packets.is_empty()
            && !self.keyframe_requested
            && !self.player_connected
            && !self.channel_opened
            && self.data.is_empty()
            && self.dead.is_none()
    }
}

/// A received track of a publisher.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InTrack {
    pub mid: Mid,
    pub kind: MediaKind,
}

/// Publisher state.
#[derive(Debug)]
pub(crate) struct Publisher {
    /// Stream name (for logs).
    pub stream: String,
    /// Players receiving this publisher's media.
    pub players: Vec<SessionId>,
    /// Negotiated receive tracks.
    pub tracks: Vec<InTrack>,
    /// Negotiated payload parameters over all tracks.
    pub params: Vec<PayloadParams>,
    /// Whether `MediaStarted` was reported.
    pub media_started: bool,
    /// Last keyframe request sent to the browser (throttling).
    pub last_keyframe_request: Option<Instant>,
    /// A keyframe started since that request: it is answered, and a new one is a new need
    /// (a player that connected after the keyframe passed), not a duplicate to fold.
    pub keyframe_since_request: bool,
    /// Last seen video SSRC (for keyframe requests when the SDP had no `a=ssrc`).
    pub video_ssrc: Option<Ssrc>,
    /// The offer had only a data channel (`m=application`), no audio or video: the stream is
    /// live when the channel opens, and its players are offered a channel only.
    pub data_only: bool,
}

impl Publisher {
    /// A publisher of `stream` with no players and no track learned yet.
    pub(crate) fn new(stream: String) -> Self {
        Publisher {
            stream,
            players: Vec::new(),
            tracks: Vec::new(),
            params: Vec::new(),
            media_started: false,
            last_keyframe_request: None,
            keyframe_since_request: false,
            video_ssrc: None,
            data_only: false,
        }
    }

    /// Records a negotiated receive track and its payload parameters (once per mid).
    pub(crate) fn learn_track(&mut self, rtc: &Rtc, mid: Mid) {
        let Some(media) = rtc.media(mid) else {
            return;
        };
        if self.tracks.iter().any(|t| t.mid == mid) {
            return;
        }
        self.tracks.push(InTrack {
            mid,
            kind: media.kind(),
        });
        for pt in media.remote_pts() {
            if self.params.iter().any(|q| q.pt() == *pt) {
                continue;
            }
            if let Some(params) = rtc.codec_config().find(|q| q.pt() == *pt) {
                self.params.push(*params);
            }
        }
    }

    /// Payload parameters and kind of a received payload type.
    pub(crate) fn params_for(&self, pt: str0m::media::Pt) -> Option<PayloadParams> {
        self.params.iter().find(|p| p.pt() == pt).copied()
    }
}

/// Player state.
pub(crate) struct Player {
    /// Stream name (for logs).
    pub stream: String,
    /// The publish session whose media this player receives (a room player: its own id; its
    /// publishers are its tracks' sources).
    pub publisher: SessionId,
    /// Room playback state (a player of a main track), see `sfu/multitrack.rs`.
    pub room: Option<RoomPlayer>,
    /// Our offer, until the browser answers.
    pub pending: Option<SdpPendingOffer>,
    /// Outgoing tracks (at most one per kind).
    pub tracks: Vec<OutTrack>,
    /// Forward video.
    pub video_on: bool,
    /// Forward audio.
    pub audio_on: bool,
    /// Requested height (advisory: there is no simulcast layer to pick from).
    pub forced_height: u32,
    /// Holds video back after a resume until a keyframe starts (see `resume.rs`).
    pub video_gate: KeyframeGate,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("stream", &self.stream)
            .field("publisher", &self.publisher)
            .field("room", &self.room)
            .field("pending", &self.pending.is_some())
            .field("tracks", &self.tracks)
            .field("video_on", &self.video_on)
            .field("audio_on", &self.audio_on)
            .field("forced_height", &self.forced_height)
            .field("video_gate", &self.video_gate)
            .finish()
    }
}

impl Player {
    /// The publish sessions whose media this player receives.
    pub(crate) fn sources(&self) -> Vec<SessionId> {
        if self.room.is_none() {
            return vec![self.publisher];
        }
        let mut v: Vec<SessionId> = self
            .tracks
            .iter()
            .filter_map(|t| match t.source {
                Source::From(p) => Some(p),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Publisher or player.
#[derive(Debug)]
pub(crate) enum Role {
    Publisher(Publisher),
    Player(Player),
}

/// Byte counters and latest figures for [`MediaEvent::Stats`].
#[derive(Debug, Default)]
pub(crate) struct Meter {
    pub audio_bytes: u64,
    pub video_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub video_codec: &'static str,
    pub loss_permille: u32,
    pub estimated_bitrate: u64,
}

/// One peer connection.
#[derive(Debug)]
pub(crate) struct Session {
    pub id: SessionId,
    pub rtc: Rtc,
    pub role: Role,
    /// str0m's next timeout.
    pub rtc_deadline: Instant,
    /// Next [`MediaEvent::Stats`].
    pub next_stats: Instant,
    /// Fail if not connected by then.
    pub connect_deadline: Option<Instant>,
    /// After an ICE restart: end if ICE has not completed again by then.
    pub restart_deadline: Option<Instant>,
    /// The client's offer as accepted (publishers and WHEP players), kept for ICE restarts
    /// (`sfu/restart.rs`).
    pub remote_offer: Option<String>,
    /// The deadline currently registered in the SFU's timer index.
    pub scheduled: Option<Instant>,
    /// ICE + DTLS are up.
    pub connected: bool,
    /// Remote addresses cached in the SFU's route table for this session.
    pub routes: Vec<SocketAddr>,
    pub meter: Meter,
    /// Written to since its last `Input::Timeout` (listed in the SFU's flush list).
    pub unflushed: bool,
    /// The open data channel messages to this session are written on (the first one opened).
    pub channel: Option<ChannelId>,
    /// A player's DTLS keys and the SRTP ciphers to use them with, until it connects: then
    /// its RTP takes the fast path (`fast.rs`) if their SRTP profile allows.
    pub fast_keys: Option<(Arc<KeySlot>, &'static dyn SrtpProvider)>,
    /// The fast path, once on.
    pub fast: Option<FastTx>,
    /// (local, remote) of the last DTLS or SRTP datagram str0m sent: the selected ICE pair,
    /// which the fast path sends on.
    pub media_path: Option<(SocketAddr, SocketAddr)>,
}

/// What became of one data-channel write to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataWrite {
    /// Queued in str0m.
    Written,
    /// The send buffer is full: the receiver is not keeping up.
    Congested,
    /// No open channel.
    NotOpen,
}

impl Session {
    pub(crate) fn new(id: SessionId, rtc: Rtc, role: Role, now: Instant, stats: Duration) -> Self {
        Session {
            id,
            rtc,
            role,
            rtc_deadline: now,
            next_stats: now + stats,
            connect_deadline: None,
            restart_deadline: None,
            remote_offer: None,
            scheduled: None,
            connected: false,
            routes: Vec::new(),
            meter: Meter::default(),
            unflushed: false,
            channel: None,
            fast_keys: None,
            fast: None,
            media_path: None,
        }
    }

    /// Writes one data-channel message on this session's channel; never waits. The caller
    /// drains afterwards.
    pub(crate) fn write_data(&mut self, binary: bool, data: &[u8]) -> DataWrite {
        if !self.connected {
            return DataWrite::NotOpen;
        }
        let Some(mut ch) = self.channel.and_then(|id| self.rtc.channel(id)) else {
            return DataWrite::NotOpen;
        };
        match ch.write(binary, data) {
            Ok(true) => DataWrite::Written,
            Ok(false) => DataWrite::Congested,
            Err(e) => {
                trace!(session = %self.id, "data channel write failed: {e}");
                DataWrite::NotOpen
            }
        }
    }

    /// The earliest time this session needs `handle_timeout`.
    pub(crate) fn deadline(&self) -> Instant {
        let mut d = self.rtc_deadline.min(self.next_stats);
        if let Some(r) = self.restart_deadline {
            d = d.min(r);
        }
        match self.connect_deadline {
            Some(c) if !self.connected => d.min(c),
            _ => d,
        }
    }

    /// Drains str0m until `Output::Timeout`: the contract after every mutation.
    pub(crate) fn drain(&mut self, now: Instant, out: &mut VecDeque<SfuOutput>, fx: &mut Effects) {
        loop {
            if !self.rtc.is_alive() {
                fx.dead
                    .get_or_insert(MediaEvent::Closed { session: self.id });
                return;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_deadline = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let mut contents: Vec<u8> = t.contents.into();
                    // DTLS (20-63) or SRTP/SRTCP (128-191), not STUN: the selected pair.
                    if contents
                        .first()
                        .is_some_and(|b| (20..=63).contains(b) || (128..=191).contains(b))
                    {
                        self.media_path = Some((t.source, t.destination));
                    }
                    if let Some(fast) = self.fast.as_mut() {
                        if let Some(rewritten) = fast.rewrite_rtcp(now, &contents) {
                            contents = rewritten;
                        }
                    }
                    out.push_back(SfuOutput::Transmit(Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents,
                    }))
                }
                Ok(Output::Event(e)) => self.handle_event(e, out, fx),
                Err(e) => return self.fail(&e, fx),
            }
        }
    }

    /// str0m returned an error: the session is disconnected and reported failed.
    pub(crate) fn fail(&mut self, e: &RtcError, fx: &mut Effects) {
        debug!(session = %self.id, "rtc error: {e}");
        self.rtc.disconnect();
        fx.dead = Some(MediaEvent::Failed {
            session: self.id,
            reason: proto_core::FailReason::Rtc(e.to_string()),
        });
    }

    fn handle_event(&mut self, e: Event, out: &mut VecDeque<SfuOutput>, fx: &mut Effects) {
        match e {
            Event::Connected => {
                self.connected = true;
                fx.player_connected = matches!(self.role, Role::Player(_));
                // str0m's DTLS exported the keys just before this event.
                if let Some((slot, srtp)) = self.fast_keys.take() {
                    if let Some(keys) = slot.take() {
                        self.fast = FastTx::new(srtp, &keys);
                        debug!(session = %self.id, profile = ?keys.profile, fast = self.fast.is_some(), "player srtp");
                    }
                }
                out.push_back(SfuOutput::Event(MediaEvent::Connected { session: self.id }));
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => {
                let after_restart = self.restart_deadline.take();
                if after_restart.is_some() {
                    debug!(session = %self.id, "ice up again after the restart");
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                debug!(session = %self.id, "ice disconnected");
                self.rtc.disconnect();
                let ev = if self.connected {
                    MediaEvent::Closed { session: self.id }
                } else {
                    MediaEvent::Failed {
                        session: self.id,
                        reason: proto_core::FailReason::IceFailed,
                    }
                };
                fx.dead.get_or_insert(ev);
            }
            Event::Closed => {
                fx.dead
                    .get_or_insert(MediaEvent::Closed { session: self.id });
            }
            Event::MediaAdded(m) => {
                if let Role::Publisher(p) = &mut self.role {
                    p.learn_track(&self.rtc, m.mid);
                }
            }
            Event::RtpPacket(packet) => {
                if let Role::Publisher(p) = &mut self.role {
                    if !p.media_started {
                        p.media_started = true;
                        out.push_back(SfuOutput::Event(MediaEvent::MediaStarted {
                            session: self.id,
                        }));
                    }
                    let Some(params) = p.params_for(packet.header.payload_type) else {
                        trace!(session = %self.id, pt = ?packet.header.payload_type, "rtp with unknown pt");
                        return;
                    };
                    let codec = params.spec().codec;
                    let len = packet.payload.len() as u64;
                    if codec.is_video() {
                        if !p.keyframe_since_request && starts_keyframe(codec, &packet.payload) {
                            p.keyframe_since_request = true;
                        }
                        self.meter.video_bytes += len;
                        self.meter.video_codec = codec_name(codec);
                        p.video_ssrc = Some(packet.header.ssrc);
                        if let Some((w, h)) = keyframe_size(codec, &packet.payload) {
                            self.meter.width = w;
                            self.meter.height = h;
                        }
                    } else {
                        self.meter.audio_bytes += len;
                    }
                    fx.packets.push(packet);
                }
            }
            Event::ChannelOpen(id, label) => {
                debug!(session = %self.id, ?id, %label, "data channel open");
                self.channel.get_or_insert(id);
                fx.channel_opened = true;
            }
            Event::ChannelClose(id) if self.channel == Some(id) => {
                debug!(session = %self.id, ?id, "data channel closed");
                self.channel = None;
            }
            Event::ChannelData(d) => fx.data.push(d),
            Event::KeyframeRequest(_) => {
                if matches!(self.role, Role::Player(_)) {
                    fx.keyframe_requested = true;
                }
            }
            Event::EgressBitrateEstimate(
                BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
            ) => {
                self.meter.estimated_bitrate = estimate.as_u64();
            }
            Event::MediaIngressStats(s) => {
                if let Some(loss) = s.loss {
                    self.meter.loss_permille = loss_permille(loss);
                }
            }
            Event::MediaEgressStats(s) => {
                if let Some(loss) = s.loss {
                    self.meter.loss_permille = loss_permille(loss);
                }
            }
            _ => {}
        }
    }

    /// Asks the publisher's browser for a keyframe on its video tracks, at most every `min_gap`.
    pub(crate) fn request_keyframe(&mut self, now: Instant, min_gap: Duration) -> bool {
        let Role::Publisher(p) = &mut self.role else {
            return false;
        };
        // Folded only while the last request is unanswered (no keyframe since) and younger
        // than `min_gap`: a player that connected after the keyframe passed needs another.
        let pending = !p.keyframe_since_request
            && p.last_keyframe_request
                .is_some_and(|t| now.saturating_duration_since(t) < min_gap);
        if pending {
            return false;
        }
        let mut sent = false;
        let mut api = self.rtc.direct_api();
        for t in p.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
            if let Some(rx) = api.stream_rx_by_mid(t.mid, None) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                sent = true;
            }
        }
        if !sent {
            if let Some(rx) = p.video_ssrc.and_then(|s| api.stream_rx(&s)) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                sent = true;
            }
        }
        if sent {
            p.last_keyframe_request = Some(now);
            p.keyframe_since_request = false;
        }
        sent
    }

    /// Writes one publisher packet to this player, if it is connected and forwarding that kind.
    /// Returns the bytes forwarded (0 if dropped). On the fast path the datagram is in `out`
    /// already; on str0m's, the caller flushes and drains afterwards. The payload is str0m's
    /// `Arc`, one copy for all players (the fast path keeps it for NACKs).
    pub(crate) fn forward(
        &mut self,
        now: Instant,
        from: SessionId,
        packet: &RtpPacket,
        in_params: &PayloadParams,
        out: &mut VecDeque<SfuOutput>,
    ) -> usize {
        let Session {
            rtc,
            role,
            connected,
            meter,
            id,
            fast,
            media_path,
            ..
        } = self;
        let Role::Player(p) = role else {
            return 0;
        };
        if !*connected {
            return 0;
        }
        let kind = in_params.spec().codec.kind();
        let on = if kind == MediaKind::Video {
            p.video_on
        } else {
            p.audio_on
        };
        if !on {
            return 0;
        }
        if kind == MediaKind::Video
            && p.video_gate.is_waiting()
            && !p.video_gate.admit(
                now,
                starts_keyframe(in_params.spec().codec, &packet.payload),
            )
        {
            return 0;
        }
        if p.room.as_ref().is_some_and(|r| r.is_muted(from, kind)) {
            return 0;
        }
        let Some(track) = p.tracks.iter_mut().find(|t| {
            t.kind == kind && (t.source == Source::Any || t.source == Source::From(from))
        }) else {
            return 0;
        };
        if kind == MediaKind::Video
            && track.gate.is_waiting()
            && !track.gate.admit(
                now,
                starts_keyframe(in_params.spec().codec, &packet.payload),
            )
        {
            return 0;
        }
        // The SSRC first: an m-line offered but not answered yet has none, and its payload
        // types are not known either (nothing may be cached for it).
        let ssrc = match track.ssrc {
            Some(s) => s,
            None => {
                let mut api = rtc.direct_api();
                let Some(stream) = api.stream_tx_by_mid(track.mid, None) else {
                    return 0;
                };
                // Bounded by time, not by str0m's 3 s default (see RTX_CACHE_AGE). Nothing
                // was sent on the stream yet, so the emptied cache loses nothing.
                stream.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, RTX_RATIO_CAP);
                let s = stream.ssrc();
                track.ssrc = Some(s);
                s
            }
        };
        let in_pt = packet.header.payload_type;
        let out_pt = match track.pt_map.iter().find(|(i, _)| *i == in_pt) {
            Some((_, o)) => *o,
            None => {
                let o = map_pt(rtc, track.mid, in_params);
                if o.is_none() {
                    debug!(session = %id, ?in_pt, "player did not negotiate the publisher's codec");
                }
                track.pt_map.push((in_pt, o));
                o
            }
        };
        let Some(out_pt) = out_pt else {
            return 0;
        };
        let Some((seq, ts)) = track.seq.map(
            now,
            kind,
            packet.header.ssrc,
            *packet.seq_no,
            packet.header.timestamp,
        ) else {
            return 0;
        };
        let len = packet.payload.len();
        if let (Some(fast), Some(path)) = (fast.as_mut(), *media_path) {
            let fields = RtpFields {
                ssrc: *ssrc,
                pt: *out_pt,
                seq,
                timestamp: ts,
                marker: packet.header.marker,
                clock_rate: in_params.spec().clock_rate.get(),
                keep: kind == MediaKind::Video,
            };
            if !fast.send_rtp(now, path, fields, &packet.payload, out) {
                return 0;
            }
        } else {
            let mut api = rtc.direct_api();
            let Some(stream) = api.stream_tx(&ssrc) else {
                return 0;
            };
            let src = &packet.header.ext_vals;
            let ext = ExtensionValues {
                audio_level: src.audio_level,
                voice_activity: src.voice_activity,
                video_orientation: src.video_orientation,
                ..Default::default()
            };
            stream.write_rtp(
                RtpWrite::new(
                    out_pt,
                    seq.into(),
                    ts,
                    packet.timestamp,
                    packet.payload.clone(),
                )
                .marker(packet.header.marker)
                .ext_vals(ext)
                .nackable(kind == MediaKind::Video),
            );
        }
        if kind == MediaKind::Video {
            meter.video_bytes += len as u64;
            meter.video_codec = codec_name(in_params.spec().codec);
        } else {
            meter.audio_bytes += len as u64;
        }
        len
    }

    /// The stats report for the interval that just ended, resetting the byte counters.
    pub(crate) fn take_stats(&mut self, interval: Duration) -> SessionStats {
        let ms = interval.as_millis().max(1) as u64;
        let m = &mut self.meter;
        let stats = SessionStats {
            width: m.width,
            height: m.height,
            video_bitrate: m.video_bytes * 8 * 1000 / ms,
            audio_bitrate: m.audio_bytes * 8 * 1000 / ms,
            video_codec: m.video_codec.to_string(),
            loss_permille: m.loss_permille,
            estimated_bitrate: m.estimated_bitrate,
        };
        m.video_bytes = 0;
        m.audio_bytes = 0;
        stats
    }
}

/// The player's payload type for the publisher's codec, if the player's browser accepted it.
fn map_pt(rtc: &Rtc, mid: Mid, in_params: &PayloadParams) -> Option<str0m::media::Pt> {
    let local = rtc.codec_config().match_params(*in_params)?.pt();
    let accepted = rtc
        .media(mid)
        .map(|m| m.remote_pts().is_empty() || m.remote_pts().contains(&local))
        .unwrap_or(false);
    accepted.then_some(local)
}

fn loss_permille(fraction: f32) -> u32 {
    (fraction.clamp(0.0, 1.0) * 1000.0).round() as u32
}
