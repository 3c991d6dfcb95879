//! A non-blocking WebSocket client connection (tungstenite over a std `TcpStream`), registered
//! with mio by file descriptor. The handshake is done blocking (loopback, fast); afterwards the
//! socket is non-blocking and [`WsConn::read_all`] / [`WsConn::send`] never block.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

/// One WebSocket client.
#[derive(Debug)]
pub struct WsConn {
    ws: WebSocket<TcpStream>,
    /// Output is queued in tungstenite and must be flushed when the socket is writable.
    pub pending_flush: bool,
    /// The connection failed or was closed.
    pub closed: bool,
}

/// Refuses anything that is not loopback.
pub fn check_loopback(addr: SocketAddr) -> io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr}: only loopback targets are allowed"),
        ))
    }
}

impl WsConn {
    /// Connects to `ws://{addr}{path}`, with `protocol` as `Sec-WebSocket-Protocol` if given.
    pub fn connect(addr: SocketAddr, path: &str, protocol: Option<&str>) -> io::Result<WsConn> {
        check_loopback(addr)?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!("ws://{addr}{path}")
            .into_client_request()
            .map_err(io::Error::other)?;
        if let Some(p) = protocol {
            let v = HeaderValue::from_str(p).map_err(io::Error::other)?;
            req.headers_mut().insert("Sec-WebSocket-Protocol", v);
        }
        let (ws, _) = tungstenite::client::client(req, stream).map_err(io::Error::other)?;
        ws.get_ref().set_read_timeout(None)?;
        ws.get_ref().set_nonblocking(true)?;
        Ok(WsConn {
            ws,
            pending_flush: false,
            closed: false,
        })
    }

    /// Registers the socket for readable and writable events.
    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        let fd = self.ws.get_ref().as_raw_fd();
        registry.register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// Deregisters the socket.
    pub fn deregister(&self, registry: &Registry) {
        let fd = self.ws.get_ref().as_raw_fd();
        let _ = registry.deregister(&mut SourceFd(&fd));
    }

    /// Sends a text message (queued if the socket would block).
    pub fn send(&mut self, text: String) {
        if self.closed {
            return;
        }
        match self.ws.send(Message::text(text)) {
            Ok(()) => self.pending_flush = false,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                self.pending_flush = true
            }
            Err(_) => self.closed = true,
        }
    }

    /// Flushes queued output.
    pub fn flush(&mut self) {
        if self.closed || !self.pending_flush {
            return;
        }
        match self.ws.flush() {
            Ok(()) => self.pending_flush = false,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.closed = true,
        }
    }

    /// Reads every complete text message available now.
    pub fn read_all(&mut self, out: &mut Vec<String>) {
        loop {
            if self.closed {
                return;
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => out.push(t.as_str().to_string()),
                Ok(Message::Close(_)) => {
                    self.closed = true;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Replies to pings may be queued: keep flushing.
                    self.flush();
                    return;
                }
                Err(_) => {
                    self.closed = true;
                }
            }
        }
    }

    /// Sends a close frame (best effort).
    pub fn close(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
        self.closed = true;
    }
}
