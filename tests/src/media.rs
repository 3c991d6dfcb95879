//! Full-stack media simulation: str0m "browsers" that speak AMS signalling through [`Sim`] and
//! exchange real ICE/DTLS/SRTP with the server over an in-memory, optionally lossy, network.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::ConnId;
use rtc_core::testing::{opus_frame, vp8_delta, vp8_keyframe, Client, Datagram};
use serde_json::{json, Value};
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::Candidate;

use crate::scenario::Dice;
use crate::{server_udp, Sim};

/// What a simulated browser does with its peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes audio and video.
    Publisher,
    /// Plays a stream.
    Player,
}

/// A simulated browser: one WebSocket, one peer connection.
#[derive(Debug)]
pub struct Browser {
    /// Its WebSocket.
    pub conn: ConnId,
    /// Its peer connection.
    pub client: Client,
    /// Publisher or player.
    pub role: Role,
    /// The stream it publishes or plays.
    pub stream: String,
    /// Every server message it received, in order.
    pub received: Vec<Value>,
    /// A publisher that sends no audio or video: its offer has only the data channel (the
    /// SDK's `onlyDataChannel`, published with `video:false, audio:false`).
    pub data_only: bool,
    /// Its WebSocket was closed: it sends no more media.
    pub gone: bool,
    /// Keyframe requests (PLI/FIR) of the server this publisher has acted on.
    pub keyframe_requests_seen: usize,
    /// When this publisher last sent a keyframe.
    pub last_keyframe: Option<Instant>,
    /// A publisher that sends no media while its peer connection stays up (a frozen tab).
    pub media_paused: bool,
    /// Bytes of this publisher's VP8 inter frames (keyframes are three times as long), so a
    /// player can tell publishers apart by frame size.
    pub video_size: usize,
}

impl Browser {
    /// Labels (`command/definition`) of everything received.
    pub fn labels(&self) -> Vec<String> {
        self.received.iter().map(crate::label).collect()
    }

    /// The `idMapping` of the last server offer (mid -> `ARDAMS{a|v}<id>`).
    pub fn id_mapping(&self) -> Vec<(String, String)> {
        self.received
            .iter()
            .rev()
            .find(|m| m["command"] == "takeConfiguration" && m["type"] == "offer")
            .and_then(|m| m.get("idMapping"))
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a notification or error with this definition arrived.
    pub fn got(&self, definition: &str) -> bool {
        self.received
            .iter()
            .any(|m| m.get("definition").and_then(Value::as_str) == Some(definition))
    }
}

/// [`Sim`] plus browsers and a network between them and the server.
pub struct MediaSim {
    /// The signalling simulation (and the server's cores).
    pub sim: Sim,
    /// The browsers.
    pub browsers: Vec<Browser>,
    dice: Dice,
    /// Percentage of datagrams dropped, each direction.
    pub loss_percent: u64,
    /// Datagrams dropped so far.
    pub dropped: u64,
    /// Datagrams delivered so far.
    pub delivered: u64,
    next_audio: Instant,
    next_video: Instant,
    frames_written: u64,
    /// Datagrams the server sent to an address no browser has (another node's, in a
    /// cluster simulation), for the caller to deliver.
    pub foreign: std::collections::VecDeque<Datagram>,
    /// `Some(gap)`: publishers answer the server's keyframe requests with a keyframe, as a
    /// browser's encoder does, ignoring requests that come less than `gap` after their last
    /// keyframe (browsers: about 300 ms). `None` (default): keyframes only every 2 s.
    pub keyframe_on_request: Option<Duration>,
}

impl MediaSim {
    /// A server and network from a seed.
    pub fn new(seed: u64) -> Self {
        let sim = Sim::new(seed);
        let now = sim.now();
        MediaSim {
            sim,
            browsers: Vec::new(),
            dice: Dice::new(seed ^ 0x6e65_7465_6d00),
            loss_percent: 0,
            dropped: 0,
            delivered: 0,
            next_audio: now,
            next_video: now,
            frames_written: 0,
            foreign: std::collections::VecDeque::new(),
            keyframe_on_request: None,
        }
    }

    /// Opens a browser that publishes `stream`.
    pub fn publisher(&mut self, stream: &str) -> usize {
        let i = self.add(Role::Publisher, stream);
        let conn = self.browsers[i].conn;
        self.sim.send_json(
            conn,
            json!({"command":"publish","streamId":stream,"video":true,"audio":true}),
        );
        self.exchange();
        i
    }

    /// Opens a browser that publishes `stream` with the `publish` fields of `extra` added
    /// (`mainTrack`, ...); `data_only` publishers offer only a data channel and send
    /// `video:false, audio:false`.
    pub fn publisher_with(&mut self, stream: &str, extra: Value, data_only: bool) -> usize {
        let i = self.add(Role::Publisher, stream);
        self.browsers[i].data_only = data_only;
        let conn = self.browsers[i].conn;
        let mut cmd =
            json!({"command":"publish","streamId":stream,"video":!data_only,"audio":!data_only});
        if let (Some(c), Some(e)) = (cmd.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        self.sim.send_json(conn, cmd);
        self.exchange();
        i
    }

    /// Opens a browser that publishes `stream` as a subtrack of main track `room`.
    pub fn subtrack_publisher(&mut self, stream: &str, room: &str) -> usize {
        let i = self.add(Role::Publisher, stream);
        let conn = self.browsers[i].conn;
        self.sim.send_json(
            conn,
            json!({"command":"publish","streamId":stream,"mainTrack":room,"video":true,"audio":true}),
        );
        self.exchange();
        i
    }

    /// Opens a browser that plays main track `room` as the SDK's `conference-room.html` does:
    /// `trackList` names the members it knows (`others`) and excludes its own (`"!me"`), and
    /// `userPublishId` is its own.
    pub fn room_player(&mut self, room: &str, me: &str, others: &[String]) -> usize {
        let i = self.add(Role::Player, room);
        let conn = self.browsers[i].conn;
        let mut list: Vec<String> = others.to_vec();
        list.push(format!("!{me}"));
        self.sim.send_json(
            conn,
            json!({"command":"play","streamId":room,"room":room,"trackList":list,
                   "userPublishId":me}),
        );
        self.exchange();
        i
    }

    /// Opens a browser that plays `stream`.
    pub fn player(&mut self, stream: &str) -> usize {
        let i = self.add(Role::Player, stream);
        let conn = self.browsers[i].conn;
        self.sim
            .send_json(conn, json!({"command":"play","streamId":stream}));
        self.exchange();
        i
    }

    fn add(&mut self, role: Role, stream: &str) -> usize {
        let n = self.browsers.len() as u8;
        let addr = SocketAddr::from(([127, 0, 0, 10 + n], 40_000));
        let conn = self.sim.connect();
        self.browsers.push(Browser {
            conn,
            client: Client::new(self.sim.now(), addr),
            role,
            stream: stream.to_string(),
            received: Vec::new(),
            data_only: false,
            gone: false,
            keyframe_requests_seen: 0,
            last_keyframe: None,
            media_paused: false,
            video_size: 1000,
        });
        self.browsers.len() - 1
    }

    /// Adds a browser whose signalling is WHIP/WHEP (the test's [`Sim::http_media`] calls)
    /// instead of a WebSocket: only its peer connection `client` is driven here (media,
    /// network). Its `conn` names no connection.
    pub fn http_browser(&mut self, client: Client, role: Role, stream: &str) -> usize {
        let conn = ConnId(u64::MAX - self.browsers.len() as u64);
        self.browsers.push(Browser {
            conn,
            client,
            role,
            stream: stream.to_string(),
            received: Vec::new(),
            data_only: false,
            gone: false,
            keyframe_requests_seen: 0,
            last_keyframe: None,
            media_paused: false,
            video_size: 1000,
        });
        self.browsers.len() - 1
    }

    /// A browser sends a command.
    pub fn send(&mut self, i: usize, v: Value) {
        let conn = self.browsers[i].conn;
        self.sim.send_json(conn, v);
        self.exchange();
    }

    /// A browser closes its WebSocket.
    pub fn close(&mut self, i: usize) {
        self.browsers[i].gone = true;
        let conn = self.browsers[i].conn;
        self.sim.close(conn);
        self.exchange();
    }

    /// Lets every browser react to what the server said, until nobody has anything to say.
    fn exchange(&mut self) {
        for _ in 0..100 {
            let mut any = false;
            for i in 0..self.browsers.len() {
                let msgs = self.sim.take(self.browsers[i].conn);
                for m in msgs {
                    any = true;
                    self.react(i, &m);
                    self.browsers[i].received.push(m);
                }
            }
            if !any {
                break;
            }
        }
    }

    fn react(&mut self, i: usize, m: &Value) {
        let b = &mut self.browsers[i];
        let stream = b.stream.clone();
        let conn = b.conn;
        match m.get("command").and_then(Value::as_str) {
            Some("start") => {
                let media = !b.data_only;
                let offer = b.client.publish_offer(media, media);
                let cand = b.client.candidate_line();
                self.sim.send_json(
                    conn,
                    json!({"command":"takeConfiguration","streamId":stream,"type":"offer","sdp":offer}),
                );
                self.sim.send_json(
                    conn,
                    json!({"command":"takeCandidate","streamId":stream,"label":0,"id":"0","candidate":cand}),
                );
            }
            Some("takeConfiguration") => {
                let sdp = m["sdp"].as_str().unwrap_or_default();
                if m["type"] == "answer" {
                    b.client
                        .accept_answer(sdp)
                        .expect("client accepts the answer");
                } else {
                    assert!(
                        m.get("idMapping").is_some_and(Value::is_object),
                        "a play offer must carry idMapping: {m}"
                    );
                    let answer = b
                        .client
                        .accept_offer(sdp)
                        .expect("client accepts the offer");
                    let cand = b.client.candidate_line();
                    self.sim.send_json(
                        conn,
                        json!({"command":"takeConfiguration","streamId":stream,"type":"answer","sdp":answer}),
                    );
                    self.sim.send_json(
                        conn,
                        json!({"command":"takeCandidate","streamId":stream,"label":0,"id":"0","candidate":cand}),
                    );
                }
            }
            Some("takeCandidate") => {
                let line = m["candidate"].as_str().unwrap_or_default();
                if let Ok(c) = Candidate::from_sdp_string(line) {
                    b.client.rtc.add_remote_candidate(c);
                    // str0m's contract: poll after every mutation. Without this the client's
                    // deadline stays where it was, which for a data-only peer connection (no
                    // media timers) is far in the future: ICE would never start.
                    b.client.handle_timeout(self.sim.now());
                }
            }
            _ => {}
        }
    }

    /// Moves datagrams both ways until the network is quiet, dropping `loss_percent` of them.
    fn route(&mut self) {
        let now = self.sim.now();
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(t) = self.sim.udp_out.pop_front() {
                moved = true;
                if self.lose() {
                    continue;
                }
                let d = Datagram {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents,
                };
                if let Some(b) = self
                    .browsers
                    .iter_mut()
                    .find(|b| b.client.addr == d.destination)
                {
                    self.delivered += 1;
                    b.client.handle_datagram(now, &d);
                } else {
                    self.foreign.push_back(d);
                }
            }
            for i in 0..self.browsers.len() {
                while let Some(d) = self.browsers[i].client.outbox.pop_front() {
                    moved = true;
                    // A browser that moved (ICE restart) no longer has its old address: what
                    // it still sends from there is lost.
                    let moved_away = d.source != self.browsers[i].client.addr;
                    if self.lose() || d.destination != server_udp() || moved_away {
                        continue;
                    }
                    self.delivered += 1;
                    self.sim.udp_in(d.source, &d.contents);
                }
            }
            if !moved {
                break;
            }
        }
        self.exchange();
    }

    fn lose(&mut self) -> bool {
        let lost = self.loss_percent > 0 && self.dice.chance(self.loss_percent);
        self.dropped += u64::from(lost);
        lost
    }

    /// Runs for `d` of virtual time; connected publishers send 50 Opus frames/s and 30 VP8
    /// frames/s (a keyframe every 2 s).
    pub fn run(&mut self, d: Duration) {
        let until = self.sim.now() + d;
        while self.sim.now() < until {
            let now = self.sim.now();
            let mut next = until.min(self.next_audio).min(self.next_video);
            if next <= now {
                self.write_media(now);
                next = until.min(self.next_audio).min(self.next_video);
            }
            if let Some(t) = self.sim.node.poll_timeout() {
                next = next.min(t);
            }
            for b in &self.browsers {
                next = next.min(b.client.deadline);
            }
            // Never stand still: a deadline in the past is served at the next millisecond.
            let next = next.max(now + Duration::from_millis(1)).min(until);
            self.sim.advance_until(next);
            let now = self.sim.now();
            for b in &mut self.browsers {
                if b.client.deadline <= now && b.client.rtc.is_alive() {
                    b.client.handle_timeout(now);
                }
            }
            self.route();
        }
    }

    fn write_media(&mut self, now: Instant) {
        let audio_due = self.next_audio <= now;
        let video_due = self.next_video <= now;
        let keyframe = self.frames_written.is_multiple_of(60);
        for b in &mut self.browsers {
            if b.role != Role::Publisher
                || b.data_only
                || b.gone
                || b.media_paused
                || !b.client.is_connected()
                || !b.client.rtc.is_alive()
            {
                continue;
            }
            if audio_due {
                b.client
                    .write_frame(now, MediaKind::Audio, Codec::Opus, &opus_frame(120));
            }
            if video_due {
                let mut keyframe = keyframe;
                if let Some(gap) = self.keyframe_on_request {
                    let asked = b.client.keyframe_requests();
                    if asked > b.keyframe_requests_seen {
                        b.keyframe_requests_seen = asked;
                        // The encoder ignores requests too soon after its last keyframe.
                        if b.last_keyframe
                            .is_none_or(|t| now.saturating_duration_since(t) >= gap)
                        {
                            keyframe = true;
                        }
                    }
                }
                if keyframe {
                    b.last_keyframe = Some(now);
                }
                let data = if keyframe {
                    vp8_keyframe(640, 360, 3 * b.video_size)
                } else {
                    vp8_delta(b.video_size)
                };
                b.client
                    .write_frame(now, MediaKind::Video, Codec::Vp8, &data);
            }
        }
        if audio_due {
            self.next_audio = now + Duration::from_millis(20);
        }
        if video_due {
            self.frames_written += 1;
            self.next_video = now + Duration::from_millis(33);
        }
        self.route();
    }
}
