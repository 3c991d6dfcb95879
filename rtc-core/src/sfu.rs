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

mod forwarding;
mod lastn;
mod multitrack;
mod negotiate;
mod relay;
mod restart;
mod sdp_text;
mod table;
mod whep;
pub use multitrack::RoomLine;
pub(crate) use multitrack::RoomPlayer;
pub use restart::{IceRestart, IceRestartError, IceRestarted};

/// How long a session may take to get ICE and DTLS up before it fails.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Minimum gap between two keyframe requests sent to one publisher.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);
/// Sessions one [`Sfu::handle_timeout`] call wakes at most. Sessions made together have
/// timers that fall due together (str0m's NACK and report timers, about 14 a second each), and
/// waking 50 of them at once is about 0.3 ms in which no datagram is read; the rest stay due,
/// so [`Sfu::poll_timeout`] asks to be called again at once, after the runtime's other input.
pub const TIMER_BUDGET: usize = 16;

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
    /// Local relay address → relay session (`sfu/relay.rs`).
    relays: HashMap<SocketAddr, usize>,
    /// The `now` of the call being handled (str0m's outputs are drained under it).
    now: Instant,
    /// Players whose SRTP allows it send RTP on the fast path (`fast.rs`).
    fast_path: bool,
    /// The fast-path counters of ended sessions.
    fast_ended: crate::fast::FastCounters,
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
    pub fn new(config: SfuConfig, now: Instant) -> Self {
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
            relays: HashMap::new(),
            now,
            fast_path: true,
            fast_ended: Default::default(),
        }
    }

    /// Whether players connected from now on send RTP on the fast path (`fast.rs`; default
    /// on). Off, every packet goes through str0m's send path: for comparison and tests.
    pub fn set_fast_path(&mut self, enabled: bool) {
        self.fast_path = enabled;
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
        let mut c = self.counters;
        let live = self.sessions.iter().filter_map(|(_, s)| s.fast.as_ref());
        for f in live.map(|f| &f.counters).chain([&self.fast_ended]) {
            c.fast_path_players += f.players;
            c.retransmitted_packets += f.resent;
            c.rtcp_unreadable += f.rtcp_unreadable;
            c.sender_reports_rewritten += f.reports_rewritten;
        }
        c
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
        self.now = now;
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
            MediaCmd::StartRelay {
                session,
                stream,
                offer,
            } => self.start_relay(now, session, stream, &offer),
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
        self.now = now;
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
        if let Some(&key) = self.relays.get(&destination) {
            // A relay's own address: only that relay may take it (no look-up by source: every
            // relay from one origin hears from the same origin address).
            if !self
                .sessions
                .get(key)
                .is_some_and(|s| s.rtc.accepts(&input))
            {
                self.counters.unknown_source_dropped += 1;
                trace!(%source, %destination, "dropped datagram the relay does not accept");
                return;
            }
            self.mutate(key, |rtc| rtc.handle_input(input));
            self.process(now);
            return;
        }
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
        if let Some(s) = self.sessions.get_mut(key) {
            if let (Some(fast), Some(path)) = (s.fast.as_mut(), s.media_path) {
                fast.on_receive(now, path, data, &mut self.outputs);
            }
        }
        self.mutate(key, |rtc| rtc.handle_input(input));
        self.process(now);
    }

    /// Time passed. Also flushes (see [`Sfu::flush`]) what was written to players, before
    /// and after the timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.flush(now);
        // Collect first: a session rescheduled at `now` is handled on the next call, not in a loop.
        let due: Vec<(Instant, usize)> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(TIMER_BUDGET)
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
            self.counters.timer_wakeups += 1;
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
            if s.restart_deadline.is_some_and(|r| r <= now) {
                debug!(session = %id, "ICE not up again in time after a restart");
                s.rtc.disconnect();
                let fx = Effects {
                    dead: Some(MediaEvent::Closed { session: id }),
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
        self.now = now;
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
                    self.counters.flush_wakeups += 1;
                    self.mutate(key, |rtc| rtc.handle_input(Input::Timeout(now)));
                }
            }
            self.process(now);
        }
    }
}
