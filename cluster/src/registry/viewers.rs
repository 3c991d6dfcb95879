//! Viewer counts across nodes: each node writes its WebRTC viewers of each stream it publishes
//! or relays into the stream's hash (field = node id), and reads the other nodes' fields of
//! the same streams back, counting only nodes whose key is still alive (see the DESIGN notes
//! in `lib.rs`). Both happen in the heartbeat, so a count is at most one heartbeat old.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tracing::{debug, warn};

use super::{Cluster, ClusterEvent, ClusterOutput, Waiting};
use crate::resp::{Command, Reply};

/// Most streams whose hashes are read in one heartbeat (more take turns).
pub const MAX_VIEWER_STREAMS: usize = 256;
/// Most fields (nodes) read from one stream's hash; more are left out of its sum.
pub const MAX_VIEWER_FIELDS: usize = 256;
/// Most other nodes whose liveness is checked in one heartbeat.
pub const MAX_VIEWER_NODES: usize = 256;

/// A written count Redis may no longer hold (it was away): rewritten at the next heartbeat.
const UNKNOWN: usize = usize::MAX;

/// `(app, stream)`.
type Key = (String, String);

/// The viewer counts' state in [`Cluster`].
#[derive(Debug, Default)]
pub(super) struct Viewers {
    /// This node's viewers per stream, as last set (0 included: read, not written).
    local: BTreeMap<Key, usize>,
    /// What this node's fields in Redis hold (non-zero counts only; [`UNKNOWN`] after an
    /// outage).
    written: BTreeMap<Key, usize>,
    /// The other nodes' sums as last reported (non-zero only).
    others: BTreeMap<Key, usize>,
    /// Other nodes seen in the last read: their liveness is checked with the next one.
    nodes: BTreeSet<String>,
    /// Where the next read starts when there are more streams than one read takes.
    cursor: Option<Key>,
    /// The read under way.
    round: Option<Round>,
}

#[derive(Debug, Default)]
pub(super) struct Round {
    /// Replies still to come.
    pending: usize,
    /// Each stream's fields: node → viewers.
    hashes: Vec<(Key, Vec<(String, usize)>)>,
    /// Nodes whose key has expired.
    dead: BTreeSet<String>,
}

impl Cluster {
    /// This node's WebRTC viewers of each stream it publishes or relays, `(app, stream,
    /// viewers)`; a stream left out has none. Written to Redis (changes only) and the other
    /// nodes' counts of these streams read back at the next heartbeat, answered by
    /// [`ClusterEvent::Viewers`].
    pub fn set_viewers(&mut self, counts: impl IntoIterator<Item = (String, String, usize)>) {
        self.viewers.local = counts.into_iter().map(|(a, s, n)| ((a, s), n)).collect();
    }

    /// Redis came back (maybe empty, maybe with counts that changed meanwhile): every field
    /// this node had is written again, or removed if its count is 0 now.
    pub(super) fn viewers_up(&mut self) {
        for n in self.viewers.written.values_mut() {
            *n = UNKNOWN;
        }
        self.viewers.round = None;
    }

    /// Redis went away: plays are checked against local counts only.
    pub(super) fn viewers_down(&mut self) {
        self.viewers.round = None;
        let others = std::mem::take(&mut self.viewers.others);
        if !others.is_empty() {
            warn!(
                streams = others.len(),
                "cluster: viewer counts are local only while Redis is away"
            );
        }
        for ((app, stream), _) in others {
            self.out
                .push_back(ClusterOutput::Event(ClusterEvent::Viewers {
                    app,
                    stream,
                    others: 0,
                }));
        }
    }

    /// The heartbeat's part: changed counts written, every non-zero field's key kept alive,
    /// the tracked streams' hashes and the other nodes' liveness read.
    pub(super) fn viewers_heartbeat(&mut self, now: Instant) {
        let ttl = self.config.ttl.as_millis().to_string();
        let node = self.config.node_id.clone();
        let keys: BTreeSet<Key> = self
            .viewers
            .local
            .keys()
            .chain(self.viewers.written.keys())
            .cloned()
            .collect();
        for k in keys {
            let want = self.viewers.local.get(&k).copied().unwrap_or(0);
            let had = self.viewers.written.get(&k).copied().unwrap_or(0);
            let key = self.config.viewers_key(&k.0, &k.1);
            if want != had {
                let (cmd, what) = if want == 0 {
                    (Command::new(["HDEL", key.as_str(), &node]), "viewers del")
                } else {
                    let n = want.to_string();
                    (
                        Command::new(["HSET", key.as_str(), &node, &n]),
                        "viewers set",
                    )
                };
                if !self.send(now, cmd, Waiting::Write(what)) {
                    self.stats.skipped += 1;
                    continue;
                }
                if want == 0 {
                    self.stats.viewer_dels += 1;
                    self.viewers.written.remove(&k);
                } else {
                    self.stats.viewer_sets += 1;
                    self.viewers.written.insert(k.clone(), want);
                }
            }
            if want > 0 {
                let expire = Command::new(["PEXPIRE", key.as_str(), &ttl]);
                if self.send(now, expire, Waiting::Write("viewers expire")) {
                    self.stats.viewer_expires += 1;
                }
            }
        }
        self.viewers_read(now);
    }

    fn viewers_read(&mut self, now: Instant) {
        if self.viewers.round.is_some() || self.viewers.local.is_empty() {
            return;
        }
        let v = &self.viewers;
        let after = v.cursor.clone();
        let mut streams: Vec<Key> = match &after {
            Some(c) => v.local.keys().filter(|k| *k > c).cloned().collect(),
            None => v.local.keys().cloned().collect(),
        };
        if let Some(c) = &after {
            streams.extend(v.local.keys().filter(|k| *k <= c).cloned());
        }
        streams.truncate(MAX_VIEWER_STREAMS);
        self.viewers.cursor = (self.viewers.local.len() > MAX_VIEWER_STREAMS)
            .then(|| streams.last().cloned())
            .flatten();
        let nodes: Vec<String> = self
            .viewers
            .nodes
            .iter()
            .take(MAX_VIEWER_NODES)
            .cloned()
            .collect();
        self.viewers.round = Some(Round::default());
        let mut pending = 0;
        for (app, stream) in streams {
            let key = self.config.viewers_key(&app, &stream);
            let waiting = Waiting::ViewerHash { app, stream };
            if !self.send(now, Command::new(["HGETALL", key.as_str()]), waiting) {
                self.viewers.round = None;
                return;
            }
            self.stats.viewer_reads += 1;
            pending += 1;
        }
        for n in nodes {
            let key = self.config.node_key(&n);
            if !self.send(
                now,
                Command::new(["EXISTS", key.as_str()]),
                Waiting::ViewerNode(n),
            ) {
                self.viewers.round = None;
                return;
            }
            self.stats.viewer_node_checks += 1;
            pending += 1;
        }
        if let Some(r) = &mut self.viewers.round {
            r.pending = pending;
        }
    }

    /// A reply to the read: a stream's hash (`stream` `Some`) or a node's `EXISTS`.
    pub(super) fn viewers_reply(&mut self, waiting: Waiting, reply: &Reply) {
        let Some(round) = &mut self.viewers.round else {
            return;
        };
        match waiting {
            Waiting::ViewerHash { app, stream } => {
                let fields = viewer_fields(reply).unwrap_or_else(|| {
                    self.stats.bad_replies += 1;
                    warn!(%app, %stream, ?reply, "cluster: bad viewer count reply");
                    Vec::new()
                });
                round.hashes.push(((app, stream), fields));
            }
            Waiting::ViewerNode(node) => {
                if *reply == Reply::Int(0) {
                    round.dead.insert(node);
                }
            }
            _ => return,
        }
        round.pending = round.pending.saturating_sub(1);
        if round.pending == 0 {
            if let Some(round) = self.viewers.round.take() {
                self.viewers_done(round);
            }
        }
    }

    /// A read failed (the connection dropped): it is abandoned.
    pub(super) fn viewers_failed(&mut self) {
        self.viewers.round = None;
    }

    fn viewers_done(&mut self, round: Round) {
        let own = self.config.node_id.clone();
        let mut seen = BTreeSet::new();
        for (k, fields) in round.hashes {
            let mut sum = 0usize;
            for (node, n) in fields {
                if node == own {
                    continue;
                }
                if !round.dead.contains(&node) {
                    sum = sum.saturating_add(n);
                }
                seen.insert(node);
            }
            let old = if sum == 0 {
                self.viewers.others.remove(&k)
            } else {
                self.viewers.others.insert(k.clone(), sum)
            };
            if old.unwrap_or(0) != sum {
                debug!(app = %k.0, stream = %k.1, others = sum, "cluster: other nodes' viewers");
                self.out
                    .push_back(ClusterOutput::Event(ClusterEvent::Viewers {
                        app: k.0,
                        stream: k.1,
                        others: sum,
                    }));
            }
        }
        // Streams no longer here are forgotten (their sums with them).
        let local = &self.viewers.local;
        self.viewers.others.retain(|k, _| local.contains_key(k));
        self.viewers.nodes = seen;
    }

    /// A graceful stop: this node's fields leave the hashes.
    pub(super) fn viewers_leave(&mut self, now: Instant) {
        let node = self.config.node_id.clone();
        for ((app, stream), _) in std::mem::take(&mut self.viewers.written) {
            let key = self.config.viewers_key(&app, &stream);
            let del = Command::new(["HDEL", key.as_str(), &node]);
            self.send(now, del, Waiting::Write("leave viewers"));
        }
    }
}

/// The `(node, viewers)` fields of an `HGETALL` reply, at most [`MAX_VIEWER_FIELDS`] (an
/// unreadable count is 0); `None` if the reply is not such an array.
fn viewer_fields(reply: &Reply) -> Option<Vec<(String, usize)>> {
    let Reply::Array(items) = reply else {
        return None;
    };
    let mut out = Vec::new();
    for pair in items.chunks(2).take(MAX_VIEWER_FIELDS) {
        let [Reply::Bulk(node), Reply::Bulk(n)] = pair else {
            return None;
        };
        let n = std::str::from_utf8(n)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        out.push((String::from_utf8_lossy(node).into_owned(), n));
    }
    Some(out)
}
