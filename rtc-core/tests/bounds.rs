//! Bounds on the network's paths into the SFU: remote candidates per session, and datagrams
//! from addresses no session uses.
#![allow(clippy::disallowed_methods)] // Instant::now() starts the virtual clock / measures cost

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::{MediaCmd, MediaEvent, SessionId};
use rtc_core::testing::{Datagram, Harness};
use rtc_core::{SfuOutput, DEFAULT_MAX_REMOTE_CANDIDATES};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn connected_publisher(h: &mut Harness, session: SessionId, stream: &str) -> usize {
    let c = h.add_client();
    h.publish(c, session, stream);
    assert!(
        h.run_until(SECS(5), |h| h.sfu.is_connected(session)),
        "publisher {session} connects"
    );
    c
}

/// `n` distinct host candidates (and as many duplicates of the first ones) for `session`.
fn flood_candidates(h: &mut Harness, session: SessionId, n: usize) -> Duration {
    let t0 = Instant::now();
    for i in 0..n {
        let port = 1024 + (i % 60_000) as u16;
        let ip = [10, 100, (i / 60_000) as u8, 1];
        let candidate = format!(
            "candidate:{i} 1 udp 2122260223 {}.{}.{}.{} {port} typ host",
            ip[0], ip[1], ip[2], ip[3]
        );
        h.sfu.handle_command(
            h.now,
            MediaCmd::RemoteCandidate {
                session,
                candidate: candidate.clone(),
            },
        );
        // The same candidate again: a duplicate.
        h.sfu
            .handle_command(h.now, MediaCmd::RemoteCandidate { session, candidate });
    }
    let spent = t0.elapsed();
    h.pump();
    spent
}

/// Finding 8: 40k remote candidates keep at most the bound, and the session keeps working.
#[test]
fn forty_thousand_candidates_keep_the_bound() {
    let mut h = Harness::new(Instant::now());
    let s = SessionId(1);
    let p = connected_publisher(&mut h, s, "s");
    let spent = flood_candidates(&mut h, s, 40_000);
    eprintln!("80k candidate commands (40k distinct) with the default bound: {spent:?}");
    assert_eq!(
        h.sfu.remote_candidate_count(s),
        DEFAULT_MAX_REMOTE_CANDIDATES
    );
    assert_eq!(
        h.sfu.counters().candidates_dropped,
        80_000 - DEFAULT_MAX_REMOTE_CANDIDATES as u64
    );
    h.run_media(p, Duration::from_millis(500));
    assert!(h.sfu.is_connected(s));
    assert!(h.has_event(|e| *e == MediaEvent::MediaStarted { session: s }));
    // A closed session forgets its candidates.
    h.command(MediaCmd::Close { session: s });
    assert_eq!(h.sfu.remote_candidate_count(s), 0);
}

/// The cost the bound removes: with no bound, str0m's agent scans every stored candidate on
/// each add (quadratic). Run by hand for the figure: `cargo test --release -p rtc-core --test
/// bounds -- --ignored --nocapture`.
#[test]
#[ignore = "measurement"]
fn unbounded_candidates_cost() {
    for n in [5_000, 10_000, 20_000, 40_000] {
        let mut h = Harness::new(Instant::now());
        let s = SessionId(1);
        connected_publisher(&mut h, s, "s");
        h.sfu.set_max_remote_candidates(usize::MAX);
        let unbounded = flood_candidates(&mut h, s, n);
        let mut h = Harness::new(Instant::now());
        connected_publisher(&mut h, s, "s");
        let bounded = flood_candidates(&mut h, s, n);
        eprintln!("{n} candidates: unbounded {unbounded:?}, bounded {bounded:?}");
    }
}

/// A STUN binding request `client` sends to the SFU (a consent check), taken off its outbox.
fn stun_request_of(h: &mut Harness, client: usize) -> Datagram {
    for _ in 0..200 {
        h.now += Duration::from_millis(100);
        let now = h.now;
        h.clients[client].handle_timeout(now);
        let found = h.clients[client]
            .outbox
            .iter()
            .find(|d| d.contents.first().is_some_and(|b| *b < 2) && d.contents.len() >= 20)
            .cloned();
        h.pump();
        if let Some(d) = found {
            return d;
        }
    }
    panic!("client sent no STUN request");
}

/// Finding 14: a datagram from an unknown address reaches a session only as a STUN binding
/// request naming that session's ufrag; anything else is dropped and counted.
#[test]
fn unknown_sources_route_by_ufrag_only() {
    let mut h = Harness::new(Instant::now());
    let a = SessionId(1);
    let b = SessionId(2);
    connected_publisher(&mut h, a, "a");
    let cb = connected_publisher(&mut h, b, "b");
    let sfu = h.sfu_addr;
    let before = h.sfu.counters().unknown_source_dropped;

    // Not STUN, from nowhere: DTLS-, RTP- and RTCP-shaped.
    let stranger: SocketAddr = "10.77.0.1:7000".parse().unwrap();
    for (first, second) in [(22u8, 254u8), (128, 96), (128, 200)] {
        let mut data = vec![first, second, 253];
        data.resize(100, 7);
        h.sfu.handle_receive(h.now, stranger, sfu, &data);
        assert!(h.sfu.poll_output().is_none(), "no session answered");
    }
    assert_eq!(h.sfu.counters().unknown_source_dropped, before + 3);
    assert_eq!(h.sfu.routed_session(stranger), None);

    // B's real binding request, replayed from a new address (as after a NAT rebinding).
    let req = stun_request_of(&mut h, cb);
    let roamed: SocketAddr = "10.77.0.2:7001".parse().unwrap();
    h.sfu.handle_receive(h.now, roamed, sfu, &req.contents);
    let mut answered = false;
    while let Some(out) = h.sfu.poll_output() {
        if let SfuOutput::Transmit(t) = out {
            answered |= t.destination == roamed;
        }
    }
    assert!(answered, "the named session answers the binding request");
    assert_eq!(h.sfu.routed_session(roamed), Some(b));
    assert_eq!(h.sfu.counters().unknown_source_dropped, before + 3);

    // The same request with a ufrag no session has: dropped, counted.
    let mut forged = req.contents.clone();
    let mut at = 20;
    loop {
        let typ = u16::from_be_bytes([forged[at], forged[at + 1]]);
        let len = usize::from(u16::from_be_bytes([forged[at + 2], forged[at + 3]]));
        if typ == 0x0006 {
            forged[at + 4] ^= 0x01; // USERNAME: first character of the server's ufrag
            break;
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    let other: SocketAddr = "10.77.0.3:7002".parse().unwrap();
    h.sfu.handle_receive(h.now, other, sfu, &forged);
    assert!(h.sfu.poll_output().is_none());
    assert_eq!(h.sfu.routed_session(other), None);
    assert_eq!(h.sfu.counters().unknown_source_dropped, before + 4);

    // Both sessions still work.
    h.run_for(Duration::from_millis(500));
    assert!(h.sfu.is_connected(a) && h.sfu.is_connected(b));
}
