//! Cluster mode on the node: the edge's relays (one per stream played here and published on
//! another node) and the cluster credential the origin accepts.
//!
//! Signalling decides who waits and for how long (`proto-core/src/signalling/remote.rs`);
//! this module joins its look-ups and relay publishers to the rest: a look-up goes out as
//! [`crate::NodeOutput::FindStream`] and comes back through [`crate::Node::stream_located`];
//! a relay is an AMS client ([`RelayClient`]) whose WebSocket the runtime opens
//! ([`crate::NodeOutput::RelayOpen`]) and whose text it carries both ways, plus the media
//! layer's relay session (`MediaCmd::StartRelay`), which is signalling's relay publisher.
//! The relay ends when its client ends (the origin's `play_finished`, a refusal, a closed
//! WebSocket, no offer in time: its players get `play_finished`) or when signalling closes
//! the relay publisher (its last player left: `stop` goes to the origin).
//!
//! A room played here asks for its members on other nodes ([`crate::NodeOutput::FindRoom`],
//! answered through [`crate::Node::room_members`]); each is relayed the same way and joins the
//! local room as a subtrack (`proto-core/src/signalling/remote_room.rs`).
//!
//! Viewer counts: [`crate::Node::viewer_counts`] (this node's, for the registry) and
//! [`crate::Node::set_remote_viewers`] (the other nodes', from it) make viewer limits and the
//! broadcasts' viewer counts hold cluster-wide (`proto-core/src/signalling/viewers.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use antenna_cluster::{RelayClient, RelayClientConfig, RelayEnd, RelayOutput};
use proto_core::{ConnId, MediaCmd, SessionId, SignalError};
use tracing::{debug, info, warn};

/// The node's ids of relay WebSockets start here (below the WHIP/WHEP resources', far above
/// the runtime's connection tokens).
pub const RELAY_CONN_BASE: u64 = 1 << 40;
/// The end of the relay WebSocket ids.
const RELAY_CONN_END: u64 = 1 << 48;

/// Cluster mode's settings of the node.
#[derive(Debug, Clone)]
pub struct ClusterMode {
    /// This node's id in the registry (a stream whose origin is this id is not relayed).
    pub node_id: String,
    /// The cluster's shared secret: the relays' credential, and what an origin checks
    /// (empty: this node neither relays nor accepts relays).
    pub secret: String,
}

/// Counters of the edge's relays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Relays started (a WebSocket to an origin).
    pub started: u64,
    /// Relays ended because the origin's stream ended.
    pub finished: u64,
    /// Relays ended because their last player left.
    pub stopped: u64,
    /// Relays ended otherwise (refused, no offer, protocol, closed).
    pub failed: u64,
}

/// What the node asks of the runtime for a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RelayIo {
    Open {
        conn: ConnId,
        addr: SocketAddr,
        path: String,
    },
    Send(ConnId, String),
    Close(ConnId),
}

#[derive(Debug)]
struct Relay {
    session: SessionId,
    app: String,
    stream: String,
    client: RelayClient,
}

/// The edge's relays.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    pub(crate) mode: Option<ClusterMode>,
    next: u64,
    by_conn: BTreeMap<ConnId, Relay>,
    by_session: BTreeMap<SessionId, ConnId>,
    pub(crate) counters: RelayCounters,
}

/// Whether `conn` is a relay's WebSocket.
pub fn is_relay_conn(conn: ConnId) -> bool {
    (RELAY_CONN_BASE..RELAY_CONN_END).contains(&conn.0)
}

impl Relays {
    /// The next relay WebSocket id.
    pub(crate) fn next_conn(&mut self) -> ConnId {
        let c = ConnId(RELAY_CONN_BASE + self.next % (RELAY_CONN_END - RELAY_CONN_BASE));
        self.next += 1;
        c
    }

    /// Starts the relay of `app`/`stream` from the origin at `origin` for relay publisher
    /// `session`, owned by WebSocket `conn`.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        conn: ConnId,
        session: SessionId,
        app: &str,
        stream: &str,
        origin: SocketAddr,
    ) -> RelayIo {
        let secret = self
            .mode
            .as_ref()
            .map(|m| m.secret.clone())
            .unwrap_or_default();
        let client = RelayClient::new(
            RelayClientConfig {
                app: app.to_string(),
                stream: stream.to_string(),
                secret,
            },
            now,
        );
        info!(%session, app, stream, %origin, "relay: playing the stream from its origin");
        self.counters.started += 1;
        self.by_session.insert(session, conn);
        self.by_conn.insert(
            conn,
            Relay {
                session,
                app: app.to_string(),
                stream: stream.to_string(),
                client,
            },
        );
        RelayIo::Open {
            conn,
            addr: origin,
            path: format!("/{app}/websocket"),
        }
    }

    /// The relay session of `session`'s relay, if it is one.
    pub(crate) fn is_relay_session(&self, session: SessionId) -> bool {
        self.by_session.contains_key(&session)
    }

    /// A text frame from the origin.
    pub(crate) fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        if let Some(r) = self.by_conn.get_mut(&conn) {
            r.client.handle_text(now, text);
        }
    }

    /// The relay's WebSocket closed (or never opened).
    pub(crate) fn handle_closed(&mut self, conn: ConnId) {
        if let Some(r) = self.by_conn.get_mut(&conn) {
            r.client.handle_closed();
        }
    }

    /// The relay session's answer to the origin's offer.
    pub(crate) fn handle_answer(&mut self, session: SessionId, sdp: &str) {
        if let Some(r) = self
            .by_session
            .get(&session)
            .and_then(|c| self.by_conn.get_mut(c))
        {
            r.client.handle_answer(sdp);
        }
    }

    /// Signalling closed relay publisher `session`: the origin is told `stop`.
    pub(crate) fn stop(&mut self, session: SessionId) {
        if let Some(r) = self
            .by_session
            .get(&session)
            .and_then(|c| self.by_conn.get_mut(c))
        {
            r.client.stop();
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for r in self.by_conn.values_mut() {
            if r.client.poll_timeout().is_some_and(|t| t <= now) {
                r.client.handle_timeout(now);
            }
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.by_conn
            .values()
            .filter_map(|r| r.client.poll_timeout())
            .min()
    }

    /// Moves every relay client's outputs out: runtime IO into `io`, media commands into
    /// `media`, and the relay publishers whose relay ended into `ended`.
    pub(crate) fn drain(
        &mut self,
        io: &mut Vec<RelayIo>,
        media: &mut Vec<MediaCmd>,
        ended: &mut Vec<SessionId>,
    ) -> bool {
        let mut any = false;
        let mut gone = Vec::new();
        for (conn, r) in &mut self.by_conn {
            while let Some(out) = r.client.poll_output() {
                any = true;
                match out {
                    RelayOutput::Send(text) => io.push(RelayIo::Send(*conn, text)),
                    RelayOutput::StartMedia { offer } => media.push(MediaCmd::StartRelay {
                        session: r.session,
                        stream: r.stream.clone(),
                        offer,
                    }),
                    RelayOutput::RemoteCandidate(candidate) => {
                        media.push(MediaCmd::RemoteCandidate {
                            session: r.session,
                            candidate,
                        });
                    }
                    RelayOutput::Playing => {
                        debug!(session = %r.session, stream = %r.stream, "relay: origin playing");
                    }
                    RelayOutput::Ended(why) => {
                        match &why {
                            RelayEnd::Finished => self.counters.finished += 1,
                            RelayEnd::Stopped => self.counters.stopped += 1,
                            _ => self.counters.failed += 1,
                        }
                        match &why {
                            RelayEnd::Finished | RelayEnd::Stopped => {
                                info!(app = %r.app, stream = %r.stream, ?why, "relay ended");
                            }
                            _ => warn!(app = %r.app, stream = %r.stream, ?why, "relay ended"),
                        }
                        io.push(RelayIo::Close(*conn));
                        ended.push(r.session);
                        gone.push(*conn);
                    }
                }
            }
        }
        for conn in gone {
            if let Some(r) = self.by_conn.remove(&conn) {
                self.by_session.remove(&r.session);
            }
        }
        any
    }

    /// Relays running.
    pub(crate) fn len(&self) -> usize {
        self.by_conn.len()
    }
}

impl crate::Node {
    /// Cluster mode: plays of streams published on other nodes wait for a relay (see the
    /// module docs), and relays from edges are accepted with the cluster credential. Without
    /// a secret neither: plays of streams not published here get `no_stream_exist` at once.
    pub fn set_cluster(&mut self, mode: ClusterMode) {
        if let Some(admin) = &mut self.admin {
            admin.set_cluster_secret(&mode.secret);
            self.sig.set_access_policy(Box::new(admin.policy()));
        }
        self.relays.mode = Some(mode);
        self.sig.set_remote_streams(self.pulls_remote_streams());
    }

    /// The answer to [`crate::NodeOutput::FindStream`]: `Ok(Some((origin node id, its HTTP
    /// address)))` where the stream is live, `Ok(None)` if nowhere, `Err(())` if the registry
    /// could not be asked (the waiting plays get `data_store_not_available`).
    #[allow(clippy::result_unit_err)]
    pub fn stream_located(
        &mut self,
        now: Instant,
        app: &str,
        stream: &str,
        found: Result<Option<(&str, SocketAddr)>, ()>,
    ) {
        let own = self.relays.mode.as_ref().map(|m| m.node_id.as_str());
        match found {
            Err(()) => {
                self.sig
                    .remote_failed(now, app, stream, SignalError::DataStoreNotAvailable);
            }
            Ok(Some((origin, addr))) if Some(origin) != own => {
                let conn = self.relays.next_conn();
                if let Some(session) = self.sig.open_relay(now, conn, app, stream) {
                    let io = self.relays.start(now, conn, session, app, stream, addr);
                    self.relay_io(io);
                }
            }
            Ok(_) => {
                debug!(app, stream, "no other node publishes the stream");
                self.sig
                    .remote_failed(now, app, stream, SignalError::NoStreamExist);
            }
        }
        self.pump(now);
    }

    /// The answer to [`crate::NodeOutput::FindRoom`]: the streams published as members of
    /// the room on any node (`Err(())`: the registry could not be asked; the next poll asks
    /// again). Members on other nodes get relays that join the local room.
    #[allow(clippy::result_unit_err)]
    pub fn room_members(
        &mut self,
        now: Instant,
        app: &str,
        room: &str,
        members: Result<&[String], ()>,
    ) {
        match members {
            Ok(members) => self.sig.room_members(now, app, room, members),
            Err(()) => debug!(app, room, "room members: the registry could not be asked"),
        }
        self.pump(now);
    }

    /// This node's WebRTC viewers of each stream published or relayed here, `(app, stream,
    /// viewers)` (0 included; an edge's relay is no viewer on its origin): what the cluster
    /// core publishes, and the streams whose other nodes' counts it reads.
    pub fn viewer_counts(&self) -> Vec<(String, String, usize)> {
        self.sig.viewer_counts()
    }

    /// The other nodes' viewers of `app/stream` as the cluster core last read them: added to
    /// the count plays are checked with against `webRTCViewerLimit` and to the broadcast's
    /// recorded `webRTCViewerCount`.
    pub fn set_remote_viewers(&mut self, now: Instant, app: &str, stream: &str, viewers: usize) {
        self.sig.set_remote_viewers(app, stream, viewers);
        self.pump(now);
    }

    /// A text frame on relay WebSocket `conn`.
    pub fn relay_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        self.relays.handle_text(now, conn, text);
        self.pump(now);
    }

    /// Relay WebSocket `conn` closed, failed or could not be opened.
    pub fn relay_closed(&mut self, now: Instant, conn: ConnId) {
        self.relays.handle_closed(conn);
        self.pump(now);
    }

    /// The relays' counters, and how many run.
    pub fn relay_counters(&self) -> (RelayCounters, usize) {
        (self.relays.counters, self.relays.len())
    }

    fn relay_io(&mut self, io: RelayIo) {
        self.outputs.push_back(match io {
            RelayIo::Open { conn, addr, path } => crate::NodeOutput::RelayOpen { conn, addr, path },
            RelayIo::Send(conn, text) => crate::NodeOutput::RelaySend(conn, text),
            RelayIo::Close(conn) => crate::NodeOutput::RelayClose(conn),
        });
    }

    /// A media layer event: a relay session's answer goes to its client (the origin gets
    /// it), its candidates are not needed (the origin is ICE-lite and learns the edge's
    /// address from its checks); everything else is signalling's.
    pub(crate) fn media_event(&mut self, now: Instant, ev: proto_core::MediaEvent) {
        use proto_core::MediaEvent;
        match &ev {
            MediaEvent::Answer { session, sdp } if self.relays.is_relay_session(*session) => {
                self.relays.handle_answer(*session, sdp);
            }
            MediaEvent::Candidate { session, .. } if self.relays.is_relay_session(*session) => {}
            MediaEvent::Failed { session, .. } | MediaEvent::Closed { session }
                if self.relays.is_relay_session(*session) =>
            {
                // The relay session is gone (no free relay address, a failed ICE or DTLS):
                // the origin is told `stop`; signalling ends the relay publisher.
                self.relays.stop(*session);
                self.sig.handle_media(now, ev);
            }
            _ => self.sig.handle_media(now, ev),
        }
    }

    /// Moves the relay clients' outputs; true if there were any.
    pub(crate) fn pump_relays(&mut self, now: Instant) -> bool {
        let (mut io, mut media, mut ended) = (Vec::new(), Vec::new(), Vec::new());
        if !self.relays.drain(&mut io, &mut media, &mut ended) {
            return false;
        }
        for i in io {
            self.relay_io(i);
        }
        for cmd in media {
            self.sfu.handle_command(now, cmd);
        }
        for session in ended {
            self.sig.relay_ended(now, session);
        }
        true
    }
}
