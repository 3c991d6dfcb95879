//! Signalling round trips: `ping`/`pong` over many WebSockets, closed or open loop.
//!
//! Closed loop (the default): each connection sends its next ping when the pong came back, so
//! round trips/s = connections / mean RTT whatever either side's CPU: it measures how fast two
//! event loops wake each other, not what the server can answer. Open loop (`--rate R`): pings
//! leave on a fixed schedule, R per second in all, spread over the connections in turn, whether
//! or not the earlier ones were answered; each RTT is taken from the ping's *scheduled* time,
//! so a server (or client) that falls behind shows it as latency instead of hiding it by
//! sending less (no coordinated omission). A connection with [`MAX_IN_FLIGHT`] pings
//! unanswered skips its turn; skipped pings are counted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use serde_json::{json, Value};

use crate::engine::Target;
use crate::sig::ServerKind;
use crate::stats::Histogram;
use crate::ws::WsConn;

/// Unanswered pings per connection beyond which an open-loop turn is skipped.
pub const MAX_IN_FLIGHT: usize = 64;

/// The open-loop schedule and the pings in flight: pure, driven by the caller's clock.
#[derive(Debug)]
pub struct OpenLoop {
    start: Instant,
    interval: Duration,
    /// Pings scheduled so far (sent or skipped).
    scheduled: u64,
    /// Per connection, the scheduled times of its unanswered pings, oldest first (a server
    /// answers one connection's pings in order).
    in_flight: Vec<VecDeque<Instant>>,
    /// Turns skipped because the connection had [`MAX_IN_FLIGHT`] pings unanswered.
    pub skipped: u64,
}

impl OpenLoop {
    /// `rate` pings per second over `conns` connections from `start`.
    pub fn new(start: Instant, rate: f64, conns: usize) -> OpenLoop {
        OpenLoop {
            start,
            interval: Duration::from_secs_f64(1.0 / rate.max(1.0)),
            scheduled: 0,
            in_flight: vec![VecDeque::new(); conns.max(1)],
            skipped: 0,
        }
    }

    /// The time of the next scheduled ping.
    pub fn next_at(&self) -> Instant {
        self.start + self.interval.mul_f64(self.scheduled as f64)
    }

    /// The connections whose ping is due by `now`, in schedule order (one entry per ping),
    /// each already recorded as in flight; full connections are skipped and counted.
    pub fn due(&mut self, now: Instant) -> Vec<usize> {
        let mut out = Vec::new();
        let conns = self.in_flight.len();
        while self.next_at() <= now {
            let at = self.next_at();
            let conn = (self.scheduled % conns as u64) as usize;
            self.scheduled += 1;
            match self.in_flight.get_mut(conn) {
                Some(q) if q.len() < MAX_IN_FLIGHT => {
                    q.push_back(at);
                    out.push(conn);
                }
                _ => self.skipped += 1,
            }
        }
        out
    }

    /// A pong arrived on `conn` at `now`: the round trip of its oldest ping, if any.
    pub fn pong(&mut self, conn: usize, now: Instant) -> Option<Duration> {
        let at = self.in_flight.get_mut(conn)?.pop_front()?;
        Some(now.saturating_duration_since(at))
    }

    /// Pings sent and not answered.
    pub fn unanswered(&self) -> usize {
        self.in_flight.iter().map(VecDeque::len).sum()
    }
}

/// `conns` WebSockets doing ping/pong for `seconds`: back to back (`rate` `None`), or `rate`
/// pings per second on a fixed schedule (see the module text).
pub fn ping(
    target: &Target,
    conns: usize,
    seconds: f64,
    rate: Option<f64>,
) -> Result<Value, String> {
    let (path, proto) = target.kind.ws_path(&target.app);
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut ws = Vec::with_capacity(conns);
    for i in 0..conns {
        let c = WsConn::connect(target.addr, &path, proto).map_err(|e| format!("ws {i}: {e}"))?;
        c.register(poll.registry(), Token(i))
            .map_err(|e| e.to_string())?;
        ws.push(c);
    }
    let ping = match target.kind {
        ServerKind::Antenna => json!({"command": "ping"}).to_string(),
        ServerKind::Janus => json!({"janus": "ping", "transaction": "p"}).to_string(),
    };
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut hist = Histogram::new();
    let mut open = rate.map(|r| OpenLoop::new(start, r, conns));
    // Closed loop: each connection's ping in flight since then.
    let mut sent_at: Vec<Instant> = vec![start; conns];
    if open.is_none() {
        for c in &mut ws {
            c.send(ping.clone());
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut texts = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wait = match &mut open {
            Some(o) => {
                for conn in o.due(now) {
                    if let Some(c) = ws.get_mut(conn) {
                        c.send(ping.clone());
                    }
                }
                o.next_at().saturating_duration_since(Instant::now())
            }
            None => Duration::from_millis(10),
        };
        poll.poll(
            &mut events,
            Some(wait.min(end.saturating_duration_since(now))),
        )
        .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(c) = ws.get_mut(i) else {
                continue;
            };
            texts.clear();
            c.read_all(&mut texts);
            c.flush();
            let pongs = texts.iter().filter(|t| t.contains("pong")).count();
            if pongs == 0 {
                continue;
            }
            let now = Instant::now();
            match &mut open {
                Some(o) => {
                    for _ in 0..pongs {
                        if let Some(rtt) = o.pong(i, now) {
                            hist.record_us(rtt.as_micros() as u64);
                        }
                    }
                }
                None => {
                    if let Some(at) = sent_at.get_mut(i) {
                        hist.record_us(now.duration_since(*at).as_micros() as u64);
                        *at = now;
                    }
                    if now < end {
                        c.send(ping.clone());
                    }
                }
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let broken = ws.iter().filter(|c| c.closed).count();
    for c in &mut ws {
        c.close();
    }
    let mut v = json!({
        "server": target.kind.name(), "connections": conns, "seconds": wall,
        "mode": if open.is_some() { "open" } else { "closed" },
        "round_trips": hist.count(),
        "round_trips_per_s": (hist.count() as f64 / wall).round(),
        "rtt_p50_us": hist.percentile_us(50.0), "rtt_p99_us": hist.percentile_us(99.0),
        "rtt_max_us": hist.max_us(),
        "broken_connections": broken,
    });
    if let (Some(o), Some(r)) = (&open, rate) {
        v["offered_per_s"] = json!(r);
        v["skipped"] = json!(o.skipped);
        v["unanswered_at_end"] = json!(o.unanswered());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_schedules_at_the_rate_over_connections_in_turn() {
        let t0 = Instant::now();
        let mut o = OpenLoop::new(t0, 1000.0, 3);
        assert_eq!(o.due(t0), vec![0], "the first ping is due at the start");
        assert!(o.due(t0 + Duration::from_micros(999)).is_empty());
        // 10 ms later: pings 1..=10 are due, on connections 1, 2, 0, 1, ...
        let due = o.due(t0 + Duration::from_millis(10));
        assert_eq!(due.len(), 10);
        assert_eq!(&due[..4], &[1, 2, 0, 1]);
        assert_eq!(o.unanswered(), 11);
        assert_eq!(o.next_at(), t0 + Duration::from_millis(11));
    }

    #[test]
    fn round_trips_count_from_the_scheduled_time_in_order() {
        let t0 = Instant::now();
        let mut o = OpenLoop::new(t0, 100.0, 1);
        o.due(t0 + Duration::from_millis(25)); // pings at 0, 10, 20 ms
                                               // Sent late or not, the first pong's RTT counts from 0 ms.
        let now = t0 + Duration::from_millis(30);
        assert_eq!(o.pong(0, now), Some(Duration::from_millis(30)));
        assert_eq!(o.pong(0, now), Some(Duration::from_millis(20)));
        assert_eq!(o.pong(0, now), Some(Duration::from_millis(10)));
        assert_eq!(o.pong(0, now), None, "a pong nobody waits for");
        assert_eq!(o.pong(5, now), None, "an unknown connection");
    }

    #[test]
    fn a_full_connection_skips_its_turn_and_is_counted() {
        let t0 = Instant::now();
        let mut o = OpenLoop::new(t0, 1000.0, 2);
        let n = 2 * MAX_IN_FLIGHT as u64 + 10;
        let due = o.due(t0 + Duration::from_millis(n - 1));
        assert_eq!(due.len(), 2 * MAX_IN_FLIGHT);
        assert_eq!(o.skipped, 10);
        o.pong(0, t0 + Duration::from_millis(n));
        // Ping n goes to connection 0, which has room again; ping n+1 to the full one.
        assert_eq!(o.due(t0 + Duration::from_millis(n + 1)), vec![0]);
        assert_eq!(o.skipped, 11);
    }
}
