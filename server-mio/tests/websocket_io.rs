//! WebSocket reading and memory: what an idle WebSocket costs the server, and that the small
//! per-connection read buffers still get every frame right however the bytes arrive (many
//! frames in one segment, a large frame in pieces, a frame glued to the next one).
// Test code may read the wall clock for its own timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::raw::{client_fragment, client_frame, rss_kib, upgrade_request};
use common::{tcp, Client, Server};
use serde_json::{json, Value};

#[test]
fn idle_websockets_cost_little_memory() {
    if !cfg!(target_os = "linux") {
        return;
    }
    const N: usize = 2000;
    let server = Server::start_with(&["--log", "warn", "--max-connections-per-ip", "0"]);
    // A first connection and exchange, so one-off allocations are in the baseline.
    server.client().ping_pong();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(server.pid());
    let mut clients: Vec<Client> = (0..N).map(|_| server.client()).collect();
    // The server has read every connection once (the read that finds nothing) by the time
    // the last one answers.
    clients.last_mut().expect("clients").ping_pong();
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(server.pid());
    let per_conn = after.saturating_sub(before) as f64 / N as f64;
    eprintln!("{N} idle WebSockets: RSS {before} -> {after} KiB, {per_conn:.2} KiB each");
    // Was 17 KiB (a 16 KiB read buffer each); now about 1.5 KiB.
    assert!(
        per_conn < 6.0,
        "{per_conn:.2} KiB per idle WebSocket ({before} -> {after} KiB)"
    );
    drop(clients);
}

/// A raw WebSocket: the handshake done by hand, frames read one by one.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn open(server: &Server) -> Raw {
        let mut s = tcp(server.http);
        let req = upgrade_request(server.http, "/WebRTCAppEE/websocket");
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Raw { s, buf: Vec::new() };
        let end = loop {
            if let Some(i) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            raw.fill();
        };
        let head = String::from_utf8_lossy(&raw.buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        raw.buf.drain(..end);
        raw
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.s.read(&mut chunk).expect("read (timeout: no answer)");
        assert!(n > 0, "connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next server frame: (opcode, payload). Server frames are not masked.
    fn frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0f;
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    n @ 0..=125 => (n as usize, 2),
                    _ => (usize::MAX, 0),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return (opcode, payload);
                }
            }
            self.fill();
        }
    }

    fn json(&mut self) -> Value {
        let (opcode, payload) = self.frame();
        assert_eq!(opcode, 1, "text frame expected");
        serde_json::from_slice(&payload).expect("JSON")
    }
}

#[test]
fn many_frames_in_one_segment_are_all_answered() {
    let server = Server::start();
    let mut raw = Raw::open(&server);
    let ping = json!({"command": "ping"}).to_string();
    let mut burst = Vec::new();
    for _ in 0..200 {
        burst.extend(client_frame(1, ping.as_bytes()));
    }
    raw.s.write_all(&burst).unwrap();
    for i in 0..200 {
        let m = raw.json();
        assert_eq!(m["command"], "pong", "message {i}: {m}");
    }
}

#[test]
fn large_frame_in_pieces_then_a_glued_frame_are_answered() {
    let server = Server::start();
    let mut raw = Raw::open(&server);
    // Just under the signalling limit: a valid message that needs a buffer far larger than the
    // per-connection one.
    let pad = "p".repeat(proto_core::MAX_MESSAGE_LEN - 100);
    let big = json!({"command": "ping", "pad": pad}).to_string();
    assert!(big.len() < proto_core::MAX_MESSAGE_LEN);
    let mut bytes = client_frame(1, big.as_bytes());
    // The next frame starts in the same write as the big frame's last bytes.
    bytes.extend(client_frame(
        1,
        json!({"command": "ping"}).to_string().as_bytes(),
    ));
    // Odd piece sizes, so frame headers and payloads are cut at arbitrary points.
    for piece in bytes.chunks(7_777) {
        raw.s.write_all(piece).unwrap();
        raw.s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..2 {
        let m = raw.json();
        assert_eq!(m["command"], "pong", "message {i}: {m}");
    }
    // And a ping control frame in between text frames is answered with its payload.
    let mut bytes = client_frame(9, b"hello");
    bytes.extend(client_frame(
        1,
        json!({"command": "ping"}).to_string().as_bytes(),
    ));
    raw.s.write_all(&bytes).unwrap();
    assert_eq!(raw.frame(), (10, b"hello".to_vec()));
    assert_eq!(raw.json()["command"], "pong");
}

#[test]
fn fragmented_message_across_reads_with_a_ping_in_between() {
    let server = Server::start();
    let mut raw = Raw::open(&server);
    // Larger than the per-connection read buffer, so the server would like to release it
    // between the reads; it must not while the message is unfinished.
    let pad = "f".repeat(3000);
    let text = json!({"command": "ping", "pad": pad}).to_string();
    let (first, second) = text.as_bytes().split_at(2000);
    raw.s.write_all(&client_fragment(false, 1, first)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    raw.s.write_all(&client_frame(9, b"between")).unwrap();
    assert_eq!(raw.frame(), (10, b"between".to_vec()));
    std::thread::sleep(Duration::from_millis(100));
    raw.s.write_all(&client_fragment(true, 0, second)).unwrap();
    assert_eq!(raw.json()["command"], "pong");
    // And the connection goes on normally afterwards.
    raw.s
        .write_all(&client_frame(
            1,
            json!({"command": "ping"}).to_string().as_bytes(),
        ))
        .unwrap();
    assert_eq!(raw.json()["command"], "pong");
}

#[test]
fn large_frames_do_not_leave_large_buffers_behind() {
    if !cfg!(target_os = "linux") {
        return;
    }
    const N: usize = 300;
    let server = Server::start_with(&["--log", "warn"]);
    let pad = "p".repeat(60_000);
    let big = json!({"command": "ping", "pad": pad}).to_string();
    // One-off allocations (and one large buffer) in the baseline.
    let mut first = Raw::open(&server);
    first.s.write_all(&client_frame(1, big.as_bytes())).unwrap();
    assert_eq!(first.json()["command"], "pong");
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(server.pid());
    let mut conns = Vec::new();
    for _ in 0..N {
        let mut raw = Raw::open(&server);
        raw.s.write_all(&client_frame(1, big.as_bytes())).unwrap();
        assert_eq!(raw.json()["command"], "pong");
        conns.push(raw);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(server.pid());
    let per_conn = after.saturating_sub(before) as f64 / N as f64;
    eprintln!("{N} WebSockets after a 60 kB message each: {before} -> {after} KiB, {per_conn:.2} KiB each");
    // Each would keep a 60 kB read buffer if it were not released.
    assert!(
        per_conn < 20.0,
        "{per_conn:.2} KiB per WebSocket ({before} -> {after} KiB)"
    );
}
