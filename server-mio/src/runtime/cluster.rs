//! The runtime's side of cluster mode (`--cluster redis://HOST:PORT/DB`): the mio loop owns
//! the one TCP socket to Redis and moves bytes between it and the pure cluster core
//! ([`antenna_cluster::Cluster`]), which decides everything else (what to write, when to
//! heartbeat, when to reconnect). The socket is non-blocking like every other: a connect in
//! progress, a slow Redis or a dead one never stalls the loop. Without `--cluster` none of
//! this exists.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use antenna_cluster::{Cluster, ClusterConfig, ClusterEvent, ClusterOutput};
use mio::net::TcpStream;
use mio::{Interest, Token};
use proto_core::{EventKind, StreamEvent};
use tracing::{debug, info, warn};

use super::Runtime;

/// The Redis socket's token.
pub(super) const REDIS: Token = Token(4);
/// Bytes waiting to be written to Redis at most; beyond, Redis is not reading: the
/// connection is dropped and retried (the core re-registers everything when it is back).
const MAX_REDIS_OUTPUT: usize = 4 << 20;
/// Bytes read from Redis per loop turn at most.
const REDIS_READ_BUDGET: usize = 256 * 1024;

/// The Redis socket and the cluster core.
#[derive(Debug)]
pub(super) struct RedisLink {
    pub(super) core: Cluster,
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// The connect is in progress (the first writable event tells how it ended).
    connecting: bool,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Redis is reachable (as last reported by the core).
    pub(super) up: bool,
}

impl RedisLink {
    fn close(&mut self, registry: &mio::Registry) {
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.connecting = false;
        self.out.clear();
    }

    /// The socket failed: tell the core (which schedules the retry) and drop it.
    fn failed(&mut self, now: Instant, registry: &mio::Registry, why: &str) {
        self.close(registry);
        self.core.handle_closed(now, why);
    }

    fn connect(&mut self, now: Instant, registry: &mio::Registry) {
        self.close(registry);
        match TcpStream::connect(self.addr) {
            Ok(mut s) => {
                if let Err(e) =
                    registry.register(&mut s, REDIS, Interest::READABLE | Interest::WRITABLE)
                {
                    self.core.handle_closed(now, &format!("register: {e}"));
                    return;
                }
                let _ = s.set_nodelay(true);
                self.stream = Some(s);
                self.connecting = true;
            }
            Err(e) => self.core.handle_closed(now, &format!("connect: {e}")),
        }
    }

    fn write(&mut self, now: Instant, registry: &mio::Registry) {
        if self.connecting || self.out.is_empty() {
            return;
        }
        let Some(s) = self.stream.as_mut() else {
            self.out.clear();
            return;
        };
        let mut written = 0;
        let result = loop {
            if written == self.out.len() {
                break Ok(());
            }
            match s.write(&self.out[written..]) {
                Ok(0) => break Err("write returned 0".to_string()),
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(format!("write: {e}")),
            }
        };
        self.out.drain(..written);
        if let Err(why) = result {
            self.failed(now, registry, &why);
        } else if self.out.len() > MAX_REDIS_OUTPUT {
            warn!(
                bytes = self.out.len(),
                "cluster: Redis is not reading; reconnecting"
            );
            self.failed(now, registry, "output over its cap");
        }
    }

    fn read(&mut self, now: Instant, registry: &mio::Registry) {
        let mut total = 0;
        loop {
            let Some(s) = self.stream.as_mut() else {
                return;
            };
            match s.read(&mut self.buf) {
                Ok(0) => return self.failed(now, registry, "closed by Redis"),
                Ok(n) => {
                    total += n;
                    self.core.handle_input(now, &self.buf[..n]);
                    if total >= REDIS_READ_BUDGET {
                        // The rest waits for the next readiness or the next turn; Redis
                        // answers what we asked, so this only bounds one turn's work.
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.failed(now, registry, &format!("read: {e}")),
            }
        }
    }
}

/// Whether a non-blocking connect finished, failed, or is still under way.
fn connect_result(s: &TcpStream) -> Option<io::Result<()>> {
    if let Ok(Some(e)) | Err(e) = s.take_error() {
        return Some(Err(e));
    }
    match s.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(e) if e.kind() == ErrorKind::NotConnected => None,
        Err(e) => Some(Err(e)),
    }
}

impl Runtime {
    /// Cluster mode: this node registers itself and its live streams in the Redis at `redis`
    /// (see `antenna_cluster`). Stream events must be recorded (see `with_webhooks`).
    pub fn with_cluster(mut self, redis: SocketAddr, config: ClusterConfig) -> Runtime {
        let now = Instant::now();
        info!(node = %config.node_id, %redis, db = config.conn.db, "cluster mode: Redis registry");
        self.node.sig.set_record_events(true);
        self.cluster = Some(RedisLink {
            core: Cluster::new(config, now),
            addr: redis,
            stream: None,
            connecting: false,
            out: Vec::new(),
            buf: vec![0; 64 * 1024],
            up: false,
        });
        self
    }

    /// Readiness of the Redis socket.
    pub(super) fn redis_ready(&mut self, now: Instant, event: &mio::event::Event) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        let registry = self.poll.registry();
        if link.connecting {
            let Some(s) = link.stream.as_ref() else {
                return;
            };
            match connect_result(s) {
                None => return,
                Some(Err(e)) => {
                    link.failed(now, registry, &format!("connect: {e}"));
                    return;
                }
                Some(Ok(())) => {
                    link.connecting = false;
                    link.core.handle_connected(now);
                }
            }
        }
        if event.is_readable() || event.is_read_closed() {
            link.read(now, registry);
        }
    }

    /// Runs the cluster core's timer when due.
    pub(super) fn cluster_timeout(&mut self, now: Instant) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        if link.core.poll_timeout().is_some_and(|t| t <= now) {
            link.core.handle_timeout(now);
        }
    }

    /// The cluster core's next deadline.
    pub(super) fn cluster_deadline(&self) -> Option<Instant> {
        self.cluster.as_ref().and_then(|l| l.core.poll_timeout())
    }

    /// A stream event of signalling: live streams enter and leave the registry.
    pub(super) fn cluster_stream_event(&mut self, now: Instant, ev: &StreamEvent) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        match ev.kind {
            EventKind::PublishStarted => link.core.stream_started(now, &ev.app, &ev.stream),
            EventKind::PublishEnded => link.core.stream_ended(now, &ev.app, &ev.stream),
            _ => {}
        }
    }

    /// The node's load for the next heartbeat, and a graceful leave at shutdown.
    pub(super) fn cluster_housekeeping(&mut self, now: Instant, leaving: bool) {
        let load = self.conns.len() as u64;
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        link.core.set_load(load);
        if leaving {
            link.core.leave(now);
        }
    }

    /// Carries out what the cluster core asks for until it has nothing more; part of the
    /// loop turn's one drain point (`Runtime::drain`).
    pub(super) fn cluster_drain(&mut self, now: Instant) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        let registry = self.poll.registry();
        loop {
            let mut any = false;
            while let Some(o) = link.core.poll_output() {
                any = true;
                match o {
                    ClusterOutput::Connect => link.connect(now, registry),
                    ClusterOutput::Close => link.close(registry),
                    ClusterOutput::Transmit(b) => {
                        if link.stream.is_some() {
                            link.out.extend_from_slice(&b);
                        }
                    }
                    ClusterOutput::Event(ClusterEvent::Up) => link.up = true,
                    ClusterOutput::Event(ClusterEvent::Down { reason }) => {
                        if link.up {
                            warn!(%reason, "CLUSTER: Redis not available; local streams go on, \
                                   the registry is written again when it returns");
                        } else {
                            debug!(%reason, "cluster: Redis still not available");
                        }
                        link.up = false;
                    }
                    ClusterOutput::Event(e) => debug!(event = ?e, "cluster event"),
                }
            }
            link.write(now, registry);
            // A failed write reports to the core, which may have more to say.
            if !any {
                break;
            }
        }
    }
}
