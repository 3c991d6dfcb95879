//! Signalling load generator: `CLIENTS` WebSocket clients on one thread each send
//! `{"command":"ping"}` and wait for the pong, for `SECONDS`; prints round trips per second
//! and latency percentiles.
//!
//! ```text
//! antenna --listen 127.0.0.1:5080 --udp 127.0.0.1:0 --log warn &
//! cargo run --release -p server-mio --example ws_load -- 127.0.0.1:5080 100 10
//! ```
//! Loopback only; bounded in clients and time.
#![allow(clippy::disallowed_methods)] // a load generator measures wall time

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5080)));
    assert!(addr.ip().is_loopback(), "loopback targets only");
    let clients: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50)
        .min(2000);
    let seconds: u64 = args
        .get(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .min(120);
    let end = Instant::now() + Duration::from_secs(seconds);
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                stream.set_nodelay(true).expect("nodelay");
                let url = format!("ws://{addr}/WebRTCAppEE/websocket?target=origin");
                let (mut ws, _) = tungstenite::client::client(url, stream).expect("handshake");
                let mut rtts = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    ws.send(Message::text(r#"{"command":"ping"}"#))
                        .expect("send");
                    loop {
                        match ws.read().expect("read") {
                            Message::Text(s) if s.as_str().contains("pong") => break,
                            _ => {}
                        }
                    }
                    rtts.push(t.elapsed());
                }
                let _ = ws.close(None);
                rtts
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    all.sort_unstable();
    let n = all.len();
    let pct = |p: usize| {
        all.get(n.saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{clients} clients, {seconds} s: {n} round trips, {:.0}/s; rtt p50 {:?} p99 {:?} max {:?}",
        n as f64 / seconds as f64,
        pct(50),
        pct(99),
        pct(100)
    );
}
