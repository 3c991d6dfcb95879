//! Cluster roles through the real binary and a real Redis (Debian's `redis-server`, started
//! here on 127.0.0.1): the WebSocket URL's `?target=` travels from the HTTP head through the
//! runtime to signalling, and `--cluster-role edge` refuses publishers, with the answer and
//! the log line. The rules themselves are tested in `proto-core/src/signalling/role.rs` and
//! the simulation `tests/tests/sim_cluster_role.rs`.
#![allow(clippy::disallowed_methods)] // test timeouts read the clock

mod common;

use std::time::{Duration, Instant};

use common::redis::{free_port, redis_installed, Redis};
use common::Server;
use serde_json::json;

fn wait_ready(nodes: &[&Server]) {
    let end = Instant::now() + Duration::from_secs(10);
    while !nodes
        .iter()
        .all(|n| common::http_get(n.http, "/readyz").0 == 200)
    {
        assert!(Instant::now() < end, "nodes not ready within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first answer to a `publish` of `id` on a WebSocket opened at `path`.
fn publish(node: &Server, path: &str, id: &str) -> serde_json::Value {
    let mut ws = node.ws(path);
    ws.send(&json!({"command":"publish","streamId":id,"video":true,"audio":true}));
    ws.recv()
}

#[test]
fn an_edge_refuses_publishers_and_target_edge_narrows_any_node() {
    if !redis_installed() {
        return;
    }
    let redis = Redis::start_on(free_port()).expect("redis-server starts");
    let url = redis.url();
    let edge = Server::start_with(&[
        "--cluster",
        &url,
        "--node-id",
        "e",
        "--cluster-role",
        "edge",
    ]);
    let both = Server::start_with(&["--cluster", &url, "--node-id", "b"]);
    wait_ready(&[&edge, &both]);

    for (path, id) in [
        ("/WebRTCAppEE/websocket", "e1"),
        ("/WebRTCAppEE/websocket?target=origin", "e2"),
        ("/WebRTCAppEE/websocket?target=edge", "e3"),
    ] {
        let m = publish(&edge, path, id);
        assert_eq!(
            (m["command"].as_str(), m["definition"].as_str()),
            (Some("error"), Some("unauthorized_access")),
            "{path}: {m}"
        );
        assert_eq!(m["streamId"], id, "{m}");
    }
    assert!(edge.wait_log("publish refused: an edge takes no publishers"));

    let m = publish(&both, "/WebRTCAppEE/websocket?target=edge", "b1");
    assert_eq!(m["definition"], "unauthorized_access", "{m}");
    for (path, id) in [
        ("/WebRTCAppEE/websocket?target=origin", "b2"),
        ("/WebRTCAppEE/websocket", "b3"),
    ] {
        let m = publish(&both, path, id);
        assert_eq!(m, json!({"command":"start","streamId":id}), "{path}");
    }
}
