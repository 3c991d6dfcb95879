//! One non-blocking TCP socket to Redis, as the cluster cores' connections ask for it: connect,
//! write what they transmit (bounded), read what arrives (bounded per turn), close. The cores
//! decide everything else (when to connect, what to write, when to give up); a socket error
//! is reported back to them as a closed connection.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Token};
use tracing::warn;

/// Bytes waiting to be written to Redis at most; beyond, Redis is not reading: the
/// connection is dropped and retried (the cores send everything again when it is back).
const MAX_REDIS_OUTPUT: usize = 4 << 20;
/// Bytes read from Redis per loop turn at most.
const REDIS_READ_BUDGET: usize = 256 * 1024;

/// What a readiness event meant for the socket.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ready {
    /// The connect is still under way.
    Pending,
    /// The connect finished just now: tell the core.
    Connected,
    /// The connect failed (the socket is closed): tell the core.
    Failed(String),
    /// An established socket: read it.
    Open,
}

/// One socket to Redis. See the module docs.
#[derive(Debug)]
pub(super) struct RedisSocket {
    addr: SocketAddr,
    token: Token,
    stream: Option<TcpStream>,
    /// The connect is in progress (the first writable event tells how it ended).
    connecting: bool,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// The last read stopped at its budget: read again next turn (readiness is
    /// edge-triggered, no new event would come for what is already buffered).
    pub(super) more: bool,
}

impl RedisSocket {
    pub(super) fn new(addr: SocketAddr, token: Token) -> RedisSocket {
        RedisSocket {
            addr,
            token,
            stream: None,
            connecting: false,
            out: Vec::new(),
            buf: vec![0; 64 * 1024],
            more: false,
        }
    }

    pub(super) fn close(&mut self, registry: &mio::Registry) {
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.connecting = false;
        self.out.clear();
    }

    /// Starts a connect (closing any previous socket); `Err` if it failed at once.
    pub(super) fn connect(&mut self, registry: &mio::Registry) -> Result<(), String> {
        self.close(registry);
        let mut s = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
        registry
            .register(&mut s, self.token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("register: {e}"))?;
        let _ = s.set_nodelay(true);
        self.stream = Some(s);
        self.connecting = true;
        Ok(())
    }

    /// Queues bytes for the socket (dropped if it is closed: the core knows it is down).
    pub(super) fn queue(&mut self, bytes: &[u8]) {
        if self.stream.is_some() {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Writes what is queued; `Err` (the socket is then closed) to report to the core.
    pub(super) fn write(&mut self, registry: &mio::Registry) -> Result<(), String> {
        if self.connecting || self.out.is_empty() {
            return Ok(());
        }
        let Some(s) = self.stream.as_mut() else {
            self.out.clear();
            return Ok(());
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
        let result = result.and_then(|()| {
            if self.out.len() > MAX_REDIS_OUTPUT {
                warn!(
                    bytes = self.out.len(),
                    "cluster: Redis is not reading; reconnecting"
                );
                Err("output over its cap".to_string())
            } else {
                Ok(())
            }
        });
        if result.is_err() {
            self.close(registry);
        }
        result
    }

    /// A readiness event: finishes a connect under way.
    pub(super) fn ready(&mut self, registry: &mio::Registry) -> Ready {
        if !self.connecting {
            return if self.stream.is_some() {
                Ready::Open
            } else {
                Ready::Pending
            };
        }
        let Some(s) = self.stream.as_ref() else {
            return Ready::Pending;
        };
        match connect_result(s) {
            None => Ready::Pending,
            Some(Err(e)) => {
                self.close(registry);
                Ready::Failed(format!("connect: {e}"))
            }
            Some(Ok(())) => {
                self.connecting = false;
                Ready::Connected
            }
        }
    }

    /// Reads what arrived (at most a turn's budget) into `input`; `Err` (the socket is then
    /// closed) to report to the core.
    pub(super) fn read(
        &mut self,
        registry: &mio::Registry,
        mut input: impl FnMut(&[u8]),
    ) -> Result<(), String> {
        let mut total = 0;
        self.more = false;
        let result = loop {
            let Some(s) = self.stream.as_mut() else {
                return Ok(());
            };
            match s.read(&mut self.buf) {
                Ok(0) => break Err("closed by Redis".to_string()),
                Ok(n) => {
                    total += n;
                    input(&self.buf[..n]);
                    if total >= REDIS_READ_BUDGET {
                        // The rest waits for the next turn: this bounds one turn's work.
                        self.more = true;
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(format!("read: {e}")),
            }
        };
        if result.is_err() {
            self.close(registry);
        }
        result
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
