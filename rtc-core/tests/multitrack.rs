//! Room players: several publishers in one player's peer connection, renegotiated with new
//! server offers as the set of subtracks changes (str0m "browsers" in memory).
#![allow(clippy::disallowed_methods)] // the one Instant::now() that starts the virtual clock

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proto_core::{MediaCmd, MediaEvent, OfferedTrack, SessionId, Subtrack, TrackKind};
use rtc_core::testing::{opus_frame, vp8_delta, vp8_keyframe, Harness};
use str0m::format::Codec;
use str0m::media::MediaKind;

const ROOM: SessionId = SessionId(100);
const NAMES: [&str; 3] = ["alice", "bob", "carol"];

fn publisher(i: usize) -> SessionId {
    SessionId(i as u64 + 1)
}

/// Three publishers (clients 0..3) with their answers applied, and a player client (3).
fn room() -> Harness {
    let mut h = Harness::new(Instant::now());
    for (i, name) in NAMES.iter().enumerate() {
        let c = h.add_client();
        h.publish(c, publisher(i), name);
    }
    h.add_client();
    h
}

fn subtracks(set: &[bool]) -> Vec<Subtrack> {
    set.iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(i, _)| Subtrack {
            id: NAMES[i].to_string(),
            publisher: publisher(i),
        })
        .collect()
}

/// The room player's offers so far.
fn offers(h: &Harness) -> Vec<(String, Vec<OfferedTrack>)> {
    h.events
        .iter()
        .filter_map(|(_, e)| match e {
            MediaEvent::Offer {
                session,
                sdp,
                tracks,
            } if *session == ROOM => Some((sdp.clone(), tracks.clone())),
            _ => None,
        })
        .collect()
}

/// Answers the room player's newest offer if it has not been answered; returns whether it did.
fn answer(h: &mut Harness, answered: &mut usize) -> bool {
    let all = offers(h);
    if all.len() == *answered {
        return false;
    }
    *answered = all.len();
    let (sdp, _) = all.last().cloned().unwrap();
    let answer = h.clients[3]
        .accept_offer(&sdp)
        .expect("client accepts offer");
    h.command(MediaCmd::RemoteAnswer {
        session: ROOM,
        sdp: answer,
    });
    true
}

/// Checks that the SFU and the client agree on the m-lines, and that the active ones carry
/// exactly `want` (both kinds each).
fn check(h: &Harness, want: &[bool]) {
    let (lines, pending) = h.sfu.room_lines(ROOM).expect("room player");
    assert!(!pending, "an offer is still pending");
    let mut active = BTreeSet::new();
    for l in &lines {
        let receiving = h.clients[3].is_receiving(&l.mid);
        assert_eq!(receiving, l.source.is_some(), "line {l:?}");
        if let Some(src) = l.source {
            let i = (src.0 - 1) as usize;
            assert_eq!(l.name.as_deref(), Some(NAMES[i]), "line {l:?}");
            assert!(active.insert((src, l.kind)), "two lines for {l:?}");
        }
    }
    let expected: BTreeSet<(SessionId, TrackKind)> = want
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .flat_map(|(i, _)| {
            [
                (publisher(i), TrackKind::Audio),
                (publisher(i), TrackKind::Video),
            ]
        })
        .collect();
    assert_eq!(active, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any sequence of subtrack sets, answered at once or only later (changes queue behind a
    /// pending offer), ends with exactly the last set active, agreed by both sides, and with
    /// the m-lines reused rather than growing.
    #[test]
    fn room_player_converges(
        first in prop::collection::vec(any::<bool>(), 3),
        steps in prop::collection::vec((prop::collection::vec(any::<bool>(), 3), any::<bool>()), 1..8),
    ) {
        let mut h = room();
        h.command(MediaCmd::StartRoomPlay {
            session: ROOM,
            stream: "room".into(),
            subtracks: subtracks(&first),
        });
        let mut answered = 0;
        let mut last = first.clone();
        for (set, answer_now) in &steps {
            h.command(MediaCmd::SetSubtracks { session: ROOM, subtracks: subtracks(set) });
            if *answer_now {
                while answer(&mut h, &mut answered) {}
            }
            last.clone_from(set);
        }
        while answer(&mut h, &mut answered) {}
        check(&h, &last);
        let (lines, _) = h.sfu.room_lines(ROOM).unwrap();
        // New lines are made only when no line freed by an earlier offer is left, so the
        // lines are at most those of the three publishers (active or freed in that very
        // offer), two each, plus the placeholder of an empty start.
        prop_assert!(lines.len() <= 7, "{} lines", lines.len());
        // Every offer names every mid in its idMapping source list.
        for (sdp, tracks) in offers(&h) {
            for t in &tracks {
                let mid_line = format!("a=mid:{}\r\n", t.mid);
                prop_assert!(sdp.contains(&mid_line));
                prop_assert!(t.source.is_some());
            }
        }
    }
}

/// Runs `d` while every publisher sends Opus every 20 ms and VP8 every 40 ms.
fn run_media(h: &mut Harness, d: Duration) {
    let end = h.now + d;
    let mut n = 0usize;
    while h.now < end {
        let now = h.now;
        for c in 0..3 {
            if h.clients[c].is_connected() {
                h.clients[c].write_frame(now, MediaKind::Audio, Codec::Opus, &opus_frame(80));
                if n.is_multiple_of(2) {
                    let f = if n.is_multiple_of(50) {
                        vp8_keyframe(320, 240, 2000)
                    } else {
                        vp8_delta(900)
                    };
                    h.clients[c].write_frame(now, MediaKind::Video, Codec::Vp8, &f);
                }
            }
        }
        n += 1;
        let next = now + Duration::from_millis(20);
        while h.now < next {
            h.step(next - h.now);
        }
    }
}

/// Frames received on each mid since event index `since`, by subtrack name and kind.
fn flows(h: &Harness, since: usize) -> Vec<(String, TrackKind, usize, bool)> {
    let (lines, _) = h.sfu.room_lines(ROOM).unwrap();
    lines
        .into_iter()
        .map(|l| {
            let n = h.clients[3].media_count_mid(&l.mid, since);
            (l.name.unwrap_or_default(), l.kind, n, l.source.is_some())
        })
        .collect()
}

#[test]
fn media_follows_the_subtracks() {
    let mut h = room();
    assert!(h.run_until(Duration::from_secs(5), |h| (0..3)
        .all(|c| h.clients[c].is_connected())));
    h.command(MediaCmd::StartRoomPlay {
        session: ROOM,
        stream: "room".into(),
        subtracks: subtracks(&[true, true, false]),
    });
    let mut answered = 0;
    answer(&mut h, &mut answered);
    let cand = h.clients[3].candidate_line();
    h.command(MediaCmd::RemoteCandidate {
        session: ROOM,
        candidate: cand,
    });
    assert!(h.run_until(Duration::from_secs(5), |h| h.clients[3].is_connected()));
    let (sdp, tracks) = offers(&h).remove(0);
    assert!(sdp.contains("a=msid:alice ARDAMSaalice"), "{sdp}");
    assert!(sdp.contains("a=msid:bob ARDAMSvbob"), "{sdp}");
    assert_eq!(tracks.len(), 4);

    let mark = h.clients[3].events.len();
    run_media(&mut h, Duration::from_secs(2));
    for (name, kind, frames, active) in flows(&h, mark) {
        assert!(active);
        assert!(frames > 20, "{name} {kind:?}: {frames} frames");
    }

    // Alice leaves, Carol joins: Alice's lines go inactive (and are not reused in the same
    // offer); Carol gets new lines.
    h.command(MediaCmd::SetSubtracks {
        session: ROOM,
        subtracks: subtracks(&[false, true, true]),
    });
    answer(&mut h, &mut answered);
    let (lines, _) = h.sfu.room_lines(ROOM).unwrap();
    assert_eq!(lines.len(), 6);
    run_media(&mut h, Duration::from_millis(300));
    let mark = h.clients[3].events.len();
    run_media(&mut h, Duration::from_secs(2));
    for (name, kind, frames, active) in flows(&h, mark) {
        if active {
            assert!(name != "alice");
            assert!(frames > 20, "{name} {kind:?}: {frames} frames");
        } else {
            assert_eq!(name, "alice");
            assert_eq!(frames, 0, "inactive {kind:?} line still gets media");
        }
    }

    // Alice comes back: she takes the free lines again (no new m-line), and her media flows
    // on them, continuing their sequence numbers.
    h.command(MediaCmd::SetSubtracks {
        session: ROOM,
        subtracks: subtracks(&[true, true, true]),
    });
    answer(&mut h, &mut answered);
    let (lines, _) = h.sfu.room_lines(ROOM).unwrap();
    assert_eq!(lines.len(), 6, "{lines:?}");
    run_media(&mut h, Duration::from_millis(300));
    let mark = h.clients[3].events.len();
    run_media(&mut h, Duration::from_secs(2));
    let last = flows(&h, mark);
    println!("after alice's return (reused lines): {last:?}");
    for (name, kind, frames, active) in last {
        assert!(active, "{name} {kind:?}");
        assert!(frames > 20, "{name} {kind:?}: {frames} frames");
    }
    // Bob leaves: his lines go inactive, nobody else's change.
    h.command(MediaCmd::SetSubtracks {
        session: ROOM,
        subtracks: subtracks(&[true, false, true]),
    });
    answer(&mut h, &mut answered);
    check(&h, &[true, false, true]);
}
