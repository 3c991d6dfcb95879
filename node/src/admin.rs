//! The admin plane's core: the REST API, its access gate, the settings rules and the access
//! policy signalling asks, over the one datastore. Pure: requests in (method, path, headers,
//! body, peer address, `now`), responses and store writes out; wall time is derived from the
//! `now` of each call and one anchor read at start ([`antenna_store::WallAnchor`]), the ids it
//! makes come from an injected seed.
//!
//! It lives in the node because a REST change is a node event: a settings `PUT` for the first
//! application changes the options signalling and the SFU run with ([`Node::handle_rest`]).
//! The runtime only moves the bytes: it asks [`Node::check_rest_head`] before it reads a body
//! byte, hands the body to [`Node::handle_rest`], holds an answer until its write is durable
//! and asks [`Node::held_release`] what to send once the store moved.
//!
//! [`Node::handle_rest`]: crate::Node::handle_rest
//! [`Node::check_rest_head`]: crate::Node::check_rest_head
//! [`Node::held_release`]: crate::Node::held_release

use std::net::SocketAddr;
use std::time::Instant;

use antenna_store::{
    AdminAccess, AppSettings, GateCounters, Refusal, RestApi, RestGate, RestHead, SharedStore,
    StoreError, WallAnchor, WriteSeq,
};
use serde_json::{Map, Value};
use tracing::{info, trace, warn};

use crate::http_text;

pub mod policy;
pub mod settings;

pub use policy::Policy;

/// What the admin core is built from.
pub struct AdminConfig {
    /// The datastore (shared with the access policy it installs into signalling).
    pub store: SharedStore,
    /// Who may call the API.
    pub access: AdminAccess,
    /// Seeds the ids and token secrets the API makes: 32 bytes from the OS in the server.
    pub rest_seed: [u8; 32],
    /// Wall time at the start.
    pub wall: WallAnchor,
    /// Signalling's options follow this application's settings (the server's first app).
    pub primary_app: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("primary_app", &self.primary_app)
            .finish_non_exhaustive()
    }
}

/// A REST answer: the whole HTTP response, and the write it must wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestReply {
    /// HTTP status (for logs).
    pub status: u16,
    /// The whole `Connection: close` response.
    pub response: Vec<u8>,
    /// Send only once the store's durable sequence reaches this.
    pub durable_after: Option<WriteSeq>,
}

/// Which request a head is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// The REST API: refused (503) while the store cannot make writes durable.
    Rest,
    /// `/metrics`: the store's health left out (metrics matter most when the store fails).
    Metrics,
}

/// What to do with the answers held for durability, after the store moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRelease {
    /// Release every answer waiting for a write up to this one.
    pub durable: WriteSeq,
    /// The store failed: send this instead of each released answer (a 503).
    pub failed: Option<Vec<u8>>,
}

/// Where a stream's webhook calls go and what the datastore adds to them (AMS's rules): the
/// broadcast record's `listenerHookURL`, else the application setting of that name.
#[derive(Debug, Clone, PartialEq)]
pub struct HookTarget {
    /// The URL to call (not empty).
    pub url: String,
    /// The application's other settings: `webhookRetryCount`, `webhookRetryDelay`,
    /// `webhookContentType` decide how the call is delivered.
    pub settings: Map<String, Value>,
    /// The broadcast record's name.
    pub name: Option<String>,
    /// The broadcast record's `category`.
    pub category: Option<String>,
    /// The broadcast record's metadata.
    pub metadata: Option<String>,
}

/// The admin core.
pub struct Admin {
    store: SharedStore,
    rest: RestApi,
    gate: RestGate,
    wall: WallAnchor,
    primary_app: Option<String>,
    /// Cluster mode: the relays' credential check (`policy.rs`).
    relay_auth: policy::RelayAuth,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("primary_app", &self.primary_app)
            .finish_non_exhaustive()
    }
}

/// The response to a refused request.
pub fn refusal_response(refusal: &Refusal) -> Vec<u8> {
    http_text::response(
        refusal.status,
        http_text::reason(refusal.status),
        "application/json",
        refusal.body().as_bytes(),
        false,
        refusal.headers(),
    )
}

impl Admin {
    /// The admin core over `config.store`.
    pub fn new(config: AdminConfig) -> Admin {
        Admin {
            rest: RestApi::new(config.store.clone(), config.rest_seed),
            store: config.store,
            gate: RestGate::new(config.access),
            wall: config.wall,
            primary_app: config.primary_app,
            relay_auth: policy::RelayAuth::default(),
        }
    }

    /// The access policy signalling asks, over the same store and wall anchor.
    pub fn policy(&self) -> Policy {
        Policy::with_anchor(self.store.clone(), self.wall.at, self.wall.unix_ms)
            .with_relay_auth(self.relay_auth.clone())
    }

    /// Cluster mode: a play with the cluster credential under `secret` is an edge's relay
    /// (empty: no relay is accepted). Applies to the policies made after this call.
    pub fn set_cluster_secret(&mut self, secret: &str) {
        self.relay_auth = policy::RelayAuth::new(secret);
    }

    /// Relays accepted and refused so far.
    pub fn relay_auth_counters(&self) -> policy::RelayAuthCounters {
        self.relay_auth.counters()
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Refusals so far, by reason.
    pub fn counters(&self) -> GateCounters {
        self.gate.counters()
    }

    /// Wall time (unix ms) at `now`.
    pub fn wall_ms(&self, now: Instant) -> u64 {
        self.wall.wall_ms(now)
    }

    /// The gate on a REST or `/metrics` head from `peer`: `Err` is the refusal to send (then
    /// close without reading the body); logged and counted.
    pub fn check_head(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        head: &RestHead,
        kind: HeadKind,
    ) -> Result<(), RestReply> {
        let health = match kind {
            HeadKind::Rest => self.store.borrow().health(),
            HeadKind::Metrics => Ok(()),
        };
        let settings = self.store.borrow().data().settings(&head.app);
        let now_ms = self.wall_ms(now);
        match self.gate.check(&settings, health, now_ms, peer.ip(), head) {
            Ok(granted) => {
                trace!(%peer, client = %granted.client, credential = ?granted.credential,
                    "rest request granted");
                Ok(())
            }
            Err(refusal) => Err(self.refused(peer, head, &refusal)),
        }
    }

    /// A head the HTTP parser refused (400, 411, 413): counted and logged like the gate's own.
    pub fn refuse_bad_head(
        &mut self,
        peer: SocketAddr,
        head: &RestHead,
        refusal: &Refusal,
    ) -> RestReply {
        self.gate.count(refusal.reason);
        self.refused(peer, head, refusal)
    }

    fn refused(&mut self, peer: SocketAddr, head: &RestHead, refusal: &Refusal) -> RestReply {
        let count = self.gate.counters().get(refusal.reason);
        info!(%peer, method = %head.method, path = %head.path, status = refusal.status,
            reason = refusal.reason.as_str(), count, total = self.gate.counters().total(),
            "rest request refused: {}", refusal.message);
        RestReply {
            status: refusal.status,
            response: refusal_response(refusal),
            durable_after: None,
        }
    }

    /// The settings signalling must follow after `app`'s settings changed elsewhere (another
    /// cluster node), if `app` is the primary application.
    pub fn followed_settings(&self, app: &str) -> Option<AppSettings> {
        (self.primary_app.as_deref() == Some(app)).then(|| self.store.borrow().data().settings(app))
    }

    /// Answers a request whose head the gate granted. `Some(settings)`: the settings of the
    /// application signalling follows changed, to be applied to the node's options.
    pub fn serve(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        head: &RestHead,
        body: &[u8],
    ) -> (RestReply, Option<AppSettings>) {
        let resp = self.rest.serve(self.wall_ms(now), &head.request(body));
        trace!(%peer, method = %head.method, path = %head.path, status = resp.status,
            "rest request served");
        let followed = resp
            .settings_changed
            .as_deref()
            .filter(|app| self.primary_app.as_deref() == Some(*app))
            .map(|app| self.store.borrow().data().settings(app));
        let response = http_text::response(
            resp.status,
            http_text::reason(resp.status),
            resp.content_type,
            &resp.body,
            head.method == "HEAD",
            &[],
        );
        let reply = RestReply {
            status: resp.status,
            response,
            durable_after: resp.durable_after,
        };
        (reply, followed)
    }

    /// The answers held for durability that may go now: those up to the store's durable
    /// sequence, or, if the store failed meanwhile, all of them, each as a 503.
    pub fn held_release(&self) -> HeldRelease {
        let store = self.store.borrow();
        match store.health() {
            Ok(()) => HeldRelease {
                durable: store.durable_seq(),
                failed: None,
            },
            Err(e) => {
                warn!("store failed before the held writes were durable: {e}");
                HeldRelease {
                    durable: WriteSeq(u64::MAX),
                    failed: Some(refusal_response(&Refusal::store_unavailable(&e))),
                }
            }
        }
    }

    /// Whether the store makes writes durable now (`Err`: why not): readiness and the
    /// `DATASTORE NOT AVAILABLE` report.
    pub fn store_health(&self) -> Result<(), StoreError> {
        self.store.borrow().health()
    }

    /// Where the webhook calls about `app`'s stream `stream` go, if anywhere.
    pub fn hook_target(&self, app: &str, stream: &str) -> Option<HookTarget> {
        let store = self.store.borrow();
        let data = store.data();
        let broadcast = data.broadcast(app, stream);
        let settings = data.settings(app).extra;
        let url = broadcast
            .and_then(|b| b.listener_hook_url.clone())
            .filter(|u| !u.trim().is_empty())
            .or_else(|| {
                settings
                    .get("listenerHookURL")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .filter(|u| !u.trim().is_empty())
            })?;
        Some(HookTarget {
            url,
            name: broadcast.and_then(|b| b.name.clone()),
            category: broadcast
                .and_then(|b| b.extra.get("category"))
                .and_then(Value::as_str)
                .map(str::to_string),
            metadata: broadcast.and_then(|b| b.meta_data.clone()),
            settings,
        })
    }

    /// The store's durable write sequence now.
    pub fn durable_seq(&self) -> WriteSeq {
        self.store.borrow().durable_seq()
    }
}

#[cfg(test)]
mod tests;
