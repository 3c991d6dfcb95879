//! The [`Sfu`]: all sessions, UDP routing, timers and publisher → player forwarding.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::{
    FailReason, LocalCandidate, MediaCmd, MediaEvent, OfferedTrack, SessionId, TrackKind,
};
use slab::Slab;
use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::{Codec, CodecConfig, PayloadParams};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Input, Rtc, RtcConfig, RtcError};
use tracing::{debug, trace};

use crate::data::{DataConfig, DataRouter, DataStats, Sender};
use crate::forward::OutTrack;
use crate::resume::{KeyframeGate, RESUME_REQUEST_GAP};
use crate::route::{
    stun_request_ufrag, CandidateBook, SfuCounters, Ufrags, DEFAULT_MAX_REMOTE_CANDIDATES,
    MAX_ROUTES_PER_SESSION,
};
use crate::session::{DataWrite, Effects, Player, Publisher, Role, Session};
use crate::{SfuConfig, SfuOutput};

mod lastn;
mod multitrack;
mod whep;
pub use multitrack::RoomLine;
pub(crate) use multitrack::RoomPlayer;

/// How long a session may take to get ICE and DTLS up before it fails.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Minimum gap between two keyframe requests sent to one publisher.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);

/// Initial bandwidth estimate for players (BWE).
const PLAYER_BWE_START: Bitrate = Bitrate::kbps(1_500);

/// All media sessions of the server.
pub struct Sfu {
    config: SfuConfig,
    /// Template for every `Rtc`: crypto provider and one shared DTLS certificate.
    rtc_config: RtcConfig,
    sessions: Slab<Session>,
    ids: HashMap<SessionId, usize>,
    /// Remote address → session, for the common path of [`Sfu::handle_receive`].
    routes: HashMap<SocketAddr, usize>,
    /// Server ufrag → session, for STUN binding requests from new addresses.
    ufrags: Ufrags,
    /// Remote candidates kept per session.
    candidates: CandidateBook,
    max_remote_candidates: usize,
    counters: SfuCounters,
    /// `(deadline, slab key)` of every session.
    timers: BTreeSet<(Instant, usize)>,
    outputs: VecDeque<SfuOutput>,
    /// Effects of drained sessions not yet acted on.
    work: VecDeque<(usize, SessionId, Effects)>,
    connect_timeout: Duration,
    player_bwe: bool,
    /// Players written to since the last [`Sfu::flush`]: their packets sit in str0m's send
    /// queue until the flush feeds each of them one `Input::Timeout`, so one timeout and one
    /// drain per player cover every packet written since.
    unflushed: Vec<(usize, SessionId)>,
    /// Data channel relay (`data.rs`).
    data: DataRouter,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu")
            .field("config", &self.config)
            .field("sessions", &self.sessions.len())
            .field("routes", &self.routes.len())
            .field("outputs", &self.outputs.len())
            .finish()
    }
}

impl Sfu {
    /// A media layer with no sessions.
    pub fn new(config: SfuConfig, _now: Instant) -> Self {
        if let Some(seed) = config.seed {
            crate::rng::seed_thread(seed);
        }
        let mut rtc_config = RtcConfig::new().set_crypto_provider(config.crypto.provider.clone());
        if let Some(cert) = config.crypto.cert.clone() {
            rtc_config = rtc_config.set_dtls_cert(cert);
        }
        Sfu {
            config,
            rtc_config,
            sessions: Slab::new(),
            ids: HashMap::new(),
            routes: HashMap::new(),
            ufrags: Ufrags::default(),
            candidates: CandidateBook::default(),
            max_remote_candidates: DEFAULT_MAX_REMOTE_CANDIDATES,
            counters: SfuCounters::default(),
            timers: BTreeSet::new(),
            outputs: VecDeque::new(),
            work: VecDeque::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            player_bwe: false,
            unflushed: Vec::new(),
            data: DataRouter::default(),
        }
    }

    /// Data channel settings (AMS `dataChannelEnabled`, `dataChannelPlayerDistribution`,
    /// and the longest message relayed). Whether a player is offered a channel is decided
    /// when it starts; routing and limits apply at once.
    pub fn set_data_config(&mut self, config: DataConfig) {
        self.data.config = config;
    }

    /// The data channel settings.
    pub fn data_config(&self) -> &DataConfig {
        &self.data.config
    }

    /// Counters of the data channel relay.
    pub fn data_stats(&self) -> DataStats {
        self.data.stats
    }

    /// Registers `player` as a player of main track `main_track` (the key given in
    /// [`MediaCmd::SetMainTrack`]): data-channel messages of the main track's subtracks reach
    /// it. The registration ends with the session. This is the hook for main-track playback.
    pub fn add_main_track_player(&mut self, main_track: &str, player: SessionId) {
        self.data.add_main_track_player(main_track, player);
    }

    /// The configuration.
    pub fn config(&self) -> &SfuConfig {
        &self.config
    }

    /// The seed mixed into stable mids (`0` without [`SfuConfig::seed`]).
    fn seed(&self) -> u64 {
        self.config.seed.unwrap_or(0)
    }

    /// How long a new session may take to connect before [`MediaEvent::Failed`]
    /// (default [`DEFAULT_CONNECT_TIMEOUT`]). Applies to sessions created afterwards.
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout;
    }

    /// Whether new players run str0m's bandwidth estimation (TWCC), which feeds
    /// [`proto_core::SessionStats::estimated_bitrate`] and paces sending. Default off: with
    /// no simulcast layers to switch there is nothing to act on the estimate with, and the
    /// pacer holds every keyframe burst back (hundreds of milliseconds at 2 Mbit/s) at a
    /// large CPU cost (BENCHMARKS.md).
    pub fn set_player_bwe(&mut self, enabled: bool) {
        self.player_bwe = enabled;
    }

    /// How many remote ICE candidates a session keeps (distinct addresses; default
    /// [`DEFAULT_MAX_REMOTE_CANDIDATES`]). Further candidates are dropped and counted.
    pub fn set_max_remote_candidates(&mut self, max: usize) {
        self.max_remote_candidates = max;
    }

    /// What was refused so far.
    pub fn counters(&self) -> SfuCounters {
        self.counters
    }

    /// Remote candidates kept for `session`.
    pub fn remote_candidate_count(&self, session: SessionId) -> usize {
        self.candidates.count(session)
    }

    /// The session datagrams from `source` go to, if any (diagnostics and tests).
    #[doc(hidden)]
    pub fn routed_session(&self, source: SocketAddr) -> Option<SessionId> {
        let key = self.routes.get(&source)?;
        self.sessions.get(*key).map(|s| s.id)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether `session` exists and has ICE and DTLS up.
    pub fn is_connected(&self, session: SessionId) -> bool {
        self.ids
            .get(&session)
            .and_then(|k| self.sessions.get(*k))
            .is_some_and(|s| s.connected)
    }

    /// Diagnostics: each session with its deadlines and str0m's last timeout reason.
    #[doc(hidden)]
    pub fn debug_deadlines(&self) -> Vec<String> {
        self.sessions
            .iter()
            .map(|(k, s)| {
                format!(
                    "key {k} {} rtc {:?} stats {:?} sched {:?} reason {:?}",
                    s.id,
                    s.rtc_deadline,
                    s.next_stats,
                    s.scheduled,
                    s.rtc.last_timeout_reason()
                )
            })
            .collect()
    }

    /// A command from signalling.
    pub fn handle_command(&mut self, now: Instant, cmd: MediaCmd) {
        match cmd {
            MediaCmd::StartPublish {
                session,
                stream,
                offer,
            } => self.start_publish(now, session, stream, &offer),
            MediaCmd::StartPlay {
                session,
                stream,
                publisher,
            } => self.start_play(now, session, stream, publisher),
            MediaCmd::StartPlayAnswer {
                session,
                stream,
                publisher,
                offer,
            } => self.start_play_answer(now, session, stream, publisher, &offer),
            MediaCmd::StartRoomPlay {
                session,
                stream,
                subtracks,
            } => self.start_room_play(now, session, stream, subtracks),
            MediaCmd::SetSubtracks { session, subtracks } => {
                self.set_subtracks(now, session, subtracks)
            }
            MediaCmd::SetVideoSlots { session, slots } => self.set_video_slots(now, session, slots),
            MediaCmd::SetSubtrackForwarding {
                session,
                publisher,
                video,
                audio,
            } => self.set_subtrack_forwarding(now, session, publisher, video, audio),
            MediaCmd::RemoteAnswer { session, sdp } => self.remote_answer(now, session, &sdp),
            MediaCmd::RemoteCandidate { session, candidate } => {
                self.remote_candidate(now, session, &candidate)
            }
            MediaCmd::RequestKeyframe { session } => self.request_keyframe(now, session),
            MediaCmd::SetForwarding {
                session,
                video,
                audio,
            } => self.set_forwarding(now, session, video, audio),
            MediaCmd::ForceQuality { session, height } => {
                if let Some(Role::Player(p)) = self.session_mut(session).map(|s| &mut s.role) {
                    // No simulcast layers to choose from: recorded, advisory only.
                    p.forced_height = height;
                }
            }
            MediaCmd::SetMainTrack {
                session,
                main_track,
            } => {
                // A subtrack's publisher, or a room player (which receives the data-channel
                // messages of the main track's subtracks).
                match self.session_ref(session).map(|s| &s.role) {
                    Some(Role::Player(p)) if p.room.is_some() => {
                        self.data.add_main_track_player(&main_track, session);
                    }
                    Some(_) => self.data.set_main_track(session, main_track),
                    None => {}
                }
            }
            MediaCmd::Close { session } => {
                if let Some(&key) = self.ids.get(&session) {
                    self.close_quietly(key);
                }
            }
        }
        self.process(now);
        self.flush(now);
    }

    /// A UDP datagram arrived from `source` on local address `destination`.
    ///
    /// Media it carries is written to the publisher's players but not yet sent: call
    /// [`Sfu::flush`] before waiting for the next datagram (a runtime may feed several
    /// datagrams first, trading latency for fewer str0m timeouts per player).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let Ok(contents) = DatagramRecv::try_from(data) else {
            self.counters.unparsable_dropped += 1;
            trace!(%source, len = data.len(), "dropped unparsable datagram");
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let cached = self
            .routes
            .get(&source)
            .copied()
            .filter(|k| self.sessions.get(*k).is_some_and(|s| s.rtc.accepts(&input)));
        let key = match cached {
            Some(k) => k,
            None => {
                // Not from an address this session uses: only a STUN binding request naming a
                // session by its ufrag may open a route, and only that one session is asked.
                let named = stun_request_ufrag(data)
                    .and_then(|u| self.ufrags.get(u))
                    .filter(|k| self.sessions.get(*k).is_some_and(|s| s.rtc.accepts(&input)));
                let Some(k) = named else {
                    self.counters.unknown_source_dropped += 1;
                    trace!(%source, len = data.len(), "dropped datagram from an unknown source");
                    return;
                };
                self.add_route(k, source);
                k
            }
        };
        self.mutate(key, |rtc| rtc.handle_input(input));
        self.process(now);
    }

    /// Time passed. Also flushes (see [`Sfu::flush`]) what was written to players, before
    /// and after the timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.flush(now);
        // Collect first: a session rescheduled at `now` is handled on the next call, not in a loop.
        let due: Vec<(Instant, usize)> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .copied()
            .collect();
        for entry in due {
            self.timers.remove(&entry);
            let key = entry.1;
            let Some(s) = self.sessions.get_mut(key) else {
                continue;
            };
            s.scheduled = None;
            let id = s.id;
            if !s.connected && s.connect_deadline.is_some_and(|c| c <= now) {
                debug!(session = %id, "connect timeout");
                s.rtc.disconnect();
                let fx = Effects {
                    dead: Some(MediaEvent::Failed {
                        session: id,
                        reason: FailReason::ConnectTimeout,
                    }),
                    ..Effects::default()
                };
                self.work.push_back((key, id, fx));
                self.process(now);
                continue;
            }
            if s.next_stats <= now {
                let interval = self.config.stats_interval;
                let stats = s.take_stats(interval);
                s.next_stats = if s.next_stats + interval > now {
                    s.next_stats + interval
                } else {
                    now + interval
                };
                self.outputs
                    .push_back(SfuOutput::Event(MediaEvent::Stats { session: id, stats }));
            }
            if s.rtc_deadline <= now {
                self.mutate(key, |rtc| rtc.handle_input(Input::Timeout(now)));
                // str0m may re-arm an expired timer (seen with BWE before connection); calling
                // it again at the same instant achieves nothing, so look again 1 ms later.
                if let Some(s) = self.sessions.get_mut(key) {
                    if s.rtc_deadline <= now {
                        s.rtc_deadline = now + Duration::from_millis(1);
                        self.reschedule(key);
                    }
                }
            } else {
                self.reschedule(key);
            }
            // Act on effects now, so players see this publisher's packets in order.
            self.process(now);
        }
        self.flush(now);
    }

    /// The next output.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<SfuOutput> {
        self.outputs.pop_front()
    }

    /// When [`Sfu::handle_timeout`] must next be called: the sessions' timers only. Packets
    /// written to players do not make it due; they leave with [`Sfu::flush`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Whether packets were written to players since the last [`Sfu::flush`].
    #[must_use]
    pub fn needs_flush(&self) -> bool {
        !self.unflushed.is_empty()
    }

    /// Sends what was written to players since the last flush: each such player gets one
    /// `Input::Timeout`, which lets str0m encrypt its queued packets, and is drained; the
    /// datagrams are then in [`Sfu::poll_output`]. Costs nothing when nothing was written.
    pub fn flush(&mut self, now: Instant) {
        // Bounded: a flush's effects (a player's keyframe request, say) write no media, but a
        // second round is allowed for anything they did write.
        for _ in 0..2 {
            if self.unflushed.is_empty() {
                return;
            }
            let players = std::mem::take(&mut self.unflushed);
            for (key, id) in players {
                if let Some(s) = self.sessions.get_mut(key).filter(|s| s.id == id) {
                    s.unflushed = false;
                    self.mutate(key, |rtc| rtc.handle_input(Input::Timeout(now)));
                }
            }
            self.process(now);
        }
    }

    // ---- commands ----

    fn base_config(&self) -> RtcConfig {
        self.rtc_config
            .clone()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_stats_interval(Some(self.config.stats_interval))
    }

    /// The configuration of a player's `Rtc`: the publisher's codecs (`params`, without
    /// RTX/RED), or with none known the usual ones (Opus, VP8, VP9, H.264); sender-side
    /// bandwidth estimation if enabled.
    pub(super) fn player_config(&self, params: &[PayloadParams]) -> RtcConfig {
        let mut config = self.base_config();
        if params.is_empty() {
            config = config
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(true)
                .enable_vp9(true)
                .enable_h264(true);
        } else {
            let fresh: Vec<PayloadParams> = params
                .iter()
                .filter(|p| !matches!(p.spec().codec, Codec::Rtx | Codec::Red | Codec::Unknown))
                .map(|p| PayloadParams::new(p.pt(), p.resend(), p.spec()))
                .collect();
            *config.codec_config() = CodecConfig::new_from_payload_params(fresh);
        }
        if self.player_bwe {
            config = config.enable_bwe(Some(PLAYER_BWE_START));
        }
        config
    }

    fn start_publish(&mut self, now: Instant, id: SessionId, stream: String, offer: &str) {
        if self.ids.contains_key(&id) {
            debug!(session = %id, "StartPublish for an existing session ignored");
            return;
        }
        // A publisher only sends: answering `recvonly` keeps the browser from expecting media
        // (and firing `ontrack`) on its publish connection. The SDK offers `sendrecv`.
        let offer = offer
            .lines()
            .map(|l| {
                if l.trim_end() == "a=sendrecv" {
                    "a=sendonly"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n")
            + "\r\n";
        let offer = match SdpOffer::from_sdp_string(&offer) {
            Ok(o) => o,
            Err(e) => return self.fail_sdp(id, format!("bad offer: {e}")),
        };
        // Opus without RED (so audio arrives as plain Opus), VP8, VP9, H.264.
        let config = self
            .base_config()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true);
        let mut rtc = config.build(now);
        let candidates = self.add_local_candidates(&mut rtc);
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a.to_sdp_string(),
            Err(e) => return self.fail_sdp(id, format!("offer not accepted: {e}")),
        };
        let stream_name = stream.clone();
        let mut publisher = Publisher {
            stream,
            players: Vec::new(),
            tracks: Vec::new(),
            params: Vec::new(),
            media_started: false,
            last_keyframe_request: None,
            video_ssrc: None,
            data_only: false,
        };
        // Learn the tracks now: str0m's MediaAdded only comes once DTLS is up, and players
        // joining before that should still mirror this publisher's codecs.
        let media_mids = accepted_media_mids(&answer);
        publisher.data_only = media_mids.is_empty()
            && answer
                .lines()
                .any(|l| l.starts_with("m=application ") && !l.starts_with("m=application 0 "));
        for mid in media_mids {
            publisher.learn_track(&rtc, Mid::from(mid));
        }
        let role = Role::Publisher(publisher);
        debug!(session = %id, %stream_name, "publish session created");
        let key = self.insert(now, id, rtc, role);
        // Players that asked for this publisher before it existed.
        let waiting: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| matches!(&s.role, Role::Player(p) if p.publisher == id))
            .map(|(_, s)| s.id)
            .collect();
        // Their video continues from this publisher's first keyframe (resume.rs).
        for player in &waiting {
            if let Some(Role::Player(pl)) = self.session_mut(*player).map(|s| &mut s.role) {
                if pl.video_on {
                    pl.video_gate.start(now);
                    pl.video_gate.take_request();
                }
            }
        }
        if let Some(Role::Publisher(p)) = self.sessions.get_mut(key).map(|s| &mut s.role) {
            p.players = waiting;
        }
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Answer {
            session: id,
            sdp: answer.clone(),
        }));
        self.emit_candidates(id, &answer, candidates);
        self.mutate(key, |_| Ok(()));
    }

    /// A player's configuration mirroring `publisher`'s negotiated codecs (defaults if not
    /// known yet), and the media kinds it sends.
    pub(super) fn player_setup(&self, publisher: SessionId) -> (Vec<MediaKind>, RtcConfig) {
        // Mirror the publisher's negotiated codecs and kinds; defaults if not known yet.
        let (kinds, params) = match self
            .ids
            .get(&publisher)
            .and_then(|k| self.sessions.get(*k))
            .map(|s| &s.role)
        {
            Some(Role::Publisher(p)) if p.data_only => (Vec::new(), Vec::new()),
            Some(Role::Publisher(p)) if !p.tracks.is_empty() => {
                let mut kinds: Vec<MediaKind> = Vec::new();
                for t in &p.tracks {
                    if !kinds.contains(&t.kind) {
                        kinds.push(t.kind);
                    }
                }
                (kinds, p.params.clone())
            }
            _ => (vec![MediaKind::Audio, MediaKind::Video], Vec::new()),
        };
        let mut config = self.player_config(&params);
        if !self.player_bwe {
            config = crate::remb::receiver_estimates(config);
        }
        (kinds, config)
    }

    fn start_play(&mut self, now: Instant, id: SessionId, stream: String, publisher: SessionId) {
        if self.ids.contains_key(&id) {
            debug!(session = %id, "StartPlay for an existing session ignored");
            return;
        }
        let (kinds, config) = self.player_setup(publisher);
        let mut rtc = config.build(now);
        let candidates = self.add_local_candidates(&mut rtc);
        let mut api = rtc.sdp_api();
        let mut tracks = Vec::new();
        let mut offered = Vec::new();
        // Stable mids: str0m draws a new mid from its thread-local fastrand generator, so a
        // player that plays the same stream again would get new mids. The SDK's watchdog
        // stops and replays a stream so quickly that the first offer may still be applied to
        // its peer connection, and Chromium refuses a later offer whose m-lines (mids) differ
        // from the first. Seeding the generator from the stream name while the m-lines are
        // added makes every offer of a stream carry the same mids; the generator then goes on
        // from where it was, so nothing else becomes predictable.
        let mids = crate::rng::StableMids::enter(self.seed(), &stream);
        for kind in kinds {
            let mid = api.add_media(kind, Direction::SendOnly, Some(stream.clone()), None, None);
            tracks.push(OutTrack::new(mid, kind));
            offered.push(OfferedTrack {
                mid: mid.to_string(),
                kind: if kind == MediaKind::Audio {
                    TrackKind::Audio
                } else {
                    TrackKind::Video
                },
                source: None,
            });
        }
        // The data channel, after the media m-lines: one ordered channel labelled with the
        // stream id, opened by the server (the SDK's play mode takes it in `ondatachannel`).
        if self.data.config.enabled {
            api.add_channel(stream.clone());
        }
        drop(mids);
        let Some((offer, pending)) = api.apply() else {
            return self.no_offer(id);
        };
        let sdp = offer.to_sdp_string();
        let key = self.insert_player(now, id, rtc, stream, publisher, Some(pending), tracks);
        self.first_offer(key, id, sdp, offered, candidates);
    }

    /// A new player's offer could not be made: the session fails.
    pub(super) fn no_offer(&mut self, id: SessionId) {
        debug!(session = %id, "no offer could be created");
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Failed {
            session: id,
            reason: FailReason::NoOffer,
        }));
    }

    /// A new player (session `key`, `id`) offers `sdp` with its local candidates.
    pub(super) fn first_offer(
        &mut self,
        key: usize,
        id: SessionId,
        sdp: String,
        tracks: Vec<OfferedTrack>,
        candidates: Vec<String>,
    ) {
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Offer {
            session: id,
            sdp: sdp.clone(),
            tracks,
        }));
        self.emit_candidates(id, &sdp, candidates);
        self.mutate(key, |_| Ok(()));
    }

    fn remote_answer(&mut self, now: Instant, id: SessionId, sdp: &str) {
        let Some(&key) = self.ids.get(&id) else {
            trace!(session = %id, "answer for unknown session");
            return;
        };
        let Some(Role::Player(p)) = self.sessions.get_mut(key).map(|s| &mut s.role) else {
            trace!(session = %id, "answer for a publish session ignored");
            return;
        };
        let Some(pending) = p.pending.take() else {
            trace!(session = %id, "answer without a pending offer ignored");
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                self.remove(key);
                return self.fail_sdp(id, format!("bad answer: {e}"));
            }
        };
        let mut failed = None;
        self.mutate(key, |rtc| {
            rtc.sdp_api()
                .accept_answer(pending, answer)
                .inspect_err(|e| failed = Some(e.to_string()))
        });
        if let Some(reason) = failed {
            // `mutate` queued a generic failure; report the SDP failure instead.
            self.work.retain(|(k, _, _)| *k != key);
            self.remove(key);
            self.fail_sdp(id, format!("answer not accepted: {reason}"));
        } else {
            self.room_answered(now, key);
        }
        self.process(now);
    }

    fn remote_candidate(&mut self, _now: Instant, id: SessionId, candidate: &str) {
        let Some(&key) = self.ids.get(&id) else {
            trace!(session = %id, "candidate for unknown session");
            return;
        };
        let line = candidate.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if line.is_empty() {
            return; // end-of-candidates
        }
        let line = if line.starts_with("candidate:") {
            line.to_string()
        } else {
            format!("candidate:{line}")
        };
        let c = match Candidate::from_sdp_string(&line) {
            Ok(c) => c,
            Err(e) => {
                trace!(session = %id, "ignored candidate: {e}");
                return;
            }
        };
        if c.proto() != Protocol::Udp {
            trace!(session = %id, "ignored non-udp candidate");
            return;
        }
        if !self
            .candidates
            .admit(id, c.addr(), self.max_remote_candidates)
        {
            self.counters.candidates_dropped += 1;
            debug!(
                session = %id,
                kept = self.candidates.count(id),
                max = self.max_remote_candidates,
                "remote candidate dropped (duplicate or over the bound)"
            );
            return;
        }
        self.mutate(key, |rtc| {
            rtc.add_remote_candidate(c);
            Ok(())
        });
    }

    /// Routes datagrams from `source` to session `key` from now on.
    fn add_route(&mut self, key: usize, source: SocketAddr) {
        if self.routes.insert(source, key) == Some(key) {
            return;
        }
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.routes.retain(|a| *a != source);
        s.routes.push(source);
        if s.routes.len() > MAX_ROUTES_PER_SESSION {
            let old = s.routes.remove(0);
            if self.routes.get(&old) == Some(&key) {
                self.routes.remove(&old);
            }
        }
    }

    fn request_keyframe(&mut self, now: Instant, publisher: SessionId) {
        self.request_keyframe_within(now, publisher, KEYFRAME_REQUEST_GAP);
    }

    /// Asks `publisher` for a keyframe unless one was asked for less than `gap` ago.
    fn request_keyframe_within(&mut self, now: Instant, publisher: SessionId, gap: Duration) {
        let Some(&key) = self.ids.get(&publisher) else {
            return;
        };
        let sent = self
            .sessions
            .get_mut(key)
            .is_some_and(|s| s.request_keyframe(now, gap));
        if sent {
            self.counters.keyframe_requests += 1;
            self.mutate(key, |_| Ok(()));
        }
    }

    fn set_forwarding(
        &mut self,
        now: Instant,
        id: SessionId,
        video: Option<bool>,
        audio: Option<bool>,
    ) {
        let Some(Role::Player(p)) = self.session_mut(id).map(|s| &mut s.role) else {
            return;
        };
        let mut resumed_video = false;
        for (kind, want, on) in [
            (MediaKind::Video, video, &mut p.video_on),
            (MediaKind::Audio, audio, &mut p.audio_on),
        ] {
            let Some(want) = want else { continue };
            if *on && !want {
                for t in p.tracks.iter_mut().filter(|t| t.kind == kind) {
                    t.seq.pause();
                }
                if kind == MediaKind::Video {
                    p.video_gate.stop();
                }
            }
            if !*on && want && kind == MediaKind::Video {
                resumed_video = true;
            }
            *on = want;
        }
        if resumed_video {
            // Hold video back until a keyframe and ask for one now (see resume.rs).
            p.video_gate.start(now);
            p.video_gate.take_request();
            for publisher in p.sources() {
                self.request_keyframe_within(now, publisher, RESUME_REQUEST_GAP);
            }
        }
    }

    // ---- helpers ----

    fn session_ref(&self, id: SessionId) -> Option<&Session> {
        let key = *self.ids.get(&id)?;
        self.sessions.get(key)
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        let key = *self.ids.get(&id)?;
        self.sessions.get_mut(key)
    }

    fn add_local_candidates(&self, rtc: &mut Rtc) -> Vec<String> {
        let mut lines = Vec::new();
        for addr in &self.config.local_addrs {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    if let Some(c) = rtc.add_local_candidate(c) {
                        lines.push(c.to_sdp_string());
                    }
                }
                Err(e) => debug!(%addr, "local address not usable as candidate: {e}"),
            }
        }
        lines
    }

    fn emit_candidates(&mut self, id: SessionId, sdp: &str, lines: Vec<String>) {
        let mid = sdp
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
            .unwrap_or("0")
            .to_string();
        for candidate in lines {
            self.outputs
                .push_back(SfuOutput::Event(MediaEvent::Candidate {
                    session: id,
                    candidate: LocalCandidate {
                        mline_index: 0,
                        mid: mid.clone(),
                        candidate,
                    },
                }));
        }
    }

    fn fail_sdp(&mut self, id: SessionId, reason: String) {
        debug!(session = %id, "{reason}");
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Failed {
            session: id,
            reason: FailReason::RemoteDescription(reason),
        }));
    }
    /// Adds a player of `publisher` (a stream play, not a room play) with everything on, and
    /// registers it with its publisher; returns its slab key.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_player(
        &mut self,
        now: Instant,
        id: SessionId,
        rtc: Rtc,
        stream: String,
        publisher: SessionId,
        pending: Option<str0m::change::SdpPendingOffer>,
        tracks: Vec<OutTrack>,
    ) -> usize {
        let role = Role::Player(Player {
            stream,
            publisher,
            room: None,
            pending,
            tracks,
            video_on: true,
            audio_on: true,
            forced_height: 0,
            video_gate: KeyframeGate::default(),
        });
        let key = self.insert(now, id, rtc, role);
        if let Some(Role::Publisher(p)) = self.session_mut(publisher).map(|s| &mut s.role) {
            p.players.push(id);
        }
        key
    }

    fn insert(&mut self, now: Instant, id: SessionId, mut rtc: Rtc, role: Role) -> usize {
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let mut s = Session::new(id, rtc, role, now, self.config.stats_interval);
        s.connect_deadline = Some(now + self.connect_timeout);
        let key = self.sessions.insert(s);
        self.ids.insert(id, key);
        self.ufrags.insert(key, ufrag);
        key
    }

    /// One mutation of a session's `Rtc`, then the drain, then its timer is updated. Effects
    /// are queued for [`Sfu::process`].
    fn mutate(&mut self, key: usize, f: impl FnOnce(&mut Rtc) -> Result<(), RtcError>) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let mut fx = Effects::default();
        match f(&mut s.rtc) {
            Ok(()) => s.drain(&mut self.outputs, &mut fx),
            Err(e) => s.fail(&e, &mut fx),
        }
        let id = s.id;
        if !fx.is_empty() {
            self.work.push_back((key, id, fx));
        }
        self.reschedule(key);
    }

    fn reschedule(&mut self, key: usize) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let at = s.deadline();
        if s.scheduled == Some(at) {
            return;
        }
        if let Some(old) = s.scheduled.take() {
            self.timers.remove(&(old, key));
        }
        s.scheduled = Some(at);
        self.timers.insert((at, key));
    }

    /// Acts on queued effects: forwarding, keyframe requests, dead sessions.
    fn process(&mut self, now: Instant) {
        while let Some((key, id, fx)) = self.work.pop_front() {
            if self.sessions.get(key).is_none_or(|s| s.id != id) {
                continue;
            }
            if !fx.packets.is_empty() {
                self.forward(now, key, fx.packets);
            }
            if fx.channel_opened {
                self.data_channel_opened(key);
            }
            if !fx.data.is_empty() {
                self.relay_data(now, key, fx.data);
            }
            if fx.keyframe_requested || fx.player_connected {
                // A player whose video is off asks for keyframes because its decoder starves;
                // they would be dropped here, so the publisher is not asked for them.
                let video_on = match self.sessions.get(key).map(|s| &s.role) {
                    Some(Role::Player(p)) => p.video_on,
                    _ => true,
                };
                if fx.keyframe_requested && video_on {
                    self.outputs
                        .push_back(SfuOutput::Event(MediaEvent::KeyframeRequested {
                            session: id,
                        }));
                }
                let publishers = match self.sessions.get(key).map(|s| &s.role) {
                    Some(Role::Player(p)) if video_on || fx.player_connected => p.sources(),
                    _ => Vec::new(),
                };
                for publisher in publishers {
                    self.request_keyframe(now, publisher);
                }
            }
            if let Some(ev) = fx.dead {
                self.remove(key);
                self.outputs.push_back(SfuOutput::Event(ev));
            }
        }
    }

    /// Writes a publisher's packets to each of its players.
    fn forward(&mut self, now: Instant, pub_key: usize, packets: Vec<str0m::rtp::RtpPacket>) {
        let Some(s) = self.sessions.get_mut(pub_key) else {
            return;
        };
        let from = s.id;
        let Role::Publisher(p) = &mut s.role else {
            return;
        };
        let players = std::mem::take(&mut p.players);
        let mut resume_request = false;
        let params: Vec<Option<PayloadParams>> = packets
            .iter()
            .map(|pk| p.params_for(pk.header.payload_type))
            .collect();
        for player in &players {
            let Some(&key) = self.ids.get(player) else {
                continue;
            };
            let Some(s) = self.sessions.get_mut(key) else {
                continue;
            };
            let mut wrote = false;
            for (packet, params) in packets.iter().zip(&params) {
                let Some(params) = params else { continue };
                if s.forward(now, from, packet, params) > 0 {
                    wrote = true;
                    self.counters.forwarded_packets += 1;
                }
            }
            if let Role::Player(pl) = &mut s.role {
                resume_request |= pl.video_gate.take_request();
                for t in pl.tracks.iter_mut() {
                    resume_request |= t.gate.take_request();
                }
            }
            // A write only queues the packet in str0m: it is encrypted and sent on the
            // player's next `Input::Timeout`, which `flush` feeds (then drains) once for all
            // packets written until then.
            if wrote && !s.unflushed {
                s.unflushed = true;
                self.unflushed.push((key, *player));
            }
        }
        if let Some(Role::Publisher(p)) = self.sessions.get_mut(pub_key).map(|s| &mut s.role) {
            // Players added meanwhile (none can be, but keep them) go after the existing ones.
            let added = std::mem::replace(&mut p.players, players);
            p.players.extend(added);
        }
        if resume_request {
            if let Some(publisher) = self.sessions.get(pub_key).map(|s| s.id) {
                self.request_keyframe_within(now, publisher, RESUME_REQUEST_GAP);
            }
        }
    }

    /// A data channel opened: a data-only publisher is now live.
    fn data_channel_opened(&mut self, key: usize) {
        if !self.data.config.enabled {
            return;
        }
        self.send_assignment_event(key);
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        if let Role::Publisher(p) = &mut s.role {
            if p.data_only && !p.media_started {
                p.media_started = true;
                self.outputs
                    .push_back(SfuOutput::Event(MediaEvent::MediaStarted { session: s.id }));
            }
        }
    }

    /// Relays data-channel messages received on session `from` to their receivers
    /// (`data.rs`). A receiver whose buffer is full loses its copy; nothing waits.
    fn relay_data(
        &mut self,
        now: Instant,
        from: usize,
        messages: Vec<str0m::channel::ChannelData>,
    ) {
        let Some(s) = self.sessions.get(from) else {
            return;
        };
        let sender_id = s.id;
        let stats = &mut self.data.stats;
        for m in &messages {
            stats.received += 1;
            stats.received_bytes += m.data.len() as u64;
        }
        if !self.data.config.enabled {
            trace!(session = %sender_id, n = messages.len(), "data channel disabled: messages dropped");
            self.data.stats.dropped_not_relayed += messages.len() as u64;
            return;
        }
        let targets = match &s.role {
            Role::Publisher(p) => self.data.targets(Sender::Publisher {
                id: sender_id,
                players: &p.players,
            }),
            Role::Player(p) => {
                let siblings = match self.session_ref(p.publisher).map(|x| &x.role) {
                    Some(Role::Publisher(pb)) => pb.players.as_slice(),
                    _ => &[],
                };
                self.data.targets(Sender::Player {
                    id: sender_id,
                    publisher: p.publisher,
                    siblings,
                })
            }
        };
        if targets.is_empty() && matches!(s.role, Role::Player(_)) {
            trace!(session = %sender_id, "player data not distributed");
            self.data.stats.dropped_not_relayed += messages.len() as u64;
            return;
        }
        let max = self.data.config.max_message_size;
        for m in &messages {
            if m.data.len() > max {
                trace!(session = %sender_id, len = m.data.len(), max, "oversize data message dropped");
                self.data.stats.dropped_oversize += 1;
                continue;
            }
            if !self.data.allow(now, sender_id) {
                trace!(session = %sender_id, "data message over the sender's rate dropped");
                self.data.stats.dropped_rate += 1;
                continue;
            }
            for target in &targets {
                let Some(&key) = self.ids.get(target) else {
                    self.data.stats.dropped_not_open += 1;
                    continue;
                };
                let Some(t) = self.sessions.get_mut(key) else {
                    continue;
                };
                match t.write_data(m.binary, &m.data) {
                    DataWrite::Written => {
                        self.data.stats.delivered += 1;
                        self.mutate(key, |_| Ok(()));
                    }
                    DataWrite::Congested => {
                        trace!(session = %target, len = m.data.len(), "receiver congested: data message dropped");
                        self.data.stats.dropped_congested += 1;
                    }
                    DataWrite::NotOpen => self.data.stats.dropped_not_open += 1,
                }
            }
        }
    }

    /// Sends close output (DTLS close_notify, RTCP BYE) and drops the session without an event.
    fn close_quietly(&mut self, key: usize) {
        if let Some(s) = self.sessions.get_mut(key) {
            if s.connected && s.rtc.close().is_ok() {
                let mut fx = Effects::default();
                s.drain(&mut self.outputs, &mut fx);
            }
        }
        self.remove(key);
    }

    fn remove(&mut self, key: usize) {
        if self.sessions.get(key).is_none() {
            return;
        }
        let s = self.sessions.remove(key);
        self.ids.remove(&s.id);
        self.ufrags.remove(key);
        self.candidates.forget(s.id);
        for addr in &s.routes {
            if self.routes.get(addr) == Some(&key) {
                self.routes.remove(addr);
            }
        }
        if let Some(at) = s.scheduled {
            self.timers.remove(&(at, key));
        }
        self.data.forget(s.id);
        if let Role::Player(p) = &s.role {
            for publisher in p.sources() {
                if let Some(Role::Publisher(pb)) = self.session_mut(publisher).map(|x| &mut x.role)
                {
                    pb.players.retain(|x| *x != s.id);
                }
            }
        }
        let stream = match &s.role {
            Role::Publisher(p) => &p.stream,
            Role::Player(p) => &p.stream,
        };
        debug!(session = %s.id, %stream, "session removed");
    }
}

/// Mids of the audio/video m-lines an SDP accepts (port not 0).
fn accepted_media_mids(sdp: &str) -> Vec<&str> {
    let mut mids = Vec::new();
    let mut in_media = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            in_media = matches!(kind, "audio" | "video") && port != "0";
        } else if in_media {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                mids.push(mid);
                in_media = false;
            }
        }
    }
    mids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_mids_skip_rejected_and_application() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:b\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:c\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:d\r\n";
        assert_eq!(accepted_media_mids(sdp), vec!["a", "d"]);
    }
}
