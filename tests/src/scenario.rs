//! Random AMS client behaviour, generated from a seed.
//!
//! A scenario is a sequence of client actions (connect, close, send a realistic or malformed
//! command, let time pass) over a small pool of stream ids, rooms and p2p ids, so that actions
//! collide: two publishers on one id, plays of streams that come and go, third peers, leaves of
//! rooms never joined.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;

use crate::Sim;
use proto_core::ConnId;

/// A real Chrome publish offer (audio, video, data channel), recorded from the AMS SDK.
pub const CHROME_OFFER: &str = include_str!("../fixtures/chrome-publish-offer.sdp");

const STREAMS: &[&str] = &["s1", "s2", "s3"];
const ROOMS: &[&str] = &["room1", "room2"];
const PEERS: &[&str] = &["p1", "p2"];

/// Seeded choices.
pub struct Dice(ChaCha8Rng);

impl Dice {
    /// Dice from a seed.
    pub fn new(seed: u64) -> Self {
        Dice(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.below(items.len() as u64) as usize;
        &items[i]
    }

    /// True with probability `p` percent.
    pub fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// One random client message.
pub fn random_message(d: &mut Dice) -> String {
    let s = *d.pick(STREAMS);
    let r = *d.pick(ROOMS);
    let p = *d.pick(PEERS);
    let v: Value = match d.below(24) {
        0 => json!({"command":"ping"}),
        1 => json!({"command":"getIceServerConfig"}),
        2 | 3 => json!({"command":"publish","streamId":s,"video":true,"audio":true,
                        "token":"","subscriberId":"","subscriberCode":"","streamName":"",
                        "mainTrack": if d.chance(30) { r } else { "" },"metaData":"","role":""}),
        4 | 5 => {
            json!({"command":"takeConfiguration","streamId":s,"type":"offer","sdp":CHROME_OFFER})
        }
        6 => json!({"command":"takeCandidate","streamId":s,"label":0,"id":"0",
                    "candidate":"candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host generation 0"}),
        7 | 8 => json!({"command":"play","streamId":s,"token":"","room":"","trackList":[],
                        "subscriberId":"","subscriberCode":"","viewerInfo":"","role":"","userPublishId":""}),
        9 => json!({"command":"takeConfiguration","streamId":s,"type":"answer","sdp":"v=0\r\n"}),
        10 | 11 => json!({"command":"stop","streamId":s}),
        12 => json!({"command":"join","streamId":p,"multiPeer":false,"mode":"both"}),
        13 => json!({"command":"leave","streamId":p}),
        14 => json!({"command":"takeConfiguration","streamId":p,"type":"offer","sdp":"v=0 p2p"}),
        15 => {
            json!({"command":"takeCandidate","streamId":p,"label":1,"id":"1","candidate":"candidate:x"})
        }
        16 => {
            json!({"command":"joinRoom","room":r,"mainTrack":r,"streamId": if d.chance(50) { s } else { "" }})
        }
        17 => json!({"command":"leaveFromRoom","room":r,"mainTrack":r}),
        18 => json!({"command":"getRoomInfo","room":r,"streamId":s}),
        19 => json!({"command":"getStreamInfo","streamId":s}),
        20 => {
            json!({"command":"getTrackList","streamId":if d.chance(50) { s } else { r },"token":""})
        }
        21 => json!({"command": *d.pick(&["toggleVideo","toggleAudio","enableTrack"]),
                     "streamId":s,"trackId":s,"enabled":d.chance(50)}),
        22 => json!({"command":"forceStreamQuality","streamId":s,"streamHeight":360}),
        _ => {
            return d
                .pick(&[
                    "{not json",
                    "[]",
                    r#"{"command":"noSuchCommand","streamId":"s1"}"#,
                    r#"{"streamId":"s1"}"#,
                    r#"{"command":"publish","streamId":"bad id!"}"#,
                    r#"{"command":"publish"}"#,
                    r#"{"command":"joinRoom"}"#,
                    r#"{"command":"play","streamId":7}"#,
                ])
                .to_string()
        }
    };
    v.to_string()
}

/// Counts of what a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Client actions taken.
    pub actions: u64,
    /// Inputs fed to the cores (actions plus timer firings).
    pub steps: u64,
}

/// Runs one random scenario of `actions` client actions over at most `max_clients` clients.
///
/// Ends by closing every connection and letting time pass, so the server must be idle after.
pub fn run_random(sim: &mut Sim, seed: u64, actions: u64, max_clients: usize) -> RunStats {
    let mut d = Dice::new(seed);
    let mut conns: Vec<ConnId> = Vec::new();
    for _ in 0..actions {
        conns.retain(|c| sim.is_open(*c));
        match d.below(100) {
            0..=9 if conns.len() < max_clients => conns.push(sim.connect()),
            10..=13 if !conns.is_empty() => {
                let c = *d.pick(&conns);
                sim.close(c);
            }
            14..=24 => {
                let ms = d.below(4000);
                sim.advance(Duration::from_millis(ms));
            }
            _ if !conns.is_empty() => {
                let c = *d.pick(&conns);
                let m = random_message(&mut d);
                sim.send(c, &m);
            }
            _ => conns.push(sim.connect()),
        }
        // Drop what clients received; the transcript keeps it.
        for c in &conns {
            sim.take(*c);
        }
    }
    for c in conns {
        sim.close(c);
    }
    sim.advance(Duration::from_secs(30));
    RunStats {
        actions,
        steps: sim.steps(),
    }
}
