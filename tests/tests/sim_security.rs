//! Stream security on the simulation's virtual clock: the access policy's wall time is one
//! anchor plus the `now` signalling is given, so token expiry and TOTP windows move with
//! `Sim::advance` and never with the real clock.

use std::time::Duration;

use antenna_store::crypto::{ams_derived_totp_key, totp};
use antenna_store::{
    shared, AppSettings, MemStore, SharedStore, StreamSecurity, Token, TokenType, WriteOp,
};
use antenna_tests::Sim;
use serde_json::json;

const APP: &str = "WebRTCAppEE";
/// 2026-01-01T00:00:00Z in unix ms: the wall time at the simulation's start.
const NOW: u64 = 1_767_225_600_000;
const NOW_S: i64 = (NOW / 1000) as i64;

fn sim_with(settings: AppSettings, seed: u64) -> (Sim, SharedStore) {
    let store = shared(MemStore::new());
    store
        .borrow_mut()
        .write(WriteOp::PutSettings {
            app: APP.into(),
            settings: Box::new(settings),
        })
        .unwrap();
    let mut sim = Sim::new(seed);
    let policy = StreamSecurity::with_anchor(store.clone(), sim.now(), NOW);
    sim.node.sig.set_access_policy(Box::new(policy));
    (sim, store)
}

fn put_token(store: &SharedStore, id: &str, stream: &str, expire_date: i64) {
    store
        .borrow_mut()
        .write(WriteOp::PutToken {
            app: APP.into(),
            token: Token {
                token_id: id.into(),
                stream_id: stream.into(),
                expire_date,
                token_type: TokenType::Publish,
                room_id: None,
            },
        })
        .unwrap();
}

/// Publishes `stream` with `token` from a new connection; the labels it gets.
fn publish_with_token(sim: &mut Sim, stream: &str, token: &str) -> Vec<String> {
    let c = sim.connect();
    sim.send_json(
        c,
        json!({"command":"publish","streamId":stream,"token":token,"video":true,"audio":true}),
    );
    sim.take_labels(c)
}

fn token_scenario(seed: u64) -> (Vec<Vec<String>>, String) {
    let (mut sim, store) = sim_with(
        AppSettings {
            publish_token_control_enabled: true,
            ..AppSettings::default()
        },
        seed,
    );
    for s in ["s1", "s2", "s3"] {
        put_token(&store, &format!("t-{s}"), s, NOW_S + 60);
    }
    let mut got = vec![publish_with_token(&mut sim, "s1", "t-s1")];
    sim.advance(Duration::from_secs(59));
    got.push(publish_with_token(&mut sim, "s2", "t-s2"));
    sim.advance(Duration::from_secs(2));
    got.push(publish_with_token(&mut sim, "s3", "t-s3"));
    // Used tokens are spent; the expired one was purged by the policy's housekeeping, which
    // runs on the same virtual clock (its first purge is due 60 s after the start).
    let data = store.borrow().data().clone();
    for t in ["t-s1", "t-s2", "t-s3"] {
        assert!(data.token(APP, t).is_none(), "{t}");
    }
    (got, sim.masked_transcript())
}

#[test]
fn one_time_token_expires_on_the_virtual_clock() {
    let (got, transcript) = token_scenario(11);
    assert_eq!(
        got,
        [
            vec!["start".to_string()],
            vec!["start".to_string()],
            vec!["error/unauthorized_access".to_string()],
        ]
    );
    // Same seed, same transcript.
    assert_eq!(token_scenario(11).1, transcript);
}

#[test]
fn totp_window_moves_with_the_virtual_clock() {
    let (mut sim, _store) = sim_with(
        AppSettings {
            enable_time_token_for_publish: true,
            time_token_secret_for_publish: Some("pubsecret".into()),
            time_token_period: 60,
            ..AppSettings::default()
        },
        12,
    );
    // Each publish uses its own subscriber, so no replay or lock-out rule is involved: every
    // code is the one of the first period (wall time NOW).
    let publish = |sim: &mut Sim, sub: &str, stream: &str| {
        let key = ams_derived_totp_key("pubsecret", sub, stream, "publish");
        let code = totp(&key, NOW, 60, 6);
        let c = sim.connect();
        sim.send_json(
            c,
            json!({"command":"publish","streamId":stream,"subscriberId":sub,
                   "subscriberCode":code,"video":true,"audio":true}),
        );
        sim.take_labels(c)
    };
    assert_eq!(publish(&mut sim, "a", "s1"), ["start"]);
    // One period later the code is the previous period's: still accepted (one step of skew).
    sim.advance(Duration::from_secs(60));
    assert_eq!(publish(&mut sim, "b", "s2"), ["start"]);
    // Two periods later it is refused.
    sim.advance(Duration::from_secs(60));
    assert_eq!(publish(&mut sim, "c", "s3"), ["error/unauthorized_access"]);
}
