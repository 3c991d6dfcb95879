//! Cluster roles and `?target=origin|edge` (`proto-core/src/signalling/role.rs`) through a
//! whole node on the virtual clock: who may publish, and whether plays of other nodes'
//! streams wait for a relay.

use antenna_tests::{assert_error, assert_start, Sim};
use node::{ClusterMode, NodeOutput};
use proto_core::{ClusterRole, ConnId};
use serde_json::json;

fn node(role: ClusterRole) -> Sim {
    let mut sim = Sim::new(7);
    sim.node.set_cluster(ClusterMode {
        node_id: "this".into(),
        secret: "cluster-secret".into(),
    });
    sim.node.set_cluster_role(role);
    sim
}

/// The one answer to a `publish` of `id` on a new connection with `query`.
fn publish(sim: &mut Sim, query: &str, id: &str) -> (ConnId, serde_json::Value) {
    let c = sim.connect_url("WebRTCAppEE", query);
    sim.send_json(c, json!({"command":"publish","streamId":id}));
    let msgs = sim.take(c);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    (c, msgs.into_iter().next().unwrap())
}

#[test]
fn an_edge_refuses_every_publish_and_stays_open() {
    let mut sim = node(ClusterRole::Edge);
    for (i, query) in ["", "target=origin", "target=edge"].iter().enumerate() {
        let (c, m) = publish(&mut sim, query, &format!("s{i}"));
        assert_error(&m, "unauthorized_access");
        assert_eq!(m["streamId"], format!("s{i}"));
        assert!(sim.is_open(c), "a role refusal closes nothing");
    }
    assert_eq!(sim.node.sig.role_refusals(), 3);
}

#[test]
fn target_edge_narrows_a_node_that_takes_publishers() {
    for role in [ClusterRole::Both, ClusterRole::Origin] {
        let mut sim = node(role);
        let (_, m) = publish(&mut sim, "target=edge", "a");
        assert_error(&m, "unauthorized_access");
        let (_, m) = publish(&mut sim, "target=origin", "b");
        assert_start(&m, "b");
        let (_, m) = publish(&mut sim, "x=1", "c");
        assert_start(&m, "c");
        assert_eq!(sim.node.sig.role_refusals(), 1, "{role:?}");
    }
}

/// Whether a play of a stream no local publisher has waits for a look-up.
fn play_waits(role: ClusterRole) -> bool {
    let mut sim = node(role);
    let c = sim.connect_url("WebRTCAppEE", "target=edge");
    sim.send_json(c, json!({"command":"play","streamId":"elsewhere"}));
    let finds = sim
        .cluster_out
        .iter()
        .filter(|o| matches!(o, NodeOutput::FindStream { .. }))
        .count();
    let msgs = sim.take(c);
    if finds == 0 {
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert_error(&msgs[0], "no_stream_exist");
    } else {
        assert!(
            msgs.is_empty(),
            "a waiting play has no answer yet: {msgs:?}"
        );
    }
    finds == 1
}

#[test]
fn an_origin_pulls_no_other_nodes_stream() {
    assert!(!play_waits(ClusterRole::Origin));
    assert!(play_waits(ClusterRole::Edge));
    assert!(play_waits(ClusterRole::Both));
}

#[test]
fn an_edge_refuses_whip_ingest_with_403_and_locks_no_address_out() {
    use node::whip::{Kind, MediaHead, Method};
    let mut sim = node(ClusterRole::Edge);
    let ip = std::net::IpAddr::from([10, 9, 0, 1]);
    let mut client = rtc_core::testing::Client::new(sim.now(), "10.9.0.1:4000".parse().unwrap());
    let offer = client.publish_offer(true, true);
    for i in 0..20 {
        let head = MediaHead {
            method: Method::Post,
            kind: Kind::Whip,
            app: "WebRTCAppEE".into(),
            stream: format!("w{i}"),
            resource: None,
            // A bearer token: a refusal for a wrong one would count towards a lockout.
            token: (i % 2 == 0).then(|| "some-token".to_string()),
            main_track: None,
            if_match: None,
            content_length: offer.len(),
        };
        let reply = sim.http_media(ip, &head, offer.as_bytes());
        assert_eq!(reply.status, 403, "attempt {i}");
        let text = String::from_utf8_lossy(&reply.response);
        assert!(text.contains("unauthorized_access"), "{text}");
    }
    assert_eq!(sim.node.resources.bad_tokens.lockouts, 0);
    assert!(sim.node.resources.is_empty());
    assert!(sim.node.sig.is_idle());
    assert_eq!(sim.node.sig.role_refusals(), 20);
}
