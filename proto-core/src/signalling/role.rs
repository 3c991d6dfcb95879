//! Cluster roles: which node takes publishers, and the SDK's `?target=origin|edge`.
//!
//! A node's [`ClusterRole`] (`--cluster-role`) says what it is in the cluster: an origin takes
//! publishers, an edge serves players (pulling other nodes' streams through relays), `Both`
//! (the default, and a node outside a cluster) does both. A WebSocket URL may carry
//! `?target=origin` or `?target=edge`, AMS's convention for a load balancer to send
//! publishers to the origin group and players to the edge group; here it narrows what its
//! connection may do on this node and never widens it:
//!
//! | node role | no target | `target=origin` | `target=edge` |
//! |---|---|---|---|
//! | `both` | publish, play | publish, play | play (publish refused) |
//! | `origin` | publish, play | publish, play | play (publish refused) |
//! | `edge` | play (publish refused) | play (publish refused) | play (publish refused) |
//!
//! A refused publish (WebSocket or WHIP) gets `unauthorized_access`, is logged at info and
//! counted ([`Signalling::role_refusals`] and the refusals by definition). It is not a
//! credential failure: it does not count towards closing the connection. Plays are never
//! refused by a role; an origin-only node does not pull other nodes' streams (the node turns
//! its relays off, see `node/src/relay.rs`).

use tracing::info;

use super::{ConnId, Signalling};
use crate::error::SignalError;

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterRole {
    /// Takes publishers; does not relay other nodes' streams.
    Origin,
    /// Serves players only; refuses publishers.
    Edge,
    /// Both (the default).
    #[default]
    Both,
}

impl ClusterRole {
    /// `origin`, `edge` or `both`.
    pub fn parse(s: &str) -> Option<ClusterRole> {
        match s {
            "origin" => Some(ClusterRole::Origin),
            "edge" => Some(ClusterRole::Edge),
            "both" => Some(ClusterRole::Both),
            _ => None,
        }
    }

    /// The role's name, as [`ClusterRole::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            ClusterRole::Origin => "origin",
            ClusterRole::Edge => "edge",
            ClusterRole::Both => "both",
        }
    }
}

/// What a connection asked for with `?target=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `target=origin`: a publisher's connection.
    Origin,
    /// `target=edge`: a player's connection.
    Edge,
}

impl Target {
    /// The `target` parameter of a URL query string (`a=1&target=edge`), if it names one;
    /// the first `target` counts, anything else is ignored.
    pub fn from_query(query: &str) -> Option<Target> {
        let value = query.split('&').find_map(|p| p.strip_prefix("target="))?;
        match value {
            "origin" => Some(Target::Origin),
            "edge" => Some(Target::Edge),
            _ => None,
        }
    }
}

impl Signalling {
    /// Sets this node's role (see the module docs); at start, before any connection opens
    /// (publishes already taken stay).
    pub fn set_cluster_role(&mut self, role: ClusterRole) {
        self.role = role;
    }

    /// This node's role.
    pub fn cluster_role(&self) -> ClusterRole {
        self.role
    }

    /// Records what an open connection asked for with `?target=`.
    pub fn set_target(&mut self, conn: ConnId, target: Target) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.target = Some(target);
        }
    }

    /// Publishes refused by the node's role or the connection's target so far.
    pub fn role_refusals(&self) -> u64 {
        self.role_refusals
    }

    /// `true` (and the refusal sent, logged and counted) if this connection may not publish
    /// here.
    pub(super) fn refuse_publish_by_role(&mut self, conn: ConnId, id: &str) -> bool {
        let target = self.conns.get(&conn).and_then(|c| c.target);
        let refused = self.role == ClusterRole::Edge || target == Some(Target::Edge);
        if !refused {
            return false;
        }
        self.role_refusals += 1;
        self.refusals.count(SignalError::UnauthorizedAccess);
        info!(
            ?conn,
            stream = id,
            role = self.role.name(),
            ?target,
            "publish refused: an edge takes no publishers"
        );
        self.error(conn, SignalError::UnauthorizedAccess, Some(id));
        true
    }

    /// Part of [`Signalling::check_invariants`]: no connection the role or its target keeps
    /// from publishing holds a publish.
    pub(super) fn check_role_invariants(&self) -> Result<(), String> {
        for (conn, c) in &self.conns {
            let refused = self.role == ClusterRole::Edge || c.target == Some(Target::Edge);
            if refused && !c.publishes.is_empty() {
                return Err(format!("{conn:?} publishes against its cluster role"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_util::*;
    use super::*;
    use crate::fuzzing::Harness;

    fn node(role: ClusterRole) -> Harness {
        let mut h = harness();
        h.sig.set_cluster_role(role);
        h
    }

    fn open(h: &mut Harness, conn: u64, query: &str) {
        h.open(conn, "app");
        if let Some(t) = Target::from_query(query) {
            h.sig.set_target(ConnId(conn), t);
        }
    }

    /// Whether a publish of `id` on `conn` got `start`; a refusal must be `unauthorized_access`.
    fn publishes(h: &mut Harness, conn: u64, id: &str) -> bool {
        let outs = send(h, conn, json!({"command":"publish","streamId":id}));
        let m = one(&outs, conn);
        match m["command"].as_str() {
            Some("start") => true,
            Some("error") => {
                assert_eq!(m["definition"], "unauthorized_access", "{m}");
                assert_eq!(m["streamId"], id, "{m}");
                false
            }
            _ => panic!("unexpected answer {m}"),
        }
    }

    #[test]
    fn target_from_query() {
        assert_eq!(Target::from_query("target=origin"), Some(Target::Origin));
        assert_eq!(Target::from_query("a=1&target=edge"), Some(Target::Edge));
        assert_eq!(
            Target::from_query("target=edge&target=origin"),
            Some(Target::Edge)
        );
        for q in [
            "",
            "target=",
            "target=EDGE",
            "xtarget=edge",
            "target=edge2",
            "a=b",
        ] {
            assert_eq!(Target::from_query(q), None, "{q:?}");
        }
    }

    #[test]
    fn role_names_round_trip() {
        for r in [ClusterRole::Origin, ClusterRole::Edge, ClusterRole::Both] {
            assert_eq!(ClusterRole::parse(r.name()), Some(r));
        }
        assert_eq!(ClusterRole::parse("Edge"), None);
        assert_eq!(ClusterRole::default(), ClusterRole::Both);
    }

    /// The table of the module docs, every cell.
    #[test]
    fn publish_by_role_and_target() {
        let cases = [
            (ClusterRole::Both, "", true),
            (ClusterRole::Both, "target=origin", true),
            (ClusterRole::Both, "target=edge", false),
            (ClusterRole::Origin, "", true),
            (ClusterRole::Origin, "target=origin", true),
            (ClusterRole::Origin, "target=edge", false),
            (ClusterRole::Edge, "", false),
            (ClusterRole::Edge, "target=origin", false),
            (ClusterRole::Edge, "target=edge", false),
        ];
        for (role, query, allowed) in cases {
            let mut h = node(role);
            open(&mut h, 1, query);
            assert_eq!(publishes(&mut h, 1, "s"), allowed, "{role:?} {query:?}");
            let refused = u64::from(!allowed);
            assert_eq!(h.sig.role_refusals(), refused, "{role:?} {query:?}");
            assert_eq!(
                h.sig.refusals().get(SignalError::UnauthorizedAccess),
                refused
            );
        }
    }

    #[test]
    fn refusals_do_not_close_the_connection() {
        let mut h = node(ClusterRole::Edge);
        open(&mut h, 1, "");
        for i in 0..20 {
            assert!(!publishes(&mut h, 1, &format!("s{i}")));
        }
        assert_eq!(h.sig.refusals().conns_closed, 0);
        assert_eq!(h.sig.role_refusals(), 20);
        let outs = send(&mut h, 1, json!({"command":"ping"}));
        assert_eq!(one(&outs, 1)["command"], "pong");
    }

    #[test]
    fn whip_ingest_refused_on_an_edge() {
        let mut h = node(ClusterRole::Edge);
        let outs = h.whip(
            1,
            "app",
            crate::HttpMediaRequest {
                stream_id: "w".into(),
                offer: "OFFER".into(),
                ..Default::default()
            },
        );
        assert_eq!(error_of(&outs, 1)["definition"], "unauthorized_access");
        assert!(cmds(&outs).is_empty(), "no media session: {outs:?}");
        assert_eq!(h.sig.role_refusals(), 1);
    }
}

#[cfg(test)]
mod generator {
    use super::ClusterRole;

    /// The random-operation property test (`fuzzing/ops.rs`, which checks
    /// `check_role_invariants` after every step) reaches role refusals on every role.
    #[test]
    fn random_operations_reach_role_refusals() {
        let mut x: u64 = 0x2545_f491;
        let mut refused = [0u64; 3];
        for _ in 0..300 {
            let data: Vec<u8> = (0..2000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let h = crate::fuzzing::run(&data);
            let i = match h.sig.cluster_role() {
                ClusterRole::Both => 0,
                ClusterRole::Origin => 1,
                ClusterRole::Edge => 2,
            };
            refused[i] += h.sig.role_refusals();
        }
        assert!(refused.iter().all(|&n| n > 0), "{refused:?}");
    }
}
