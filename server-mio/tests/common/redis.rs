//! A real Redis for the cluster tests: Debian's `redis-server` on a free loopback port,
//! killed on drop, and a blocking RESP client to look at what the nodes wrote.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use antenna_cluster::resp::{Command as Cmd, Decoder, Reply};
use serde_json::Value;

/// A `redis-server` on a free loopback port, killed on drop.
pub struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    pub fn start_on(port: u16) -> Option<Redis> {
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

    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// One command on a fresh connection.
    pub fn call(&self, words: &[&str]) -> Reply {
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

    pub fn get(&self, key: &str) -> Option<Value> {
        match self.call(&["GET", key]) {
            Reply::Bulk(b) => Some(serde_json::from_slice(&b).expect("JSON value")),
            _ => None,
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `redis-server` can run here; a test without it says it is skipped.
pub fn redis_installed() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        eprintln!(
            "SKIPPED: redis-server is not installed (test.sh installs Debian's redis-server)"
        );
    }
    ok
}
