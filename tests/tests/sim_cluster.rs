//! The cluster registry in the simulation: three nodes' cluster cores and the in-memory Redis
//! on one virtual clock, node 1 a full simulated server whose publish goes live. Redis outages
//! (some of them restarts that lose everything) and the death of node 3 are injected by the
//! seed; the registry must hold what is alive and forget what died, within the TTL.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use antenna_cluster::registry::TTL;
use antenna_cluster::testing::Link;
use antenna_cluster::{Cluster, ClusterConfig, ClusterEvent, MemRedis, StreamEntry};
use antenna_tests::media::MediaSim;
use proto_core::EventKind;

/// splitmix64: the scenario's dice, from the seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn link(id: &str, port: u16, now: Instant) -> Link {
    let http = SocketAddr::from(([127, 0, 0, 1], port));
    let udp = SocketAddr::from(([127, 0, 0, 1], port + 1));
    Link::new(Cluster::new(ClusterConfig::new(id, http, udp, 0), now))
}

/// Longest time a live node may be missing from a Redis that has been up: the longest
/// back-off plus one heartbeat, plus a step.
const SETTLE: Duration = Duration::from_millis(5_000 + 2_000 + 200);

/// Runs one seed for 60 virtual seconds; returns the log of what happened (for determinism).
fn scenario(seed: u64) -> String {
    let mut dice = Dice(seed);
    let mut m = MediaSim::new(seed);
    m.sim.node.sig.set_record_events(true);
    let start = m.sim.now();
    let mut redis = MemRedis::new();
    let mut nodes = [
        link("n1", 5080, start),
        link("n2", 5090, start),
        link("n3", 5100, start),
    ];
    let mut alive = [true; 3];
    let mut killed_at: Option<Instant> = None;
    let kill_step = 50 + dice.next() % 400;
    let mut redis_up = true;
    let mut redis_up_since = start;
    let mut live_since: Option<Instant> = None;
    let mut log = String::new();
    m.publisher("cam");
    for step in 0..600u64 {
        m.run(Duration::from_millis(100));
        let now = m.sim.now();
        while let Some(ev) = m.sim.node.sig.poll_event() {
            match ev.kind {
                EventKind::PublishStarted => {
                    nodes[0].cluster.stream_started(now, &ev.app, &ev.stream);
                    live_since.get_or_insert(now);
                }
                EventKind::PublishEnded => nodes[0].cluster.stream_ended(now, &ev.app, &ev.stream),
                _ => {}
            }
        }
        // Failures from the seed: Redis stops (half the time losing its data) and returns;
        // node 3 dies once.
        if redis_up && dice.chance(2) {
            redis_up = false;
            if dice.chance(50) {
                redis = MemRedis::new();
            }
            log.push_str(&format!("{step} redis down\n"));
        } else if !redis_up && dice.chance(15) {
            redis_up = true;
            redis_up_since = now;
            log.push_str(&format!("{step} redis up\n"));
        }
        if step == kill_step {
            nodes[2].kill(&mut redis);
            alive[2] = false;
            killed_at = Some(now);
            log.push_str(&format!("{step} n3 killed\n"));
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            if alive[i] {
                n.step(now, &mut redis, redis_up);
            }
        }
        // Invariants.
        let settled = redis_up && now - redis_up_since >= SETTLE && now - start >= SETTLE;
        for (i, id) in ["n1", "n2", "n3"].iter().enumerate() {
            let present = redis
                .get(now, format!("antenna:node:{id}").as_bytes())
                .is_some();
            if alive[i] && settled {
                assert!(
                    present,
                    "seed {seed} step {step}: live {id} missing from the registry"
                );
            }
        }
        if let Some(k) = killed_at {
            if now - k >= TTL {
                assert!(
                    redis.get(now, b"antenna:node:n3").is_none(),
                    "seed {seed} step {step}: n3 outlived its TTL"
                );
            }
        }
        if settled && live_since.is_some_and(|t| now - t >= SETTLE) {
            let entry: StreamEntry = serde_json::from_slice(
                &redis
                    .get(now, b"antenna:stream:WebRTCAppEE/cam")
                    .expect("live stream registered"),
            )
            .unwrap();
            assert_eq!(entry.origin, "n1");
        }
        // Node 2 asks where the stream is, now and then: answered, or refused while Redis is
        // away, never left hanging.
        if step % 50 == 25 {
            nodes[1].cluster.lookup_stream(now, "WebRTCAppEE", "cam");
            nodes[1].step(now, &mut redis, redis_up);
        }
    }
    assert!(
        live_since.is_some(),
        "seed {seed}: the publish never went live"
    );
    let lookups = nodes[1]
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClusterEvent::StreamOrigin { .. } | ClusterEvent::Unavailable { .. }
            )
        })
        .count();
    assert_eq!(lookups, 12, "seed {seed}: every look-up answered");
    for e in &nodes[1].events {
        log.push_str(&format!("{e:?}\n"));
    }
    log.push_str(&format!("redis commands {}\n", redis.commands));
    log
}

#[test]
fn registry_holds_the_living_and_forgets_the_dead_under_injected_failures() {
    for seed in 0..8 {
        scenario(seed);
    }
}

#[test]
fn same_seed_same_run() {
    assert_eq!(scenario(42), scenario(42));
}
