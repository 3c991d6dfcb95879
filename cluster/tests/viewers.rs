//! Viewer counts across nodes over the in-memory Redis: each node's counts in the stream's
//! hash, the other nodes' sums read back, a dead node's count left out, Redis away.

#![allow(clippy::disallowed_methods)] // one base instant per test; it adds durations to it

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use antenna_cluster::testing::Link;
use antenna_cluster::{Cluster, ClusterConfig, ClusterEvent, MemRedis};

fn node(id: &str, port: u16, now: Instant) -> Link {
    let http = format!("127.0.0.1:{port}").parse().unwrap();
    let udp = format!("127.0.0.1:{}", port + 1).parse().unwrap();
    Link::new(Cluster::new(ClusterConfig::new(id, http, udp, 0), now))
}

/// Steps every link every 100 ms from `*now` for `d`.
fn run(links: &mut [&mut Link], redis: &mut MemRedis, up: bool, now: &mut Instant, d: Duration) {
    let end = *now + d;
    while *now < end {
        for l in links.iter_mut() {
            l.step(*now, redis, up);
        }
        *now += Duration::from_millis(100);
    }
}

fn counts(n: usize) -> Vec<(String, String, usize)> {
    vec![("LiveApp".into(), "s1".into(), n)]
}

/// The last `others` reported for LiveApp/s1 (and drains the events).
fn others(l: &mut Link) -> Option<usize> {
    let last = l.events.iter().rev().find_map(|e| match e {
        ClusterEvent::Viewers {
            app,
            stream,
            others,
        } if app == "LiveApp" && stream == "s1" => Some(*others),
        _ => None,
    });
    l.events.clear();
    last
}

fn hash(redis: &mut MemRedis, now: Instant) -> BTreeMap<String, String> {
    redis.hash(now, b"antenna:viewers:LiveApp/s1")
}

#[test]
fn each_node_sees_the_sum_of_the_others_and_writes_only_changes() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let (mut a, mut b) = (node("n1", 5080, now), node("n2", 5090, now));
    a.cluster.set_viewers(counts(1));
    b.cluster.set_viewers(counts(2));
    // Written at the writer's heartbeat, read at the reader's: two heartbeats at most.
    let d = Duration::from_secs(5);
    run(&mut [&mut a, &mut b], &mut redis, true, &mut now, d);
    let want: BTreeMap<String, String> =
        [("n1".into(), "1".into()), ("n2".into(), "2".into())].into();
    assert_eq!(hash(&mut redis, now), want);
    assert_eq!((others(&mut a), others(&mut b)), (Some(2), Some(1)));

    // Unchanged counts: the fields are not written again, the key is kept alive.
    run(
        &mut [&mut a, &mut b],
        &mut redis,
        true,
        &mut now,
        Duration::from_secs(10),
    );
    assert_eq!(a.cluster.stats().viewer_sets, 1);
    assert!(a.cluster.stats().viewer_expires >= 6);
    assert_eq!(hash(&mut redis, now), want);
    assert_eq!(
        (others(&mut a), others(&mut b)),
        (None, None),
        "no change, no event"
    );

    // Node 2's viewers leave: its field goes, node 1 is told.
    b.cluster.set_viewers(counts(0));
    run(&mut [&mut a, &mut b], &mut redis, true, &mut now, d);
    assert_eq!(hash(&mut redis, now), [("n1".into(), "1".into())].into());
    assert_eq!(a.cluster.stats().viewer_sets, 1);
    assert_eq!(b.cluster.stats().viewer_dels, 1);
    assert_eq!(others(&mut a), Some(0));

    // A stream that ended on node 1 leaves the hash too, and the key expires.
    a.cluster.set_viewers(Vec::new());
    run(&mut [&mut a, &mut b], &mut redis, true, &mut now, d);
    assert!(hash(&mut redis, now).is_empty());
}

#[test]
fn a_dead_nodes_viewers_stop_counting_within_the_ttl() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let (mut a, mut b) = (node("n1", 5080, now), node("n2", 5090, now));
    a.cluster.set_viewers(counts(1));
    b.cluster.set_viewers(counts(5));
    run(
        &mut [&mut a, &mut b],
        &mut redis,
        true,
        &mut now,
        Duration::from_secs(3),
    );
    assert_eq!(others(&mut a), Some(5));

    b.kill(&mut redis);
    let killed = now;
    let mut gone = None;
    while now < killed + Duration::from_secs(12) {
        run(
            &mut [&mut a],
            &mut redis,
            true,
            &mut now,
            Duration::from_millis(100),
        );
        if others(&mut a) == Some(0) {
            gone = Some(now - killed);
            break;
        }
    }
    let gone = gone.expect("the dead node's viewers still count");
    eprintln!("a dead node's viewers stopped counting {gone:?} after the kill");
    // Its node key expires within the TTL; the next heartbeat's read leaves it out.
    assert!(gone <= Duration::from_secs(6 + 2 + 1), "{gone:?}");
    // Its field is still in the hash, which node 1 keeps alive: only liveness drops it.
    assert_eq!(
        hash(&mut redis, now).get("n2").map(String::as_str),
        Some("5")
    );
}

#[test]
fn redis_away_means_local_counts_and_everything_is_written_again_when_it_returns() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let (mut a, mut b) = (node("n1", 5080, now), node("n2", 5090, now));
    a.cluster.set_viewers(counts(1));
    b.cluster.set_viewers(counts(2));
    run(
        &mut [&mut a, &mut b],
        &mut redis,
        true,
        &mut now,
        Duration::from_secs(3),
    );
    assert_eq!(others(&mut a), Some(2));

    run(
        &mut [&mut a, &mut b],
        &mut redis,
        false,
        &mut now,
        Duration::from_secs(1),
    );
    assert_eq!(
        others(&mut a),
        Some(0),
        "Redis away: the others count nothing"
    );
    // Node 2's viewers leave while Redis is away: its field goes when Redis returns.
    let (second, up, down) = (Duration::from_secs(1), true, false);
    b.cluster.set_viewers(counts(0));
    run(&mut [&mut a, &mut b], &mut redis, up, &mut now, 5 * second);
    assert_eq!(hash(&mut redis, now), [("n1".into(), "1".into())].into());
    let last = others(&mut a);
    assert!(matches!(last, None | Some(0)), "{last:?}");
    b.cluster.set_viewers(counts(2));
    run(&mut [&mut a, &mut b], &mut redis, up, &mut now, 5 * second);
    assert_eq!(others(&mut a), Some(2));
    run(&mut [&mut a, &mut b], &mut redis, down, &mut now, second);
    assert_eq!(others(&mut a), Some(0));

    // Redis comes back empty (a restart without persistence).
    let mut redis = MemRedis::new();
    run(
        &mut [&mut a, &mut b],
        &mut redis,
        true,
        &mut now,
        Duration::from_secs(8),
    );
    assert_eq!(hash(&mut redis, now).len(), 2);
    assert_eq!(others(&mut a), Some(2));
}

#[test]
fn reads_are_bounded_per_heartbeat_and_take_turns() {
    let mut now = Instant::now();
    let mut redis = MemRedis::new();
    let mut a = node("n1", 5080, now);
    let max = antenna_cluster::registry::MAX_VIEWER_STREAMS;
    let many: Vec<_> = (0..max + 10)
        .map(|i| ("LiveApp".to_string(), format!("s{i:04}"), 0))
        .collect();
    a.cluster.set_viewers(many);
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_millis(500),
    );
    assert_eq!(a.cluster.stats().viewer_reads, max as u64);
    run(
        &mut [&mut a],
        &mut redis,
        true,
        &mut now,
        Duration::from_secs(2),
    );
    assert_eq!(a.cluster.stats().viewer_reads, 2 * max as u64);
    // Zero counts are read, never written.
    assert_eq!(a.cluster.stats().viewer_sets, 0);
}
