//! Antenna's pure node: the glue between the two cores, no IO, no clock.
//!
//! [`Node`] passes signalling's media commands to the SFU and the SFU's events back to
//! signalling until both queues are empty, and hands the runtime only what touches a socket.
//! WHIP/WHEP resources are connections of their own whose messages never leave the node: they
//! make the HTTP answers and end the resources (`whip.rs`). The admin plane (REST, its gate,
//! the settings rules and the access policy) is the [`admin::Admin`] core the node owns when
//! built [`Node::with_admin`]: a settings change reaches the other cores here.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use proto_core::{ClusterRole, ConnId, MediaCmd, Output, ServerMessage, Signalling, Target};
use rtc_core::{Sfu, SfuOutput, Transmit};

use antenna_store::{AppSettings, Refusal, RestHead, StoreError, WriteSeq};

use crate::admin::{Admin, HeadKind, HeldRelease, HookTarget, RestReply};
use crate::relay::Relays;
use crate::whip::Resources;

pub mod admin;
pub mod http_text;
pub mod relay;
pub mod routes;
pub mod whip;
pub use relay::{is_relay_conn, ClusterMode, RelayCounters};
pub use whip::HttpReply;

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOutput {
    /// Send this JSON text frame on that WebSocket.
    WsSend(ConnId, String),
    /// Close that WebSocket.
    WsClose(ConnId),
    /// Send a UDP datagram.
    UdpSend(Transmit),
    /// Cluster mode: look `app`/`stream` up in the registry and answer with
    /// [`Node::stream_located`] (`relay.rs`).
    FindStream {
        /// Application.
        app: String,
        /// Stream id.
        stream: String,
    },
    /// Cluster mode: list the members of room `app`/`room` on every node and answer with
    /// [`Node::room_members`] (`relay.rs`).
    FindRoom {
        /// Application.
        app: String,
        /// Main track (room) id.
        room: String,
    },
    /// Open the WebSocket `conn` of a relay to an origin node (`ws://addr/path`); report its
    /// frames with [`Node::relay_text`] and its end with [`Node::relay_closed`].
    RelayOpen {
        /// The relay's WebSocket.
        conn: ConnId,
        /// The origin's HTTP address.
        addr: SocketAddr,
        /// The request path.
        path: String,
    },
    /// Send this text frame on a relay's WebSocket (once it is open).
    RelaySend(ConnId, String),
    /// Close a relay's WebSocket.
    RelayClose(ConnId),
}

/// Signalling plus media.
#[derive(Debug)]
pub struct Node {
    /// Signalling core.
    pub sig: Signalling,
    /// Media core.
    pub sfu: Sfu,
    /// WHIP/WHEP resources.
    pub resources: Resources,
    /// The admin core (`None`: no REST API, no datastore policy).
    admin: Option<Admin>,
    outputs: VecDeque<NodeOutput>,
    /// What signalling sent to resource connections (`None`: close), not yet looked at.
    http_events: Vec<(ConnId, Option<ServerMessage>)>,
    /// The resource connection a request is creating, and what was sent to it so far.
    creating: Option<ConnId>,
    created: Vec<Option<ServerMessage>>,
    /// Cluster mode's relays (`relay.rs`).
    relays: Relays,
}

impl Node {
    /// Joins two cores.
    pub fn new(sig: Signalling, sfu: Sfu) -> Self {
        Node {
            sig,
            sfu,
            resources: Resources::new([0; 32]),
            admin: None,
            outputs: VecDeque::new(),
            http_events: Vec::new(),
            creating: None,
            created: Vec::new(),
            relays: Relays::default(),
        }
    }

    /// Seeds the WHIP/WHEP resource ids (from the OS: they must be unguessable).
    pub fn with_resource_seed(mut self, seed: [u8; 32]) -> Self {
        self.resources = Resources::new(seed);
        self
    }

    /// Gives the node its admin core, and signalling the access policy over the same store.
    pub fn with_admin(mut self, admin: Admin) -> Self {
        self.set_admin(admin);
        self
    }

    /// Installs the admin core (see [`Node::with_admin`]), replacing signalling's access policy.
    pub fn set_admin(&mut self, admin: Admin) {
        self.sig.set_access_policy(Box::new(admin.policy()));
        self.admin = Some(admin);
    }

    /// The admin core, if any.
    pub fn admin(&self) -> Option<&Admin> {
        self.admin.as_ref()
    }

    /// The gate on a REST (or `/metrics`) request head from `peer`, before any body byte is
    /// read. `Err`: the refusal to send, then close. Without an admin core every REST path is
    /// unknown (404).
    pub fn check_rest_head(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        head: &RestHead,
        kind: HeadKind,
    ) -> Result<(), RestReply> {
        match &mut self.admin {
            Some(admin) => admin.check_head(now, peer, head, kind),
            None => Err(no_admin()),
        }
    }

    /// A REST head the HTTP parser refused: counted and logged with the gate's refusals.
    pub fn refuse_rest_head(
        &mut self,
        peer: SocketAddr,
        head: &RestHead,
        refusal: &Refusal,
    ) -> RestReply {
        match &mut self.admin {
            Some(admin) => admin.refuse_bad_head(peer, head, refusal),
            None => no_admin(),
        }
    }

    /// Answers a REST request whose head [`Node::check_rest_head`] granted, with its `body`.
    /// A settings change of the first application updates the signalling and media options.
    pub fn handle_rest(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        head: &RestHead,
        body: &[u8],
    ) -> RestReply {
        let Some(admin) = &mut self.admin else {
            return no_admin();
        };
        let (reply, followed) = admin.serve(now, peer, head, body);
        if let Some(settings) = followed {
            self.apply_settings(now, &settings);
        }
        reply
    }

    /// `app`'s settings changed in the shared store (another cluster node wrote them): if it is
    /// the primary application, the signalling and media options follow.
    pub fn settings_changed(&mut self, now: Instant, app: &str) {
        let Some(settings) = self.admin.as_ref().and_then(|a| a.followed_settings(app)) else {
            return;
        };
        self.apply_settings(now, &settings);
    }

    /// What the held REST answers may do now (see [`Admin::held_release`]).
    pub fn held_release(&self) -> Option<HeldRelease> {
        self.admin.as_ref().map(Admin::held_release)
    }

    /// Whether the datastore makes writes durable now (`Err`: why not). Without an admin core
    /// there is no datastore to fail.
    pub fn store_health(&self) -> Result<(), StoreError> {
        self.admin.as_ref().map_or(Ok(()), Admin::store_health)
    }

    /// The datastore's durable write sequence now (without an admin core, nothing is written).
    pub fn durable_seq(&self) -> WriteSeq {
        self.admin.as_ref().map_or(WriteSeq(0), Admin::durable_seq)
    }

    /// Where the webhook calls about a stream go (see [`Admin::hook_target`]).
    pub fn hook_target(&self, app: &str, stream: &str) -> Option<HookTarget> {
        self.admin.as_ref()?.hook_target(app, stream)
    }

    /// The first application's settings changed: the signalling and data channel options that
    /// mirror them follow (security settings are read live from the store anyway).
    fn apply_settings(&mut self, now: Instant, settings: &AppSettings) {
        let mut config = self.sig.config().clone();
        admin::settings::apply_to_signalling(settings, &mut config);
        tracing::info!("application settings changed; signalling options updated");
        self.sig.set_config(config);
        let mut data = *self.sfu.data_config();
        admin::settings::apply_to_data(settings, &mut data);
        self.sfu.set_data_config(data);
        self.pump(now);
    }

    /// A WebSocket opened on `app`; `query` is its URL's query string (without `?`), whose
    /// `target=origin|edge` signalling honours (`proto-core/src/signalling/role.rs`).
    pub fn handle_ws_open(&mut self, now: Instant, conn: ConnId, app: &str, query: &str) {
        self.sig.handle_open(now, conn, app);
        if let Some(target) = Target::from_query(query) {
            self.sig.set_target(conn, target);
        }
        self.pump(now);
    }

    /// This node's role in the cluster (`--cluster-role`): an edge refuses publishers, an
    /// origin pulls no other node's stream (its plays of them get `no_stream_exist` at once).
    pub fn set_cluster_role(&mut self, role: ClusterRole) {
        self.sig.set_cluster_role(role);
        self.sig.set_remote_streams(self.pulls_remote_streams());
    }

    /// Whether plays of other nodes' streams wait for relays: a cluster secret, and a role
    /// other than origin.
    fn pulls_remote_streams(&self) -> bool {
        self.relays
            .mode
            .as_ref()
            .is_some_and(|m| !m.secret.is_empty())
            && self.sig.cluster_role() != ClusterRole::Origin
    }

    /// A text frame arrived.
    pub fn handle_ws_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        self.sig.handle_text(now, conn, text);
        self.pump(now);
    }

    /// A WebSocket closed.
    pub fn handle_ws_closed(&mut self, now: Instant, conn: ConnId) {
        self.sig.handle_closed(now, conn);
        self.pump(now);
    }

    /// A UDP datagram arrived. Media it carries for players waits for [`Node::flush_media`].
    pub fn handle_udp(&mut self, now: Instant, source: SocketAddr, dest: SocketAddr, data: &[u8]) {
        self.sfu.handle_receive(now, source, dest, data);
        self.pump(now);
    }

    /// Sends what the datagrams handled since the last call wrote to players (the SFU's
    /// [`rtc_core::Sfu::flush`]): their datagrams are then in [`Node::poll_output`].
    pub fn flush_media(&mut self, now: Instant) {
        if self.sfu.needs_flush() {
            self.sfu.flush(now);
            self.pump(now);
        }
    }

    /// The runtime's overload state changed.
    pub fn set_overloaded(&mut self, now: Instant, overloaded: bool) {
        self.sig.set_overloaded(now, overloaded);
        self.pump(now);
    }

    /// Graceful shutdown.
    pub fn shutdown(&mut self, now: Instant) {
        self.sig.shutdown(now);
        self.pump(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sig.handle_timeout(now);
        self.sfu.handle_timeout(now);
        self.relays.handle_timeout(now);
        self.pump(now);
    }

    /// The next output.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<NodeOutput> {
        self.outputs.pop_front()
    }

    /// The earliest deadline of either core.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.sig.poll_timeout(),
            self.sfu.poll_timeout(),
            self.relays.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Moves outputs between the cores until both are drained and the resources have acted
    /// on what was sent to them.
    fn pump(&mut self, now: Instant) {
        loop {
            self.pump_cores(now);
            if !self.settle_resources(now) {
                break;
            }
        }
    }

    /// Moves outputs between the cores until both are drained.
    fn pump_cores(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(out) = self.sig.poll_output() {
                progressed = true;
                match out {
                    Output::Send(conn, msg) if Resources::is_resource_conn(conn) => {
                        self.http_events.push((conn, Some(msg)));
                    }
                    Output::Close(conn) if Resources::is_resource_conn(conn) => {
                        self.http_events.push((conn, None));
                    }
                    Output::Send(conn, msg) => self
                        .outputs
                        .push_back(NodeOutput::WsSend(conn, msg.to_json())),
                    Output::Close(conn) => self.outputs.push_back(NodeOutput::WsClose(conn)),
                    Output::Media(cmd) => {
                        if let MediaCmd::Close { session } = &cmd {
                            self.relays.stop(*session);
                        }
                        self.sfu.handle_command(now, cmd);
                    }
                    Output::FindStream { app, stream } => {
                        self.outputs
                            .push_back(NodeOutput::FindStream { app, stream });
                    }
                    Output::FindRoom { app, room } => {
                        self.outputs.push_back(NodeOutput::FindRoom { app, room });
                    }
                }
            }
            while let Some(out) = self.sfu.poll_output() {
                progressed = true;
                match out {
                    SfuOutput::Transmit(t) => self.outputs.push_back(NodeOutput::UdpSend(t)),
                    SfuOutput::Event(ev) => self.media_event(now, ev),
                }
            }
            progressed |= self.pump_relays(now);
            if !progressed {
                break;
            }
        }
    }
}

/// The answer to a REST request on a node without an admin core.
fn no_admin() -> RestReply {
    let body = br#"{"success":false,"message":"Not found","dataId":null,"errorId":0}"#;
    RestReply {
        status: 404,
        response: http_text::response(
            404,
            http_text::reason(404),
            "application/json",
            body,
            false,
            &[],
        ),
        durable_after: None,
    }
}
