//! Two nodes' shared data over one in-memory Redis, through the same RESP bytes.

use std::time::{Duration, Instant};

use antenna_store::{AppSettings, Broadcast, Store, Token, TokenType, WriteOp, WriteSeq};

use super::*;
use crate::model::MemRedis;
use crate::testing::DataLink;

const APP: &str = "App";

fn node(id: &str, now: Instant) -> DataLink {
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

fn settings(timeout: u64) -> WriteOp {
    WriteOp::PutSettings {
        app: APP.into(),
        settings: Box::new(AppSettings {
            webrtc_client_start_timeout_ms: timeout,
            ..AppSettings::default()
        }),
    }
}

fn broadcast(id: &str) -> WriteOp {
    WriteOp::PutBroadcast {
        app: APP.into(),
        broadcast: Box::new(Broadcast {
            stream_id: id.into(),
            ..Broadcast::default()
        }),
    }
}

fn token(id: &str) -> WriteOp {
    WriteOp::PutToken {
        app: APP.into(),
        token: Token {
            token_id: id.into(),
            stream_id: "s1".into(),
            expire_date: i64::MAX,
            token_type: TokenType::Play,
            room_id: None,
        },
    }
}

struct World {
    now: Instant,
    redis: MemRedis,
    up: bool,
    nodes: Vec<DataLink>,
}

impl World {
    fn new(n: usize) -> World {
        let now = Instant::now();
        World {
            now,
            redis: MemRedis::new(),
            up: true,
            nodes: (1..=n).map(|i| node(&format!("n{i}"), now)).collect(),
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            for _ in 0..3 {
                for n in &mut self.nodes {
                    n.step(self.now, &mut self.redis, self.up);
                }
            }
            if self.now >= end {
                return;
            }
            self.now = (self.now + Duration::from_millis(50)).min(end);
        }
    }
}

#[test]
fn a_write_on_one_node_is_read_on_the_other_once_durable() {
    let mut w = World::new(2);
    assert!(w.nodes[0].data.health().is_err(), "not loaded yet");
    w.run(Duration::from_millis(100));
    assert!(w.nodes[0].data.health().is_ok());
    let seq = w.nodes[0].data.write(broadcast("s1")).unwrap();
    assert!(w.nodes[0].data.durable_seq() < seq, "not answered yet");
    w.run(Duration::from_millis(100));
    assert_eq!(w.nodes[0].data.durable_seq(), seq);
    assert!(w.nodes[1].data.data().broadcast(APP, "s1").is_some());
    w.nodes[1]
        .data
        .write(WriteOp::DeleteBroadcast {
            app: APP.into(),
            stream_id: "s1".into(),
        })
        .unwrap();
    w.run(Duration::from_millis(100));
    assert!(w.nodes[0].data.data().broadcast(APP, "s1").is_none());
    assert_eq!(w.nodes[1].data.stats().reloads, 1);
    assert_eq!(w.nodes[0].data.stats().reloads, 1);
}

#[test]
fn a_write_after_an_idle_spell_does_not_time_the_connection_out() {
    // Store::write has no `now`; the connection's last call was 10 s before it (no command
    // pending meanwhile, so no timer call either): the write must not count as 10 s old.
    let mut w = World::new(2);
    w.run(Duration::from_millis(100));
    let resyncs = w.nodes[0].data.stats().resyncs;
    w.run(Duration::from_secs(10));
    let seq = w.nodes[0].data.write(broadcast("s1")).unwrap();
    w.run(Duration::from_millis(100));
    assert_eq!(w.nodes[0].data.durable_seq(), seq);
    assert!(w.nodes[0].data.health().is_ok());
    assert_eq!(
        w.nodes[0].data.stats().resyncs,
        resyncs,
        "no reconnection and reload"
    );
    assert!(w.nodes[1].data.data().broadcast(APP, "s1").is_some());
}

#[test]
fn seeds_do_not_overwrite_and_settings_changes_reach_the_other_node() {
    let mut w = World::new(2);
    // Both nodes seed their configuration's settings before loading: the first one to
    // reach Redis sets them, the other reads them.
    w.nodes[0].data.write(settings(1111)).unwrap();
    w.nodes[1].data.write(settings(2222)).unwrap();
    w.run(Duration::from_millis(100));
    let timeout = |w: &World, i: usize| {
        w.nodes[i]
            .data
            .data()
            .settings(APP)
            .webrtc_client_start_timeout_ms
    };
    assert_eq!((timeout(&w, 0), timeout(&w, 1)), (1111, 1111));
    w.nodes[1].events.clear();
    w.nodes[0].data.write(settings(3333)).unwrap();
    w.run(Duration::from_millis(100));
    assert_eq!(timeout(&w, 1), 3333);
    assert_eq!(
        w.nodes[1].events,
        vec![DataEvent::SettingsChanged(APP.into())]
    );
}

#[test]
fn two_nodes_racing_on_one_token_exactly_one_spends_it() {
    let mut w = World::new(2);
    w.run(Duration::from_millis(100));
    w.nodes[0].data.write(token("t1")).unwrap();
    w.run(Duration::from_millis(100));
    let frame = r#"{"command":"play","streamId":"s1","token":"t1"}"#;
    for n in &w.nodes {
        assert_eq!(
            n.data.token_in_frame(frame),
            Some((APP.into(), "t1".into()))
        );
    }
    let a = w.nodes[0].data.claim(w.now, APP, "t1").unwrap();
    let b = w.nodes[1].data.claim(w.now, APP, "t1").unwrap();
    w.run(Duration::from_millis(100));
    let won = |n: &DataLink, c: u64| {
        n.events.iter().find_map(|e| match e {
            DataEvent::ClaimDone { claim, won } if *claim == c => Some(*won),
            _ => None,
        })
    };
    let (wa, wb) = (won(&w.nodes[0], a).unwrap(), won(&w.nodes[1], b).unwrap());
    assert!(wa ^ wb, "exactly one wins: {wa} {wb}");
    let (winner, loser) = if wa { (0, 1) } else { (1, 0) };
    assert!(w.nodes[loser].data.data().token(APP, "t1").is_none());
    // The winner's request is accepted: the policy spends the token.
    w.nodes[winner]
        .data
        .write(WriteOp::DeleteToken {
            app: APP.into(),
            token_id: "t1".into(),
        })
        .unwrap();
    w.nodes[winner].data.settle(w.now, APP, "t1");
    w.run(Duration::from_millis(100));
    assert!(w
        .nodes
        .iter()
        .all(|n| n.data.data().token(APP, "t1").is_none()));
    assert!(w.nodes[0].data.token_in_frame(frame).is_none());
    assert_eq!(
        w.redis.keys(w.now, b"antenna:data:App:tokens"),
        Vec::<Vec<u8>>::new()
    );
}

#[test]
fn a_claimed_token_not_used_goes_back() {
    let mut w = World::new(2);
    w.run(Duration::from_millis(100));
    w.nodes[0].data.write(token("t1")).unwrap();
    w.run(Duration::from_millis(100));
    let c = w.nodes[1].data.claim(w.now, APP, "t1").unwrap();
    w.run(Duration::from_millis(100));
    assert!(w.nodes[1].events.contains(&DataEvent::ClaimDone {
        claim: c,
        won: true
    }));
    // The request was refused for another reason: the token is put back.
    w.nodes[1].data.settle(w.now, APP, "t1");
    w.run(Duration::from_millis(100));
    let c = w.nodes[0].data.claim(w.now, APP, "t1").unwrap();
    w.run(Duration::from_millis(100));
    assert!(w.nodes[0].events.contains(&DataEvent::ClaimDone {
        claim: c,
        won: true
    }));
}

#[test]
fn redis_away_degrades_then_the_backlog_and_a_refill_restore_it() {
    let mut w = World::new(2);
    w.run(Duration::from_millis(100));
    w.nodes[0].data.write(settings(1111)).unwrap();
    w.nodes[0].data.write(token("t1")).unwrap();
    w.run(Duration::from_millis(100));
    w.up = false;
    w.run(Duration::from_millis(100));
    let n0 = &mut w.nodes[0].data;
    assert!(matches!(n0.health(), Err(StoreError::Degraded(_))));
    assert_eq!(n0.claim(w.now, APP, "t1"), None);
    assert!(n0
        .write(WriteOp::DeleteToken {
            app: APP.into(),
            token_id: "t1".into()
        })
        .is_err());
    let seq = n0.write(broadcast("s2")).unwrap();
    assert!(n0.data().broadcast(APP, "s2").is_some(), "read from memory");
    // Redis returns empty (a restart without persistence): refilled from memory.
    w.redis = MemRedis::new();
    w.up = true;
    w.run(Duration::from_secs(6));
    assert_eq!(w.nodes[0].data.durable_seq(), seq);
    assert!(w.nodes[0].data.health().is_ok());
    for n in &w.nodes {
        assert!(n.data.data().broadcast(APP, "s2").is_some());
        // Tokens are not refilled: which were spent while Redis lost them nobody knows.
        assert!(n.data.data().token(APP, "t1").is_none());
        assert_eq!(
            n.data.data().settings(APP).webrtc_client_start_timeout_ms,
            1111
        );
    }
    assert!(w.redis.get(w.now, b"antenna:data:App:settings").is_some());
    assert_eq!(w.nodes[0].data.durable_seq(), WriteSeq(seq.0));
}
