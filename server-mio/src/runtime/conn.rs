//! A connection's state ([`State`], one value per connection in `Runtime::conns`), and its
//! life: accepted (or refused at a cap), driven through its states, removed.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};
use tracing::{debug, info, trace, warn};
use tungstenite::protocol::{CloseFrame, WebSocketContext};

use crate::http::RestHead;
use crate::limits::{self, Refusal};

use super::wsio::{write_out, FrameTracker};
use super::{conn_id, Runtime, LISTENER, REFUSED_503};

pub(super) enum State {
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
    /// Writing a response; then WebSocket for `upgrade = Some((app, query, early bytes))`,
    /// else close.
    Respond {
        stream: TcpStream,
        out: Vec<u8>,
        written: usize,
        upgrade: Option<(String, String, Vec<u8>)>,
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

pub(super) struct Conn {
    pub(super) state: State,
    pub(super) peer: SocketAddr,
    /// Dropped when this passes (HTTP phase, close linger).
    pub(super) deadline: Option<Instant>,
    /// WRITABLE interest is registered (only while output is pending).
    pub(super) writable: bool,
    /// When the WebSocket last delivered a complete frame (or opened).
    pub(super) last_rx: Instant,
    /// When the server last pinged it.
    pub(super) last_ping: Option<Instant>,
    /// A readiness event said the peer closed its side (or the socket failed): its reads go
    /// on to the end of the stream, a short read does not end them (see `WsIo`).
    pub(super) peer_closed: bool,
}

impl Conn {
    /// True for a WebSocket the node still considers open.
    pub(super) fn is_open_ws(&self) -> bool {
        matches!(self.state, State::Ws { closing: false, .. })
    }
}

/// What to do with a connection after driving it.
pub(super) enum Next {
    /// Wait for the next event.
    Wait,
    /// Drive again (the state changed).
    Again,
    /// Drop it.
    Remove(&'static str),
    /// Start the close handshake (with this close frame).
    Close(Option<CloseFrame>),
}

impl Runtime {
    /// Registers the listener again after it was paused for lack of file descriptors.
    pub(super) fn resume_accept(&mut self, now: Instant) {
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
    pub(super) fn pause_accept(&mut self) {
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
    pub(super) fn refuse(&mut self, mut stream: TcpStream, peer: SocketAddr, why: Refusal) {
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

    pub(super) fn accept(&mut self, now: Instant) {
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
                            peer_closed: false,
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
    pub(super) fn set_writable(&mut self, token: Token, on: bool) {
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
    pub(super) fn drive(&mut self, now: Instant, token: Token) {
        loop {
            let Some(conn) = self.conns.get(&token) else {
                trace!(token = token.0, "event for an unknown token");
                break;
            };
            let next = match conn.state {
                State::Http { .. } => self.drive_http(now, token),
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
    }

    /// Drops a connection; tells the node if it had an open WebSocket.
    pub(super) fn remove(&mut self, now: Instant, token: Token, why: &str) {
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
}
