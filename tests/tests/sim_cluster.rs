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

// ---- The shared data (broadcasts, tokens, settings) of three nodes in one Redis ----

use antenna_cluster::testing::DataLink;
use antenna_cluster::{ConnConfig, DataConfig, DataEvent, SharedData};
use antenna_store::{AppSettings, Broadcast, Store, Token, TokenType, WriteOp};

const APP: &str = "WebRTCAppEE";

fn data_node(id: &str, now: Instant) -> DataLink {
    DataLink::new(SharedData::new(
        DataConfig {
            node_id: id.into(),
            prefix: "antenna".into(),
            apps: vec![APP.into()],
            conn: ConnConfig::default(),
        },
        now,
    ))
}

/// Three nodes write, delete and race on single-use tokens for 60 virtual seconds while Redis
/// stops (half the time losing everything) and returns, as the seed says. Invariants: no
/// token is spent by two nodes; a node's durable writes are in Redis; once Redis has been up
/// a while, every node holds the same records. Returns the transcript.
fn shared_scenario(seed: u64) -> String {
    let mut dice = Dice(seed ^ 0x5eed);
    let start = Instant::now();
    let mut now = start;
    let mut redis = MemRedis::new();
    let mut redis_up = true;
    let mut nodes: Vec<DataLink> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| data_node(id, start))
        .collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        // Each node's configuration seeds other settings: the first to reach Redis wins.
        let seed_settings = AppSettings {
            webrtc_client_start_timeout_ms: 1000 + i as u64,
            ..AppSettings::default()
        };
        n.data
            .write(WriteOp::PutSettings {
                app: APP.into(),
                settings: Box::new(seed_settings),
            })
            .unwrap();
    }
    let mut log = String::new();
    let mut claims: Vec<(usize, u64, String)> = Vec::new();
    let mut winners: std::collections::HashMap<String, usize> = Default::default();
    let mut tokens = 0u64;
    for step in 0..600u64 {
        now += Duration::from_millis(100);
        if redis_up && dice.chance(2) {
            redis_up = false;
            let wiped = dice.chance(50);
            if wiped {
                redis = MemRedis::new();
            }
            log.push_str(&format!("{step} redis down wiped={wiped}\n"));
        } else if !redis_up && dice.chance(15) {
            redis_up = true;
            log.push_str(&format!("{step} redis up\n"));
        }
        // Operations on random nodes (the last 10 s are quiet: the nodes must converge).
        if step < 500 {
            let i = (dice.next() % 3) as usize;
            let d = &mut nodes[i].data;
            let r = match dice.next() % 10 {
                0..=2 => d.write(WriteOp::PutBroadcast {
                    app: APP.into(),
                    broadcast: Box::new(Broadcast {
                        stream_id: format!("b{}", dice.next() % 5),
                        name: Some(format!("step {step} on n{}", i + 1)),
                        ..Broadcast::default()
                    }),
                }),
                3 => d.write(WriteOp::DeleteBroadcast {
                    app: APP.into(),
                    stream_id: format!("b{}", dice.next() % 5),
                }),
                4 | 5 => {
                    tokens += 1;
                    d.write(WriteOp::PutToken {
                        app: APP.into(),
                        token: Token {
                            token_id: format!("t{tokens}"),
                            stream_id: "s1".into(),
                            expire_date: i64::MAX,
                            token_type: TokenType::Play,
                            room_id: None,
                        },
                    })
                }
                _ => {
                    // Two nodes race on a token the first one knows.
                    let t = format!("t{}", 1 + dice.next() % tokens.max(1));
                    let j = (i + 1 + (dice.next() % 2) as usize) % 3;
                    for k in [i, j] {
                        let frame =
                            format!(r#"{{"command":"play","streamId":"s1","token":"{t}"}}"#);
                        if nodes[k].data.token_in_frame(&frame).is_some() {
                            if let Some(c) = nodes[k].data.claim(now, APP, &t) {
                                claims.push((k, c, t.clone()));
                            }
                        }
                    }
                    Ok(antenna_store::WriteSeq(0))
                }
            };
            log.push_str(&format!("{step} n{} op {}\n", i + 1, r.is_ok()));
        }
        for n in nodes.iter_mut() {
            n.step(now, &mut redis, redis_up);
        }
        // Claims answered: a winner spends its token (the accepted play), then settles.
        for (k, n) in nodes.iter_mut().enumerate() {
            for e in std::mem::take(&mut n.events) {
                let DataEvent::ClaimDone { claim, won } = e else {
                    continue;
                };
                let Some(pos) = claims.iter().position(|(kk, c, _)| *kk == k && *c == claim) else {
                    continue;
                };
                let (_, _, t) = claims.remove(pos);
                log.push_str(&format!("{step} n{} claim {t} won={won}\n", k + 1));
                if won {
                    if let Some(other) = winners.insert(t.clone(), k) {
                        panic!(
                            "seed {seed}: token {t} spent by n{} and n{}",
                            other + 1,
                            k + 1
                        );
                    }
                    n.data
                        .write(WriteOp::DeleteToken {
                            app: APP.into(),
                            token_id: t.clone(),
                        })
                        .expect("spend after a won claim");
                }
                n.data.settle(now, APP, &t);
            }
        }
        for n in nodes.iter_mut() {
            n.step(now, &mut redis, redis_up);
        }
    }
    if !redis_up {
        redis_up = true;
        log.push_str("end redis up\n");
    }
    for _ in 0..100 {
        now += Duration::from_millis(100);
        for n in nodes.iter_mut() {
            n.step(now, &mut redis, redis_up);
        }
    }
    assert!(claims.is_empty(), "seed {seed}: every claim answered");
    let first = nodes[0].data.data().app(APP).cloned();
    for (i, n) in nodes.iter_mut().enumerate() {
        assert!(
            n.data.flush().is_ok(),
            "seed {seed}: n{} wrote everything",
            i + 1
        );
        assert!(n.data.health().is_ok(), "seed {seed}: n{} healthy", i + 1);
        assert_eq!(
            n.data.data().app(APP).cloned(),
            first,
            "seed {seed}: n{} holds other records than n1",
            i + 1
        );
    }
    let a = first.expect("records");
    for t in winners.keys() {
        assert!(
            !a.tokens.contains_key(t),
            "seed {seed}: spent {t} came back"
        );
    }
    log.push_str(&format!(
        "broadcasts {:?} tokens {} spent {} redis commands {}\n",
        a.broadcasts.keys().collect::<Vec<_>>(),
        a.tokens.len(),
        winners.len(),
        redis.commands
    ));
    log
}

#[test]
fn shared_data_converges_and_tokens_are_spent_once_under_injected_failures() {
    for seed in 0..32 {
        let log = shared_scenario(seed);
        if seed == 0 {
            eprintln!("{}", log.lines().last().unwrap_or_default());
        }
    }
}

#[test]
fn shared_data_same_seed_same_run() {
    assert_eq!(shared_scenario(7), shared_scenario(7));
}
