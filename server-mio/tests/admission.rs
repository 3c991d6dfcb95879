//! CPU admission control (`highResourceUsage`): the limit comes from `--cpu-limit` (AMS
//! `server.cpu_limit`, 75 % by default), and 0 turns it off. Each test keeps the server busy
//! with ping round trips across two CPU check intervals (about 10 s).
// Test code may read the wall clock for its own timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server};
use serde_json::json;

/// Ping round trips on `c` until `done()` or `limit` has passed.
fn keep_busy(c: &mut Client, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end && !done() {
        for _ in 0..50 {
            c.ping_pong();
        }
    }
}

fn publish(c: &mut Client, id: &str) -> serde_json::Value {
    c.send(&json!({"command": "publish", "streamId": id, "video": true, "audio": true}));
    c.recv()
}

#[test]
fn low_cpu_limit_refuses_publishers_with_high_resource_usage() {
    // 1 % of a core: ping traffic alone passes it.
    let server = Server::start_with(&["--cpu-limit", "1"]);
    assert!(server.wait_log("CPU admission control"));
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("CPU admission control") && l.contains("1%")),
        "{:?}",
        server.log()
    );
    let mut busy = server.client();
    const OVER: &str = "refusing new publishers";
    keep_busy(&mut busy, Duration::from_secs(40), || {
        server.log().iter().any(|l| l.contains(OVER))
    });
    assert!(server.log().iter().any(|l| l.contains("CPU above 1%")));
    let mut c = server.client();
    let m = publish(&mut c, "busy1");
    assert_eq!(m["command"], "error", "{m}");
    assert_eq!(m["definition"], "highResourceUsage", "{m}");
}

#[test]
fn cpu_limit_zero_turns_admission_control_off() {
    let server = Server::start_with(&["--cpu-limit", "0"]);
    assert!(server.wait_log("CPU admission control"));
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("CPU admission control") && l.contains("off")),
        "{:?}",
        server.log()
    );
    // The same load as above, over two check intervals and a bit: no overload.
    let mut busy = server.client();
    keep_busy(
        &mut busy,
        server_mio::overload::CHECK_INTERVAL * 2 + Duration::from_secs(1),
        || false,
    );
    assert!(
        !server.log().iter().any(|l| l.contains("CPU above")),
        "{:?}",
        server.log()
    );
    let mut c = server.client();
    let m = publish(&mut c, "busy0");
    assert_eq!(m["command"], "start", "{m}");
}

#[test]
fn help_documents_cpu_limit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_antenna"))
        .arg("--help")
        .output()
        .expect("antenna --help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--cpu-limit <PERCENT>"), "{text}");
    assert!(text.contains("highResourceUsage"), "{text}");
}
