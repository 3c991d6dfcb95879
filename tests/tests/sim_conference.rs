//! The 2.16 conference through the simulated server: each member publishes with
//! `mainTrack = room` and plays the room once (every subtrack but its own) in one peer
//! connection; members join and leave at random, and the server renegotiates every player.
//! At the end every member must receive exactly the other members' audio and video, with
//! media actually flowing on those m-lines and on no other.

use std::collections::BTreeSet;
use std::time::Duration;

use antenna_tests::media::MediaSim;
use antenna_tests::scenario::Dice;
use serde_json::json;

const ROOM: &str = "room1";

#[derive(Debug)]
struct Member {
    id: String,
    publisher: usize,
    player: usize,
}

/// What one member's player receives.
struct Received {
    /// Subtracks whose audio m-line is active.
    audio: BTreeSet<String>,
    /// Subtracks whose video m-line is active.
    video: BTreeSet<String>,
    /// Every m-line (`mid=name`), the frames counted on it since the mark, and whether active.
    lines: Vec<(String, usize, bool)>,
}

fn received(m: &MediaSim, player: usize, since: usize) -> Received {
    let b = &m.browsers[player];
    let mut audio = BTreeSet::new();
    let mut video = BTreeSet::new();
    let mut lines = Vec::new();
    for (mid, name) in b.id_mapping() {
        let active = b.client.is_receiving(&mid);
        let frames = b.client.media_count_mid(&mid, since);
        if active {
            if let Some(id) = name.strip_prefix("ARDAMSa") {
                audio.insert(id.to_string());
            } else if let Some(id) = name.strip_prefix("ARDAMSv") {
                video.insert(id.to_string());
            }
        }
        lines.push((format!("{mid}={name}"), frames, active));
    }
    Received {
        audio,
        video,
        lines,
    }
}

/// One random conference from `seed`; returns (joins, leaves, m-lines at most on a player).
fn conference(seed: u64, rounds: usize) -> (usize, usize, usize) {
    let mut m = MediaSim::new(seed);
    let mut dice = Dice::new(seed ^ 0xc0f3);
    let mut members: Vec<Member> = Vec::new();
    let (mut joins, mut leaves) = (0, 0);
    let mut next = 0;
    for _ in 0..rounds {
        let join = members.len() < 2 || (members.len() < 5 && dice.chance(60));
        if join {
            let id = format!("m{next}");
            next += 1;
            let publisher = m.subtrack_publisher(&id, ROOM);
            // The page plays the room once its own publish started, so the room is live.
            for _ in 0..100 {
                if m.browsers[publisher].got("publish_started") {
                    break;
                }
                m.run(Duration::from_millis(100));
            }
            assert!(
                m.browsers[publisher].got("publish_started"),
                "{id} never went live"
            );
            m.run(Duration::from_millis(dice.below(500)));
            let others: Vec<String> = members.iter().map(|x| x.id.clone()).collect();
            let player = m.room_player(ROOM, &id, &others);
            members.push(Member {
                id,
                publisher,
                player,
            });
            joins += 1;
        } else {
            let i = dice.below(members.len() as u64) as usize;
            let gone = members.remove(i);
            // The page leaves as conference-room.html does: it stops its publish, then its
            // WebSockets close (a drop without `stop` would hold the publisher for
            // webRTCClientStartTimeoutMs, see sim_resilience.rs). Either order: the page's
            // WebSocket closes both; here two adaptors.
            m.send(gone.publisher, json!({"command":"stop","streamId":gone.id}));
            if dice.chance(50) {
                m.close(gone.player);
                m.close(gone.publisher);
            } else {
                m.close(gone.publisher);
                m.close(gone.player);
            }
            leaves += 1;
        }
        m.run(Duration::from_millis(200 + dice.below(1500)));
    }
    m.run(Duration::from_secs(3));
    let marks: Vec<usize> = members
        .iter()
        .map(|x| m.browsers[x.player].client.events.len())
        .collect();
    m.run(Duration::from_secs(2));
    let mut most_lines = 0;
    for (x, since) in members.iter().zip(marks) {
        let b = &m.browsers[x.player];
        assert!(
            b.got("play_started"),
            "{} never started: {:?}",
            x.id,
            b.labels()
        );
        let expected: BTreeSet<String> = members
            .iter()
            .filter(|o| o.id != x.id)
            .map(|o| o.id.clone())
            .collect();
        let Received {
            audio,
            video,
            lines,
        } = received(&m, x.player, since);
        let ctx = format!("seed {seed} member {} lines {lines:?}", x.id);
        assert_eq!(audio, expected, "audio of {ctx}");
        assert_eq!(video, expected, "video of {ctx}");
        for (line, frames, active) in &lines {
            if *active {
                // 2 s of 50 audio or 30 video frames per second.
                assert!(*frames > 20, "too few frames on {line}: {ctx}");
            } else {
                assert_eq!(*frames, 0, "media on inactive {line}: {ctx}");
            }
        }
        most_lines = most_lines.max(lines.len());
    }
    (joins, leaves, most_lines)
}

#[test]
fn conference_members_receive_exactly_the_others() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (1..=4).collect(),
    };
    for seed in seeds {
        let (joins, leaves, lines) = conference(seed, 12);
        println!("conference seed {seed}: {joins} joins, {leaves} leaves, at most {lines} m-lines on a player");
        // Reused m-lines: never more than two per member ever present at once (5) plus slack.
        assert!(lines <= 12, "m-lines grew to {lines}");
    }
}
