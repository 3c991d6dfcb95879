//! REST glue: the datastore and the REST API ([`Admin`]), answering one REST request, the
//! settings that follow a change, and the answers held until their write is durable.

use std::net::SocketAddr;
use std::time::Instant;

use antenna_store::{Refusal as RestRefusal, RestApi, RestGate, RestRequest, WriteSeq};
use tracing::{info, trace, warn};

use crate::datastore::{self, Datastore};
use crate::http::{self, RestHead};

use super::conn::State;
use super::{Runtime, HTTP_TIMEOUT};

/// The datastore and the REST API, built by the caller of [`Runtime::new`].
#[derive(Debug)]
pub struct Admin {
    /// The datastore (shared with the access policy inside the node).
    pub datastore: Datastore,
    /// The REST API over it.
    pub rest: RestApi,
    /// Who may call it, decided on the request head (before any body byte is read).
    pub gate: RestGate,
}

impl Admin {
    /// Asks the gate about a REST request head from `peer`. `Err((status, response))`: the
    /// refusal to send (then close, without reading the body); logged and counted.
    pub(super) fn check_head(
        &mut self,
        peer: SocketAddr,
        head: &RestHead,
    ) -> Result<(), (u16, Vec<u8>)> {
        let settings = self.datastore.settings(&head.app);
        let health = self.datastore.health();
        let now_ms = crate::clock::unix_ms();
        match self.gate.check(&settings, health, now_ms, peer.ip(), head) {
            Ok(granted) => {
                trace!(%peer, client = %granted.client, credential = ?granted.credential,
                    "rest request granted");
                Ok(())
            }
            Err(refusal) => Err(self.refused(peer, head, &refusal)),
        }
    }

    /// Logs a refused REST request with its counter; returns the response to send.
    pub(super) fn refused(
        &mut self,
        peer: SocketAddr,
        head: &RestHead,
        refusal: &RestRefusal,
    ) -> (u16, Vec<u8>) {
        let count = self.gate.counters().get(refusal.reason);
        info!(%peer, method = %head.method, path = %head.path, status = refusal.status,
            reason = refusal.reason.as_str(), count, total = self.gate.counters().total(),
            "rest request refused: {}", refusal.message);
        (refusal.status, http::refusal_response(refusal))
    }
}

impl Runtime {
    /// Answers one REST request: `(status, whole HTTP response, write to wait for)`.
    pub(super) fn rest_answer(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        head: &RestHead,
        body: &[u8],
    ) -> (u16, Vec<u8>, Option<WriteSeq>) {
        // Access (address, Host, Origin, credential, content type, store health) was granted
        // on the head by `Admin::check_head`.
        let resp = self.admin.rest.serve(
            crate::clock::unix_ms(),
            &RestRequest {
                method: &head.method,
                path: &head.path,
                query: &head.query,
                authorization: head.authorization.as_deref(),
                body,
                peer: peer.ip(),
            },
        );
        if let Some(app) = &resp.settings_changed {
            self.settings_changed(now, app);
        }
        let out = http::response(
            resp.status,
            http::reason(resp.status),
            resp.content_type,
            &resp.body,
            head.method == "HEAD",
            &[],
        );
        (resp.status, out, resp.durable_after)
    }

    /// An application's settings changed: security settings apply by themselves (read from the
    /// store); the signalling options follow the first application's settings.
    pub(super) fn settings_changed(&mut self, now: Instant, app: &str) {
        if self.apps.first().map(String::as_str) != Some(app) {
            return;
        }
        let settings = self.admin.datastore.settings(app);
        let mut config = self.node.sig.config().clone();
        datastore::apply_to_signalling(&settings, &mut config);
        info!(
            app,
            "application settings changed; signalling options updated"
        );
        self.node.sig.set_config(config);
        let mut data = *self.node.sfu.data_config();
        datastore::apply_to_data(&settings, &mut data);
        self.node.sfu.set_data_config(data);
        self.drain(now);
    }

    /// Sends the held REST responses whose writes are durable (all of them, with 503, if the
    /// store failed meanwhile).
    pub(super) fn release_held(&mut self, now: Instant) {
        if self.held.is_empty() {
            return;
        }
        let failed = self.admin.datastore.health().err();
        if failed.is_some() {
            self.report_store_failure();
        }
        let durable = if failed.is_some() {
            WriteSeq(u64::MAX)
        } else {
            self.admin.datastore.store.borrow().durable_seq()
        };
        while let Some(token) = self.held.pop_ready(durable) {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let State::Held { stream, response } = std::mem::replace(&mut conn.state, State::Gone)
            else {
                continue;
            };
            let out = match &failed {
                None => response,
                Some(e) => {
                    warn!(
                        conn = token.0,
                        "store failed before the write was durable: {e}"
                    );
                    let body = serde_json::json!({"success": false,
                        "message": format!("data_store_not_available: {e}"), "dataId": null, "errorId": 0})
                    .to_string();
                    http::response(
                        503,
                        http::reason(503),
                        "application/json",
                        body.as_bytes(),
                        false,
                        &[],
                    )
                }
            };
            conn.state = State::Respond {
                stream,
                out,
                written: 0,
                upgrade: None,
            };
            conn.deadline = Some(now + HTTP_TIMEOUT);
            self.drive(now, token);
        }
    }
}
