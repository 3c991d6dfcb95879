//! The access policy signalling asks: [`StreamSecurity`] behind the store's health, plus the
//! live status and viewer count of the streams that have a broadcast record.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use antenna_store::{SharedStore, StreamSecurity};
use proto_core::{AccessPolicy, Grant, JoinRoomRequest, PlayRequest, PublishRequest, SignalError};
use tracing::{debug, info, warn};

/// The access policy installed into signalling: [`StreamSecurity`] behind a health check, so
/// that a store that could not be opened (its settings are unknown) answers
/// `data_store_not_available` to every publish and play. A store whose commits fail for now
/// ([`StoreError::Degraded`]) keeps serving from memory: only a request that must spend a
/// one-time token gets `data_store_not_available` (the store refuses that write until it is
/// durable again, see [`antenna_store::WriteOp::needs_durability`]). It also
/// records the live status (`broadcasting` / `finished`) and WebRTC viewer count of streams that
/// have a broadcast record, for the REST API (written behind, never waited for).
pub struct Policy {
    store: SharedStore,
    inner: StreamSecurity,
    relay_auth: RelayAuth,
}

/// Relays accepted and refused by [`RelayAuth`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayAuthCounters {
    /// Plays accepted as an edge's relay.
    pub accepted: u64,
    /// Plays with a cluster credential refused (a wrong one, or no secret here).
    pub refused: u64,
}

/// Cluster mode's credential check on the origin: a play whose token is a cluster credential
/// ([`antenna_cluster::cluster_token`]) of its stream under the shared secret is an edge's
/// relay: no play token, no viewer limit, and no viewer ([`Grant::relay`]: the edge's players
/// count through the cluster's viewer counts). A token with the credential's
/// prefix that does not verify, or any such token without a secret, is refused with
/// `unauthorized_access`. The counters are shared by every copy (the admin core reads them).
#[derive(Debug, Clone, Default)]
pub struct RelayAuth {
    secret: String,
    counters: Rc<Cell<RelayAuthCounters>>,
}

impl RelayAuth {
    /// The check under `secret` (empty: every cluster credential is refused).
    pub fn new(secret: &str) -> RelayAuth {
        RelayAuth {
            secret: secret.to_string(),
            counters: Rc::default(),
        }
    }

    /// Counts so far.
    pub fn counters(&self) -> RelayAuthCounters {
        self.counters.get()
    }

    /// `None`: not a relay's play; `Some(Ok)`: an accepted relay; `Some(Err)`: refused.
    fn check(&self, req: &PlayRequest<'_>) -> Option<Result<Grant, SignalError>> {
        let token = req
            .token
            .filter(|t| t.starts_with(antenna_cluster::relay::TOKEN_PREFIX))?;
        let mut c = self.counters.get();
        let ok = antenna_cluster::verify_cluster_token(&self.secret, req.app, req.stream_id, token);
        let answer = if ok {
            c.accepted += 1;
            info!(
                app = req.app,
                stream = req.stream_id,
                "play accepted as an edge's relay"
            );
            Ok(Grant {
                relay: true,
                ..Grant::free(req.app)
            })
        } else {
            c.refused += 1;
            warn!(
                app = req.app,
                stream = req.stream_id,
                secret_set = !self.secret.is_empty(),
                "relay refused: the cluster credential does not verify"
            );
            Err(SignalError::UnauthorizedAccess)
        };
        self.counters.set(c);
        Some(answer)
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").finish_non_exhaustive()
    }
}

impl Policy {
    /// The policy over `store`, reading wall-clock time (unix ms) from `clock`.
    pub fn new(store: SharedStore, clock: impl Fn() -> u64 + 'static) -> Policy {
        Policy {
            inner: StreamSecurity::new(store.clone(), clock),
            store,
            relay_auth: RelayAuth::default(),
        }
    }

    /// The policy as the server runs it: wall-clock time (token expiry, TOTP windows, the
    /// broadcasts' `updateTime`) is derived from the `now` of each call, anchored at `unix_ms`
    /// read once by the runtime at `at` (see [`StreamSecurity::with_anchor`]).
    pub fn with_anchor(store: SharedStore, at: Instant, unix_ms: u64) -> Policy {
        Policy {
            inner: StreamSecurity::with_anchor(store.clone(), at, unix_ms),
            store,
            relay_auth: RelayAuth::default(),
        }
    }

    /// The policy with cluster mode's relay check.
    pub fn with_relay_auth(mut self, relay_auth: RelayAuth) -> Policy {
        self.relay_auth = relay_auth;
        self
    }

    fn status(&mut self, now: Instant, app: &str, stream_id: &str, status: &str) {
        let now_ms = self.inner.wall_ms(now);
        let mut store = self.store.borrow_mut();
        if let Err(e) =
            antenna_store::set_broadcast_status(&mut *store, app, stream_id, status, now_ms)
        {
            debug!(app, stream_id, status, "status not recorded: {e}");
        }
    }

    fn healthy(&self) -> Result<(), SignalError> {
        match self.store.borrow().health() {
            Err(e) if !e.is_degraded() => {
                debug!("refused: {e}");
                Err(SignalError::from(e))
            }
            _ => Ok(()),
        }
    }
}

impl AccessPolicy for Policy {
    fn check_publish(
        &mut self,
        now: Instant,
        req: &PublishRequest<'_>,
    ) -> Result<Grant, SignalError> {
        self.healthy()?;
        self.inner.check_publish(now, req)
    }

    fn check_play(&mut self, now: Instant, req: &PlayRequest<'_>) -> Result<Grant, SignalError> {
        if let Some(answer) = self.relay_auth.check(req) {
            return answer;
        }
        self.healthy()?;
        self.inner.check_play(now, req)
    }

    fn commit(&mut self, now: Instant, grant: Grant) -> Result<(), SignalError> {
        self.healthy()?;
        self.inner.commit(now, grant)
    }

    fn check_join_room(
        &mut self,
        now: Instant,
        req: &JoinRoomRequest<'_>,
    ) -> Result<(), SignalError> {
        self.healthy()?;
        self.inner.check_join_room(now, req)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn records(&self) -> Option<&dyn proto_core::StoredRecords> {
        self.inner.records()
    }

    fn on_publish_started(&mut self, now: Instant, app: &str, stream_id: &str) {
        self.status(now, app, stream_id, "broadcasting");
    }

    fn on_publish_finished(&mut self, now: Instant, app: &str, stream_id: &str) {
        self.status(now, app, stream_id, "finished");
    }

    fn on_viewer_count(&mut self, app: &str, stream_id: &str, viewers: usize) {
        let mut store = self.store.borrow_mut();
        if let Err(e) = antenna_store::set_webrtc_viewer_count(&mut *store, app, stream_id, viewers)
        {
            debug!(app, stream_id, viewers, "viewer count not recorded: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
