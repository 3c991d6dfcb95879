//! The admin REST API and stream security together on the simulation's virtual clock: the
//! node's admin core answers REST requests (the gate, the handlers, the settings rules) and
//! is the access policy signalling asks, over one in-memory store. Token expiry, TOTP windows
//! and settings changes move with `Sim::advance` and the order of inputs, never with the real
//! clock, so the same seed gives the same transcript.

use std::time::Duration;

use antenna_store::{shared, MemStore};
use antenna_tests::{Sim, WALL_START_MS};
use serde_json::{json, Value};

const APP: &str = "WebRTCAppEE";
const START_S: u64 = WALL_START_MS / 1000;

/// Start, refusal, start, refusal: what both the token and the settings scenarios expect.
fn allowed_refused_twice() -> Vec<Vec<String>> {
    ["start", "error/unauthorized_access"]
        .repeat(2)
        .into_iter()
        .map(|l| vec![l.to_string()])
        .collect()
}

fn sim(seed: u64) -> Sim {
    Sim::new(seed).with_admin(shared(MemStore::new()))
}

fn publish(sim: &mut Sim, stream: &str, extra: Value) -> Vec<String> {
    let c = sim.connect();
    let mut msg = json!({"command":"publish","streamId":stream,"video":true,"audio":true});
    if let (Some(m), Some(e)) = (msg.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    sim.send_json(c, msg);
    sim.take_labels(c)
}

fn put_settings(sim: &mut Sim, patch: Value) {
    let r = sim.rest(
        "PUT",
        &format!("/rest/v2/applications/settings/{APP}"),
        Some(patch),
    );
    assert_eq!((r.status, &r.body["success"]), (200, &json!(true)), "{r:?}");
}

#[test]
fn a_broadcast_created_by_rest_is_the_one_that_may_publish() {
    let mut sim = sim(21);
    put_settings(&mut sim, json!({"acceptOnlyStreamsInDataStore": true}));
    assert_eq!(
        publish(&mut sim, "cam1", json!({})),
        ["error/not_allowed_unregistered_streams"]
    );
    let r = sim.rest(
        "POST",
        &format!("/{APP}/rest/v2/broadcasts/create"),
        Some(json!({"streamId":"cam1","name":"front door"})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["streamId"], "cam1");
    assert_eq!(publish(&mut sim, "cam1", json!({})), ["start"]);
    assert_eq!(
        publish(&mut sim, "cam2", json!({})),
        ["error/not_allowed_unregistered_streams"]
    );
    let r = sim.rest("GET", &format!("/{APP}/rest/v2/broadcasts/count"), None);
    assert_eq!((r.status, &r.body["number"]), (200, &json!(1)));
    // Without the admin token the API is closed, and the refusal is recorded too.
    let r = sim.rest_as(
        "GET",
        &format!("/{APP}/rest/v2/broadcasts/count"),
        None,
        None,
    );
    assert_eq!(r.status, 401);
}

/// A one-time token made by REST: accepted before its `expireDate`, refused after, on the
/// virtual clock.
fn rest_token_scenario(seed: u64) -> (Vec<Vec<String>>, String) {
    let mut sim = sim(seed);
    put_settings(&mut sim, json!({"publishTokenControlEnabled": true}));
    let token = |sim: &mut Sim, stream: &str| {
        let r = sim.rest(
            "GET",
            &format!(
                "/{APP}/rest/v2/broadcasts/{stream}/token?expireDate={}&type=publish",
                START_S + 60
            ),
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.body["tokenId"].as_str().unwrap_or_default().to_string()
    };
    let t1 = token(&mut sim, "s1");
    let t2 = token(&mut sim, "s2");
    let t3 = token(&mut sim, "s3");
    let mut got = vec![publish(&mut sim, "s1", json!({"token": t1}))];
    got.push(publish(&mut sim, "s1", json!({"token": "not-a-token"})));
    sim.advance(Duration::from_secs(59));
    got.push(publish(&mut sim, "s2", json!({"token": t2})));
    sim.advance(Duration::from_secs(2));
    got.push(publish(&mut sim, "s3", json!({"token": t3})));
    // The spent and the expired tokens are gone from the list REST shows.
    for s in ["s1", "s2", "s3"] {
        let r = sim.rest(
            "GET",
            &format!("/{APP}/rest/v2/broadcasts/{s}/tokens/list/0/10"),
            None,
        );
        assert_eq!(
            (r.status, r.body.as_array().map(Vec::len)),
            (200, Some(0)),
            "{s}"
        );
    }
    (got, sim.masked_transcript())
}

#[test]
fn a_rest_token_expires_on_the_virtual_clock() {
    let (got, _) = rest_token_scenario(22);
    assert_eq!(got, allowed_refused_twice());
}

#[test]
fn a_totp_subscriber_created_by_rest_publishes_within_its_window() {
    let mut sim = sim(23);
    put_settings(
        &mut sim,
        json!({"enableTimeTokenForPublish": true, "timeTokenPeriod": 60}),
    );
    let r = sim.rest(
        "POST",
        &format!("/{APP}/rest/v2/broadcasts/live/subscribers"),
        Some(json!({"subscriberId":"alice","b32Secret":"JBSWY3DPEHPK3PXP","type":"publish"})),
    );
    assert_eq!((r.status, &r.body["success"]), (200, &json!(true)), "{r:?}");
    let code = |sim: &mut Sim| {
        let r = sim.rest(
            "GET",
            &format!("/{APP}/rest/v2/broadcasts/live/subscribers/alice/totp?type=publish"),
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.body["dataId"].as_str().unwrap_or_default().to_string()
    };
    let first = code(&mut sim);
    assert_eq!(first.len(), 6);
    let with = |code: &str| json!({"subscriberId":"alice","subscriberCode":code});
    assert_eq!(publish(&mut sim, "live", with(&first)), ["start"]);
    // A wrong code is refused; three periods later the first code is too, and a fresh code
    // from REST is accepted.
    assert_eq!(
        publish(&mut sim, "other", with("000000")),
        ["error/unauthorized_access"]
    );
    sim.advance(Duration::from_secs(180));
    assert_eq!(
        publish(&mut sim, "live", with(&first)),
        ["error/unauthorized_access"]
    );
    let fresh = code(&mut sim);
    assert_ne!(fresh, first);
    assert_eq!(publish(&mut sim, "live", with(&fresh)), ["start"]);
}

/// Settings changes interleaved with publishes: each publish sees the settings of the moment
/// it arrives, and a change of the first application's signalling options reaches the node.
fn settings_race(seed: u64) -> (Vec<Vec<String>>, String) {
    let mut sim = sim(seed).with_apps(&[APP, "LiveApp"]);
    let mut got = Vec::new();
    for (i, on) in [false, true, false, true].into_iter().enumerate() {
        put_settings(&mut sim, json!({"publishTokenControlEnabled": on}));
        got.push(publish(&mut sim, &format!("race{i}"), json!({})));
        sim.advance(Duration::from_millis(250));
    }
    put_settings(
        &mut sim,
        json!({"stunServerURI": "stun:stun.example.org:3478"}),
    );
    assert_eq!(
        sim.node.sig.config().ice_servers.stun_server_uri,
        "stun:stun.example.org:3478"
    );
    // Another application's settings do not move the signalling options.
    let r = sim.rest(
        "PUT",
        "/rest/v2/applications/settings/LiveApp",
        Some(json!({"stunServerURI": "stun:other.example.org:3478"})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        sim.node.sig.config().ice_servers.stun_server_uri,
        "stun:stun.example.org:3478"
    );
    (got, sim.masked_transcript())
}

#[test]
fn settings_changes_race_publishes() {
    let (got, _) = settings_race(24);
    assert_eq!(got, allowed_refused_twice());
}

#[test]
fn same_seed_same_transcript_over_rest_and_websocket() {
    for run in [rest_token_scenario, settings_race] {
        let (got, transcript) = run(31);
        assert!(transcript.contains(" rest > "), "{transcript}");
        assert!(transcript.contains(" rest < 200 "), "{transcript}");
        assert_eq!(run(31), (got, transcript));
    }
    // The token ids are drawn from the seed: another seed, other ids.
    assert_ne!(rest_token_scenario(31).1, rest_token_scenario(32).1);
}
