//! Cluster mode's relays on the runtime's side: the outgoing WebSocket of each relay (an AMS
//! client towards the origin node) and the relay UDP sockets (one local address per relay,
//! see `rtc-core/src/sfu/relay.rs`). The node decides everything (which stream, when to
//! start and stop, how long the origin may take: the relay's offer deadline also bounds the
//! connect and the handshake); this file only moves bytes between these sockets and
//! [`Node`](node::Node), in the same `mio` loop as every other socket.
//!
//! Bounds: a frame from the origin is at most [`MAX_RELAY_FRAME`] (tungstenite refuses
//! larger ones, which ends the relay); at most [`MAX_PENDING_FRAMES`] frames wait for the
//! handshake, and at most [`MAX_RELAY_OUTPUT`] bytes for a slow origin to read (beyond:
//! the relay ends); a socket is read at most [`READ_BUDGET`] frames or datagrams per turn
//! (the rest next turn, see `relay_more`).

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Token};
use proto_core::ConnId;
use rtc_core::Transmit;
use tracing::{debug, info, trace, warn};
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::Runtime;

/// Longest frame taken from an origin (the relay's signalling refuses more anyway).
pub const MAX_RELAY_FRAME: usize = antenna_cluster::relay::MAX_FRAME;
/// Frames queued while the WebSocket is not open yet.
const MAX_PENDING_FRAMES: usize = 32;
/// Bytes waiting for the origin to read them; beyond, the relay ends.
const MAX_RELAY_OUTPUT: usize = 256 * 1024;
/// Frames or datagrams read from one relay socket per loop turn.
const READ_BUDGET: usize = 64;
/// Relay UDP socket tokens: `RELAY_UDP + index`.
const RELAY_UDP: usize = 1 << 39;
/// Relay WebSocket tokens are the node's relay ids (`node::relay::RELAY_CONN_BASE` and up).
const RELAY_WS: usize = node::relay::RELAY_CONN_BASE as usize;

/// The relay UDP sockets, bound before the node exists (the media layer needs their
/// addresses).
#[derive(Debug)]
pub struct RelaySockets {
    socks: Vec<(UdpSocket, SocketAddr)>,
}

impl RelaySockets {
    /// The announced addresses, for `SfuConfig::relay_addrs`.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.socks.iter().map(|(_, a)| *a).collect()
    }
}

/// Binds one UDP socket per relay on `bind` (each on the next port of `ports`, or on a port
/// the system picks when `ports` is `None`, `count` of them), announced with `announce`'s IP.
pub fn bind_relays(
    bind: std::net::IpAddr,
    announce: std::net::IpAddr,
    ports: Option<(u16, u16)>,
    count: usize,
) -> io::Result<RelaySockets> {
    let list: Vec<u16> = match ports {
        Some((a, b)) => (a..=b).collect(),
        None => vec![0; count],
    };
    let mut socks = Vec::with_capacity(list.len());
    for port in list {
        let addr = SocketAddr::new(bind, port);
        let sock = UdpSocket::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind relay UDP {addr}: {e}")))?;
        let local = sock.local_addr()?;
        socks.push((sock, SocketAddr::new(announce, local.port())));
    }
    Ok(RelaySockets { socks })
}

enum WsState {
    Connecting(TcpStream),
    Handshake(MidHandshake<ClientHandshake<TcpStream>>),
    Open(WebSocket<TcpStream>),
    /// Between states (only while one is being replaced).
    Gone,
}

struct RelayWs {
    state: WsState,
    url: String,
    pending: VecDeque<String>,
}

/// The runtime's relay sockets and WebSockets.
#[derive(Default)]
pub(super) struct RelayRt {
    udp: Vec<(UdpSocket, SocketAddr)>,
    by_addr: HashMap<SocketAddr, usize>,
    ws: HashMap<ConnId, RelayWs>,
    /// Sockets that stopped at their read budget: read again next turn.
    more: Vec<Token>,
    /// Datagrams to the origin dropped because the relay socket would block.
    pub(super) udp_dropped: u64,
}

impl std::fmt::Debug for RelayRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayRt")
            .field("udp", &self.udp.len())
            .field("ws", &self.ws.len())
            .finish_non_exhaustive()
    }
}

/// Whether `token` is a relay socket's.
pub(super) fn is_relay_token(token: Token) -> bool {
    token.0 >= RELAY_UDP
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_RELAY_FRAME))
        .max_frame_size(Some(MAX_RELAY_FRAME))
        .max_write_buffer_size(MAX_RELAY_OUTPUT)
}

fn ws_registry_stream(state: &mut WsState) -> Option<&mut TcpStream> {
    match state {
        WsState::Connecting(s) => Some(s),
        WsState::Handshake(m) => Some(m.get_mut().get_mut()),
        WsState::Open(ws) => Some(ws.get_mut()),
        WsState::Gone => None,
    }
}

impl Runtime {
    /// Cluster mode's relay UDP sockets, registered with the loop.
    pub fn with_relays(mut self, sockets: RelaySockets) -> io::Result<Runtime> {
        for (i, (mut sock, addr)) in sockets.socks.into_iter().enumerate() {
            crate::udp::size_buffers(&sock);
            self.poll
                .registry()
                .register(&mut sock, Token(RELAY_UDP + i), Interest::READABLE)?;
            self.relay.by_addr.insert(addr, i);
            self.relay.udp.push((sock, addr));
        }
        if !self.relay.udp.is_empty() {
            info!(sockets = self.relay.udp.len(), "relay UDP sockets bound");
        }
        Ok(self)
    }

    /// Whether the datagram leaves from a relay address (then `relay_udp_send` sends it).
    pub(super) fn is_relay_source(&self, t: &Transmit) -> bool {
        self.relay.by_addr.contains_key(&t.source)
    }

    /// Sends a relay session's datagram from its own socket; dropped (and counted) if the
    /// socket would block: str0m retransmits what matters.
    pub(super) fn relay_udp_send(&mut self, t: Transmit) {
        let Some((sock, _)) = self
            .relay
            .by_addr
            .get(&t.source)
            .and_then(|&i| self.relay.udp.get(i))
        else {
            return;
        };
        match sock.send_to(&t.contents, t.destination) {
            Ok(_) => {
                self.obs.traffic.packets_out += 1;
                self.obs.traffic.bytes_out += t.contents.len() as u64;
            }
            Err(e) => {
                self.relay.udp_dropped += 1;
                trace!(dest = %t.destination, "relay send: {e}");
            }
        }
    }

    /// Readiness of a relay socket.
    pub(super) fn relay_ready(&mut self, now: Instant, token: Token) {
        if token.0 >= RELAY_WS {
            self.relay_ws_ready(now, ConnId(token.0 as u64));
        } else {
            self.relay_udp_read(now, token.0 - RELAY_UDP);
        }
    }

    /// Whether a relay socket stopped at its read budget (the loop must not wait).
    pub(super) fn relay_more_pending(&self) -> bool {
        !self.relay.more.is_empty()
    }

    /// Sockets left at their read budget last turn.
    pub(super) fn relay_more(&mut self, now: Instant) {
        for token in std::mem::take(&mut self.relay.more) {
            self.relay_ready(now, token);
        }
    }

    fn relay_udp_read(&mut self, now: Instant, index: usize) {
        for _ in 0..READ_BUDGET {
            let Some((sock, local)) = self.relay.udp.get(index) else {
                return;
            };
            let local = *local;
            match sock.recv_from(&mut self.udp_buf) {
                Ok((n, source)) => {
                    let data = self.udp_buf.get(..n).unwrap_or_default();
                    self.obs.traffic.packets_in += 1;
                    self.obs.traffic.bytes_in += n as u64;
                    self.node.handle_udp(now, source, local, data);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.node.flush_media(now);
                    return;
                }
                Err(e) => trace!("relay udp recv: {e}"),
            }
        }
        self.node.flush_media(now);
        self.relay.more.push(Token(RELAY_UDP + index));
    }

    /// Opens relay WebSocket `conn` to `addr`: a non-blocking connect; the handshake follows
    /// when the socket is writable.
    pub(super) fn relay_open(&mut self, now: Instant, conn: ConnId, addr: SocketAddr, path: &str) {
        let token = Token(conn.0 as usize);
        let opened = TcpStream::connect(addr).and_then(|mut s| {
            self.poll.registry().register(
                &mut s,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(s)
        });
        match opened {
            Ok(s) => {
                debug!(?conn, %addr, path, "relay WebSocket connecting");
                self.relay.ws.insert(
                    conn,
                    RelayWs {
                        state: WsState::Connecting(s),
                        url: format!("ws://{addr}{path}"),
                        pending: VecDeque::new(),
                    },
                );
            }
            Err(e) => {
                warn!(?conn, %addr, "relay WebSocket: cannot connect: {e}");
                self.node.relay_closed(now, conn);
            }
        }
    }

    /// A text frame for the origin: sent now, or once the WebSocket is open.
    pub(super) fn relay_send(&mut self, now: Instant, conn: ConnId, text: String) {
        let Some(r) = self.relay.ws.get_mut(&conn) else {
            return;
        };
        let result = match &mut r.state {
            WsState::Open(ws) => ws.send(Message::text(text)),
            _ if r.pending.len() < MAX_PENDING_FRAMES => {
                r.pending.push_back(text);
                return;
            }
            _ => Err(tungstenite::Error::WriteBufferFull(Box::new(
                Message::text(text),
            ))),
        };
        self.relay_result(now, conn, result);
    }

    /// The node ends relay WebSocket `conn`: a close frame if it is open, then the socket
    /// goes (the node needs no report).
    pub(super) fn relay_close(&mut self, conn: ConnId) {
        let Some(mut r) = self.relay.ws.remove(&conn) else {
            return;
        };
        if let WsState::Open(ws) = &mut r.state {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
        if let Some(s) = ws_registry_stream(&mut r.state) {
            let _ = self.poll.registry().deregister(s);
        }
        debug!(?conn, "relay WebSocket closed");
    }

    fn relay_ws_ready(&mut self, now: Instant, conn: ConnId) {
        let Some(r) = self.relay.ws.get_mut(&conn) else {
            return;
        };
        let state = std::mem::replace(&mut r.state, WsState::Gone);
        let step = advance(state, &r.url);
        let failed = match step {
            Ok(state) => {
                r.state = state;
                None
            }
            Err(why) => Some(why),
        };
        if let Some(why) = failed {
            return self.relay_failed(now, conn, &why);
        }
        if !matches!(r.state, WsState::Open(_)) {
            return;
        }
        // Open: what waited goes out, then the origin's frames come in.
        let pending: Vec<String> = r.pending.drain(..).collect();
        for text in pending {
            self.relay_send(now, conn, text);
        }
        let mut texts = Vec::new();
        let mut result = Ok(());
        if let Some(WsState::Open(ws)) = self.relay.ws.get_mut(&conn).map(|r| &mut r.state) {
            result = ws.flush();
            for _ in 0..READ_BUDGET {
                match ws.read() {
                    Ok(Message::Text(t)) => texts.push(t.to_string()),
                    Ok(Message::Close(_)) => {
                        result = Err(tungstenite::Error::ConnectionClosed);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !super::would_block(&e) {
                            result = Err(e);
                        }
                        break;
                    }
                }
            }
            if texts.len() == READ_BUDGET {
                self.relay.more.push(Token(conn.0 as usize));
            }
        }
        for t in texts {
            self.node.relay_text(now, conn, &t);
        }
        self.relay_result(now, conn, result);
    }

    /// A write or read result: anything but success or "would block" ends the relay.
    fn relay_result(&mut self, now: Instant, conn: ConnId, result: tungstenite::Result<()>) {
        match result {
            Ok(()) => {}
            Err(e) if super::would_block(&e) => {}
            Err(e) => self.relay_failed(now, conn, &e.to_string()),
        }
    }

    fn relay_failed(&mut self, now: Instant, conn: ConnId, why: &str) {
        if !self.relay.ws.contains_key(&conn) {
            return;
        }
        warn!(?conn, "relay WebSocket failed: {why}");
        self.relay_close(conn);
        self.node.relay_closed(now, conn);
    }
}

/// One step of a relay WebSocket's opening: connect, then the client handshake.
fn advance(state: WsState, url: &str) -> Result<WsState, String> {
    match state {
        WsState::Connecting(s) => {
            if let Ok(Some(e)) | Err(e) = s.take_error() {
                return Err(format!("connect: {e}"));
            }
            match s.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => {
                    return Ok(WsState::Connecting(s));
                }
                Err(e) => return Err(format!("connect: {e}")),
            }
            handshake(tungstenite::client::client_with_config(
                url,
                s,
                Some(ws_config()),
            ))
        }
        WsState::Handshake(mid) => handshake(mid.handshake()),
        open @ WsState::Open(_) => Ok(open),
        WsState::Gone => Err("gone".into()),
    }
}

fn handshake(
    r: Result<
        (
            WebSocket<TcpStream>,
            tungstenite::handshake::client::Response,
        ),
        HandshakeError<ClientHandshake<TcpStream>>,
    >,
) -> Result<WsState, String> {
    match r {
        Ok((ws, _)) => Ok(WsState::Open(ws)),
        Err(HandshakeError::Interrupted(mid)) => Ok(WsState::Handshake(mid)),
        Err(HandshakeError::Failure(e)) => Err(format!("handshake: {e}")),
    }
}
