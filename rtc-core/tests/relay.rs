//! Relay sessions: an edge node's media layer plays a stream from its origin node as a client
//! and forwards it to its own players (cluster mode's media path), two `Sfu`s on one
//! in-memory network.
#![allow(clippy::disallowed_methods)] // the one Instant::now() that starts the virtual clock

use std::time::{Duration, Instant};

use proto_core::{FailReason, MediaCmd, MediaEvent, SessionId};
use rtc_core::testing::Nodes;
use str0m::media::MediaKind;

const ORIGIN: usize = 0;
const EDGE: usize = 1;
const PUB: SessionId = SessionId(1);
const ORIGIN_PLAY: SessionId = SessionId(2);
const RELAY: SessionId = SessionId(100);
const SECS: fn(u64) -> Duration = Duration::from_secs;

fn connected(n: &Nodes, node: usize, s: SessionId) -> bool {
    n.has_event(node, |e| *e == MediaEvent::Connected { session: s })
}

/// An origin with a publisher (client 0) sending, an edge with two relay addresses whose
/// relay of the stream is connected.
fn origin_edge() -> Nodes {
    let mut n = Nodes::new(Instant::now());
    n.add_node(1, 0);
    n.add_node(2, 2);
    let p = n.add_client();
    n.publish(ORIGIN, p, PUB, "cam");
    assert!(
        n.run_until(SECS(5), |n| connected(n, ORIGIN, PUB)),
        "publisher connects"
    );
    n.run_media(p, Duration::from_millis(300));
    assert!(n.relay(ORIGIN, ORIGIN_PLAY, PUB, EDGE, RELAY, "cam"));
    assert!(
        n.run_until(SECS(5), |n| connected(n, EDGE, RELAY)
            && connected(n, ORIGIN, ORIGIN_PLAY)),
        "relay connects (edge: full ICE, controlling, DTLS client)"
    );
    n
}

#[test]
fn relay_answer_is_full_ice_and_dtls_client() {
    let n = origin_edge();
    let answer = n
        .find(EDGE, RELAY, |e| match e {
            MediaEvent::Answer { sdp, .. } => Some(sdp.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        !answer.contains("a=ice-lite"),
        "the edge is a full ICE agent"
    );
    let setup: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=setup"))
        .collect();
    assert!(
        answer.contains("a=setup:active"),
        "the edge is the DTLS client: {setup:?}"
    );
    assert!(answer.contains("a=recvonly"), "the relay receives only");
    assert!(
        answer.contains("10.2.0.1 5001"),
        "from its own relay address"
    );
    assert!(n.node_to_node > 0);
}

#[test]
fn relay_forwards_to_two_edge_players_and_keyframes_go_upstream() {
    let mut n = origin_edge();
    let (v1, v2) = (n.add_client(), n.add_client());
    let pli_before = n.clients[0].keyframe_requests();
    n.play(EDGE, v1, SessionId(101), "cam", RELAY);
    n.play(EDGE, v2, SessionId(102), "cam", RELAY);
    assert!(n.run_until(SECS(5), |n| n.clients[v1].is_connected()
        && n.clients[v2].is_connected()));
    let (_, video) = n.run_media(0, SECS(2));
    assert!(video >= 50);
    for v in [v1, v2] {
        let (a, vi) = (
            n.clients[v].media_count(MediaKind::Audio),
            n.clients[v].media_count(MediaKind::Video),
        );
        assert!(
            a >= 80 && vi >= 40,
            "edge player {v}: {a} audio, {vi} video frames"
        );
    }
    assert!(
        n.clients[0].keyframe_requests() > pli_before,
        "edge players' keyframe requests reach the origin's publisher"
    );
    assert_eq!(
        n.nodes[EDGE].sfu.relay_count(),
        1,
        "one relay for both players"
    );
    assert!(n.has_event(EDGE, |e| *e == MediaEvent::MediaStarted { session: RELAY }));
}

#[test]
fn two_relays_from_one_origin_and_the_bound() {
    let mut n = origin_edge();
    let p2 = n.add_client();
    n.publish(ORIGIN, p2, SessionId(3), "cam2");
    assert!(n.run_until(SECS(5), |n| connected(n, ORIGIN, SessionId(3))));
    assert!(n.relay(
        ORIGIN,
        SessionId(4),
        SessionId(3),
        EDGE,
        SessionId(200),
        "cam2"
    ));
    assert!(n.run_until(SECS(5), |n| connected(n, EDGE, SessionId(200))));
    // Both relays hear from the origin's one address, each on its own edge address.
    let (v1, v2) = (n.add_client(), n.add_client());
    n.play(EDGE, v1, SessionId(101), "cam", RELAY);
    n.play(EDGE, v2, SessionId(201), "cam2", SessionId(200));
    assert!(n.run_until(SECS(5), |n| n.clients[v1].is_connected()
        && n.clients[v2].is_connected()));
    for _ in 0..50 {
        n.run_media(0, Duration::from_millis(20));
        n.run_media(p2, Duration::from_millis(20));
    }
    assert!(n.clients[v1].media_count(MediaKind::Video) >= 10);
    assert!(n.clients[v2].media_count(MediaKind::Video) >= 10);
    // A third relay: no address left.
    let p3 = n.add_client();
    n.publish(ORIGIN, p3, SessionId(5), "cam3");
    assert!(!n.relay(
        ORIGIN,
        SessionId(6),
        SessionId(5),
        EDGE,
        SessionId(300),
        "cam3"
    ));
    assert!(n.has_event(EDGE, |e| *e
        == MediaEvent::Failed {
            session: SessionId(300),
            reason: FailReason::RelayCapacity
        }));
    assert_eq!(n.nodes[EDGE].sfu.counters().relays_refused, 1);
    assert_eq!(n.nodes[EDGE].sfu.relay_count(), 2);
}

#[test]
fn relay_ends_when_the_origin_closes_its_play() {
    let mut n = origin_edge();
    n.command(
        ORIGIN,
        MediaCmd::Close {
            session: ORIGIN_PLAY,
        },
    );
    assert!(
        n.run_until(SECS(10), |n| n.has_event(EDGE, |e| matches!(e,
            MediaEvent::Closed { session } | MediaEvent::Failed { session, .. } if *session == RELAY))),
        "the edge learns the relay is over"
    );
    assert_eq!(
        n.nodes[EDGE].sfu.relay_count(),
        0,
        "its address is free again"
    );
}

#[test]
fn closing_the_relay_ends_the_origin_play() {
    let mut n = origin_edge();
    n.command(EDGE, MediaCmd::Close { session: RELAY });
    assert_eq!(n.nodes[EDGE].sfu.relay_count(), 0);
    assert!(
        n.run_until(SECS(10), |n| n.has_event(ORIGIN, |e| matches!(e,
            MediaEvent::Closed { session } | MediaEvent::Failed { session, .. } if *session == ORIGIN_PLAY))),
        "the origin's play session ends"
    );
}
