//! The HTTP front door: reading a request head and its body, answering it, and writing the
//! answer (then closing, or switching to a WebSocket after a `101`).

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Token;
use tracing::{debug, trace};
use tungstenite::protocol::{Role, WebSocketContext};

use node::admin::HeadKind;

use crate::http::{self, Action};

use super::conn::{Next, State};
use super::wsio::FrameTracker;
use super::{conn_id, Runtime, DURABLE_TIMEOUT};

/// Reads a request body into `body` until it holds `len` bytes: `None` once it does, else what
/// to do with the connection now (wait for more, or drop it).
pub(super) fn read_body(
    stream: &mut TcpStream,
    body: &mut Vec<u8>,
    len: usize,
    token: Token,
) -> Option<Next> {
    let mut chunk = [0u8; 16 * 1024];
    while body.len() < len {
        let want = (len - body.len()).min(chunk.len());
        match stream.read(chunk.get_mut(..want).unwrap_or_default()) {
            Ok(0) => return Some(Next::Remove("closed before sending the body")),
            Ok(n) => body.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(Next::Wait),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                trace!(conn = token.0, "read: {e}");
                return Some(Next::Remove("read error"));
            }
        }
    }
    None
}

impl Runtime {
    pub(super) fn drive_http(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::Http { stream, buf } = &mut conn.state else {
            return Next::Again;
        };
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return Next::Remove("closed before sending a request"),
                Ok(n) => {
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    let Some((consumed, action)) = http::handle_request(buf, &self.apps) else {
                        continue;
                    };
                    let early = buf.get(consumed..).unwrap_or_default().to_vec();
                    let State::Http { stream, .. } =
                        std::mem::replace(&mut conn.state, State::Gone)
                    else {
                        return Next::Remove("internal state");
                    };
                    let (out, upgrade) = match action {
                        Action::Rest(head) => {
                            // Access is decided on the head: a refused request is answered
                            // and closed, its body never read.
                            if let Err(refused) =
                                self.node
                                    .check_rest_head(now, conn.peer, &head, HeadKind::Rest)
                            {
                                debug!(
                                    conn = token.0,
                                    status = refused.status,
                                    "rest refused on its head"
                                );
                                conn.state = State::Respond {
                                    stream,
                                    out: refused.response,
                                    written: 0,
                                    upgrade: None,
                                };
                                return Next::Again;
                            }
                            let mut body = early;
                            body.truncate(head.content_length);
                            if head.expect_continue && body.len() < head.content_length {
                                // Best effort: a fresh socket takes 25 bytes at once; if not,
                                // the client sends the body after its own short wait anyway.
                                let mut stream = stream;
                                let _ = stream.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                                conn.state = State::Body { stream, head, body };
                                return Next::Again;
                            }
                            conn.state = State::Body { stream, head, body };
                            return Next::Again;
                        }
                        Action::Media(head) => {
                            let mut body = early;
                            body.truncate(head.content_length);
                            conn.state = State::MediaBody { stream, head, body };
                            return Next::Again;
                        }
                        Action::Upgrade {
                            app,
                            query,
                            response,
                        } => (response, Some((app, query, early))),
                        Action::Metrics(_) | Action::Health { .. } => {
                            let peer = conn.peer;
                            let out = match action {
                                Action::Metrics(head) => self.metrics_response(now, peer, &head),
                                Action::Health { ready, head } => self.health_response(ready, head),
                                _ => Vec::new(),
                            };
                            if let Some(conn) = self.conns.get_mut(&token) {
                                conn.state = State::Respond {
                                    stream,
                                    out,
                                    written: 0,
                                    upgrade: None,
                                };
                            }
                            return Next::Again;
                        }
                        Action::RestRefused { refusal, head } => {
                            let refused = self.node.refuse_rest_head(conn.peer, &head, &refusal);
                            (refused.response, None)
                        }
                        Action::Respond { status, response } => {
                            debug!(conn = token.0, peer = %conn.peer, status, "http response");
                            (response, None)
                        }
                    };
                    conn.state = State::Respond {
                        stream,
                        out,
                        written: 0,
                        upgrade,
                    };
                    return Next::Again;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    trace!(conn = token.0, "read: {e}");
                    return Next::Remove("read error");
                }
            }
        }
    }

    /// Reads a REST body; once complete, answers the request (or holds the answer until its
    /// write is durable).
    pub(super) fn drive_body(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::Body { stream, head, body } = &mut conn.state else {
            return Next::Again;
        };
        if let Some(next) = read_body(stream, body, head.content_length, token) {
            return next;
        }
        let State::Body { stream, head, body } = std::mem::replace(&mut conn.state, State::Gone)
        else {
            return Next::Remove("internal state");
        };
        let peer = conn.peer;
        let reply = self.node.handle_rest(now, peer, &head, &body);
        debug!(conn = token.0, %peer, method = %head.method, path = %head.path,
            status = reply.status, held = reply.durable_after.is_some(), "rest response");
        let response = reply.response;
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let durable = self.node.durable_seq();
        match reply.durable_after {
            Some(seq) if seq > durable => {
                conn.state = State::Held { stream, response };
                conn.deadline = Some(now + DURABLE_TIMEOUT);
                self.held.push(seq, token);
                Next::Wait
            }
            _ => {
                conn.state = State::Respond {
                    stream,
                    out: response,
                    written: 0,
                    upgrade: None,
                };
                Next::Again
            }
        }
    }

    /// Reads a WHIP/WHEP body; once complete, the node answers the request.
    pub(super) fn drive_media_body(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::MediaBody { stream, head, body } = &mut conn.state else {
            return Next::Again;
        };
        if let Some(next) = read_body(stream, body, head.content_length, token) {
            return next;
        }
        let State::MediaBody { stream, head, body } =
            std::mem::replace(&mut conn.state, State::Gone)
        else {
            return Next::Remove("internal state");
        };
        let peer = conn.peer;
        let reply = self.node.handle_http_media(now, peer.ip(), &head, &body);
        debug!(conn = token.0, %peer, kind = head.kind.segment(), stream = %head.stream,
            status = reply.status, "whip/whep response");
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        conn.state = State::Respond {
            stream,
            out: reply.response,
            written: 0,
            upgrade: None,
        };
        Next::Again
    }

    pub(super) fn drive_respond(&mut self, now: Instant, token: Token) -> Next {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Wait;
        };
        let State::Respond {
            stream,
            out,
            written,
            ..
        } = &mut conn.state
        else {
            return Next::Again;
        };
        while *written < out.len() {
            match stream.write(out.get(*written..).unwrap_or_default()) {
                Ok(0) => return Next::Remove("write returned 0"),
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.set_writable(token, true);
                    return Next::Wait;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    trace!(conn = token.0, "write: {e}");
                    return Next::Remove("write error");
                }
            }
        }
        let State::Respond {
            stream, upgrade, ..
        } = std::mem::replace(&mut conn.state, State::Gone)
        else {
            return Next::Remove("internal state");
        };
        let Some((app, query, early)) = upgrade else {
            // Plain HTTP: everything was written; half-close and drop.
            let _ = stream.shutdown(Shutdown::Write);
            conn.state = State::Respond {
                stream,
                out: Vec::new(),
                written: 0,
                upgrade: None,
            };
            return Next::Remove("response sent");
        };
        let ws = WebSocketContext::from_partially_read(early, Role::Server, Some(self.ws_config));
        conn.state = State::Ws {
            stream,
            ws: Box::new(ws),
            out: Vec::new(),
            frames: FrameTracker::default(),
            closing: false,
            shut: false,
            poisoned: false,
        };
        conn.deadline = None;
        conn.last_rx = now;
        debug!(conn = token.0, peer = %conn.peer, %app, "websocket open");
        self.set_writable(token, false);
        self.node.handle_ws_open(now, conn_id(token), &app, &query);
        // Read whatever arrived meanwhile: its readiness edge may already have fired.
        Next::Again
    }
}
