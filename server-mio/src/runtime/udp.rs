//! The UDP media socket: reading datagrams into the node in budgeted batches, and sending
//! the node's datagrams in batches (`sendmmsg`, [`crate::udp`]) through a bounded queue.

use std::io::ErrorKind;
use std::time::Instant;

use mio::Interest;
use rtc_core::Transmit;
use tracing::{trace, warn};

use super::{Runtime, MAX_UDP_QUEUE, UDP};

/// Datagrams read before timers that fell due meanwhile are handled.
pub(super) const UDP_BATCH: usize = 32;
/// Datagrams handled at most before what they wrote to players is flushed and sent. The
/// flush also happens as soon as the socket has nothing more to read: a packet waits only
/// behind datagrams that had already arrived, never for later ones. One flush costs each
/// player written to a str0m timeout (about 2.3 k instructions, see BENCHMARKS.md), so a
/// video frame's packets, which arrive together, share one.
pub(super) const UDP_FLUSH_EVERY: usize = 8;
/// Datagrams read per loop iteration at most, before WebSockets and timers get their turn.
pub(super) const UDP_READ_BUDGET: usize = 256;

impl Runtime {
    /// Reads datagrams until the socket is empty or [`UDP_READ_BUDGET`] were read (then
    /// `udp_more` stays set and the loop comes back without waiting, after the other sockets
    /// and timers had their turn: an overloaded media socket must not starve signalling).
    /// What the datagrams wrote to players is flushed and sent (`sendmmsg`, see [`udp`]) as
    /// soon as the socket is empty, and at least every [`UDP_FLUSH_EVERY`] datagrams: no
    /// packet waits for one that has not arrived yet. Timers that fell due meanwhile are
    /// handled every [`UDP_BATCH`] datagrams.
    pub(super) fn udp_read(&mut self) {
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
    pub(super) fn udp_send(&mut self, t: Transmit) {
        if self.udp_queue.len() >= MAX_UDP_QUEUE {
            self.counters.udp_dropped += 1;
            return;
        }
        self.udp_queue.push_back(t);
        if self.udp_queue.len() >= crate::udp::BATCH && !self.udp_writable {
            self.udp_flush_queue();
        }
    }

    /// Sends the queue, [`crate::udp::BATCH`] datagrams per system call, until it is empty or the
    /// socket is full (then it waits for a writable event).
    pub(super) fn udp_flush_queue(&mut self) {
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

    pub(super) fn udp_set_writable(&mut self, on: bool) {
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
