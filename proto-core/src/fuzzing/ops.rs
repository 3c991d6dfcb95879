//! The decoder behind [`run_ops`]: arbitrary bytes become connections, realistic AMS messages,
//! garbage, media events, time and overload, fed to a [`Harness`].

use std::time::Duration;

use serde_json::json;

use crate::media::{
    FailReason, LocalCandidate, MediaCmd, MediaEvent, OfferedTrack, SessionId, SessionStats,
    TrackKind,
};
use crate::signalling::{ClusterRole, Config, ConnId, Output, Target};

use super::Harness;

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

/// A cluster edge's answer: a look-up's answer (a relay, none, Redis away), a relay's end, or
/// a room's members on every node.
fn cluster_op(h: &mut Harness, b: &mut Bytes<'_>, n: u64) {
    let app = b.pick(APPS).copied().unwrap_or("WebRTCAppEE");
    let stream = b.pick(&["s1", "s2", "room1"]).copied().unwrap_or("s1");
    match b.byte() % 5 {
        4 => {
            let room = b.pick(&["room1", "s1"]).copied().unwrap_or("room1");
            let members: Vec<String> = ["s1", "s2", "room1", "m1"]
                .iter()
                .filter(|_| b.flag())
                .map(|s| s.to_string())
                .collect();
            h.sig.room_members(h.now, app, room, &members);
        }
        0 | 1 => {
            let relay = ConnId((1 << 40) + n);
            if let Some(sid) = h.sig.open_relay(h.now, relay, app, stream) {
                h.media.insert(sid, true);
            }
        }
        2 => {
            let e = if b.flag() {
                crate::SignalError::NoStreamExist
            } else {
                crate::SignalError::DataStoreNotAvailable
            };
            h.sig.remote_failed(h.now, app, stream, e);
        }
        _ => {
            let sessions: Vec<SessionId> = h.media.keys().copied().collect();
            if let Some(&sid) = b.pick(&sessions) {
                h.sig.relay_ended(h.now, sid);
            }
        }
    }
    h.drain();
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
    // An odd seed makes the machine a cluster edge (plays of unknown streams wait for relays).
    let edge = config.seed % 2 == 1;
    let mut h = Harness::new(config);
    h.sig.set_remote_streams(edge);
    let roles = [ClusterRole::Both, ClusterRole::Origin, ClusterRole::Edge];
    h.sig
        .set_cluster_role(b.pick(&roles).copied().unwrap_or_default());
    let mut relays = 0u64;
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
                    let query = b.pick(&["", "target=origin", "target=edge"]).copied();
                    if let Some(t) = Target::from_query(query.unwrap_or("")) {
                        h.sig.set_target(ConnId(conn), t);
                    }
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
                150..=253 if edge => {
                    relays += 1;
                    cluster_op(&mut h, &mut b, relays);
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
