//! The registry over the in-memory Redis: registration, expiry of a dead node, Redis outages.

#![allow(clippy::disallowed_methods)] // one base instant per test; it adds durations to it

use std::time::{Duration, Instant};

use antenna_cluster::testing::Link;
use antenna_cluster::{Cluster, ClusterConfig, ClusterEvent, MemRedis, NodeInfo, StreamEntry};

fn node(id: &str, port: u16, now: Instant) -> Link {
    let http = format!("127.0.0.1:{port}").parse().unwrap();
    let udp = format!("127.0.0.1:{}", port + 1).parse().unwrap();
    Link::new(Cluster::new(ClusterConfig::new(id, http, udp, 0), now))
}

/// Steps every link every 100 ms from `*now` for `d`.
fn run(
    links: &mut [&mut Link],
    redis: &mut MemRedis,
    redis_up: bool,
    now: &mut Instant,
    d: Duration,
) {
    let end = *now + d;
    while *now < end {
        for l in links.iter_mut() {
            l.step(*now, redis, redis_up);
        }
        *now += Duration::from_millis(100);
    }
}

#[test]
fn nodes_and_streams_register_and_a_dead_node_expires_within_the_ttl() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let (mut a, mut b) = (node("n1", 5080, now), node("n2", 5090, now));
    run(
        &mut [&mut a, &mut b],
        &mut redis,
        true,
        &mut now,
        Duration::from_secs(1),
    );
    assert_eq!(
        redis.keys(now, b"antenna:node:*"),
        vec![b"antenna:node:n1".to_vec(), b"antenna:node:n2".to_vec()]
    );
    let info: NodeInfo =
        serde_json::from_slice(&redis.get(now, b"antenna:node:n1").unwrap()).unwrap();
    assert_eq!(info.http, "127.0.0.1:5080".parse().unwrap());

    a.cluster.stream_started(now, "LiveApp", "s1");
    run(
        &mut [&mut a, &mut b],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(100),
    );
    let entry: StreamEntry =
        serde_json::from_slice(&redis.get(now, b"antenna:stream:LiveApp/s1").unwrap()).unwrap();
    assert_eq!(entry.origin, "n1");

    // Node 2 looks the stream up and finds node 1.
    b.cluster.lookup_stream(now, "LiveApp", "s1");
    b.cluster.lookup_stream(now, "LiveApp", "nope");
    run(
        &mut [&mut a, &mut b],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(100),
    );
    assert!(b.events.contains(&ClusterEvent::StreamOrigin {
        app: "LiveApp".into(),
        stream: "s1".into(),
        entry: Some(entry.clone())
    }));
    assert!(b.events.contains(&ClusterEvent::StreamOrigin {
        app: "LiveApp".into(),
        stream: "nope".into(),
        entry: None
    }));

    // Heartbeats keep the entries alive well past the TTL.
    run(
        &mut [&mut a, &mut b],
        &mut redis,
        true,
        &mut now,
        Duration::from_secs(20),
    );
    assert!(redis.get(now, b"antenna:stream:LiveApp/s1").is_some());

    // Node 1 dies: gone within the TTL, node 2 stays.
    a.kill(&mut redis);
    let died = now;
    while redis.get(now, b"antenna:node:n1").is_some() {
        run(
            &mut [&mut b],
            &mut redis,
            true,
            &mut now,
            Duration::from_millis(100),
        );
        assert!(
            now - died <= antenna_cluster::registry::TTL,
            "n1 outlived its TTL"
        );
    }
    assert!(redis.get(now, b"antenna:stream:LiveApp/s1").is_none());
    assert!(redis.get(now, b"antenna:node:n2").is_some());
}

#[test]
fn a_stream_that_ends_is_removed_and_a_graceful_stop_leaves() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let mut a = node("n1", 5080, now);
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(500),
    );
    a.cluster.stream_started(now, "LiveApp", "s1");
    a.cluster.stream_started(now, "LiveApp", "s2");
    a.cluster.stream_ended(now, "LiveApp", "s1");
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(100),
    );
    assert_eq!(
        redis.keys(now, b"antenna:stream:*"),
        vec![b"antenna:stream:LiveApp/s2".to_vec()]
    );
    a.cluster.leave(now);
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(100),
    );
    assert!(redis.keys(now, b"antenna:*").is_empty());
}

#[test]
fn redis_outage_refuses_lookups_and_the_node_registers_again_when_it_returns() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let mut a = node("n1", 5080, now);
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(500),
    );
    a.cluster.stream_started(now, "LiveApp", "s1");
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(100),
    );
    assert!(a.cluster.is_up());

    // Redis stops and restarts empty.
    run(
        &mut [&mut a],
        &mut redis,
        false,
        &mut now,
        Duration::from_secs(3),
    );
    assert!(!a.cluster.is_up());
    assert!(a
        .events
        .iter()
        .any(|e| matches!(e, ClusterEvent::Down { .. })));
    a.events.clear();
    a.cluster.lookup_stream(now, "LiveApp", "s1");
    a.cluster.stream_started(now, "LiveApp", "s2");
    assert_eq!(
        a.cluster.poll_output(),
        Some(antenna_cluster::ClusterOutput::Event(
            ClusterEvent::Unavailable {
                app: "LiveApp".into(),
                stream: "s1".into()
            }
        ))
    );
    redis = MemRedis::new();
    // Back-off is at most 5 s: within 6 s the node is back with both streams.
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_secs(6),
    );
    assert!(a.cluster.is_up());
    assert!(a.events.contains(&ClusterEvent::Up));
    assert_eq!(
        redis.keys(now, b"antenna:*"),
        vec![
            b"antenna:node:n1".to_vec(),
            b"antenna:stream:LiveApp/s1".to_vec(),
            b"antenna:stream:LiveApp/s2".to_vec()
        ]
    );
}

#[test]
fn lookup_pending_when_redis_drops_is_answered_unavailable() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let mut a = node("n1", 5080, now);
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(500),
    );
    a.events.clear();
    a.cluster.lookup_stream(now, "LiveApp", "s1");
    // The command is written, but Redis goes away before answering.
    while let Some(o) = a.cluster.poll_output() {
        assert!(matches!(o, antenna_cluster::ClusterOutput::Transmit(_)));
    }
    a.cluster.handle_closed(now, "reset");
    let events: Vec<_> = std::iter::from_fn(|| a.cluster.poll_output()).collect();
    assert!(events.contains(&antenna_cluster::ClusterOutput::Event(
        ClusterEvent::Unavailable {
            app: "LiveApp".into(),
            stream: "s1".into()
        }
    )));
}

#[test]
fn room_members_of_every_node_are_listed_refreshed_removed_and_expire_with_a_dead_node() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let (mut a, mut b) = (node("n1", 5080, now), node("n2", 5090, now));
    let step = |a: &mut Link, b: &mut Link, redis: &mut MemRedis, now: &mut Instant, ms| {
        run(&mut [a, b], redis, true, now, Duration::from_millis(ms));
    };
    step(&mut a, &mut b, &mut redis, &mut now, 300);
    a.cluster.member_started(now, "App", "room1", "alice");
    b.cluster.member_started(now, "App", "room1", "bob");
    b.cluster.member_started(now, "App", "room2", "carol");
    step(&mut a, &mut b, &mut redis, &mut now, 100);
    let listed = |b: &mut Link, redis: &mut MemRedis, a: &mut Link, now: &mut Instant| {
        b.events.clear();
        b.cluster.lookup_room(*now, "App", "room1");
        run(&mut [a, b], redis, true, now, Duration::from_millis(100));
        b.events
            .iter()
            .find_map(|e| match e {
                ClusterEvent::RoomMembers { room, members, .. } if room == "room1" => {
                    Some(members.clone())
                }
                _ => None,
            })
            .expect("a room look-up is answered")
    };
    assert_eq!(
        listed(&mut b, &mut redis, &mut a, &mut now),
        vec!["alice".to_string(), "bob".to_string()]
    );
    // Refreshed by the heartbeats: still listed well after one TTL.
    step(&mut a, &mut b, &mut redis, &mut now, 8_000);
    assert_eq!(listed(&mut b, &mut redis, &mut a, &mut now).len(), 2);
    // A member that ends leaves at once.
    b.cluster.member_ended(now, "App", "room1", "bob");
    assert_eq!(
        listed(&mut b, &mut redis, &mut a, &mut now),
        vec!["alice".to_string()]
    );
    // Node 1 dies (no more heartbeats): the room's key expires within the TTL.
    for _ in 0..70 {
        b.step(now, &mut redis, true);
        now += Duration::from_millis(100);
    }
    b.events.clear();
    b.cluster.lookup_room(now, "App", "room1");
    for _ in 0..2 {
        b.step(now, &mut redis, true);
        now += Duration::from_millis(100);
    }
    assert!(b.events.contains(&ClusterEvent::RoomMembers {
        app: "App".into(),
        room: "room1".into(),
        members: vec![],
    }));
    let s = b.cluster.stats();
    assert!(
        s.member_sets >= 2 && s.member_dels == 1 && s.room_lookups == 4,
        "{s:?}"
    );
}

#[test]
fn room_lookup_with_redis_away_is_answered_unavailable() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let mut a = node("n1", 5080, now);
    run(
        &mut [&mut a],
        &mut redis,
        false,
        &mut now,
        Duration::from_millis(300),
    );
    a.cluster.lookup_room(now, "App", "room1");
    run(
        &mut [&mut a],
        &mut redis,
        false,
        &mut now,
        Duration::from_millis(100),
    );
    assert!(a.events.contains(&ClusterEvent::RoomUnavailable {
        app: "App".into(),
        room: "room1".into(),
    }));
}
