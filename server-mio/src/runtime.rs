//! The one-thread `mio` runtime: all sockets, the clock and signals, around a [`Node`].
//!
//! One [`Poll`] owns the TCP listener, every HTTP/WebSocket connection, the UDP media socket
//! and the signal pipe. The loop:
//!
//! 1. wait for readiness, but no longer than the earliest deadline (the node's
//!    [`Node::poll_timeout`], housekeeping, the shutdown deadline);
//! 2. read `Instant::now()` (this module is the only place that does) and handle every event,
//!    draining each source until `WouldBlock` (readiness is edge-triggered), except that a
//!    WebSocket is read at most `WS_READ_BUDGET` bytes per turn and the UDP socket at most
//!    `UDP_READ_BUDGET` datagrams: what is left waits in a "more to read" list and the loop
//!    comes back to it without waiting, after the other sockets and the timers;
//! 3. call [`Node::handle_timeout`] when the node's deadline has passed;
//! 4. after every node input, drain [`Node::poll_output`]: WebSocket frames are queued in
//!    the connection's output buffer and written once per batch, datagrams are sent at once (or
//!    queued in a bounded queue while the socket would block).
//!
//! An idle WebSocket costs little memory (about 1.5 KiB with its signalling state): tungstenite
//! gets a [`WS_READ_BUFFER`]-byte read buffer, fed from one read-ahead buffer shared by every
//! connection, and given up again after a large frame; the output buffer is freed whenever
//! everything was written (see `WsIo`).
//!
//! Resource limits ([`crate::limits`]): connections are capped in total (below the file
//! descriptor limit) and per address (beyond: `503` and close); out of descriptors, the
//! listener is paused until a connection closes; quiet WebSockets are pinged and closed after
//! the idle timeout (1001); a WebSocket's pending output (text, pong and close frames alike)
//! beyond the cap drops it. Every refusal is logged and counted ([`Counters`]).
//!
//! Connections go through `Http` (reading the request head) → `Respond` (writing the answer)
//! → `Ws` (WebSocket; only after a `101`) and are dropped otherwise. A REST request goes
//! `Http` → `Body` (reading its `Content-Length` body) → answered by [`antenna_store::RestApi`]
//! → `Held` while its write is not yet durable (the store thread wakes the loop through a
//! [`mio::Waker`] after each commit) → `Respond`. The loop never waits on disk; only the final
//! flush at exit does. Nothing a client sends can
//! panic the loop: every failure is logged and ends at most that client's connection.

// The one place that reads the clock (server-mio/clippy.toml forbids it elsewhere).
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use antenna_store::{
    DurableQueue, Notify, Refusal as RestRefusal, RestApi, RestGate, RestRequest, WriteSeq,
};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

mod cluster;
mod observe;
use proto_core::ConnId;
use rtc_core::Transmit;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use tracing::{debug, error, info, trace, warn};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

use crate::datastore::{self, Datastore};
use crate::http::{self, Action, RestHead};
use crate::limits::{self, Counters, Limits, Liveness, PerIp, Refusal};
use crate::overload::{self, CpuLimit, CpuMonitor};
use crate::udp;
use node::{Node, NodeOutput};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const UDP: Token = Token(2);
/// The store thread wakes the loop after each durable commit.
const STORE: Token = Token(3);
/// Connection tokens start here; they are never reused, and `ConnId(token)` names the
/// connection towards the node.
const FIRST_CONN: usize = 16;

/// A client's pending WebSocket output beyond which it is dropped (it is not reading), by
/// default (see [`Limits::max_pending_output`]).
pub const MAX_PENDING_OUTPUT: usize = limits::DEFAULT_MAX_PENDING_OUTPUT;
/// Largest WebSocket message or frame read. A bit above [`proto_core::MAX_MESSAGE_LEN`], so
/// that slightly oversized text still reaches signalling and gets its protocol error; larger
/// frames close the connection (code 1009).
pub const MAX_WS_MESSAGE: usize = proto_core::MAX_MESSAGE_LEN + 16 * 1024;
/// Datagrams queued while the UDP socket would block; more are dropped and counted.
pub const MAX_UDP_QUEUE: usize = 4096;
/// tungstenite's read buffer per WebSocket: allocated for every connection and filled (so
/// resident) by its first read, it grows on demand to the size of a frame being received.
/// Small, so that an idle connection costs little; the socket itself is read in
/// `WS_READ_AHEAD` chunks, so a large frame still takes few system calls.
pub const WS_READ_BUFFER: usize = 512;
/// Size of the runtime's one read-ahead buffer, shared by every WebSocket (see [`WsIo`]).
const WS_READ_AHEAD: usize = 64 * 1024;

/// Datagrams read before timers that fell due meanwhile are handled.
const UDP_BATCH: usize = 32;
/// Datagrams handled at most before what they wrote to players is flushed and sent. The
/// flush also happens as soon as the socket has nothing more to read: a packet waits only
/// behind datagrams that had already arrived, never for later ones. One flush costs each
/// player written to a str0m timeout (about 2.3 k instructions, see BENCHMARKS.md), so a
/// video frame's packets, which arrive together, share one.
const UDP_FLUSH_EVERY: usize = 8;
/// Datagrams read per loop iteration at most, before WebSockets and timers get their turn.
const UDP_READ_BUDGET: usize = 256;
/// Time a REST client has to read the answer (the request head's time is
/// [`Limits::http_head_timeout`]).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from one WebSocket's socket per loop turn at most (one read-ahead's worth):
/// then the connection waits in `Runtime::more` while the other sockets and the timers get
/// their turn, so one flooding client cannot starve the rest.
const WS_READ_BUDGET: usize = WS_READ_AHEAD;
/// The answer to a connection refused at a connection cap, written as it is accepted.
const REFUSED_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 20\r\nRetry-After: 5\r\n\r\ntoo many connections";
/// Time a closing WebSocket gets to finish the close handshake.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// How long a graceful shutdown may take to deliver the last messages.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Period of the housekeeping pass (timeouts, CPU check, counters).
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Largest UDP datagram read.
const UDP_BUF: usize = 65_536;
/// How long a REST response may wait for its write to become durable.
const DURABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound sockets, before the node exists (the node needs the UDP port).
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    udp: UdpSocket,
    /// The actual HTTP/WebSocket address.
    pub listen_addr: SocketAddr,
    /// The actual UDP address.
    pub udp_addr: SocketAddr,
}

/// Binds the listener and the UDP socket.
pub fn bind(listen: SocketAddr, udp: SocketAddr) -> io::Result<Bound> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    let udp_sock = UdpSocket::bind(udp)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {udp}: {e}")))?;
    udp::size_buffers(&udp_sock);
    Ok(Bound {
        listen_addr: listener.local_addr()?,
        udp_addr: udp_sock.local_addr()?,
        listener,
        udp: udp_sock,
    })
}

enum State {
    /// Reading the request head.
    Http { stream: TcpStream, buf: Vec<u8> },
    /// Reading a REST request body.
    Body {
        stream: TcpStream,
        head: RestHead,
        body: Vec<u8>,
    },
    /// Reading a WHIP/WHEP request body (`whip.rs`).
    MediaBody {
        stream: TcpStream,
        head: crate::whip::MediaHead,
        body: Vec<u8>,
    },
    /// A REST response held until the store made its write durable.
    Held {
        stream: TcpStream,
        response: Vec<u8>,
    },
    /// Writing a response; then WebSocket for `upgrade = Some((app, early bytes))`, else close.
    Respond {
        stream: TcpStream,
        out: Vec<u8>,
        written: usize,
        upgrade: Option<(String, Vec<u8>)>,
    },
    /// A WebSocket: its socket, tungstenite's protocol state (which reads and writes through
    /// a [`WsIo`]) and the output not yet written to the socket (`out`: empty, without an
    /// allocation, whenever everything was written). `closing`: the node has been told it
    /// closed, only the close handshake is left. `shut`: our write side is shut (everything,
    /// including the close frame, was sent). `poisoned`: tungstenite reported a read error
    /// after which it must not read again (an oversized frame); the socket is drained raw until
    /// EOF. `frames` follows the frames tungstenite was given, so that its read buffer can be
    /// let go of once a large frame is done with (see [`FrameTracker`]).
    Ws {
        stream: TcpStream,
        ws: Box<WebSocketContext>,
        out: Vec<u8>,
        frames: FrameTracker,
        closing: bool,
        shut: bool,
        poisoned: bool,
    },
    /// Transient, while moving between states.
    Gone,
}

struct Conn {
    state: State,
    peer: SocketAddr,
    /// Dropped when this passes (HTTP phase, close linger).
    deadline: Option<Instant>,
    /// WRITABLE interest is registered (only while output is pending).
    writable: bool,
    /// When the WebSocket last delivered a complete frame (or opened).
    last_rx: Instant,
    /// When the server last pinged it.
    last_ping: Option<Instant>,
}

impl Conn {
    /// True for a WebSocket the node still considers open.
    fn is_open_ws(&self) -> bool {
        matches!(self.state, State::Ws { closing: false, .. })
    }
}

/// What to do with a connection after driving it.
enum Next {
    /// Wait for the next event.
    Wait,
    /// Drive again (the state changed).
    Again,
    /// Drop it.
    Remove(&'static str),
    /// Start the close handshake (with this close frame).
    Close(Option<CloseFrame>),
}

/// Reads a request body into `body` until it holds `len` bytes: `None` once it does, else what
/// to do with the connection now (wait for more, or drop it).
fn read_body(stream: &mut TcpStream, body: &mut Vec<u8>, len: usize, token: Token) -> Option<Next> {
    let mut chunk = [0u8; 16 * 1024];
    while body.len() < len {
        let want = (len - body.len()).min(chunk.len());
        match stream.read(chunk.get_mut(..want).unwrap_or_default()) {
            Ok(0) => return Some(Next::Remove("closed before sending the body")),
            Ok(n) => body.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(Next::Wait),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                trace!(conn = token.0, "read: {e}");
                return Some(Next::Remove("read error"));
            }
        }
    }
    None
}

/// Sizes of the runtime's and the cores' state, for the `state sizes` log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StateSizes {
    connections: usize,
    websockets: usize,
    signalling_connections: usize,
    sessions: usize,
    publishers: usize,
    media_sessions: usize,
    signalling_idle: bool,
}

/// The datastore and the REST API, built by the caller of [`Runtime::new`].
#[derive(Debug)]
pub struct Admin {
    /// The datastore (shared with the access policy inside the node).
    pub datastore: Datastore,
    /// The REST API over it.
    pub rest: RestApi,
    /// Who may call it, decided on the request head (before any body byte is read).
    pub gate: RestGate,
}

impl Admin {
    /// Asks the gate about a REST request head from `peer`. `Err((status, response))`: the
    /// refusal to send (then close, without reading the body); logged and counted.
    fn check_head(&mut self, peer: SocketAddr, head: &RestHead) -> Result<(), (u16, Vec<u8>)> {
        let settings = self.datastore.settings(&head.app);
        let health = self.datastore.health();
        let now_ms = crate::clock::unix_ms();
        match self.gate.check(&settings, health, now_ms, peer.ip(), head) {
            Ok(granted) => {
                trace!(%peer, client = %granted.client, credential = ?granted.credential,
                    "rest request granted");
                Ok(())
            }
            Err(refusal) => Err(self.refused(peer, head, &refusal)),
        }
    }

    /// Logs a refused REST request with its counter; returns the response to send.
    fn refused(
        &mut self,
        peer: SocketAddr,
        head: &RestHead,
        refusal: &RestRefusal,
    ) -> (u16, Vec<u8>) {
        let count = self.gate.counters().get(refusal.reason);
        info!(%peer, method = %head.method, path = %head.path, status = refusal.status,
            reason = refusal.reason.as_str(), count, total = self.gate.counters().total(),
            "rest request refused: {}", refusal.message);
        (refusal.status, http::refusal_response(refusal))
    }
}

/// The runtime. Build with [`Runtime::new`], then [`Runtime::run`].
pub struct Runtime {
    poll: Poll,
    listener: Option<TcpListener>,
    accept_pending: bool,
    udp: UdpSocket,
    /// The announced UDP address, passed to the node as each datagram's destination: the
    /// socket may be bound to a wildcard address and the SFU matches its host candidate.
    udp_local: SocketAddr,
    udp_buf: Vec<u8>,
    udp_queue: VecDeque<Transmit>,
    udp_out: udp::UdpSender,
    udp_writable: bool,
    /// The UDP socket may hold more datagrams: the last read stopped at its budget
    /// ([`UDP_READ_BUDGET`]) rather than at `WouldBlock`.
    udp_more: bool,
    signals: Signals,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    dirty: Vec<Token>,
    node: Node,
    apps: Vec<String>,
    ws_config: WebSocketConfig,
    /// Read-ahead for the WebSocket being read (see [`WsIo`]).
    ahead: ReadAhead,
    cpu: CpuMonitor,
    next_cpu_check: Instant,
    next_housekeeping: Instant,
    /// The longest time one loop iteration spent handling events (from the return of
    /// `poll` to the next call), and how many iterations ran: reported at exit, so the
    /// "the loop never waits" claim is measured, not assumed.
    worst_iteration: Duration,
    iterations: u64,
    shutdown_deadline: Option<Instant>,
    counters: Counters,
    logged: Counters,
    /// Data channel drop counters last logged (`rtc_core::DataStats`).
    logged_data: rtc_core::DataStats,
    admin: Admin,
    /// Connection caps, timeouts, output cap.
    limits: Limits,
    /// The total cap applied ([`Limits::max_connections`] within the descriptor limit).
    max_connections: usize,
    /// Connections per peer address.
    per_ip: PerIp,
    /// The connection and signalling state sizes last logged (see `log_state`).
    logged_state: Option<StateSizes>,
    /// WebSockets that stopped reading at their read budget with more to read: driven again
    /// next turn (readiness is edge-triggered, so no new event would come for them).
    more: Vec<Token>,
    /// The listener is deregistered because the process ran out of file descriptors; it is
    /// registered again when a connection goes away (or at the next housekeeping pass).
    accept_paused: bool,
    /// REST responses waiting for durability.
    held: DurableQueue<Token>,
    /// The store's current failure was reported (cleared when it recovers).
    store_failure_reported: bool,
    /// Metrics, health, drain period and webhooks (`observe.rs`).
    obs: observe::Obs,
    /// Cluster mode's Redis socket and core (`cluster.rs`); `None` without `--cluster`.
    cluster: Option<cluster::RedisLink>,
    /// Keeps the store's wake-up registered.
    _waker: std::sync::Arc<Waker>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("udp_local", &self.udp_local)
            .field("conns", &self.conns.len())
            .field("apps", &self.apps)
            .finish_non_exhaustive()
    }
}

fn conn_id(token: Token) -> ConnId {
    ConnId(token.0 as u64)
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == ErrorKind::WouldBlock)
}

fn interrupted(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == ErrorKind::Interrupted)
}

impl Runtime {
    /// Registers the sockets and signal handlers, and builds the node and the datastore with
    /// `make(now, announced UDP address, store notification)`. The notification wakes the loop
    /// (pass it to [`antenna_store::WriteBehind::open`]).
    pub fn new(
        bound: Bound,
        announce: SocketAddr,
        apps: Vec<String>,
        make: impl FnOnce(Instant, SocketAddr, Notify) -> (Node, Admin),
    ) -> io::Result<Runtime> {
        let poll = Poll::new()?;
        let Bound {
            mut listener,
            mut udp,
            ..
        } = bound;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        poll.registry()
            .register(&mut udp, UDP, Interest::READABLE)?;
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let waker = std::sync::Arc::new(Waker::new(poll.registry(), STORE)?);
        let notify_waker = waker.clone();
        let notify: Notify = Box::new(move || {
            if let Err(e) = notify_waker.wake() {
                trace!("store wake: {e}");
            }
        });
        let now = Instant::now();
        let (node, admin) = make(now, announce, notify);
        // tungstenite's own output (pong and close frames) goes straight to the connection's
        // `out` through the WsIo; text frames are formatted into `out` directly.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(MAX_WS_MESSAGE))
            .max_frame_size(Some(MAX_WS_MESSAGE));
        Ok(Runtime {
            poll,
            listener: Some(listener),
            accept_pending: false,
            udp,
            udp_local: announce,
            udp_buf: vec![0; UDP_BUF],
            udp_queue: VecDeque::new(),
            udp_out: udp::UdpSender::default(),
            udp_writable: false,
            udp_more: false,
            signals,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            dirty: Vec::new(),
            node,
            apps,
            ws_config,
            ahead: ReadAhead::new(),
            cpu: CpuMonitor::new(),
            // The first sample is a baseline taken once start-up work is over.
            next_cpu_check: now + overload::CHECK_INTERVAL,
            next_housekeeping: now + HOUSEKEEPING,
            worst_iteration: Duration::ZERO,
            iterations: 0,
            shutdown_deadline: None,
            counters: Counters::default(),
            logged_data: rtc_core::DataStats::default(),
            logged: Counters::default(),
            admin,
            limits: Limits::default(),
            max_connections: limits::effective_max_connections(
                limits::DEFAULT_MAX_CONNECTIONS,
                None,
            ),
            per_ip: PerIp::default(),
            logged_state: None,
            more: Vec::new(),
            accept_paused: false,
            held: DurableQueue::new(),
            store_failure_reported: false,
            obs: observe::Obs::default(),
            cluster: None,
            _waker: waker,
        })
    }

    /// Sets the CPU admission control limit (the default is [`CpuLimit::default`]).
    pub fn with_cpu_limit(mut self, limit: CpuLimit) -> Runtime {
        self.cpu = CpuMonitor::with_limit(limit);
        self
    }

    /// Sets the connection limits; `nofile` is the process's file descriptor limit (the total
    /// cap stays [`limits::FD_RESERVE`] below it).
    pub fn with_limits(mut self, limits: Limits, nofile: Option<u64>) -> Runtime {
        self.max_connections = limits::effective_max_connections(limits.max_connections, nofile);
        self.limits = limits;
        self
    }

    /// The total connection cap applied.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Runs until SIGTERM/SIGINT and the graceful shutdown that follows, then makes every
    /// store write durable and closes the store.
    pub fn run(mut self) -> io::Result<()> {
        let result = self.run_loop();
        info!(
            iterations = self.iterations,
            worst_us = self.worst_iteration.as_micros() as u64,
            "event loop: worst iteration {:.3} ms",
            self.worst_iteration.as_secs_f64() * 1000.0
        );
        self.close_store();
        result
    }

    fn close_store(&mut self) {
        let flushed = self.admin.datastore.store.borrow_mut().flush();
        match (flushed, &self.admin.datastore.path) {
            (Ok(()), Some(path)) => info!(path = %path.display(), "datastore flushed and closed"),
            (Ok(()), None) => debug!("in-memory datastore dropped"),
            (Err(e), _) => warn!("datastore not flushed at exit: {e}"),
        }
    }

    fn run_loop(&mut self) -> io::Result<()> {
        self.report_store_failure();
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() && self.udp_queue.is_empty() {
                    info!("shutdown complete");
                    return Ok(());
                }
                if now >= deadline {
                    info!(
                        remaining = self.conns.len(),
                        "shutdown grace period over; exiting"
                    );
                    return Ok(());
                }
            }
            let mut wake = self.next_housekeeping;
            if let Some(t) = self.node.poll_timeout() {
                wake = wake.min(t);
            }
            if let Some(t) = self.cluster_deadline() {
                wake = wake.min(t);
            }
            if let Some(t) = self.shutdown_deadline.or(self.obs.draining_until) {
                wake = wake.min(t);
            }
            let timeout = if self.udp_more || !self.more.is_empty() {
                Duration::ZERO
            } else {
                wake.saturating_duration_since(now)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let busy_since = Instant::now();
            for event in events.iter() {
                // Per event: a long batch must not age the time the cores see.
                let now = Instant::now();
                match event.token() {
                    LISTENER => self.accept(now),
                    STORE => {
                        self.report_store_failure();
                        self.release_held(now);
                    }
                    SIGNALS => {
                        let mut stop = false;
                        for sig in self.signals.pending() {
                            stop |= sig == SIGTERM || sig == SIGINT;
                        }
                        if stop && self.stop_signal(now) {
                            return Ok(());
                        }
                    }
                    UDP => {
                        if event.is_writable() {
                            self.udp_flush_queue();
                        }
                        if event.is_readable() {
                            // Read after the other events: see `udp_more`.
                            self.udp_more = true;
                        }
                    }
                    cluster::REDIS => self.redis_ready(now, event),
                    token => self.drive(now, token),
                }
            }
            if self.udp_more {
                self.udp_read();
            }
            if !self.more.is_empty() {
                let mut more = std::mem::take(&mut self.more);
                more.sort_unstable();
                more.dedup();
                for token in more {
                    self.drive(Instant::now(), token);
                }
            }
            let now = Instant::now();
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
                self.drain(now);
            }
            if now >= self.next_housekeeping {
                self.housekeeping(now);
            }
            self.cluster_timeout(now);
            self.check_drain(now);
            self.iterations += 1;
            let busy = busy_since.elapsed();
            self.obs.loop_times.observe(busy.as_secs_f64());
            self.worst_iteration = self.worst_iteration.max(busy);
        }
    }

    /// Stops accepting, tells signalling (which sends `server_will_stop` and closes every
    /// WebSocket), and gives the output [`SHUTDOWN_GRACE`] to get out.
    fn begin_shutdown(&mut self, now: Instant) {
        info!(
            connections = self.conns.len(),
            "stop signal: shutting down gracefully"
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let plain: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| !matches!(c.state, State::Ws { .. }))
            .map(|(t, _)| *t)
            .collect();
        for token in plain {
            self.remove(now, token, "server stopping");
        }
        self.node.shutdown(now);
        self.drain(now);
        self.cluster_housekeeping(now, true);
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
    }

    /// Says so, loudly, when the store fails (at open or since), and again when it recovers.
    fn report_store_failure(&mut self) {
        match self.admin.datastore.health() {
            Err(e) if !self.store_failure_reported => {
                self.store_failure_reported = true;
                if e.is_degraded() {
                    error!(
                        "DATASTORE NOT AVAILABLE: {e}. The server keeps running from memory: \
                         publish and play go on (except those that must spend a one-time \
                         token: data_store_not_available), the REST API answers 503, and \
                         commits are retried until the disk works again"
                    );
                } else {
                    error!(
                        "DATASTORE NOT AVAILABLE: {e}. The server keeps running; every publish \
                         and play is refused with data_store_not_available and the REST API \
                         answers 503"
                    );
                }
            }
            Ok(()) if self.store_failure_reported => {
                self.store_failure_reported = false;
                info!("DATASTORE RECOVERED: writes are durable again; the REST API answers again");
            }
            _ => {}
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.next_housekeeping = now + HOUSEKEEPING;
        self.report_store_failure();
        let expired: Vec<(Token, bool)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(t, c)| (*t, matches!(c.state, State::Http { .. })))
            .collect();
        for (token, head) in expired {
            if head {
                // Slowloris: the request head did not come in time.
                self.counters.http_timeouts += 1;
                if let Some(c) = self.conns.get(&token) {
                    debug!(conn = token.0, peer = %c.peer, "no request head in time; dropped");
                }
            }
            self.remove(now, token, "timed out");
        }
        self.check_liveness(now);
        self.drain(now);
        self.cluster_housekeeping(now, false);
        self.log_state();
        self.release_held(now);
        if self.accept_paused {
            self.resume_accept(now);
        }
        if self.accept_pending {
            self.accept(now);
        }
        if now >= self.next_cpu_check && self.cpu.limit() != CpuLimit::OFF {
            self.next_cpu_check = now + overload::CHECK_INTERVAL;
            if let Some(cpu) = overload::read_process_cpu() {
                if let Some(overloaded) = self.cpu.sample(now, cpu) {
                    if overloaded {
                        warn!(
                            "CPU above {} of a core: refusing new publishers and players \
                             (highResourceUsage)",
                            self.cpu.limit().describe()
                        );
                    } else {
                        info!("CPU back to normal");
                    }
                    self.node.set_overloaded(now, overloaded);
                    self.drain(now);
                }
            }
        }
        if self.counters != self.logged {
            let c = self.counters;
            let refusals = (
                c.udp_dropped,
                c.slow_clients_dropped,
                c.refused_total,
                c.refused_per_ip,
                c.accept_paused,
                c.http_timeouts,
                c.ws_idle_closed,
            );
            let l = self.logged;
            let logged = (
                l.udp_dropped,
                l.slow_clients_dropped,
                l.refused_total,
                l.refused_per_ip,
                l.accept_paused,
                l.http_timeouts,
                l.ws_idle_closed,
            );
            if refusals != logged {
                warn!(
                    udp_dropped = c.udp_dropped,
                    slow_clients_dropped = c.slow_clients_dropped,
                    refused_total = c.refused_total,
                    refused_per_ip = c.refused_per_ip,
                    accept_paused = c.accept_paused,
                    http_timeouts = c.http_timeouts,
                    ws_idle_closed = c.ws_idle_closed,
                    connections = self.per_ip.total(),
                    "refusals and drops so far"
                );
            } else {
                debug!(
                    ws_pings_sent = c.ws_pings_sent,
                    read_budget_yields = c.read_budget_yields,
                    "websocket liveness and fairness"
                );
            }
            self.logged = c;
        }
        // Data-channel messages the relay dropped (oversize, over rate, slow receivers):
        // logged once per housekeeping pass when they change.
        let data = self.node.sfu.data_stats();
        let drops = |d: &rtc_core::DataStats| {
            (
                d.dropped_oversize,
                d.dropped_rate,
                d.dropped_congested,
                d.dropped_not_relayed,
            )
        };
        if drops(&data) != drops(&self.logged_data) {
            info!(
                received = data.received,
                delivered = data.delivered,
                dropped_oversize = data.dropped_oversize,
                dropped_rate = data.dropped_rate,
                dropped_congested = data.dropped_congested,
                dropped_not_relayed = data.dropped_not_relayed,
                "data channel messages dropped"
            );
            self.logged_data = data;
        }
    }

    /// Logs the sizes of the connection and signalling state when they change (at most once
    /// per housekeeping pass), so that what ghosts and idle timeouts leave behind is visible.
    fn log_state(&mut self) {
        let sizes = StateSizes {
            connections: self.conns.len(),
            websockets: self.conns.values().filter(|c| c.is_open_ws()).count(),
            signalling_connections: self.node.sig.connection_count(),
            sessions: self.node.sig.session_count(),
            publishers: self.node.sig.publisher_count(),
            media_sessions: self.node.sfu.session_count(),
            signalling_idle: self.node.sig.is_idle(),
        };
        if self.logged_state == Some(sizes) {
            return;
        }
        debug!(
            connections = sizes.connections,
            websockets = sizes.websockets,
            signalling_connections = sizes.signalling_connections,
            sessions = sizes.sessions,
            publishers = sizes.publishers,
            media_sessions = sizes.media_sessions,
            signalling_idle = sizes.signalling_idle,
            "state sizes"
        );
        self.logged_state = Some(sizes);
    }

    /// The counters of refusals and drops.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Pings WebSockets that have been quiet for [`Limits::ws_ping_interval`] and closes those
    /// quiet for [`Limits::ws_idle_timeout`] (code 1001): a client that vanished without a
    /// close (its host gone, its network down) then no longer holds its streams, p2p slot or
    /// room membership.
    fn check_liveness(&mut self, now: Instant) {
        let mut ping = Vec::new();
        let mut idle = Vec::new();
        for (token, conn) in &self.conns {
            if !conn.is_open_ws() {
                continue;
            }
            match limits::ws_liveness(&self.limits, now, conn.last_rx, conn.last_ping) {
                Liveness::Fine => {}
                Liveness::Ping => ping.push(*token),
                Liveness::Idle => idle.push(*token),
            }
        }
        for token in idle {
            self.counters.ws_idle_closed += 1;
            if let Some(c) = self.conns.get(&token) {
                info!(
                    conn = token.0,
                    peer = %c.peer,
                    "websocket idle for {} ms; closing it (1001)",
                    self.limits.ws_idle_timeout.as_millis()
                );
            }
            self.begin_close(
                now,
                token,
                Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "idle timeout".into(),
                }),
            );
        }
        for token in ping {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let State::Ws { out, .. } = &mut conn.state else {
                continue;
            };
            conn.last_ping = Some(now);
            if Frame::ping(Vec::new()).format(out).is_ok() {
                self.counters.ws_pings_sent += 1;
                self.dirty.push(token);
            }
        }
    }

    /// Registers the listener again after it was paused for lack of file descriptors.
    fn resume_accept(&mut self, now: Instant) {
        if !self.accept_paused {
            return;
        }
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        match self
            .poll
            .registry()
            .register(listener, LISTENER, Interest::READABLE)
        {
            Ok(()) => {
                self.accept_paused = false;
                info!("accepting connections again");
                // Connections that queued meanwhile raised no new edge.
                self.accept(now);
            }
            Err(e) => warn!("cannot register the listener again: {e}"),
        }
    }

    /// Stops accepting (the process is out of file descriptors) until a connection goes away:
    /// with the listener registered, every queued connection would wake the loop again.
    fn pause_accept(&mut self) {
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        if self.accept_paused {
            return;
        }
        match self.poll.registry().deregister(listener) {
            Ok(()) => {
                self.accept_paused = true;
                self.counters.accept_paused += 1;
            }
            Err(e) => {
                // Still registered: retry at the next housekeeping pass.
                warn!("cannot pause the listener: {e}");
                self.accept_pending = true;
            }
        }
    }

    /// Answers a connection refused at a cap (`503`, written at once: a fresh socket's buffer
    /// takes it) and closes it; the client gets a clear answer without costing a slot.
    fn refuse(&mut self, mut stream: TcpStream, peer: SocketAddr, why: Refusal) {
        match why {
            Refusal::Total => self.counters.refused_total += 1,
            Refusal::PerIp => self.counters.refused_per_ip += 1,
        }
        debug!(
            %peer,
            connections = self.per_ip.total(),
            from_peer = self.per_ip.of(peer.ip()),
            "connection refused ({why:?} cap): 503"
        );
        let _ = stream.write(REFUSED_503);
        let _ = stream.shutdown(Shutdown::Write);
    }

    // --- TCP ---------------------------------------------------------------------------------

    fn accept(&mut self, now: Instant) {
        self.accept_pending = false;
        loop {
            if self.accept_paused {
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if let Err(why) = self.per_ip.admit(
                        peer.ip(),
                        self.max_connections,
                        self.limits.max_connections_per_ip,
                    ) {
                        self.refuse(stream, peer, why);
                        continue;
                    }
                    if let Err(e) = limits::set_keepalive(&stream, self.limits.tcp_keepalive) {
                        trace!(%peer, "keepalive: {e}");
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if let Err(e) = stream.set_nodelay(true) {
                        trace!(%peer, "set_nodelay: {e}");
                    }
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        warn!(%peer, "cannot register connection: {e}");
                        self.per_ip.release(peer.ip());
                        continue;
                    }
                    trace!(conn = token.0, %peer, "accepted");
                    self.conns.insert(
                        token,
                        Conn {
                            state: State::Http {
                                stream,
                                buf: Vec::new(),
                            },
                            peer,
                            deadline: Some(now + self.limits.http_head_timeout),
                            writable: false,
                            last_rx: now,
                            last_ping: None,
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(
                            nix::libc::EMFILE
                                | nix::libc::ENFILE
                                | nix::libc::ENOBUFS
                                | nix::libc::ENOMEM
                        )
                    ) =>
                {
                    // Out of descriptors (or kernel memory): the queued connections wait in
                    // the backlog until a connection goes away; no spinning on `accept`.
                    warn!(
                        connections = self.per_ip.total(),
                        "accept failed: {e}; not accepting until a connection closes"
                    );
                    self.pause_accept();
                    break;
                }
                Err(e) => {
                    // E.g. out of file descriptors: retry at the next housekeeping pass
                    // rather than spin.
                    warn!("accept failed: {e}");
                    self.accept_pending = true;
                    break;
                }
            }
        }
    }

    /// Sets WRITABLE interest on or off.
    fn set_writable(&mut self, token: Token, on: bool) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.writable == on {
            return;
        }
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let registry = self.poll.registry();
        let result = match &mut conn.state {
            State::Http { stream, .. }
            | State::Respond { stream, .. }
            | State::Body { stream, .. }
            | State::MediaBody { stream, .. }
            | State::Held { stream, .. }
            | State::Ws { stream, .. } => registry.reregister(stream, token, interest),
            State::Gone => Ok(()),
        };
        match result {
            Ok(()) => conn.writable = on,
            Err(e) => debug!(conn = token.0, "reregister: {e}"),
        }
    }

    /// Handles readiness of a connection: whatever its state can do now.
    fn drive(&mut self, now: Instant, token: Token) {
        loop {
            let Some(conn) = self.conns.get(&token) else {
                trace!(token = token.0, "event for an unknown token");
                break;
            };
            let next = match conn.state {
                State::Http { .. } => self.drive_http(token),
                State::Body { .. } => self.drive_body(now, token),
                State::MediaBody { .. } => self.drive_media_body(now, token),
                State::Held { .. } => Next::Wait,
                State::Respond { .. } => self.drive_respond(now, token),
                State::Ws { .. } => self.drive_ws(now, token),
                State::Gone => Next::Remove("internal state"),
            };
            match next {
                Next::Wait => break,
                Next::Again => continue,
                Next::Remove(why) => {
                    self.remove(now, token, why);
                    break;
                }
                Next::Close(frame) => {
                    self.begin_close(now, token, frame);
                    break;
                }
            }
        }
        self.drain(now);
    }

    fn drive_http(&mut self, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::Http { stream, buf } = &mut conn.state else {
            return Next::Again;
        };
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return Next::Remove("closed before sending a request"),
                Ok(n) => {
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    let Some((consumed, action)) = http::handle_request(buf, &self.apps) else {
                        continue;
                    };
                    let early = buf.get(consumed..).unwrap_or_default().to_vec();
                    let State::Http { stream, .. } =
                        std::mem::replace(&mut conn.state, State::Gone)
                    else {
                        return Next::Remove("internal state");
                    };
                    let (out, upgrade) = match action {
                        Action::Rest(head) => {
                            // Access is decided on the head: a refused request is answered
                            // and closed, its body never read.
                            if let Err((status, response)) = self.admin.check_head(conn.peer, &head)
                            {
                                debug!(conn = token.0, status, "rest refused on its head");
                                conn.state = State::Respond {
                                    stream,
                                    out: response,
                                    written: 0,
                                    upgrade: None,
                                };
                                return Next::Again;
                            }
                            let mut body = early;
                            body.truncate(head.content_length);
                            if head.expect_continue && body.len() < head.content_length {
                                // Best effort: a fresh socket takes 25 bytes at once; if not,
                                // the client sends the body after its own short wait anyway.
                                let mut stream = stream;
                                let _ = stream.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                                conn.state = State::Body { stream, head, body };
                                return Next::Again;
                            }
                            conn.state = State::Body { stream, head, body };
                            return Next::Again;
                        }
                        Action::Media(head) => {
                            let mut body = early;
                            body.truncate(head.content_length);
                            conn.state = State::MediaBody { stream, head, body };
                            return Next::Again;
                        }
                        Action::Upgrade { app, response } => (response, Some((app, early))),
                        Action::Metrics(_) | Action::Health { .. } => {
                            let peer = conn.peer;
                            let out = match action {
                                Action::Metrics(head) => self.metrics_response(peer, &head),
                                Action::Health { ready, head } => self.health_response(ready, head),
                                _ => Vec::new(),
                            };
                            if let Some(conn) = self.conns.get_mut(&token) {
                                conn.state = State::Respond {
                                    stream,
                                    out,
                                    written: 0,
                                    upgrade: None,
                                };
                            }
                            return Next::Again;
                        }
                        Action::RestRefused { refusal, head } => {
                            self.admin.gate.count(refusal.reason);
                            let (_, response) = self.admin.refused(conn.peer, &head, &refusal);
                            (response, None)
                        }
                        Action::Respond { status, response } => {
                            debug!(conn = token.0, peer = %conn.peer, status, "http response");
                            (response, None)
                        }
                    };
                    conn.state = State::Respond {
                        stream,
                        out,
                        written: 0,
                        upgrade,
                    };
                    return Next::Again;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    trace!(conn = token.0, "read: {e}");
                    return Next::Remove("read error");
                }
            }
        }
    }

    /// Reads a REST body; once complete, answers the request (or holds the answer until its
    /// write is durable).
    fn drive_body(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::Body { stream, head, body } = &mut conn.state else {
            return Next::Again;
        };
        if let Some(next) = read_body(stream, body, head.content_length, token) {
            return next;
        }
        let State::Body { stream, head, body } = std::mem::replace(&mut conn.state, State::Gone)
        else {
            return Next::Remove("internal state");
        };
        let peer = conn.peer;
        let (status, response, durable_after) = self.rest_answer(now, peer, &head, &body);
        debug!(conn = token.0, %peer, method = %head.method, path = %head.path, status,
            held = durable_after.is_some(), "rest response");
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let durable = self.admin.datastore.store.borrow().durable_seq();
        match durable_after {
            Some(seq) if seq > durable => {
                conn.state = State::Held { stream, response };
                conn.deadline = Some(now + DURABLE_TIMEOUT);
                self.held.push(seq, token);
                Next::Wait
            }
            _ => {
                conn.state = State::Respond {
                    stream,
                    out: response,
                    written: 0,
                    upgrade: None,
                };
                Next::Again
            }
        }
    }

    /// Reads a WHIP/WHEP body; once complete, the node answers the request.
    fn drive_media_body(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::MediaBody { stream, head, body } = &mut conn.state else {
            return Next::Again;
        };
        if let Some(next) = read_body(stream, body, head.content_length, token) {
            return next;
        }
        let State::MediaBody { stream, head, body } =
            std::mem::replace(&mut conn.state, State::Gone)
        else {
            return Next::Remove("internal state");
        };
        let peer = conn.peer;
        let reply = self.node.handle_http_media(now, peer.ip(), &head, &body);
        debug!(conn = token.0, %peer, kind = head.kind.segment(), stream = %head.stream,
            status = reply.status, "whip/whep response");
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        conn.state = State::Respond {
            stream,
            out: reply.response,
            written: 0,
            upgrade: None,
        };
        Next::Again
    }

    /// Answers one REST request: `(status, whole HTTP response, write to wait for)`.
    fn rest_answer(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        head: &RestHead,
        body: &[u8],
    ) -> (u16, Vec<u8>, Option<WriteSeq>) {
        // Access (address, Host, Origin, credential, content type, store health) was granted
        // on the head by `Admin::check_head`.
        let resp = self.admin.rest.serve(
            crate::clock::unix_ms(),
            &RestRequest {
                method: &head.method,
                path: &head.path,
                query: &head.query,
                authorization: head.authorization.as_deref(),
                body,
                peer: peer.ip(),
            },
        );
        if let Some(app) = &resp.settings_changed {
            self.settings_changed(now, app);
        }
        let out = http::response(
            resp.status,
            http::reason(resp.status),
            resp.content_type,
            &resp.body,
            head.method == "HEAD",
            &[],
        );
        (resp.status, out, resp.durable_after)
    }

    /// An application's settings changed: security settings apply by themselves (read from the
    /// store); the signalling options follow the first application's settings.
    fn settings_changed(&mut self, now: Instant, app: &str) {
        if self.apps.first().map(String::as_str) != Some(app) {
            return;
        }
        let settings = self.admin.datastore.settings(app);
        let mut config = self.node.sig.config().clone();
        datastore::apply_to_signalling(&settings, &mut config);
        info!(
            app,
            "application settings changed; signalling options updated"
        );
        self.node.sig.set_config(config);
        let mut data = *self.node.sfu.data_config();
        datastore::apply_to_data(&settings, &mut data);
        self.node.sfu.set_data_config(data);
        self.drain(now);
    }

    /// Sends the held REST responses whose writes are durable (all of them, with 503, if the
    /// store failed meanwhile).
    fn release_held(&mut self, now: Instant) {
        if self.held.is_empty() {
            return;
        }
        let failed = self.admin.datastore.health().err();
        if failed.is_some() {
            self.report_store_failure();
        }
        let durable = if failed.is_some() {
            WriteSeq(u64::MAX)
        } else {
            self.admin.datastore.store.borrow().durable_seq()
        };
        while let Some(token) = self.held.pop_ready(durable) {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let State::Held { stream, response } = std::mem::replace(&mut conn.state, State::Gone)
            else {
                continue;
            };
            let out = match &failed {
                None => response,
                Some(e) => {
                    warn!(
                        conn = token.0,
                        "store failed before the write was durable: {e}"
                    );
                    let body = serde_json::json!({"success": false,
                        "message": format!("data_store_not_available: {e}"), "dataId": null, "errorId": 0})
                    .to_string();
                    http::response(
                        503,
                        http::reason(503),
                        "application/json",
                        body.as_bytes(),
                        false,
                        &[],
                    )
                }
            };
            conn.state = State::Respond {
                stream,
                out,
                written: 0,
                upgrade: None,
            };
            conn.deadline = Some(now + HTTP_TIMEOUT);
            self.drive(now, token);
        }
    }

    fn drive_respond(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::Respond {
            stream,
            out,
            written,
            ..
        } = &mut conn.state
        else {
            return Next::Again;
        };
        while *written < out.len() {
            match stream.write(out.get(*written..).unwrap_or_default()) {
                Ok(0) => return Next::Remove("write returned 0"),
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.set_writable(token, true);
                    return Next::Wait;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    trace!(conn = token.0, "write: {e}");
                    return Next::Remove("write error");
                }
            }
        }
        let State::Respond {
            stream, upgrade, ..
        } = std::mem::replace(&mut conn.state, State::Gone)
        else {
            return Next::Remove("internal state");
        };
        let Some((app, early)) = upgrade else {
            // Plain HTTP: everything was written; half-close and drop.
            let _ = stream.shutdown(Shutdown::Write);
            conn.state = State::Respond {
                stream,
                out: Vec::new(),
                written: 0,
                upgrade: None,
            };
            return Next::Remove("response sent");
        };
        let ws = WebSocketContext::from_partially_read(early, Role::Server, Some(self.ws_config));
        conn.state = State::Ws {
            stream,
            ws: Box::new(ws),
            out: Vec::new(),
            frames: FrameTracker::default(),
            closing: false,
            shut: false,
            poisoned: false,
        };
        conn.deadline = None;
        conn.last_rx = now;
        debug!(conn = token.0, peer = %conn.peer, %app, "websocket open");
        self.set_writable(token, false);
        self.node.handle_ws_open(now, conn_id(token), &app);
        // Read whatever arrived meanwhile: its readiness edge may already have fired.
        Next::Again
    }

    fn drive_ws(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::Ws {
            stream,
            ws,
            out,
            frames,
            closing,
            poisoned,
            ..
        } = &mut conn.state
        else {
            return Next::Again;
        };
        // Whatever is left from another connection (one that stopped reading early) is not ours.
        self.ahead.clear();
        if *poisoned {
            return drain_raw(stream);
        }
        let id = conn_id(token);
        let cap = self.limits.max_pending_output;
        let mut io = WsIo {
            stream,
            ahead: &mut self.ahead,
            out,
            frames,
            budget: WS_READ_BUDGET,
            yielded: false,
        };
        let next = loop {
            let read = ws.read(&mut io);
            if read.is_ok() {
                conn.last_rx = now;
            }
            // Every byte counts against the output cap, tungstenite's pongs and close
            // replies included: a client that sends pings and never reads is dropped.
            if io.out.len() > cap {
                info!(
                    conn = token.0,
                    peer = %conn.peer,
                    "client is not reading: over {cap} bytes pending; dropping it"
                );
                self.counters.slow_clients_dropped += 1;
                break Next::Remove("output limit");
            }
            match read {
                Ok(Message::Text(text)) => {
                    if *closing {
                        trace!(conn = token.0, "text after close ignored");
                    } else {
                        self.node.handle_ws_text(now, id, text.as_str());
                    }
                }
                Ok(Message::Binary(data)) => {
                    trace!(conn = token.0, len = data.len(), "binary frame ignored");
                }
                Ok(Message::Close(frame)) => {
                    debug!(conn = token.0, ?frame, "close frame received");
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Err(e) if would_block(&e) => break Next::Wait,
                Err(e) if interrupted(&e) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    break Next::Remove("closed");
                }
                Err(tungstenite::Error::Capacity(e)) => {
                    // tungstenite's frame reader must not be called again after this.
                    *poisoned = true;
                    info!(conn = token.0, peer = %conn.peer, "closing websocket: {e}");
                    break Next::Close(Some(CloseFrame {
                        code: CloseCode::Size,
                        reason: "message too big".into(),
                    }));
                }
                Err(e) => {
                    debug!(conn = token.0, "websocket error: {e}");
                    break Next::Remove("websocket error");
                }
            }
        };
        if matches!(next, Next::Wait) && io.yielded {
            // Budget used with more to read: back in line for the next turn.
            self.counters.read_budget_yields += 1;
            self.more.push(token);
        }
        if matches!(next, Next::Wait) {
            // tungstenite keeps a read buffer as large as the largest frame it was given. Once
            // such a frame is done with and nothing is half-received, a fresh context (with a
            // small buffer) takes over: nothing is lost, as a server-side context between
            // messages holds only its configuration and state (checked: open, no close
            // begun, nothing queued).
            if !*closing
                && ws.can_write()
                && io.frames.at_rest()
                && io.frames.largest > WS_READ_BUFFER as u64
                && ws.flush(&mut io).is_ok()
            {
                trace!(
                    conn = token.0,
                    largest = io.frames.largest,
                    "websocket read buffer released"
                );
                **ws = WebSocketContext::new(Role::Server, Some(self.ws_config));
                io.frames.largest = 0;
            }
            // Pong and close replies are queued by tungstenite; send them.
            self.dirty.push(token);
        }
        next
    }

    /// Starts the WebSocket close handshake; the node learns the connection closed.
    fn begin_close(&mut self, now: Instant, token: Token, frame: Option<CloseFrame>) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let State::Ws {
            stream,
            ws,
            out,
            frames,
            closing,
            ..
        } = &mut conn.state
        else {
            self.remove(now, token, "closed");
            return;
        };
        if *closing {
            return;
        }
        *closing = true;
        conn.deadline = Some(now + CLOSE_LINGER);
        let mut io = WsIo {
            stream,
            ahead: &mut self.ahead,
            out,
            frames,
            budget: WS_READ_BUDGET,
            yielded: false,
        };
        match ws.close(&mut io, frame) {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => trace!(conn = token.0, "close: {e}"),
        }
        self.dirty.push(token);
        self.node.handle_ws_closed(now, conn_id(token));
    }

    /// Drops a connection; tells the node if it had an open WebSocket.
    fn remove(&mut self, now: Instant, token: Token, why: &str) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        self.per_ip.release(conn.peer.ip());
        let was_open = conn.is_open_ws();
        trace!(conn = token.0, peer = %conn.peer, why, "connection removed");
        if was_open {
            debug!(conn = token.0, peer = %conn.peer, why, "websocket closed");
        }
        if let State::Ws { stream, out, .. } = &mut conn.state {
            // What can still go out without waiting (e.g. the answer to the client's close
            // frame, queued as the handshake ended) is sent.
            let _ = write_out(stream, out);
        }
        let registry = self.poll.registry();
        let _ = match &mut conn.state {
            State::Http { stream, .. }
            | State::Respond { stream, .. }
            | State::Body { stream, .. }
            | State::MediaBody { stream, .. }
            | State::Held { stream, .. }
            | State::Ws { stream, .. } => registry.deregister(stream),
            State::Gone => Ok(()),
        };
        drop(conn);
        if was_open {
            self.node.handle_ws_closed(now, conn_id(token));
        }
        if self.accept_paused {
            self.resume_accept(now);
        }
    }

    /// Writes out a WebSocket's queued frames (tungstenite's pong and close frames first join
    /// the output). Once all is written the output buffer is freed, so an idle connection
    /// holds no output memory whatever it was sent before.
    fn flush(&mut self, now: Instant, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let State::Ws {
            stream,
            ws,
            out,
            frames,
            closing,
            shut,
            ..
        } = &mut conn.state
        else {
            return;
        };
        let mut io = WsIo {
            stream,
            ahead: &mut self.ahead,
            out,
            frames,
            budget: WS_READ_BUDGET,
            yielded: false,
        };
        // Only moves bytes into `out` (WsIo's writes never block).
        let handshake_done = match ws.flush(&mut io) {
            Ok(()) => false,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => true,
            Err(e) => {
                debug!(conn = token.0, "flush: {e}");
                self.remove(now, token, "write error");
                return;
            }
        };
        match write_out(io.stream, io.out) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.set_writable(token, true);
                return;
            }
            Err(e) => {
                debug!(conn = token.0, "write: {e}");
                self.remove(now, token, "write error");
                return;
            }
        }
        if handshake_done {
            self.remove(now, token, "close handshake done");
            return;
        }
        if *closing && !*shut {
            // Close frame sent: half-close so the client sees the end, and wait for its close
            // reply (or EOF) until the linger deadline.
            *shut = true;
            let _ = io.stream.shutdown(Shutdown::Write);
        }
        self.set_writable(token, false);
    }

    /// Queues a text frame (formatted straight into the connection's output; tungstenite's
    /// state is not involved in sending data). A client with more than [`MAX_PENDING_OUTPUT`]
    /// bytes pending is not reading: it is dropped.
    fn ws_send(&mut self, now: Instant, id: ConnId, text: String) {
        let Some(token) = usize::try_from(id.0).ok().map(Token) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&token) else {
            trace!(conn = id.0, "send to a closed connection dropped");
            return;
        };
        let State::Ws {
            ws,
            out,
            closing: false,
            ..
        } = &mut conn.state
        else {
            trace!(conn = id.0, "send to a closing connection dropped");
            return;
        };
        if !ws.can_write() {
            trace!(conn = id.0, "send after the close handshake began dropped");
            return;
        }
        let frame = Frame::message(text, OpCode::Data(Data::Text), true);
        let cap = self.limits.max_pending_output;
        if out.len() + frame.len() > cap {
            info!(
                conn = id.0,
                peer = %conn.peer,
                "client is not reading: over {cap} bytes pending; dropping it"
            );
            self.counters.slow_clients_dropped += 1;
            self.remove(now, token, "output limit");
            return;
        }
        match frame.format(out) {
            Ok(()) => self.dirty.push(token),
            Err(e) => {
                debug!(conn = id.0, "write: {e}");
                self.remove(now, token, "write error");
            }
        }
    }

    /// Moves every node output to its socket, then flushes the WebSockets written to. Repeats
    /// while that produces more node output (a dropped client is reported to the node).
    fn drain(&mut self, now: Instant) {
        loop {
            while let Some(out) = self.node.poll_output() {
                match out {
                    NodeOutput::WsSend(id, text) => self.ws_send(now, id, text),
                    NodeOutput::WsClose(id) => {
                        if let Ok(t) = usize::try_from(id.0) {
                            self.begin_close(now, Token(t), None);
                        }
                    }
                    NodeOutput::UdpSend(t) => self.udp_send(t),
                }
            }
            if !self.udp_writable {
                self.udp_flush_queue();
            }
            self.pump_hooks(now);
            if self.dirty.is_empty() {
                break;
            }
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for token in dirty {
                self.flush(now, token);
            }
        }
    }

    // --- UDP ---------------------------------------------------------------------------------

    /// Reads datagrams until the socket is empty or [`UDP_READ_BUDGET`] were read (then
    /// `udp_more` stays set and the loop comes back without waiting, after the other sockets
    /// and timers had their turn: an overloaded media socket must not starve signalling).
    /// What the datagrams wrote to players is flushed and sent (`sendmmsg`, see [`udp`]) as
    /// soon as the socket is empty, and at least every [`UDP_FLUSH_EVERY`] datagrams: no
    /// packet waits for one that has not arrived yet. Timers that fell due meanwhile are
    /// handled every [`UDP_BATCH`] datagrams.
    fn udp_read(&mut self) {
        let mut batch = 0;
        let mut unflushed = 0;
        for _ in 0..UDP_READ_BUDGET {
            match self.udp.recv_from(&mut self.udp_buf) {
                Ok((n, source)) => {
                    // Receive time per datagram (RTT and jitter estimates use it).
                    let now = Instant::now();
                    let data = self.udp_buf.get(..n).unwrap_or_default();
                    self.obs.traffic.packets_in += 1;
                    self.obs.traffic.bytes_in += n as u64;
                    self.node.handle_udp(now, source, self.udp_local, data);
                    unflushed += 1;
                    if unflushed == UDP_FLUSH_EVERY {
                        unflushed = 0;
                        self.node.flush_media(now);
                    }
                    self.drain(now);
                    batch += 1;
                    if batch == UDP_BATCH {
                        batch = 0;
                        if self.node.poll_timeout().is_some_and(|t| t <= now) {
                            self.node.handle_timeout(now);
                            self.drain(now);
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.udp_more = false;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // E.g. ECONNREFUSED reported for an earlier send: harmless, keep reading.
                    trace!("udp recv: {e}");
                }
            }
        }
        let now = Instant::now();
        self.node.flush_media(now);
        self.drain(now);
    }

    /// Queues a datagram; [`Runtime::drain`] sends the queue in batches once the node's
    /// output is drained (sooner when a batch is full), unless the socket is full and the
    /// queue waits for it to become writable.
    fn udp_send(&mut self, t: Transmit) {
        if self.udp_queue.len() >= MAX_UDP_QUEUE {
            self.counters.udp_dropped += 1;
            return;
        }
        self.udp_queue.push_back(t);
        if self.udp_queue.len() >= udp::BATCH && !self.udp_writable {
            self.udp_flush_queue();
        }
    }

    /// Sends the queue, [`udp::BATCH`] datagrams per system call, until it is empty or the
    /// socket is full (then it waits for a writable event).
    fn udp_flush_queue(&mut self) {
        while !self.udp_queue.is_empty() {
            let pending = self.udp_queue.make_contiguous();
            match self.udp_out.send(&self.udp, pending) {
                Ok(done) => {
                    for t in self.udp_queue.drain(..done) {
                        self.obs.traffic.packets_out += 1;
                        self.obs.traffic.bytes_out += t.contents.len() as u64;
                    }
                }
                Err(_) => {
                    self.udp_set_writable(true);
                    return;
                }
            }
        }
        self.udp_set_writable(false);
    }

    fn udp_set_writable(&mut self, on: bool) {
        if self.udp_writable == on {
            return;
        }
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match self
            .poll
            .registry()
            .reregister(&mut self.udp, UDP, interest)
        {
            Ok(()) => self.udp_writable = on,
            Err(e) => warn!("udp reregister: {e}"),
        }
    }
}

/// Reads and discards until `WouldBlock` (wait) or EOF/error (remove).
fn drain_raw(stream: &mut TcpStream) -> Next {
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return Next::Remove("closed"),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Next::Remove("read error"),
        }
    }
}

/// The runtime's read-ahead buffer: one for every WebSocket, holding what was read from the
/// socket of the connection being driven and not yet taken by tungstenite.
struct ReadAhead {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadAhead {
    fn new() -> ReadAhead {
        ReadAhead {
            buf: vec![0; WS_READ_AHEAD].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// What tungstenite reads from and writes to. Reads come from a WebSocket's socket through
/// the shared [`ReadAhead`]: tungstenite reads at most its (small, per-connection) read
/// buffer's size at a time; this reads the socket in large chunks and hands them out from
/// memory, so small per-connection buffers do not cost a system call per [`WS_READ_BUFFER`]
/// bytes. The read-ahead only ever holds bytes of the connection being driven: tungstenite is
/// read until `WouldBlock`, which this returns only once the read-ahead is empty, and the
/// driver clears it before reading another connection. Writes are appended to the
/// connection's output (`out`), which the runtime writes to the socket: tungstenite never
/// keeps output (or a buffer sized for it) of its own.
struct WsIo<'a> {
    stream: &'a mut TcpStream,
    ahead: &'a mut ReadAhead,
    out: &'a mut Vec<u8>,
    /// Sees every byte handed to tungstenite.
    frames: &'a mut FrameTracker,
    /// Bytes this may still read from the socket (the per-turn read budget).
    budget: usize,
    /// The budget ran out: the `WouldBlock` returned was not the socket's.
    yielded: bool,
}

impl Read for WsIo<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.ahead.start >= self.ahead.end {
            self.ahead.clear();
            if self.budget == 0 {
                // Only ever with the read-ahead empty, so nothing of this connection is lost
                // when another one is read next.
                self.yielded = true;
                return Err(ErrorKind::WouldBlock.into());
            }
            let room = self.budget.min(self.ahead.buf.len());
            // WouldBlock and errors go to tungstenite as they are; 0 is the end of the stream.
            let n = self
                .stream
                .read(self.ahead.buf.get_mut(..room).unwrap_or_default())?;
            self.ahead.end = n;
            self.budget = self.budget.saturating_sub(n);
        }
        let available = self
            .ahead
            .buf
            .get(self.ahead.start..self.ahead.end)
            .unwrap_or_default();
        let n = available.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
            self.frames.feed(src);
        }
        self.ahead.start += n;
        Ok(n)
    }
}

impl Write for WsIo<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Follows the frame boundaries of a client's byte stream (RFC 6455 section 5.2 headers), to
/// tell when tungstenite holds neither part of a frame nor part of a fragmented message, and
/// how large the largest frame was. It only counts: tungstenite validates the frames.
#[derive(Debug, Default, Clone)]
struct FrameTracker {
    /// The header of the frame being received, so far (at most 14 bytes).
    head: [u8; 14],
    head_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// A data frame without FIN was seen: its message is not complete yet.
    fragmented: bool,
    /// The largest frame payload seen (reset by the runtime).
    largest: u64,
}

impl FrameTracker {
    fn feed(&mut self, mut data: &[u8]) {
        while let Some((&byte, rest)) = data.split_first() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len() as u64);
                self.payload_left -= n;
                data = data.get(n as usize..).unwrap_or_default();
                continue;
            }
            data = rest;
            if let Some(slot) = self.head.get_mut(self.head_len) {
                *slot = byte;
                self.head_len += 1;
            }
            if let Some((fin, opcode, len)) = self.header() {
                self.head_len = 0;
                self.payload_left = len;
                self.largest = self.largest.max(len);
                // Data frames (continuation 0, text 1, binary 2) start or go on with a
                // message; control frames (8 and up) may come in between and change nothing.
                if opcode < 8 {
                    self.fragmented = !fin;
                }
            }
        }
    }

    /// `(FIN, opcode, payload length)` once the header is complete.
    fn header(&self) -> Option<(bool, u8, u64)> {
        let head = self.head.get(..self.head_len)?;
        let (&b0, &b1) = (head.first()?, head.get(1)?);
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        let (ext, len7) = match b1 & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        if head.len() < 2 + ext + mask {
            return None;
        }
        let len = match len7 {
            Some(n) => n,
            None => head
                .get(2..2 + ext)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        };
        Some((b0 & 0x80 != 0, b0 & 0x0f, len))
    }

    /// True between frames, outside a fragmented message.
    fn at_rest(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0 && !self.fragmented
    }
}

/// Writes `out` to `stream` until it is empty (then frees its allocation) or the socket would
/// block (`WouldBlock`, the rest stays in `out`).
fn write_out(stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    let mut written = 0;
    let result = loop {
        let Some(rest) = out.get(written..).filter(|r| !r.is_empty()) else {
            break Ok(());
        };
        match stream.write(rest) {
            Ok(0) => break Err(io::Error::new(ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    if written >= out.len() {
        *out = Vec::new();
    } else {
        out.drain(..written);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair: the server side as a non-blocking mio stream, the client side std.
    fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (TcpStream::from_std(server), client)
    }

    #[test]
    fn ws_io_reads_through_the_read_ahead_in_small_pieces() {
        let (mut server, mut client) = pair();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&data).unwrap();
        client.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut ahead = ReadAhead::new();
        let mut out = Vec::new();
        let mut frames = FrameTracker::default();
        let mut io = WsIo {
            stream: &mut server,
            ahead: &mut ahead,
            out: &mut out,
            frames: &mut frames,
            budget: usize::MAX,
            yielded: false,
        };
        let mut got = Vec::new();
        let mut piece = [0u8; 300];
        loop {
            match io.read(&mut piece) {
                Ok(0) => panic!("end of stream"),
                Ok(n) => got.extend_from_slice(&piece[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, data);
        // WouldBlock only once the read-ahead is empty.
        assert_eq!(ahead.start, ahead.end);
        // The end of the stream reads as 0.
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
        let mut io = WsIo {
            stream: &mut server,
            ahead: &mut ahead,
            out: &mut out,
            frames: &mut frames,
            budget: usize::MAX,
            yielded: false,
        };
        assert_eq!(io.read(&mut piece).unwrap(), 0);
    }

    #[test]
    fn ws_io_writes_go_to_the_output_and_write_out_frees_it() {
        let (mut server, mut client) = pair();
        let mut ahead = ReadAhead::new();
        let mut out = Vec::new();
        let mut frames = FrameTracker::default();
        let mut io = WsIo {
            stream: &mut server,
            ahead: &mut ahead,
            out: &mut out,
            frames: &mut frames,
            budget: usize::MAX,
            yielded: false,
        };
        io.write_all(b"hello ").unwrap();
        io.write_all(b"world").unwrap();
        io.flush().unwrap();
        assert_eq!(out, b"hello world");
        write_out(&mut server, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(out.capacity(), 0, "the output buffer is freed once written");
        let mut got = [0u8; 11];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello world");
    }

    /// A frame header: FIN, opcode, masked, payload length.
    fn header(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            n if n < 126 => h.push(0x80 | n as u8),
            n if n <= 0xffff => {
                h.push(0x80 | 126);
                h.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                h.push(0x80 | 127);
                h.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = header(fin, opcode, len);
        f.resize(f.len() + len, b'x');
        f
    }

    #[test]
    fn frame_tracker_follows_boundaries_in_any_pieces() {
        let mut stream = Vec::new();
        stream.extend(frame(true, 1, 20));
        stream.extend(frame(true, 1, 300));
        stream.extend(frame(true, 2, 70_000));
        stream.extend(frame(true, 9, 0));
        // Fragmented: text without FIN, a ping in between, the final continuation.
        stream.extend(frame(false, 1, 1000));
        stream.extend(frame(true, 9, 5));
        stream.extend(frame(true, 0, 10));
        for piece in [1, 2, 3, 7, 13, 100, 4096, stream.len()] {
            let mut t = FrameTracker::default();
            let mut fed = 0;
            // Positions at which the tracker must be at rest: after each complete frame,
            // except inside the fragmented message.
            let rest_points: Vec<usize> = {
                let sizes = [
                    frame(true, 1, 20).len(),
                    frame(true, 1, 300).len(),
                    frame(true, 2, 70_000).len(),
                    frame(true, 9, 0).len(),
                    frame(false, 1, 1000).len(),
                    frame(true, 9, 5).len(),
                    frame(true, 0, 10).len(),
                ];
                let mut at = 0;
                let mut points = Vec::new();
                for (i, s) in sizes.iter().enumerate() {
                    at += s;
                    if i != 4 && i != 5 {
                        points.push(at);
                    }
                }
                points
            };
            for chunk in stream.chunks(piece) {
                t.feed(chunk);
                fed += chunk.len();
                assert_eq!(
                    t.at_rest(),
                    rest_points.contains(&fed),
                    "pieces of {piece}, at {fed}"
                );
            }
            assert!(t.at_rest());
            assert_eq!(t.largest, 70_000);
        }
    }

    #[test]
    fn frame_tracker_mid_header_and_mid_payload_is_not_at_rest() {
        let mut t = FrameTracker::default();
        let f = frame(true, 1, 200);
        t.feed(&f[..1]);
        assert!(!t.at_rest());
        t.feed(&f[1..3]);
        assert!(!t.at_rest());
        t.feed(&f[3..f.len() - 1]);
        assert!(!t.at_rest());
        t.feed(&f[f.len() - 1..]);
        assert!(t.at_rest());
        assert_eq!(t.largest, 200);
    }

    #[test]
    fn write_out_keeps_what_the_socket_does_not_take() {
        let (mut server, client) = pair();
        // More than any socket buffer takes while the client does not read.
        let big = vec![7u8; 16 << 20];
        let mut out = big.clone();
        let err = write_out(&mut server, &mut out).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert!(!out.is_empty() && out.len() < big.len());
        drop(client);
    }
}
