//! WebSockets: reading frames into the node, the close handshake, queueing and writing text
//! frames, and liveness (pings, idle timeout).

use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Token;
use proto_core::ConnId;
use tracing::{debug, info, trace};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::{CloseFrame, Role, WebSocketContext};
use tungstenite::Message;

use crate::limits::{self, Liveness};

use super::conn::{Next, State};
use super::wsio::{write_out, WsIo};
use super::{conn_id, interrupted, would_block, Runtime, CLOSE_LINGER, WS_READ_BUFFER};

impl Runtime {
    /// Pings WebSockets that have been quiet for [`Limits::ws_ping_interval`] and closes those
    /// quiet for [`Limits::ws_idle_timeout`] (code 1001): a client that vanished without a
    /// close (its host gone, its network down) then no longer holds its streams, p2p slot or
    /// room membership.
    pub(super) fn check_liveness(&mut self, now: Instant) {
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

    pub(super) fn drive_ws(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let peer_closed = conn.peer_closed;
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
        let mut io = WsIo::new(stream, &mut self.ahead, out, frames);
        // The end of the stream came with the data: read on to it (no new event would say so).
        io.short_read_ends = !peer_closed;
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
                    } else if self
                        .shared
                        .as_mut()
                        .is_none_or(|d| d.admit(now, token, text.as_str()))
                    {
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
    pub(super) fn begin_close(&mut self, now: Instant, token: Token, frame: Option<CloseFrame>) {
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
        let mut io = WsIo::new(stream, &mut self.ahead, out, frames);
        match ws.close(&mut io, frame) {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => trace!(conn = token.0, "close: {e}"),
        }
        self.dirty.push(token);
        self.node.handle_ws_closed(now, conn_id(token));
    }

    /// Writes out a WebSocket's queued frames (tungstenite's pong and close frames first join
    /// the output). Once all is written the output buffer is freed, so an idle connection
    /// holds no output memory whatever it was sent before.
    pub(super) fn flush(&mut self, now: Instant, token: Token) {
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
        let mut io = WsIo::new(stream, &mut self.ahead, out, frames);
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
    pub(super) fn ws_send(&mut self, now: Instant, id: ConnId, text: String) {
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
}

/// Reads and discards until `WouldBlock` (wait) or EOF/error (remove).
pub(super) fn drain_raw(stream: &mut TcpStream) -> Next {
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
