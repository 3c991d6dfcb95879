//! Runtime resource limits: connection caps (total and per IP), the file descriptor limit,
//! TCP keepalive, WebSocket liveness (server pings, idle timeout), the HTTP request-head
//! timeout and the per-connection output cap; plus the counters of every refusal.
//!
//! The decisions are pure functions and small structs ([`PerIp`], [`ws_liveness`],
//! [`effective_max_connections`]) so they are unit tested here; the runtime applies them to
//! its sockets. The only system calls are [`raise_nofile`] (at start) and [`set_keepalive`]
//! (per accepted socket), both through `nix`, since the project forbids `unsafe`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Default cap on connections in total (further bounded by the file descriptor limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default cap on connections from one IP address. Large enough for an office behind one
/// NAT address; set 0 (off) behind a reverse proxy, where every client shares its address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1000;
/// Default WebSocket idle timeout: no frame for this long closes the connection (the AMS SDK
/// sends a `ping` command every 3 s; browsers answer server pings on their own).
pub const DEFAULT_WS_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default interval of server pings on a WebSocket that sent nothing meanwhile.
pub const DEFAULT_WS_PING_INTERVAL: Duration = Duration::from_secs(10);
/// Default time a client has to send its request head (and read the answer).
pub const DEFAULT_HTTP_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default TCP keepalive idle time of accepted sockets (then probes every
/// [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_PROBES`] times).
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Default cap on a WebSocket's output not yet taken by the client: beyond it the client is
/// not reading and is dropped.
pub const DEFAULT_MAX_PENDING_OUTPUT: usize = 1024 * 1024;
/// File descriptors kept out of the connection cap: the listener, the UDP socket, epoll, the
/// signal pipe, the waker, the datastore's files, stdio, and room for a refusal's accept.
pub const FD_RESERVE: usize = 64;
/// Seconds between keepalive probes once they started.
pub const KEEPALIVE_INTERVAL: u32 = 10;
/// Unanswered keepalive probes before the kernel reports the connection dead.
pub const KEEPALIVE_PROBES: u32 = 3;

/// The configured limits (see [`crate::config`] for the flags and keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections in total (any phase); 0: only the file descriptor limit.
    pub max_connections: usize,
    /// Connections from one IP address; 0: no per-address cap.
    pub max_connections_per_ip: usize,
    /// A WebSocket that sent no frame for this long is closed (code 1001); zero: never.
    pub ws_idle_timeout: Duration,
    /// A WebSocket that sent no frame for this long gets a ping frame (again every interval);
    /// zero: no server pings.
    pub ws_ping_interval: Duration,
    /// Time from accept to a complete request head (and the answer written).
    pub http_head_timeout: Duration,
    /// TCP keepalive idle time on accepted sockets; zero: keepalive off.
    pub tcp_keepalive: Duration,
    /// WebSocket output pending beyond this drops the client.
    pub max_pending_output: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            ws_idle_timeout: DEFAULT_WS_IDLE_TIMEOUT,
            ws_ping_interval: DEFAULT_WS_PING_INTERVAL,
            http_head_timeout: DEFAULT_HTTP_HEAD_TIMEOUT,
            tcp_keepalive: DEFAULT_TCP_KEEPALIVE,
            max_pending_output: DEFAULT_MAX_PENDING_OUTPUT,
        }
    }
}

/// The connection cap actually applied: the configured one (0: none), and never more than
/// the file descriptor limit minus [`FD_RESERVE`] (at least 1), so that accepting never runs
/// the process out of descriptors while open WebSockets, the datastore and the listener
/// still need theirs.
pub fn effective_max_connections(configured: usize, nofile: Option<u64>) -> usize {
    let by_fds = nofile
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .map_or(usize::MAX, |n| n.saturating_sub(FD_RESERVE).max(1));
    if configured == 0 {
        by_fds
    } else {
        configured.min(by_fds)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Returns `(before, after)` soft limits,
/// or the error (the process then runs with the limit it has).
pub fn raise_nofile() -> nix::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (now, _) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok((soft, now))
}

/// Turns TCP keepalive on with `idle` before the first probe ([`KEEPALIVE_INTERVAL`] between
/// probes, [`KEEPALIVE_PROBES`] probes). `idle` of zero does nothing.
pub fn set_keepalive(socket: &impl AsFd, idle: Duration) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if idle.is_zero() {
        return Ok(());
    }
    setsockopt(socket, sockopt::KeepAlive, &true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let secs = u32::try_from(idle.as_secs().max(1)).unwrap_or(u32::MAX);
        setsockopt(socket, sockopt::TcpKeepIdle, &secs)?;
        setsockopt(socket, sockopt::TcpKeepInterval, &KEEPALIVE_INTERVAL)?;
        setsockopt(socket, sockopt::TcpKeepCount, &KEEPALIVE_PROBES)?;
    }
    Ok(())
}

/// Why a new connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The total cap is reached.
    Total,
    /// The peer's address has its share.
    PerIp,
}

/// Open connections per peer address, and the admission decision.
#[derive(Debug, Default)]
pub struct PerIp {
    counts: HashMap<IpAddr, usize>,
    total: usize,
}

impl PerIp {
    /// Admits a connection from `ip` if the caps allow (and counts it), else says why not.
    /// `max_total` 0 or `max_per_ip` 0 means no such cap.
    pub fn admit(
        &mut self,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<(), Refusal> {
        if max_total != 0 && self.total >= max_total {
            return Err(Refusal::Total);
        }
        let n = self.counts.entry(ip).or_insert(0);
        if max_per_ip != 0 && *n >= max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection from `ip` is gone.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.counts.get_mut(&ip) {
            *n = n.saturating_sub(1);
            self.total = self.total.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }

    /// Connections counted.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Connections counted from `ip`.
    pub fn of(&self, ip: IpAddr) -> usize {
        self.counts.get(&ip).copied().unwrap_or(0)
    }

    /// Addresses with at least one connection.
    pub fn addresses(&self) -> usize {
        self.counts.len()
    }
}

/// What a WebSocket's liveness asks for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Nothing to do.
    Fine,
    /// Send a ping frame.
    Ping,
    /// Idle too long: close it.
    Idle,
}

/// The liveness decision for a WebSocket whose last frame arrived at `last_rx` and that was
/// last pinged at `last_ping` (if since then).
pub fn ws_liveness(
    limits: &Limits,
    now: Instant,
    last_rx: Instant,
    last_ping: Option<Instant>,
) -> Liveness {
    let quiet = now.saturating_duration_since(last_rx);
    if !limits.ws_idle_timeout.is_zero() && quiet >= limits.ws_idle_timeout {
        return Liveness::Idle;
    }
    if limits.ws_ping_interval.is_zero() || quiet < limits.ws_ping_interval {
        return Liveness::Fine;
    }
    match last_ping {
        Some(t) if t > last_rx && now.saturating_duration_since(t) < limits.ws_ping_interval => {
            Liveness::Fine
        }
        _ => Liveness::Ping,
    }
}

/// Counters of refusals and drops, logged when they change (another part may export them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams dropped because the UDP send queue was full.
    pub udp_dropped: u64,
    /// WebSocket clients dropped for not reading their output (over the output cap).
    pub slow_clients_dropped: u64,
    /// Connections refused at the total cap (HTTP 503).
    pub refused_total: u64,
    /// Connections refused at the per-address cap (HTTP 503).
    pub refused_per_ip: u64,
    /// Times accepting stopped because the process ran out of file descriptors.
    pub accept_paused: u64,
    /// Connections dropped for not sending their request head in time.
    pub http_timeouts: u64,
    /// WebSockets closed by the idle timeout (code 1001).
    pub ws_idle_closed: u64,
    /// Server pings sent.
    pub ws_pings_sent: u64,
    /// Times a WebSocket used its read budget for a loop turn and was put back in line.
    pub read_budget_yields: u64,
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests {
    use super::*;

    #[test]
    fn cap_follows_the_fd_limit() {
        assert_eq!(
            effective_max_connections(10_000, Some(1024)),
            1024 - FD_RESERVE
        );
        assert_eq!(effective_max_connections(500, Some(1024)), 500);
        assert_eq!(effective_max_connections(0, Some(1024)), 1024 - FD_RESERVE);
        assert_eq!(effective_max_connections(0, None), usize::MAX);
        assert_eq!(effective_max_connections(7, None), 7);
        assert_eq!(effective_max_connections(100, Some(10)), 1);
    }

    #[test]
    fn per_ip_admission() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut p = PerIp::default();
        assert_eq!(p.admit(a, 3, 2), Ok(()));
        assert_eq!(p.admit(a, 3, 2), Ok(()));
        assert_eq!(p.admit(a, 3, 2), Err(Refusal::PerIp));
        assert_eq!(p.admit(b, 3, 2), Ok(()));
        assert_eq!(p.admit(b, 3, 2), Err(Refusal::Total));
        assert_eq!((p.total(), p.of(a), p.of(b)), (3, 2, 1));
        p.release(a);
        assert_eq!(p.admit(b, 3, 2), Ok(()));
        p.release(a);
        p.release(b);
        p.release(b);
        assert_eq!((p.total(), p.addresses()), (0, 0));
        // A release of an address never admitted changes nothing.
        p.release(a);
        assert_eq!(p.total(), 0);
        // Zero turns a cap off.
        for _ in 0..50 {
            assert_eq!(p.admit(a, 0, 0), Ok(()));
        }
        assert_eq!(p.of(a), 50);
    }

    #[test]
    fn liveness_pings_then_closes() {
        let l = Limits {
            ws_idle_timeout: Duration::from_secs(30),
            ws_ping_interval: Duration::from_secs(10),
            ..Limits::default()
        };
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        assert_eq!(ws_liveness(&l, s(5), t0, None), Liveness::Fine);
        assert_eq!(ws_liveness(&l, s(10), t0, None), Liveness::Ping);
        // Pinged at 10: no second ping before 20.
        assert_eq!(ws_liveness(&l, s(15), t0, Some(s(10))), Liveness::Fine);
        assert_eq!(ws_liveness(&l, s(20), t0, Some(s(10))), Liveness::Ping);
        assert_eq!(ws_liveness(&l, s(30), t0, Some(s(20))), Liveness::Idle);
        // A frame (the pong) at 12 resets everything.
        assert_eq!(ws_liveness(&l, s(21), s(12), Some(s(10))), Liveness::Fine);
        assert_eq!(ws_liveness(&l, s(22), s(12), Some(s(10))), Liveness::Ping);
        // Off switches.
        let off = Limits {
            ws_idle_timeout: Duration::ZERO,
            ws_ping_interval: Duration::ZERO,
            ..l
        };
        assert_eq!(ws_liveness(&off, s(1000), t0, None), Liveness::Fine);
    }

    #[test]
    fn raises_nofile_to_the_hard_limit() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let (_, after) = raise_nofile().unwrap();
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((after, soft), (hard, hard));
    }

    #[test]
    fn keepalive_is_set_on_a_socket() {
        use nix::sys::socket::{getsockopt, sockopt};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        set_keepalive(&s, Duration::from_secs(45)).unwrap();
        assert!(getsockopt(&s, sockopt::KeepAlive).unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(getsockopt(&s, sockopt::TcpKeepIdle).unwrap(), 45);
            assert_eq!(
                getsockopt(&s, sockopt::TcpKeepCount).unwrap(),
                KEEPALIVE_PROBES
            );
        }
    }
}
