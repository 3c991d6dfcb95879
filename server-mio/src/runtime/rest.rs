//! REST glue: the answers held until their write is durable. The gate, the handlers, the
//! settings that follow a change and the 503 of a failed store are the node's admin core
//! (`node::admin`); the runtime only keeps the connections waiting.

use std::time::Instant;

use tracing::warn;

use super::conn::State;
use super::{Runtime, HTTP_TIMEOUT};

impl Runtime {
    /// Sends the held REST responses the admin core releases: those whose writes are durable,
    /// or all of them, with its 503, if the store failed meanwhile.
    pub(super) fn release_held(&mut self, now: Instant) {
        if self.held.is_empty() {
            return;
        }
        let Some(release) = self.node.held_release() else {
            return;
        };
        if release.failed.is_some() {
            self.report_store_failure();
        }
        while let Some(token) = self.held.pop_ready(release.durable) {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let State::Held { stream, response } = std::mem::replace(&mut conn.state, State::Gone)
            else {
                continue;
            };
            let out = match &release.failed {
                None => response,
                Some(failed) => {
                    warn!(conn = token.0, "held answer replaced by a 503");
                    failed.clone()
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
