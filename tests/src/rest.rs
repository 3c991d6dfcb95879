//! The admin REST API in the simulation: the node's admin core (the same gate, handlers,
//! settings rules and access policy the binary runs) on the virtual clock. A request goes
//! through the head gate, then the handlers, exactly as the runtime hands them over; its
//! answer is recorded in the transcript.

use std::net::SocketAddr;

use antenna_store::{AdminAccess, RestHead, SharedStore, WallAnchor};
use node::admin::{Admin, AdminConfig, HeadKind};
use node::routes::{route, Route};
use serde_json::Value;

use crate::{Record, Sim};

/// The admin token of a simulated server.
pub const ADMIN_TOKEN: &str = "sim-admin-token-0123456789abcdef";

/// Wall time at the simulation's start: 2026-01-01T00:00:00Z in unix ms.
pub const WALL_START_MS: u64 = 1_767_225_600_000;

/// The REST client's address.
pub fn rest_peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 45000))
}

/// A REST answer as a client reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct RestAnswer {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
}

impl Sim {
    /// Gives the node its admin core over `store`: admin token [`ADMIN_TOKEN`], wall time
    /// [`WALL_START_MS`] at the simulation's start, ids seeded from the simulation's seed, and
    /// signalling's options following `WebRTCAppEE`'s settings. The core installs its access
    /// policy into signalling.
    pub fn with_admin(self, store: SharedStore) -> Self {
        self.with_admin_access(
            store,
            AdminAccess {
                admin_token: Some(ADMIN_TOKEN.into()),
                ..AdminAccess::default()
            },
        )
    }

    /// [`Sim::with_admin`] with these access rules (a `--rest-trust-loopback` server, other
    /// `--rest-host` names, …).
    pub fn with_admin_access(mut self, store: SharedStore, access: AdminAccess) -> Self {
        let seed = self.node.sig.config().seed;
        let mut rest_seed = [0u8; 32];
        for (i, b) in seed.to_le_bytes().iter().enumerate() {
            if let Some(slot) = rest_seed.get_mut(i) {
                *slot = *b;
            }
        }
        let admin = Admin::new(AdminConfig {
            store,
            access,
            rest_seed,
            wall: WallAnchor {
                at: self.now(),
                unix_ms: WALL_START_MS,
            },
            primary_app: Some("WebRTCAppEE".into()),
        });
        self.node.set_admin(admin);
        self
    }

    /// An admin REST request with the admin token (`target` may carry a query).
    pub fn rest(&mut self, method: &str, target: &str, body: Option<Value>) -> RestAnswer {
        self.rest_as(method, target, body, Some(ADMIN_TOKEN))
    }

    /// The server serves these applications (the route table's; `WebRTCAppEE` by default).
    pub fn with_apps(mut self, apps: &[&str]) -> Self {
        self.apps = apps.iter().map(|a| (*a).to_string()).collect();
        self
    }

    /// Wall time (unix seconds) now on the virtual clock, plus `delta` seconds.
    pub fn wall_s(&self, delta: i64) -> i64 {
        let ms = WALL_START_MS + u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX);
        i64::try_from(ms / 1000).unwrap_or(i64::MAX) + delta
    }

    /// An admin REST request with this `Authorization` bearer credential, if any.
    pub fn rest_as(
        &mut self,
        method: &str,
        target: &str,
        body: Option<Value>,
        credential: Option<&str>,
    ) -> RestAnswer {
        let body = body.map(|v| v.to_string()).unwrap_or_default();
        let authorization = credential.map(|c| format!("Bearer {c}"));
        self.rest_from(rest_peer(), method, target, &body, authorization.as_deref())
    }

    /// An admin REST request from `peer` with this body and `Authorization` header, as the
    /// runtime hands it over: routed by the node's route table, then the head gate, then the
    /// handlers. A target the table does not send to the REST API is a `404`, as the binary's.
    pub fn rest_from(
        &mut self,
        peer: SocketAddr,
        method: &str,
        target: &str,
        body: &str,
        authorization: Option<&str>,
    ) -> RestAnswer {
        let t = self.elapsed();
        self.transcript
            .push(Record::RestSent(t, format!("{method} {target} {body}")));
        self.steps += 1;
        let app = match route(method, target, &self.apps, |_| false) {
            Route::Rest { app } => app.to_string(),
            _ => {
                self.transcript
                    .push(Record::RestAnswered(t, 404, "not found\n".into()));
                return RestAnswer {
                    status: 404,
                    body: Value::Null,
                };
            }
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let head = RestHead {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            authorization: authorization.map(str::to_string),
            content_length: body.len(),
            app,
            host: Some("127.0.0.1:5080".into()),
            content_type: Some("application/json".into()),
            ..RestHead::default()
        };
        let now = self.now();
        let reply = match self.node.check_rest_head(now, peer, &head, HeadKind::Rest) {
            Err(refused) => refused,
            Ok(()) => self.node.handle_rest(now, peer, &head, body.as_bytes()),
        };
        // The simulation's store is in memory: every write is durable at once, so an answer
        // held for durability is released before the next input, as the runtime would.
        if let (Some(seq), Some(release)) = (reply.durable_after, self.node.held_release()) {
            assert!(seq <= release.durable, "a write not durable in memory");
        }
        self.drain();
        let text = String::from_utf8_lossy(&reply.response).into_owned();
        let body_text = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        self.transcript
            .push(Record::RestAnswered(t, reply.status, body_text.to_string()));
        RestAnswer {
            status: reply.status,
            body: serde_json::from_str(body_text).unwrap_or(Value::Null),
        }
    }
}
