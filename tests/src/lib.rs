//! Deterministic simulation harness for Antenna.
//!
//! [`Sim`] wraps the same [`Node`] the `antenna` binary runs (signalling + media cores) with a
//! virtual clock, virtual WebSocket clients and an in-memory UDP network. Nothing reads the real
//! clock after construction: time only moves when the test calls [`Sim::advance`], and then it
//! jumps from deadline to deadline. Every server message is recorded in a transcript with its
//! virtual time, so the same seed must give the same transcript, byte for byte.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use node::{Node, NodeOutput};
use proto_core::{Config, ConnId, Signalling};
use rtc_core::{Sfu, SfuConfig, Transmit};
use serde_json::Value;

pub mod media;
pub mod rest;
pub mod scenario;

pub use rest::{RestAnswer, ADMIN_TOKEN, WALL_START_MS};

/// The server's (virtual) UDP address.
pub const SERVER_UDP: &str = "127.0.0.1:5000";

/// The server's UDP address as a `SocketAddr`.
pub fn server_udp() -> SocketAddr {
    SERVER_UDP
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5000)))
}

/// One recorded event of a simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A client sent a text frame.
    ClientSent(Duration, ConnId, String),
    /// The server sent a text frame.
    ServerSent(Duration, ConnId, String),
    /// The server closed a connection.
    ServerClosed(Duration, ConnId),
    /// The client closed a connection.
    ClientClosed(Duration, ConnId),
    /// An admin REST request (`METHOD target body`).
    RestSent(Duration, String),
    /// Its answer: status and body.
    RestAnswered(Duration, u16, String),
}

/// A simulated server with virtual clients.
pub struct Sim {
    /// The cores under test.
    pub node: Node,
    start: Instant,
    now: Instant,
    next_conn: u64,
    open: BTreeSet<ConnId>,
    inbox: BTreeMap<ConnId, VecDeque<Value>>,
    /// Datagrams the server sent, not yet taken by a simulated peer.
    pub udp_out: VecDeque<Transmit>,
    /// Cluster mode's outputs (look-ups, relay WebSockets), for a scenario to carry out.
    pub cluster_out: VecDeque<NodeOutput>,
    transcript: Vec<Record>,
    steps: u64,
    /// The applications the server serves (the route table's), `WebRTCAppEE` unless
    /// [`Sim::with_apps`] says otherwise.
    apps: Vec<String>,
}

impl Sim {
    /// A server with default configuration and the given RNG seed.
    pub fn new(seed: u64) -> Self {
        Self::with_config(Config {
            seed,
            ..Config::default()
        })
    }

    /// A server with this signalling configuration.
    pub fn with_config(config: Config) -> Self {
        // The only read of the real clock: every later instant is start + a virtual duration.
        let start = Instant::now();
        // str0m draws ICE ufrags, SSRCs and msids from the thread-local fastrand generator:
        // the SFU's seed makes them a function of the seed too. (DTLS keys come from the crypto
        // provider and stay random; they only appear inside SDP bodies, which
        // `masked_transcript` hides.)
        let sfu_config = SfuConfig {
            seed: Some(config.seed),
            ..SfuConfig::new(vec![server_udp()], Duration::from_secs(1))
        };
        let sig = Signalling::new(config, start);
        let sfu = Sfu::new(sfu_config, start);
        Sim {
            node: Node::new(sig, sfu),
            start,
            now: start,
            next_conn: 1,
            open: BTreeSet::new(),
            inbox: BTreeMap::new(),
            udp_out: VecDeque::new(),
            cluster_out: VecDeque::new(),
            transcript: Vec::new(),
            steps: 0,
            apps: vec!["WebRTCAppEE".to_string()],
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Inputs fed so far (messages, opens, closes, timer firings).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Connections the server has not closed.
    pub fn open_conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.open.iter().copied()
    }

    /// Opens a WebSocket on app `WebRTCAppEE`.
    pub fn connect(&mut self) -> ConnId {
        self.connect_app("WebRTCAppEE")
    }

    /// Opens a WebSocket on `app`.
    pub fn connect_app(&mut self, app: &str) -> ConnId {
        self.connect_url(app, "")
    }

    /// Opens a WebSocket on `app` whose URL has the query string `query` (without `?`).
    pub fn connect_url(&mut self, app: &str, query: &str) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.open.insert(conn);
        self.inbox.insert(conn, VecDeque::new());
        self.steps += 1;
        self.node.handle_ws_open(self.now, conn, app, query);
        self.drain();
        conn
    }

    /// A client sends a text frame.
    pub fn send(&mut self, conn: ConnId, text: &str) {
        if !self.open.contains(&conn) {
            return;
        }
        self.transcript
            .push(Record::ClientSent(self.elapsed(), conn, text.to_string()));
        self.steps += 1;
        self.node.handle_ws_text(self.now, conn, text);
        self.drain();
    }

    /// A client sends a JSON value.
    pub fn send_json(&mut self, conn: ConnId, v: Value) {
        self.send(conn, &v.to_string());
    }

    /// A client closes its WebSocket.
    pub fn close(&mut self, conn: ConnId) {
        if self.open.remove(&conn) {
            self.transcript
                .push(Record::ClientClosed(self.elapsed(), conn));
            self.steps += 1;
            self.node.handle_ws_closed(self.now, conn);
            self.drain();
        }
    }

    /// Feeds a datagram to the server.
    pub fn udp_in(&mut self, source: SocketAddr, data: &[u8]) {
        self.steps += 1;
        self.node.handle_udp(self.now, source, server_udp(), data);
        // As the runtime does: what a datagram produced leaves before the next is read.
        self.node.flush_media(self.now);
        self.drain();
    }

    /// A WHIP/WHEP request (head already routed, body read) from `ip`; returns the reply.
    pub fn http_media(
        &mut self,
        ip: std::net::IpAddr,
        head: &node::whip::MediaHead,
        body: &[u8],
    ) -> node::HttpReply {
        self.steps += 1;
        let reply = self.node.handle_http_media(self.now, ip, head, body);
        self.drain();
        reply
    }

    /// Cluster mode's inputs to the node (a look-up's answer, a relay's frame or datagram,
    /// as the runtime delivers them): `f` gets the node and the virtual now; what it produced
    /// is drained as after any input.
    pub fn cluster_input(&mut self, f: impl FnOnce(&mut Node, Instant)) {
        self.steps += 1;
        f(&mut self.node, self.now);
        self.drain();
    }

    /// Graceful shutdown of the server.
    pub fn shutdown(&mut self) {
        self.steps += 1;
        self.node.shutdown(self.now);
        self.drain();
    }

    /// Moves virtual time forward by `d`, firing every deadline on the way, in order.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.advance_until(until);
    }

    /// Moves virtual time to `until`, firing every deadline on the way, in order.
    pub fn advance_until(&mut self, until: Instant) {
        // Bounded: a core that keeps asking for "now" must not hang the test.
        for _ in 0..1_000_000 {
            match self.node.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.steps += 1;
                    self.node.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    /// Takes every message a client received so far.
    pub fn take(&mut self, conn: ConnId) -> Vec<Value> {
        self.inbox
            .get_mut(&conn)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Takes every message a client received so far, as `command/definition` labels.
    pub fn take_labels(&mut self, conn: ConnId) -> Vec<String> {
        self.take(conn).iter().map(label).collect()
    }

    /// Whether the server still holds the connection open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.open.contains(&conn)
    }

    /// The recorded events.
    pub fn records(&self) -> &[Record] {
        &self.transcript
    }

    /// The transcript as text: one line per event, with virtual milliseconds.
    pub fn transcript(&self) -> String {
        let mut s = String::new();
        for r in &self.transcript {
            let _ = match r {
                Record::ClientSent(t, c, m) => writeln!(s, "{:>8} c{} > {m}", t.as_millis(), c.0),
                Record::ServerSent(t, c, m) => writeln!(s, "{:>8} c{} < {m}", t.as_millis(), c.0),
                Record::ServerClosed(t, c) => writeln!(s, "{:>8} c{} < CLOSE", t.as_millis(), c.0),
                Record::ClientClosed(t, c) => writeln!(s, "{:>8} c{} > CLOSE", t.as_millis(), c.0),
                Record::RestSent(t, r) => writeln!(s, "{:>8} rest > {r}", t.as_millis()),
                Record::RestAnswered(t, st, b) => {
                    writeln!(s, "{:>8} rest < {st} {b}", t.as_millis())
                }
            };
        }
        s
    }

    /// The transcript with the media layer's SDP bodies masked.
    ///
    /// The DTLS certificate fingerprint in an SDP comes from the crypto provider's randomness,
    /// which the seed does not reach; everything else in the transcript is a function of the
    /// seed alone.
    pub fn masked_transcript(&self) -> String {
        let mut s = String::new();
        for line in self.transcript().lines() {
            let split = line
                .split_once(" < {")
                .map(|(h, j)| (h, "<", j))
                .or_else(|| line.split_once(" > {").map(|(h, j)| (h, ">", j)));
            let masked = split.and_then(|(head, dir, json)| {
                let mut v: Value = serde_json::from_str(&format!("{{{json}")).ok()?;
                let sdp = v.get_mut("sdp")?;
                *sdp = Value::String("<sdp>".into());
                Some(format!("{head} {dir} {v}"))
            });
            let _ = writeln!(s, "{}", masked.as_deref().unwrap_or(line));
        }
        s
    }

    fn drain(&mut self) {
        while let Some(out) = self.node.poll_output() {
            match out {
                NodeOutput::WsSend(conn, text) => {
                    assert!(
                        self.open.contains(&conn),
                        "server sent to a connection that is not open: {conn:?} {text}"
                    );
                    let v: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("server sent invalid JSON {text}: {e}"));
                    self.transcript
                        .push(Record::ServerSent(self.elapsed(), conn, text));
                    if let Some(q) = self.inbox.get_mut(&conn) {
                        q.push_back(v);
                    }
                }
                NodeOutput::WsClose(conn) => {
                    if self.open.remove(&conn) {
                        self.transcript
                            .push(Record::ServerClosed(self.elapsed(), conn));
                        self.node.handle_ws_closed(self.now, conn);
                    }
                }
                NodeOutput::UdpSend(t) => self.udp_out.push_back(t),
                out @ (NodeOutput::FindStream { .. }
                | NodeOutput::FindRoom { .. }
                | NodeOutput::RelayOpen { .. }
                | NodeOutput::RelaySend(..)
                | NodeOutput::RelayClose(_)) => self.cluster_out.push_back(out),
            }
        }
    }
}

/// `command` or `command/definition` of a server message.
pub fn label(v: &Value) -> String {
    let cmd = v.get("command").and_then(Value::as_str).unwrap_or("?");
    match v.get("definition").and_then(Value::as_str) {
        Some(d) => format!("{cmd}/{d}"),
        None => cmd.to_string(),
    }
}

/// Asserts that `v` is the `error` answer with this AMS error definition.
pub fn assert_error(v: &Value, definition: &str) {
    assert_eq!(v["command"], "error", "{v}");
    assert_eq!(v["definition"], definition, "{v}");
}

/// Asserts that `v` is the `start` answer to the publish of `id`.
pub fn assert_start(v: &Value, id: &str) {
    assert_eq!(v["command"], "start", "{v}");
    assert_eq!(v["streamId"], id, "{v}");
}
