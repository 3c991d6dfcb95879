//! The one-thread `mio` runtime: all sockets, the clock and signals, around a [`Node`].
//!
//! Why about 650 lines: the loop, its one drain point, start-up and shutdown read as one
//! contract; what each connection, protocol and socket does is in the submodules below.
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
//! 4. drain [`Node::poll_output`] once at the end of the turn (`Runtime::drain`, the one drain
//!    point; the handlers above only feed inputs): WebSocket frames are queued in the
//!    connection's output buffer and written once per turn, datagrams are sent in batches (or
//!    queued in a bounded queue while the socket would block). The UDP read (`udp.rs`) is the
//!    one exception: it also drains at its media flush points, so a forwarded packet never
//!    waits behind the rest of a read batch.
//!
//! Submodules, by what they own: `conn` (a connection's [`State`] and life: accept, drive,
//! remove), `http` (request heads, bodies, answers), `rest` (REST bodies to the node's admin core,
//! answers held for durability), `ws` (WebSocket frames, close handshake, liveness), `wsio` (tungstenite's
//! reads and writes through the shared read-ahead), `udp` (the media socket) and `observe`
//! (metrics, health, webhooks, logs).
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
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use antenna_store::{DurableQueue, Notify};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

mod cluster;
mod cluster_data;
mod conn;
mod http;
mod observe;
mod redis_socket;
mod relay;
mod rest;
mod udp;
mod ws;
mod wsio;

use conn::{Conn, State};
use observe::StateSizes;
use proto_core::ConnId;
pub use relay::{bind_relays, RelaySockets};
use rtc_core::Transmit;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use tracing::{debug, error, info, trace, warn};
use tungstenite::protocol::WebSocketConfig;
use wsio::ReadAhead;

use crate::limits::{self, Counters, Limits, PerIp};
use crate::overload::{self, CpuLimit, CpuMonitor};
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

/// Time a REST client has to read the answer (the request head's time is
/// [`Limits::http_head_timeout`]).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from one WebSocket's socket per loop turn at most (one read-ahead's worth):
/// then the connection waits in `Runtime::more` while the other sockets and the timers get
/// their turn, so one flooding client cannot starve the rest.
const WS_READ_BUDGET: usize = wsio::WS_READ_AHEAD;
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
    crate::udp::size_buffers(&udp_sock);
    Ok(Bound {
        listen_addr: listener.local_addr()?,
        udp_addr: udp_sock.local_addr()?,
        listener,
        udp: udp_sock,
    })
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
    udp_out: crate::udp::UdpSender,
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
    /// The datastore handle: its health, its flush at exit, the webhook settings.
    datastore: crate::datastore::Datastore,
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
    /// Cluster mode's shared data sockets and held frames (`cluster_data.rs`).
    shared: Option<cluster_data::DataLink>,
    /// Cluster mode's relay sockets (`relay.rs`).
    relay: relay::RelayRt,
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
    /// (pass it to [`antenna_persist::WriteBehind::open`]).
    pub fn new(
        bound: Bound,
        announce: SocketAddr,
        apps: Vec<String>,
        make: impl FnOnce(Instant, SocketAddr, Notify) -> (Node, crate::datastore::Datastore),
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
        let (node, datastore) = make(now, announce, notify);
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
            udp_out: crate::udp::UdpSender::default(),
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
            datastore,
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
            shared: None,
            relay: relay::RelayRt::default(),
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
        // Stream-ended hooks the shutdown produced are pumped, then sent before exit.
        let now = Instant::now();
        self.pump_hooks(now);
        self.cluster_drain(now);
        self.close_hooks();
        self.close_store();
        result
    }

    fn close_store(&mut self) {
        let flushed = self.datastore.store.borrow_mut().flush();
        match (flushed, &self.datastore.path) {
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
            if let Some(t) = self.data_deadline() {
                wake = wake.min(t);
            }
            if let Some(t) = self.shutdown_deadline.or(self.obs.draining_until) {
                wake = wake.min(t);
            }
            let timeout = if self.udp_more || !self.more.is_empty() || self.relay_more_pending() {
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
                    cluster_data::REDIS_DATA => {
                        self.data_ready(now, antenna_cluster::Link::Cmd, event)
                    }
                    cluster_data::REDIS_SUB => {
                        self.data_ready(now, antenna_cluster::Link::Sub, event)
                    }
                    t if relay::is_relay_token(t) => self.relay_ready(now, t),
                    token => {
                        if event.is_read_closed() || event.is_error() {
                            if let Some(c) = self.conns.get_mut(&token) {
                                c.peer_closed = true;
                            }
                        }
                        self.drive(now, token);
                        // What this connection's input produced (a pong, an answer) leaves
                        // now, not after the rest of the turn's events: as for datagrams
                        // (`udp_read`), a reply waits only for its own input's work.
                        self.drain(now);
                    }
                }
            }
            if self.udp_more {
                self.udp_read();
            }
            self.relay_more(Instant::now());
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
            }
            if now >= self.next_housekeeping {
                self.housekeeping(now);
            }
            self.cluster_timeout(now);
            self.data_timeout(now);
            self.check_drain(now);
            // The turn's one drain point: every node output the turn's inputs produced goes
            // to its socket before the loop waits again.
            self.drain(now);
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
        // The streams' end events reach the registry before the node leaves it.
        self.drain(now);
        self.cluster_housekeeping(now, true);
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
    }

    /// Says so, loudly, when the store fails (at open or since), and again when it recovers.
    fn report_store_failure(&mut self) {
        match self.node.store_health() {
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
                }
            }
        }
        self.log_counters();
    }

    /// The counters of refusals and drops.
    pub fn counters(&self) -> Counters {
        self.counters
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
                    NodeOutput::UdpSend(t) if self.is_relay_source(&t) => self.relay_udp_send(t),
                    NodeOutput::UdpSend(t) => self.udp_send(t),
                    NodeOutput::FindStream { app, stream } => self.cluster_find(now, &app, &stream),
                    NodeOutput::FindRoom { app, room } => self.cluster_find_room(now, &app, &room),
                    NodeOutput::RelayOpen { conn, addr, path } => {
                        self.relay_open(now, conn, addr, &path)
                    }
                    NodeOutput::RelaySend(conn, text) => self.relay_send(now, conn, text),
                    NodeOutput::RelayClose(conn) => self.relay_close(conn),
                }
            }
            if !self.udp_writable {
                self.udp_flush_queue();
            }
            self.pump_hooks(now);
            let located = self.cluster_drain(now);
            self.data_drain(now);
            if self.dirty.is_empty() && !located {
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
}
