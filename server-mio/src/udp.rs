//! Batched UDP output: many datagrams, each to its own destination, in one `sendmmsg(2)`.
//!
//! A publisher's packet becomes one datagram per player, so the forwarding path sends far more
//! datagrams than it receives; one system call per [`BATCH`] of them instead of one each is the
//! cheapest kernel work per packet on Linux short of GSO (which needs one destination).

use std::io::{self, ErrorKind, IoSlice};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    getsockopt, sendmmsg, setsockopt, sockopt, ControlMessage, MsgFlags, MultiHeaders,
    SockaddrStorage,
};
use rtc_core::Transmit;
use tracing::{debug, trace, warn};

/// Most datagrams handed to one `sendmmsg` call.
pub const BATCH: usize = 64;

/// Socket buffer size asked for (the kernel caps it at `net.core.rmem_max`/`wmem_max` and
/// reports twice the size). Linux's default, about 200 KiB, holds only some 90 datagrams of
/// 1200 bytes: while the loop spends a few milliseconds sending a keyframe to hundreds of
/// players, the publishers' packets that arrive meanwhile overflowed it. Not more: when the
/// server cannot keep up at all, a larger buffer only turns loss into seconds of latency.
pub const SOCKET_BUFFER: usize = 1024 * 1024;

/// Raises the receive and send buffers of the media socket to [`SOCKET_BUFFER`] (or the
/// system's maximum), and returns what the kernel granted `(receive, send)`.
pub fn size_buffers<S: std::os::fd::AsFd>(socket: &S) -> (usize, usize) {
    if let Err(e) = setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER) {
        warn!("udp: cannot set SO_RCVBUF: {e}");
    }
    if let Err(e) = setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER) {
        warn!("udp: cannot set SO_SNDBUF: {e}");
    }
    let rcv = getsockopt(socket, sockopt::RcvBuf).unwrap_or(0);
    let snd = getsockopt(socket, sockopt::SndBuf).unwrap_or(0);
    debug!(rcv, snd, "udp socket buffers");
    (rcv, snd)
}

/// Reusable `sendmmsg` headers.
#[derive(Debug)]
pub struct UdpSender {
    headers: MultiHeaders<SockaddrStorage>,
}

impl Default for UdpSender {
    fn default() -> Self {
        UdpSender {
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

impl UdpSender {
    /// Sends datagrams from the front of `batch` (at most [`BATCH`]). `Ok(n)`: the first `n`
    /// are done with, sent or, when the first of them failed for a reason of its own (an
    /// unreachable destination, a datagram too large), dropped with a trace line. `Err` with
    /// [`ErrorKind::WouldBlock`]: the socket is full and nothing was sent. An empty `batch` is
    /// `Ok(0)`.
    pub fn send(&mut self, socket: &impl AsRawFd, batch: &[Transmit]) -> io::Result<usize> {
        let batch = batch.get(..batch.len().min(BATCH)).unwrap_or(batch);
        if batch.is_empty() {
            return Ok(0);
        }
        let slices: Vec<[IoSlice<'_>; 1]> =
            batch.iter().map(|t| [IoSlice::new(&t.contents)]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = batch
            .iter()
            .map(|t| Some(SockaddrStorage::from(t.destination)))
            .collect();
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        loop {
            match sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &slices,
                &addrs,
                no_cmsgs,
                MsgFlags::empty(),
            ) {
                Ok(sent) => return Ok(sent.count()),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Err(ErrorKind::WouldBlock.into()),
                Err(e) => {
                    // The kernel reports an error only when the first datagram failed.
                    let to = batch.first().map(|t| t.destination);
                    trace!(?to, "udp send: {e}");
                    return Ok(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, UdpSocket};

    fn transmit(to: SocketAddr, byte: u8, len: usize) -> Transmit {
        Transmit {
            source: to,
            destination: to,
            contents: vec![byte; len],
        }
    }

    #[test]
    fn sends_each_datagram_to_its_destination() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let batch: Vec<Transmit> = (0..9)
            .map(|i| transmit(rx[i % 3].local_addr().unwrap(), i as u8, 100 + i))
            .collect();
        let mut sender = UdpSender::default();
        assert_eq!(sender.send(&tx, &batch).unwrap(), 9);
        for (r, socket) in rx.iter().enumerate() {
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let mut buf = [0u8; 2048];
            for i in (r..9).step_by(3) {
                let (n, from) = socket.recv_from(&mut buf).unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                assert_eq!(n, 100 + i);
                assert!(buf[..n].iter().all(|b| *b == i as u8));
            }
        }
        assert_eq!(sender.send(&tx, &[]).unwrap(), 0);
    }

    #[test]
    fn buffers_are_raised() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = getsockopt(&socket, sockopt::RcvBuf).unwrap();
        let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let (rcv, snd) = size_buffers(&socket);
        assert!(snd > 0);
        // Linux reports twice the size set, capped at rmem_max.
        if max > before / 2 {
            assert!(rcv > before, "{before} -> {rcv} (rmem_max {max})");
        }
    }

    #[test]
    fn at_most_one_batch_per_call() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let batch: Vec<Transmit> = (0..BATCH + 5)
            .map(|_| transmit(rx.local_addr().unwrap(), 1, 10))
            .collect();
        assert_eq!(UdpSender::default().send(&tx, &batch).unwrap(), BATCH);
    }

    #[test]
    fn a_failing_first_datagram_is_dropped_not_retried() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Larger than any UDP datagram can be: EMSGSIZE for the first one only.
        let batch = vec![
            transmit(rx.local_addr().unwrap(), 1, 70_000),
            transmit(rx.local_addr().unwrap(), 2, 10),
        ];
        let mut sender = UdpSender::default();
        assert_eq!(sender.send(&tx, &batch).unwrap(), 1);
        assert_eq!(sender.send(&tx, &batch[1..]).unwrap(), 1);
        let mut buf = [0u8; 64];
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[2u8; 10]);
    }
}
