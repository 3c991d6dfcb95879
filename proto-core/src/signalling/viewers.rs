//! Viewer counts in cluster mode: this node's WebRTC viewers of each stream it publishes or
//! relays (what the cluster core writes to Redis), and the other nodes' viewers of those
//! streams (what it reads back), added to the count a play is checked with against
//! `webRTCViewerLimit` and to the count recorded for the broadcast. A relay's play on the
//! origin ([`crate::Grant::relay`]) is no viewer: the edge's players count instead.

use super::state::Role;
use super::{key, SessionId, Signalling};

impl Signalling {
    /// This node's viewers of a publish session: its plays, relays of other nodes left out.
    pub(super) fn local_viewers(&self, publisher: SessionId) -> usize {
        let Some(Role::Publish(ps)) = self.sessions.get(&publisher).map(|s| &s.role) else {
            return 0;
        };
        ps.players
            .iter()
            .filter(|p| {
                !matches!(self.sessions.get(p).map(|s| &s.role), Some(Role::Play(ps)) if ps.relay)
            })
            .count()
    }

    /// The viewers of `app/id` in the cluster: this node's (of `publisher`, if it has the
    /// stream) plus the other nodes' as last read.
    pub(super) fn cluster_viewers(
        &self,
        app: &str,
        id: &str,
        publisher: Option<SessionId>,
    ) -> usize {
        let local = publisher.map_or(0, |p| self.local_viewers(p));
        let remote = self.remote_viewers.get(&key(app, id)).copied().unwrap_or(0);
        local.saturating_add(remote)
    }

    /// The viewer count of a publish session changed: a client's publish records the
    /// cluster's count (a relay's stream is recorded by its origin).
    pub(super) fn viewers_changed(&mut self, publisher: SessionId) {
        let Some(s) = self.sessions.get(&publisher) else {
            return;
        };
        let Role::Publish(ps) = &s.role else {
            return;
        };
        if ps.relay {
            return;
        }
        let (app, stream) = (s.app.clone(), s.stream.clone());
        let n = self.cluster_viewers(&app, &stream, Some(publisher));
        self.access.on_viewer_count(&app, &stream, n);
    }

    /// This node's viewers of every stream it publishes or relays, `(app, stream, viewers)`
    /// (0 included: the cluster core reads the other nodes' counts of these streams).
    pub fn viewer_counts(&self) -> Vec<(String, String, usize)> {
        self.publishers
            .iter()
            .map(|((app, stream), sid)| (app.clone(), stream.clone(), self.local_viewers(*sid)))
            .collect()
    }

    /// The other nodes' viewers of `app/stream`, as the cluster core last read them (0 when
    /// Redis is away). Kept only while the stream is published or relayed here (so no more
    /// entries than publish sessions); a change is recorded for the broadcast.
    pub fn set_remote_viewers(&mut self, app: &str, stream: &str, viewers: usize) {
        let k = key(app, stream);
        let Some(publisher) = self.publishers.get(&k).copied() else {
            return;
        };
        let old = if viewers == 0 {
            self.remote_viewers.remove(&k)
        } else {
            self.remote_viewers.insert(k, viewers)
        };
        if old.unwrap_or(0) != viewers {
            self.viewers_changed(publisher);
        }
    }
}
