//! The one-thread client engine: many publishers/players (str0m peers + WebSockets) on one
//! `mio::Poll`, publishers pacing synthetic media, and the counters a benchmark reads.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::media::MediaProfile;
use crate::peer::{Latency, Peer, PeerFactory, PeerMode};
use crate::sig::{Role, ServerKind, Sig, SigEvent};
use crate::stats::SeqCounts;
use crate::ws::{check_loopback, WsConn};

/// Where and how clients connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// Server kind.
    pub kind: ServerKind,
    /// WebSocket address (loopback only).
    pub addr: SocketAddr,
    /// WebSocket address of the players, if not `addr` (loopback only): e.g. an edge node
    /// while the publisher is on the origin of a cluster.
    pub play_addr: Option<SocketAddr>,
    /// AMS application name.
    pub app: String,
    /// Janus videoroom room id.
    pub room: u64,
    /// Local IP of the peers' UDP sockets (default: the WebSocket address's IP). Janus does
    /// not gather on loopback; the bench runs it in a private network namespace.
    pub peer_ip: Option<std::net::Ipv4Addr>,
}

/// One client: signalling connection + WebRTC peer.
#[derive(Debug)]
pub struct Client {
    /// Publisher or player.
    pub role: Role,
    ws: WsConn,
    sig: Sig,
    /// The WebRTC peer.
    pub peer: Peer,
    /// The server said the session is up.
    pub up: bool,
    /// First signalling or media error.
    pub error: Option<String>,
    /// When `publish`/`play` was sent.
    pub started: Instant,
    /// Last time a media packet arrived (players).
    pub last_media: Option<Instant>,
    last_received: u64,
    /// Closed by the engine.
    pub closed: bool,
    /// Conference room (rooms benchmark), if any.
    pub room: Option<u64>,
    /// (Conference publishers) the other participants' streams announced so far, in order of
    /// announcement, without repeats (AMS stream ids or Janus feed ids).
    pub room_streams: Vec<String>,
    /// (Janus publishers) this publisher's feed id.
    pub feed_id: Option<String>,
    clock: MediaClock,
}

/// A publisher's send schedule. Publishers run on one clock but each at its own phase
/// (spread over the frame and packet intervals), as independent senders would: many
/// publishers writing their frames at the same instant would be a burst no real audience
/// produces (it overflows a server's receive buffer when every publisher shares one socket).
#[derive(Debug, Clone, Copy, Default)]
struct MediaClock {
    /// Fraction of an interval (0..1) this publisher is shifted by.
    phase: f64,
    next_video: Option<Instant>,
    next_audio: Option<Instant>,
    next_key: Option<Instant>,
}

/// Phase of the `n`-th publisher: the golden-ratio sequence, evenly spread for any count.
fn phase(n: usize) -> f64 {
    (n as f64 * 0.618_033_988_749_895).fract()
}

impl Client {
    /// Connected, no error, not closed.
    pub fn healthy(&self) -> bool {
        self.peer.connected && self.error.is_none() && self.peer.failed.is_none() && !self.closed
    }

    /// The stream this client publishes or plays (see [`Sig::stream`]).
    pub fn sig_stream(&self) -> &str {
        self.sig.stream()
    }

    /// Gave up: error, failed peer or closed connection.
    pub fn broken(&self) -> bool {
        self.error.is_some() || self.peer.failed.is_some() || self.closed
    }
}

/// Counters summed over healthy players at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// When.
    pub at: Option<Instant>,
    /// Video sequence counters.
    pub video: SeqCounts,
    /// Audio sequence counters.
    pub audio: SeqCounts,
    /// Packets the publisher(s) wrote.
    pub published: u64,
}

/// The engine.
pub struct Engine {
    poll: Poll,
    events: Events,
    factory: PeerFactory,
    target: Target,
    /// Every client, in creation order (token = 2*index, +1 for UDP).
    pub clients: Vec<Client>,
    /// Media profile of publishers.
    pub profile: MediaProfile,
    /// Latency samples from probes.
    pub latency: Latency,
    /// Janus feed id of the (first) publisher.
    pub feed_id: Option<String>,
    /// Packets written by publishers.
    pub published: u64,
    /// Publisher sends (frames or audio packets, per publisher) that were more than 20 ms
    /// late (load loop overloaded).
    pub late_sends: u64,
    /// Publishers send only a trickle of audio (2 packets/s), no video.
    pub paused: bool,
    publishers_added: usize,
    next_timeouts: Instant,
    buf: Vec<u8>,
    trace: bool,
    texts: Vec<String>,
    sig_events: Vec<SigEvent>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with no clients.
    pub fn new(target: Target, profile: MediaProfile) -> io::Result<Engine> {
        check_loopback(target.addr)?;
        if let Some(play) = target.play_addr {
            check_loopback(play)?;
        }
        let now = Instant::now();
        Ok(Engine {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            factory: PeerFactory::new(now),
            target,
            clients: Vec::new(),
            profile,
            latency: Latency::default(),
            feed_id: None,
            published: 0,
            late_sends: 0,
            paused: false,
            publishers_added: 0,
            next_timeouts: now,
            buf: vec![0; 2048],
            trace: std::env::var_os("ANTENNA_LOAD_TRACE").is_some(),
            texts: Vec::new(),
            sig_events: Vec::new(),
        })
    }

    /// The stream a player should play: the AMS stream id, or the Janus feed id once known.
    pub fn play_target(&self, stream: &str) -> Option<String> {
        match self.target.kind {
            ServerKind::Antenna => Some(stream.to_string()),
            ServerKind::Janus => self.feed_id.clone(),
        }
    }

    /// Opens a client and starts publish or play of `stream`. Returns its index.
    pub fn add(&mut self, role: Role, mode: PeerMode, stream: &str) -> io::Result<usize> {
        self.add_in(role, mode, stream, None)
    }

    /// [`Engine::add`] as a participant of conference room `room` (if given): a publisher
    /// joins the room before publishing, a player names the room (see [`Sig::in_conference`]).
    pub fn add_in(
        &mut self,
        role: Role,
        mode: PeerMode,
        stream: &str,
        room: Option<u64>,
    ) -> io::Result<usize> {
        let now = Instant::now();
        let (path, proto) = self.target.kind.ws_path(&self.target.app);
        let addr = match role {
            Role::Play => self.target.play_addr.unwrap_or(self.target.addr),
            Role::Publish => self.target.addr,
        };
        let mut ws = WsConn::connect(addr, &path, proto)?;
        let ip = match (self.target.peer_ip, addr.ip()) {
            (Some(ip), _) => ip.octets(),
            (None, std::net::IpAddr::V4(v4)) => v4.octets(),
            (None, std::net::IpAddr::V6(_)) => [127, 0, 0, 1],
        };
        let mut peer = self.factory.peer(now, ip, mode)?;
        let i = self.clients.len();
        let clock = MediaClock {
            phase: phase(self.publishers_added),
            ..MediaClock::default()
        };
        if role == Role::Publish {
            self.publishers_added += 1;
        }
        ws.register(self.poll.registry(), Token(2 * i))?;
        self.poll
            .registry()
            .register(peer.socket(), Token(2 * i + 1), mio::Interest::READABLE)?;
        let mut sig = Sig::new(
            self.target.kind,
            role,
            stream,
            room.unwrap_or(self.target.room),
        );
        if room.is_some() {
            sig = sig.in_conference();
        }
        sig.begin(&mut ws);
        self.clients.push(Client {
            role,
            ws,
            sig,
            peer,
            up: false,
            error: None,
            started: now,
            last_media: None,
            last_received: 0,
            closed: false,
            room,
            room_streams: Vec::new(),
            feed_id: None,
            clock,
        });
        Ok(i)
    }

    /// Asks the server which streams client `i`'s room has (AMS `getRoomInfo`; nothing for
    /// Janus, which pushes them).
    pub fn request_room_info(&mut self, i: usize) {
        if let Some(c) = self.clients.get_mut(i).filter(|c| !c.closed) {
            c.sig.request_room_info(&mut c.ws);
        }
    }

    /// Closes client `i` (WebSocket close, DTLS close) and stops polling it.
    pub fn close(&mut self, i: usize) {
        let registry = self.poll.registry();
        if let Some(c) = self.clients.get_mut(i) {
            if c.closed {
                return;
            }
            c.peer.close();
            c.ws.close();
            c.ws.deregister(registry);
            let _ = registry.deregister(c.peer.socket());
            c.closed = true;
        }
    }

    /// Ends a step's joins: full media again (after a pause for the joins), then `settle`.
    /// Returns the client index the step's keyframe times are measured from: none
    /// (`usize::MAX`) if the step paused, as players that joined during a pause would measure
    /// the pause.
    pub fn resume_and_settle(
        &mut self,
        settle: Duration,
        paused: bool,
        keyframe_from: usize,
    ) -> usize {
        self.paused = false;
        self.run(Instant::now() + settle, |_| false);
        if paused {
            usize::MAX
        } else {
            keyframe_from
        }
    }

    /// Runs the loop until `until` or `done` holds (checked every turn).
    pub fn run(&mut self, until: Instant, mut done: impl FnMut(&Engine) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            self.turn((until - now).min(Duration::from_millis(5)));
        }
    }

    /// One turn: send due media, wait for I/O (at most `max_wait`), handle it, fire timers.
    pub fn turn(&mut self, max_wait: Duration) {
        let now = Instant::now();
        self.send_media(now);
        let mut wait = max_wait;
        for c in self.clients.iter().filter(|c| c.role == Role::Publish) {
            let next = [c.clock.next_video, c.clock.next_audio];
            for t in next.into_iter().flatten() {
                wait = wait.min(t.saturating_duration_since(now));
            }
        }
        if self.poll.poll(&mut self.events, Some(wait)).is_err() {
            return;
        }
        let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
        for Token(t) in tokens {
            let i = t / 2;
            if t % 2 == 0 {
                self.handle_ws(i);
            } else if let Some(c) = self.clients.get_mut(i) {
                if c.closed {
                    continue;
                }
                let lat = if c.peer.mode == PeerMode::Probe {
                    Some(&mut self.latency)
                } else {
                    None
                };
                c.peer.poll_socket(&mut self.buf, lat);
                if c.peer.received_packets != c.last_received {
                    c.last_received = c.peer.received_packets;
                    c.last_media = Some(Instant::now());
                }
            }
        }
        let now = Instant::now();
        if now >= self.next_timeouts {
            self.next_timeouts = now + Duration::from_millis(5);
            for c in self.clients.iter_mut().filter(|c| !c.closed) {
                c.peer.handle_timeout(now);
                c.ws.flush();
            }
        }
    }

    fn handle_ws(&mut self, i: usize) {
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        if c.closed {
            return;
        }
        self.texts.clear();
        c.ws.read_all(&mut self.texts);
        if c.ws.closed && c.error.is_none() {
            c.error = Some("websocket closed".into());
        }
        for text in &self.texts {
            if self.trace {
                eprintln!("client {i} <- {text}");
            }
            self.sig_events.clear();
            c.sig.on_text(&mut c.ws, text, &mut self.sig_events);
            for ev in self.sig_events.drain(..) {
                match ev {
                    SigEvent::SendOffer => {
                        let audio = self.profile.audio_pps > 0;
                        let video = self.profile.video_bps > 0;
                        match c.peer.publish_offer(audio, video) {
                            Some(sdp) => c.sig.send_offer(&mut c.ws, &sdp),
                            None => c.error = Some("no offer".into()),
                        }
                    }
                    SigEvent::Answer(sdp) => {
                        if let Err(e) = c.peer.accept_answer(&sdp) {
                            c.error = Some(format!("answer: {e}"));
                        }
                    }
                    SigEvent::Offer(sdp) => match c.peer.accept_offer(&sdp) {
                        Ok(answer) => c.sig.send_answer(&mut c.ws, &answer),
                        Err(e) => c.error = Some(format!("offer: {e}")),
                    },
                    SigEvent::Candidate(line) => c.peer.add_candidate(&line),
                    SigEvent::Up => c.up = true,
                    SigEvent::FeedId(id) => {
                        if self.feed_id.is_none() {
                            self.feed_id = Some(id.clone());
                        }
                        c.feed_id = Some(id);
                    }
                    SigEvent::RoomStreams(ids) => {
                        for id in ids {
                            if !c.room_streams.contains(&id) {
                                c.room_streams.push(id);
                            }
                        }
                    }
                    SigEvent::Error(e) => {
                        if c.error.is_none() {
                            c.error = Some(e);
                        }
                    }
                }
            }
        }
    }

    fn send_media(&mut self, now: Instant) {
        let mut p = self.profile;
        if self.paused {
            // A trickle of audio keeps the stream live; the schedule restarts on resume.
            p.video_bps = 0;
            p.audio_pps = p.audio_pps.min(2);
        }
        let late = Duration::from_millis(20);
        let video_step = (p.video_bps > 0 && p.fps > 0).then(|| Duration::from_secs(1) / p.fps);
        let audio_step = (p.audio_pps > 0).then(|| Duration::from_secs(1) / p.audio_pps);
        for c in self.clients.iter_mut() {
            if c.role != Role::Publish || !c.healthy() {
                continue;
            }
            let k = &mut c.clock;
            if self.paused {
                k.next_video = None;
                if k.next_audio
                    .is_some_and(|t| t + Duration::from_millis(500) < now)
                {
                    k.next_audio = None;
                }
            }
            if let Some(step) = video_step {
                let next = *k.next_video.get_or_insert(now + step.mul_f64(k.phase));
                if now >= next {
                    let key_due = k.next_key.is_none_or(|t| now >= t);
                    if key_due {
                        k.next_key = Some(now + p.keyframe_interval);
                        c.peer.keyframe_wanted = true;
                    }
                    self.published += c.peer.send_video_frame(now, &p) as u64;
                    if now > next + late {
                        self.late_sends += 1;
                        k.next_video = Some(now + step);
                    } else {
                        k.next_video = Some(next + step);
                    }
                }
            } else {
                k.next_video = None;
            }
            if let Some(step) = audio_step {
                let next = *k.next_audio.get_or_insert(now + step.mul_f64(k.phase));
                if now >= next {
                    self.published += c.peer.send_audio(now, &p) as u64;
                    if now > next + late {
                        self.late_sends += 1;
                        k.next_audio = Some(now + step);
                    } else {
                        k.next_audio = Some(next + step);
                    }
                }
            } else {
                k.next_audio = None;
            }
        }
    }

    /// Sums the counters of healthy players.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            at: Some(Instant::now()),
            published: self.published,
            ..Snapshot::default()
        };
        for c in self
            .clients
            .iter()
            .filter(|c| c.role == Role::Play && c.healthy())
        {
            let (v, a) = c.peer.counts();
            s.video.add(&v);
            s.audio.add(&a);
        }
        s
    }

    /// Players (healthy, broken, total).
    pub fn player_states(&self) -> (usize, usize, usize) {
        let players = self.clients.iter().filter(|c| c.role == Role::Play);
        let (mut ok, mut bad, mut all) = (0, 0, 0);
        for c in players {
            all += 1;
            if c.healthy() {
                ok += 1;
            } else if c.broken() {
                bad += 1;
            }
        }
        (ok, bad, all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(play_addr: Option<SocketAddr>) -> Target {
        Target {
            kind: ServerKind::Antenna,
            addr: SocketAddr::from(([127, 0, 0, 1], 5080)),
            play_addr,
            app: "WebRTCAppEE".into(),
            room: 0,
            peer_ip: None,
        }
    }

    #[test]
    fn the_players_address_must_be_loopback_too() {
        let profile = MediaProfile::default();
        assert!(Engine::new(target(None), profile).is_ok());
        assert!(Engine::new(
            target(Some(SocketAddr::from(([127, 0, 0, 2], 5081)))),
            profile
        )
        .is_ok());
        let err = Engine::new(
            target(Some(SocketAddr::from(([10, 0, 0, 1], 5081)))),
            profile,
        )
        .expect_err("a non-loopback player address is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
