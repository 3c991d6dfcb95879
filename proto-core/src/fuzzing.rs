//! Fuzzing and property-test driver for [`Signalling`].
//!
//! [`run_ops`] decodes arbitrary bytes into a sequence of operations (connections opening and
//! closing, realistic AMS messages, garbage, media events for live sessions, time passing,
//! overload, shutdown) and drives one [`Signalling`] with them through a [`Harness`], which
//! plays the runtime and the media layer and checks the invariants after every step. It panics
//! only when an invariant is violated.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::media::{
    FailReason, LocalCandidate, MediaCmd, MediaEvent, OfferedTrack, SessionId, SessionStats,
    TrackKind,
};
use crate::signalling::{Config, ConnId, Output, Signalling};

/// A stand-in for the runtime and the media layer that checks every output of a [`Signalling`].
#[derive(Debug)]
pub struct Harness {
    /// The machine under test.
    pub sig: Signalling,
    /// Current time.
    pub now: Instant,
    /// Connections open as the runtime sees them.
    pub open: BTreeSet<ConnId>,
    /// Media sessions as the media layer sees them (true = publisher).
    pub media: BTreeMap<SessionId, bool>,
    /// Every output so far, in order, when `record` is set.
    pub log: Vec<Output>,
    /// Keep every output in `log` (default). The fuzz target turns it off: cloning every
    /// output of a long run into a log nobody reads was a large share of its cost.
    pub record: bool,
}

impl Harness {
    /// A harness around a fresh machine.
    ///
    /// The clock is read once, for an arbitrary origin: every later instant is derived from it
    /// by [`Harness::advance`], so a run does not depend on the wall clock.
    #[allow(clippy::disallowed_methods)]
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        Harness {
            sig: Signalling::new(config, now),
            now,
            open: BTreeSet::new(),
            media: BTreeMap::new(),
            log: Vec::new(),
            record: true,
        }
    }

    /// Opens `conn` on `app`; returns the outputs.
    pub fn open(&mut self, conn: u64, app: &str) -> Vec<Output> {
        let conn = ConnId(conn);
        assert!(
            self.open.insert(conn),
            "harness misuse: {conn:?} already open"
        );
        self.sig.handle_open(self.now, conn, app);
        self.drain()
    }

    /// A WHIP `POST` as connection `conn` (see `signalling/whip.rs`).
    pub fn whip(&mut self, conn: u64, app: &str, req: crate::HttpMediaRequest) -> Vec<Output> {
        let conn = ConnId(conn);
        assert!(
            self.open.insert(conn),
            "harness misuse: {conn:?} already open"
        );
        self.sig.handle_whip_publish(self.now, conn, app, req);
        self.drain()
    }

    /// A WHEP `POST` as connection `conn`.
    pub fn whep(&mut self, conn: u64, app: &str, req: crate::HttpMediaRequest) -> Vec<Output> {
        let conn = ConnId(conn);
        assert!(
            self.open.insert(conn),
            "harness misuse: {conn:?} already open"
        );
        self.sig.handle_whep_play(self.now, conn, app, req);
        self.drain()
    }

    /// `DELETE` of the WHIP/WHEP resource of `conn` (stream `id`).
    pub fn http_delete(&mut self, conn: u64, id: &str) -> Vec<Output> {
        let conn = ConnId(conn);
        self.sig.handle_http_delete(self.now, conn, id);
        // The stop's notifications went out before the connection closed.
        let outs = self.drain();
        self.open.remove(&conn);
        outs
    }

    /// A text frame on `conn`.
    pub fn text(&mut self, conn: u64, text: &str) -> Vec<Output> {
        self.sig.handle_text(self.now, ConnId(conn), text);
        self.drain()
    }

    /// `conn` closes.
    pub fn close(&mut self, conn: u64) -> Vec<Output> {
        let conn = ConnId(conn);
        self.open.remove(&conn);
        self.sig.handle_closed(self.now, conn);
        self.drain()
    }

    /// A media event.
    pub fn media_event(&mut self, ev: MediaEvent) -> Vec<Output> {
        if matches!(ev, MediaEvent::Failed { .. } | MediaEvent::Closed { .. }) {
            self.media.remove(&ev.session());
        }
        self.sig.handle_media(self.now, ev);
        self.drain()
    }

    /// Time passes by `d`; due timers fire.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now += d;
        if self.sig.poll_timeout().is_some_and(|t| t <= self.now) {
            self.sig.handle_timeout(self.now);
        }
        self.drain()
    }

    /// Overload on or off.
    pub fn overload(&mut self, on: bool) -> Vec<Output> {
        self.sig.set_overloaded(self.now, on);
        self.drain()
    }

    /// Graceful shutdown.
    pub fn shutdown(&mut self) -> Vec<Output> {
        self.sig.shutdown(self.now);
        self.drain()
    }

    /// Drains the outputs, checking each, then the machine's invariants. Connections the machine
    /// closes are reported closed back to it, as the runtime does.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        let mut closed = Vec::new();
        while let Some(out) = self.sig.poll_output() {
            match &out {
                Output::Send(c, msg) => {
                    assert!(self.open.contains(c), "Send to closed {c:?}: {msg:?}");
                }
                Output::Close(c) => {
                    assert!(self.open.remove(c), "Close of closed {c:?}");
                    closed.push(*c);
                }
                Output::Media(cmd) => self.check_media(cmd),
            }
            outs.push(out);
        }
        if let Err(e) = self.sig.check_invariants() {
            panic!("invariant violated: {e}");
        }
        if self.record {
            self.log.extend(outs.iter().cloned());
        }
        for c in closed {
            self.sig.handle_closed(self.now, c);
            outs.extend(self.drain());
        }
        outs
    }

    fn check_media(&mut self, cmd: &MediaCmd) {
        match cmd {
            MediaCmd::StartPublish { session, .. } => {
                assert!(
                    self.media.insert(*session, true).is_none(),
                    "{session} reused"
                );
            }
            MediaCmd::StartPlay {
                session, publisher, ..
            }
            | MediaCmd::StartPlayAnswer {
                session, publisher, ..
            } => {
                assert_eq!(
                    self.media.get(publisher),
                    Some(&true),
                    "{session} plays unknown publisher {publisher}"
                );
                assert!(
                    self.media.insert(*session, false).is_none(),
                    "{session} reused"
                );
            }
            MediaCmd::SetMainTrack { session, .. } => {
                assert!(
                    self.media.contains_key(session),
                    "SetMainTrack to {session}, not a known publisher or room player"
                );
            }
            MediaCmd::StartRoomPlay {
                session, subtracks, ..
            } => {
                for t in subtracks {
                    assert_eq!(
                        self.media.get(&t.publisher),
                        Some(&true),
                        "{session} plays unknown subtrack publisher {}",
                        t.publisher
                    );
                }
                assert!(
                    self.media.insert(*session, false).is_none(),
                    "{session} reused"
                );
            }
            MediaCmd::SetVideoSlots { session, slots } => {
                assert_eq!(
                    self.media.get(session),
                    Some(&false),
                    "{cmd:?} to a non-player"
                );
                for t in slots.iter().flatten().flatten() {
                    assert_eq!(
                        self.media.get(&t.publisher),
                        Some(&true),
                        "{session} slot of unknown publisher {}",
                        t.publisher
                    );
                }
            }
            MediaCmd::SetSubtrackForwarding {
                session, publisher, ..
            } => {
                assert_eq!(
                    self.media.get(session),
                    Some(&false),
                    "{cmd:?} to a non-player"
                );
                assert_eq!(
                    self.media.get(publisher),
                    Some(&true),
                    "{cmd:?}: unknown publisher"
                );
            }
            MediaCmd::SetSubtracks { session, subtracks } => {
                assert_eq!(
                    self.media.get(session),
                    Some(&false),
                    "{cmd:?} to a non-player"
                );
                for t in subtracks {
                    assert_eq!(
                        self.media.get(&t.publisher),
                        Some(&true),
                        "{session} sent unknown subtrack publisher {}",
                        t.publisher
                    );
                }
            }
            MediaCmd::Close { session } => {
                assert!(
                    self.media.remove(session).is_some(),
                    "Close of unknown {session}"
                );
            }
            MediaCmd::RemoteAnswer { session, .. }
            | MediaCmd::RemoteCandidate { session, .. }
            | MediaCmd::RequestKeyframe { session }
            | MediaCmd::SetForwarding { session, .. }
            | MediaCmd::ForceQuality { session, .. } => {
                assert!(
                    self.media.contains_key(session),
                    "{cmd:?} to unknown session"
                );
            }
        }
    }

    /// Closes every connection, lets every timer fire, and checks that nothing is left.
    pub fn finish(&mut self) {
        let open: Vec<ConnId> = self.open.iter().copied().collect();
        for c in open {
            self.close(c.0);
        }
        self.advance(Duration::from_secs(3600));
        assert!(
            self.sig.is_idle(),
            "state left after every connection closed"
        );
        assert_eq!(self.sig.poll_timeout(), None, "timer left");
        assert!(
            self.media.is_empty(),
            "media sessions leaked: {:?}",
            self.media
        );
    }
}

/// Reads bytes as a stream of small choices; zeros once exhausted.
struct Bytes<'a> {
    data: &'a [u8],
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn pick<'s, T>(&mut self, items: &'s [T]) -> Option<&'s T> {
        if items.is_empty() {
            return None;
        }
        let i = usize::from(self.byte()) % items.len();
        items.get(i)
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 == 0
    }
    fn done(&self) -> bool {
        self.data.is_empty()
    }
}

const APPS: &[&str] = &["WebRTCAppEE", "LiveApp"];
const IDS: &[Option<&str>] = &[
    Some("s1"),
    Some("s2"),
    Some("room1"),
    Some("s1"),
    Some("s2"),
    Some(""),
    None,
    Some("bad id!"),
];
const ROOMS: &[Option<&str>] = &[Some("room1"), Some("room2"), None];
const COMMANDS: &[&str] = &[
    "publish",
    "publish",
    "play",
    "play",
    "takeConfiguration",
    "takeConfiguration",
    "takeCandidate",
    "stop",
    "join",
    "leave",
    "joinRoom",
    "leaveFromRoom",
    "getRoomInfo",
    "getStreamInfo",
    "getTrackList",
    "enableTrack",
    "toggleVideo",
    "toggleAudio",
    "forceStreamQuality",
    "peerMessageCommand",
    "getBroadcastObject",
    "getSubscriberCount",
    "updateStreamMetaData",
    "ping",
    "getIceServerConfig",
    "getSubtracks",
    "getSubtracksCount",
    "getSubscribers",
];

/// A JSON object written straight to text: building a `serde_json::Value` and serialising it
/// for every generated message was a tenth of the fuzz target's time.
struct Obj(String);

impl Obj {
    fn new(command: &str) -> Obj {
        let mut o = Obj(String::with_capacity(96));
        o.0.push('{');
        o.raw("command", &json_str(command));
        o
    }
    fn raw(&mut self, k: &str, v: &str) -> &mut Obj {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(k);
        self.0.push_str("\":");
        self.0.push_str(v);
        self
    }
    fn str(&mut self, k: &str, v: &str) -> &mut Obj {
        self.raw(k, &json_str(v))
    }
    fn done(&mut self) -> String {
        self.0.push('}');
        std::mem::take(&mut self.0)
    }
}

fn json_str(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn message(b: &mut Bytes<'_>) -> String {
    let command = b.pick(COMMANDS).copied().unwrap_or("ping");
    let id = b.pick(IDS).copied().flatten();
    let room = b.pick(ROOMS).copied().flatten();
    let mut m = Obj::new(command);
    if let Some(id) = id {
        m.str("streamId", id);
    }
    match command {
        "publish" => {
            if b.flag() {
                if let Some(r) = room {
                    m.str("mainTrack", r);
                }
            }
            m.raw("video", "true");
            m.raw("audio", if b.flag() { "true" } else { "false" });
        }
        "takeConfiguration" => {
            let t = if b.flag() { "offer" } else { "answer" };
            m.str("type", t).str("sdp", "v=0\r\n");
        }
        "takeCandidate" => {
            m.raw("label", &(b.byte() % 3).to_string()).str("id", "0");
            let c = if b.byte().is_multiple_of(4) {
                ""
            } else {
                "candidate:1 1 udp 1 127.0.0.1 9 typ host"
            };
            m.str("candidate", c);
        }
        "joinRoom" | "leaveFromRoom" | "getRoomInfo" => {
            if let Some(r) = room {
                m.str("room", r);
            }
        }
        "toggleVideo" | "toggleAudio" => {
            m.raw("enabled", if b.flag() { "true" } else { "false" });
        }
        "play" => {
            // Room plays: selections with inclusions, exclusions and the own stream.
            let pick = |b: &mut Bytes<'_>| {
                let id = b.pick(GOOD_IDS).copied().unwrap_or("s1");
                if b.flag() {
                    format!("!{id}")
                } else {
                    id.to_string()
                }
            };
            if b.flag() {
                let list = format!("[{},{}]", json_str(&pick(b)), json_str(&pick(b)));
                m.raw("trackList", &list);
            }
            if b.flag() {
                m.str("userPublishId", "s1");
            }
            m.raw(
                "disableTracksByDefault",
                if b.flag() { "true" } else { "false" },
            );
        }
        "enableTrack" => {
            m.str("trackId", b.pick(GOOD_IDS).copied().unwrap_or("s2"));
            m.raw("enabled", if b.flag() { "true" } else { "false" });
        }
        "getSubtracks" => {
            m.raw("offset", &(i64::from(b.byte() % 4) - 1).to_string());
            m.raw("size", &(i64::from(b.byte() % 5) - 1).to_string());
        }
        "getSubtracksCount" => {
            m.str("status", if b.flag() { "broadcasting" } else { "" });
        }
        "forceStreamQuality" => {
            m.raw("streamHeight", &(i64::from(b.byte()) * 4 - 20).to_string());
        }
        "peerMessageCommand" => {
            m.raw("data", "{\"x\":1}");
        }
        "updateStreamMetaData" => {
            m.str("metaData", "{\"a\":1}");
        }
        _ => {}
    }
    m.done()
}

fn media_event(b: &mut Bytes<'_>, session: SessionId, publisher: bool) -> MediaEvent {
    match b.byte() % 12 {
        0 if publisher => MediaEvent::Answer {
            session,
            sdp: "v=0\r\n".into(),
        },
        0 => MediaEvent::Offer {
            session,
            sdp: "v=0\r\n".into(),
            tracks: vec![
                OfferedTrack {
                    mid: "0".into(),
                    kind: TrackKind::Audio,
                    source: None,
                },
                OfferedTrack {
                    mid: "1".into(),
                    kind: TrackKind::Video,
                    source: b.flag().then(|| "s2".to_string()),
                },
            ],
        },
        1 => MediaEvent::Candidate {
            session,
            candidate: LocalCandidate {
                mline_index: 0,
                mid: "0".into(),
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
            },
        },
        2 | 3 => MediaEvent::Connected { session },
        4..=6 => MediaEvent::MediaStarted { session },
        7 => MediaEvent::KeyframeRequested { session },
        8 => MediaEvent::Stats {
            session,
            stats: SessionStats {
                width: 640,
                height: 480,
                video_bitrate: u64::from(b.byte()) * 10_000,
                audio_bitrate: 32_000,
                video_codec: "VP8".into(),
                loss_permille: 0,
                estimated_bitrate: u64::from(b.byte()) * 5_000,
            },
        },
        9 => MediaEvent::Failed {
            session,
            reason: if b.flag() {
                FailReason::RemoteDescription("fuzz".into())
            } else {
                FailReason::Rtc("fuzz".into())
            },
        },
        10 => MediaEvent::Closed { session },
        _ => MediaEvent::MediaStarted { session },
    }
}

const GOOD_IDS: &[&str] = &["s1", "s2", "s3"];

fn started_session(outs: &[Output]) -> Option<SessionId> {
    outs.iter().find_map(|o| match o {
        Output::Media(MediaCmd::StartPublish { session, .. })
        | Output::Media(MediaCmd::StartPlay { session, .. })
        | Output::Media(MediaCmd::StartRoomPlay { session, .. }) => Some(*session),
        _ => None,
    })
}

/// `publish`, the client's offer and (usually) media starting: a whole publish in one step.
fn publish_flow(h: &mut Harness, b: &mut Bytes<'_>, conn: u64) {
    let id = b.pick(GOOD_IDS).copied().unwrap_or("s1");
    let main_track = if b.flag() { "room1" } else { "" };
    let m = json!({"command": "publish", "streamId": id, "video": true, "audio": true,
        "mainTrack": main_track});
    h.text(conn, &m.to_string());
    let offer =
        json!({"command": "takeConfiguration", "streamId": id, "type": "offer", "sdp": "v=0"});
    let outs = h.text(conn, &offer.to_string());
    if let Some(session) = started_session(&outs) {
        if !b.byte().is_multiple_of(4) {
            h.media_event(MediaEvent::Answer {
                session,
                sdp: "v=0".into(),
            });
            h.media_event(MediaEvent::MediaStarted { session });
        }
    }
}

/// `play`, the server's offer, the client's answer and (usually) the connection coming up.
fn play_flow(h: &mut Harness, b: &mut Bytes<'_>, conn: u64) {
    let id = b.pick(GOOD_IDS).copied().unwrap_or("s1");
    let m = json!({"command": "play", "streamId": id});
    let outs = h.text(conn, &m.to_string());
    if let Some(session) = started_session(&outs) {
        let ev = media_event(b, session, false);
        h.media_event(ev);
        let answer =
            json!({"command": "takeConfiguration", "streamId": id, "type": "answer", "sdp": "v=0"});
        h.text(conn, &answer.to_string());
        if !b.byte().is_multiple_of(4) {
            h.media_event(MediaEvent::Connected { session });
        }
    }
}

/// A conference or p2p command with valid ids.
fn room_message(b: &mut Bytes<'_>) -> String {
    let room = b.pick(&["room1", "room2"]).copied().unwrap_or("room1");
    let id = b.pick(GOOD_IDS).copied().unwrap_or("s1");
    let m = match b.byte() % 8 {
        0 => json!({"command": "joinRoom", "room": room, "streamId": id, "mode": "multitrack"}),
        1 => json!({"command": "joinRoom", "room": room}),
        2 => json!({"command": "getRoomInfo", "room": room, "streamId": id}),
        3 => json!({"command": "leaveFromRoom", "room": room}),
        4 => json!({"command": "join", "streamId": "p2p1", "multiPeer": false, "mode": "both"}),
        5 => json!({"command": "leave", "streamId": "p2p1"}),
        6 => {
            json!({"command": "takeConfiguration", "streamId": "p2p1", "type": "offer", "sdp": "v=0"})
        }
        _ => json!({"command": "getBroadcastObject", "streamId": room}),
    };
    m.to_string()
}

/// Decodes `data` into operations and drives a [`Signalling`] with them, checking the
/// invariants after each step and at the end (after closing every connection, nothing is left).
/// Panics only on an invariant violation.
pub fn run_ops(data: &[u8]) {
    drive(data, false);
}

/// [`run_ops`], returning the finished harness (its log holds every output).
pub fn run(data: &[u8]) -> Harness {
    drive(data, true)
}

fn drive(data: &[u8], record: bool) -> Harness {
    let mut b = Bytes { data };
    let config = Config {
        seed: u64::from(b.byte()),
        client_start_timeout: Duration::from_millis(1000 + u64::from(b.byte()) * 50),
        bitrate_interval: Duration::from_millis(500 + u64::from(b.byte()) * 20),
        play_once_per_session: !b.byte().is_multiple_of(4),
        ..Config::default()
    };
    let mut h = Harness::new(config);
    h.record = record;
    let mut steps = 0;
    while !b.done() && steps < 2000 {
        steps += 1;
        let op = b.byte();
        let conn = u64::from(b.byte() % 6);
        match op % 24 {
            0 | 1 => {
                if !h.open.contains(&ConnId(conn)) {
                    let app = b.pick(APPS).copied().unwrap_or("WebRTCAppEE");
                    h.open(conn, app);
                }
            }
            2 => {
                if h.open.contains(&ConnId(conn)) {
                    h.close(conn);
                }
            }
            3..=9 => {
                let text = message(&mut b);
                h.text(conn, &text);
            }
            10 => {
                let len = usize::from(b.byte() % 16);
                let raw: Vec<u8> = (0..len).map(|_| b.byte()).collect();
                h.text(conn, &String::from_utf8_lossy(&raw));
            }
            11..=14 => {
                let sessions: Vec<(SessionId, bool)> =
                    h.media.iter().map(|(s, p)| (*s, *p)).collect();
                if let Some((s, p)) = b.pick(&sessions).copied() {
                    let ev = media_event(&mut b, s, p);
                    h.media_event(ev);
                } else {
                    // Events for sessions the machine does not know must be ignored.
                    let sid = SessionId(u64::from(b.byte()));
                    let ev = media_event(&mut b, sid, true);
                    if !h.media.contains_key(&ev.session()) {
                        h.sig.handle_media(h.now, ev);
                        h.drain();
                    }
                }
            }
            15 | 16 => {
                h.advance(Duration::from_millis(u64::from(b.byte()) * 100));
            }
            17 | 18 => publish_flow(&mut h, &mut b, conn),
            19..=21 => play_flow(&mut h, &mut b, conn),
            22 => {
                let text = room_message(&mut b);
                h.text(conn, &text);
            }
            _ => match b.byte() {
                0..=40 => {
                    h.overload(true);
                }
                41..=253 => {
                    h.overload(false);
                }
                _ => {
                    h.shutdown();
                }
            },
        }
    }
    h.finish();
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Random operation sequences never break an invariant and never leak.
        #[test]
        fn random_operations_keep_invariants(data in prop::collection::vec(any::<u8>(), 0..3000)) {
            run_ops(&data);
        }

        /// The machine is deterministic: the same inputs give the same outputs.
        #[test]
        fn same_inputs_same_outputs(data in prop::collection::vec(any::<u8>(), 0..1500)) {
            prop_assert_eq!(run(&data).log, run(&data).log);
        }
    }

    /// The generator reaches the deep flows (otherwise the property test proves little).
    #[test]
    fn generator_reaches_deep_states() {
        use crate::message::{Notification, ServerMessage};
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut x: u64 = 0x1234_5678;
        for _ in 0..300 {
            let data: Vec<u8> = (0..2000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let h = run(&data);
            for out in &h.log {
                let k = match out {
                    Output::Media(MediaCmd::StartPlay { .. }) => "StartPlay",
                    Output::Media(MediaCmd::StartRoomPlay { .. }) => "StartRoomPlay",
                    Output::Media(MediaCmd::SetSubtracks { .. }) => "SetSubtracks",
                    Output::Media(MediaCmd::RemoteAnswer { .. }) => "RemoteAnswer",
                    Output::Media(MediaCmd::SetForwarding { .. }) => "SetForwarding",
                    Output::Send(_, ServerMessage::Notification(n)) => match n {
                        Notification::PlayStarted { .. } => "play_started",
                        Notification::PlayFinished { .. } => "play_finished",
                        Notification::SubtrackAdded { .. } => "subtrackAdded",
                        Notification::SubtrackList { subtrack_list, .. }
                            if !subtrack_list.is_empty() =>
                        {
                            "subtrackList"
                        }
                        Notification::BitrateMeasurement { .. } => "bitrate",
                        Notification::JoinedTheRoom { streams, .. } if !streams.is_empty() => {
                            "joinedTheRoom+streams"
                        }
                        _ => continue,
                    },
                    Output::Send(_, ServerMessage::TakeConfiguration { .. }) => "takeConfiguration",
                    Output::Send(_, ServerMessage::RoomInformation { .. }) => "roomInformation",
                    Output::Send(_, ServerMessage::Stop { .. }) => "p2p stop",
                    Output::Send(_, ServerMessage::Error(e)) => e.definition.definition(),
                    Output::Close(_) => "Close",
                    _ => continue,
                };
                *counts.entry(k).or_default() += 1;
            }
        }
        for k in [
            "StartPlay",
            "StartRoomPlay",
            "SetSubtracks",
            "subtrackAdded",
            "subtrackList",
            "RemoteAnswer",
            "SetForwarding",
            "play_started",
            "play_finished",
            "bitrate",
            "joinedTheRoom+streams",
            "takeConfiguration",
            "roomInformation",
            "p2p stop",
            "Close",
            "publishTimeoutError",
            "already_playing",
            "streamIdInUse",
            "NoSpaceForNewPeer",
        ] {
            assert!(
                counts.get(k).copied().unwrap_or(0) > 0,
                "never reached {k}: {counts:?}"
            );
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        run_ops(&[]);
        run_ops(&[0]);
        run_ops(&[1, 2, 3]);
        run_ops(&[255; 64]);
    }
}
