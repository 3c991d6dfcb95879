//! Cluster mode against a real Redis (Debian's `redis-server`, started here on 127.0.0.1):
//! two nodes register, a stream published on node 1 is registered with node 1 as its origin,
//! stopping Redis keeps local media flowing and the node registers again when Redis returns,
//! and `kill -9` of node 1 makes its entries expire within the TTL.
#![allow(clippy::disallowed_methods)] // test timeouts read the clock

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use antenna_cluster::registry::TTL;
use antenna_cluster::resp::{Command as Cmd, Decoder, Reply};
use common::media::{play_frames, publish_live};
use common::Server;
use serde_json::{json, Value};

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    fn start_on(port: u16) -> Option<Redis> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Redis {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if TcpStream::connect(redis.addr).is_ok() {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// One command on a fresh connection.
    fn call(&self, words: &[&str]) -> Reply {
        let mut s = TcpStream::connect(self.addr).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&Cmd::new(words).encode()).unwrap();
        let mut d = Decoder::default();
        let mut buf = [0; 4096];
        loop {
            if let Some(r) = d.next_reply().expect("RESP from redis") {
                return r;
            }
            let n = s.read(&mut buf).expect("read redis");
            assert!(n > 0, "redis closed");
            d.feed(&buf[..n]);
        }
    }

    fn get(&self, key: &str) -> Option<Value> {
        match self.call(&["GET", key]) {
            Reply::Bulk(b) => Some(serde_json::from_slice(&b).expect("JSON value")),
            _ => None,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

#[test]
fn nodes_and_streams_register_survive_a_redis_outage_and_expire_after_kill_9() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: redis-server is not installed (test.sh installs Debian's redis-server)"
        );
        return;
    }
    let port = free_port();
    let mut redis = Redis::start_on(port).expect("redis-server starts");
    let url = redis.url();
    let mut n1 = Server::start_with(&["--cluster", &url, "--node-id", "n1"]);
    let n2 = Server::start_with(&["--cluster", &url, "--node-id", "n2"]);

    wait_for("both nodes registered", Duration::from_secs(10), || {
        redis.get("antenna:node:n1").is_some() && redis.get("antenna:node:n2").is_some()
    });
    let info = redis.get("antenna:node:n1").unwrap();
    assert_eq!(info["http"], json!(n1.http.to_string()));
    assert_eq!(info["udp"], json!(n1.udp.to_string()));
    let pttl = redis.call(&["PTTL", "antenna:node:n1"]).as_int().unwrap();
    assert!(
        pttl > 0 && pttl <= TTL.as_millis() as i64,
        "TTL set: {pttl}"
    );

    let (mut publisher, mut pub_ws) = publish_live(&n1, "WebRTCAppEE", "s1", json!({}));
    let key = "antenna:stream:WebRTCAppEE/s1";
    wait_for("stream registered", Duration::from_secs(5), || {
        redis.get(key).is_some()
    });
    let entry = redis.get(key).unwrap();
    assert_eq!(entry["origin"], "n1");
    assert_eq!(entry["http"], json!(n1.http.to_string()));

    // Redis goes away: local media keeps flowing on node 1.
    redis.stop();
    assert!(n1.wait_log_for("CLUSTER: Redis not available", Duration::from_secs(10)));
    let frames = play_frames(&n1, "WebRTCAppEE", "s1", (&mut publisher, &mut pub_ws), 10);
    assert!(
        frames >= 10,
        "local play while Redis is down got {frames} frames"
    );

    // Redis returns empty: the nodes connect again and register themselves and the stream.
    let redis = Redis::start_on(port).expect("redis-server restarts");
    let back = wait_for("registered again", Duration::from_secs(10), || {
        redis.get(key).is_some() && redis.get("antenna:node:n2").is_some()
    });
    eprintln!("registry restored {back:?} after Redis came back");

    // kill -9 of node 1: its node and stream entries expire within the TTL; node 2 stays.
    let killed = Instant::now();
    n1.signal("KILL");
    n1.wait_exit(Duration::from_secs(5));
    let gone = wait_for(
        "node 1's entries expired",
        TTL + Duration::from_secs(1),
        || redis.get("antenna:node:n1").is_none() && redis.get(key).is_none(),
    );
    eprintln!(
        "node 1's entries gone {:?} after kill -9 (TTL {TTL:?})",
        killed.elapsed()
    );
    assert!(gone <= TTL + Duration::from_secs(1));
    assert!(redis.get("antenna:node:n2").is_some());
    drop(n2);
}

#[test]
fn without_cluster_no_redis_is_needed_and_a_bad_url_is_refused() {
    let _single = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_antenna"))
        .args(["--cluster", "http://127.0.0.1:6379", "--memory-store"])
        .output()
        .expect("run antenna");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis://"));
}
