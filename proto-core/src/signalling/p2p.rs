//! Peer to peer: `join`/`leave` groups of two connections and relaying between them.

use super::limits::Held;
use super::{key, ConnId, Key, Signalling};
use crate::error::SignalError;
use crate::message::{Join, Notification, PeerMessage, ServerMessage};

impl Signalling {
    pub(super) fn is_p2p_member(&self, conn: ConnId, app: &str, id: &str) -> bool {
        self.p2p
            .get(&key(app, id))
            .is_some_and(|peers| peers.contains(&conn))
    }

    pub(super) fn join(&mut self, conn: ConnId, app: &str, id: String, _j: Join) {
        let k = key(app, &id);
        let peers = self.p2p.get(&k).cloned().unwrap_or_default();
        if peers.contains(&conn) {
            return self.send(
                conn,
                ServerMessage::Notification(Notification::Joined { stream_id: id }),
            );
        }
        if peers.len() >= 2 {
            return self.error(conn, SignalError::NoSpaceForNewPeer, Some(&id));
        }
        if !self.check_count(conn, Held::P2p, &id) {
            return;
        }
        self.p2p.entry(k).or_default().push(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.p2p.insert(id.clone());
        }
        self.send(
            conn,
            ServerMessage::Notification(Notification::Joined {
                stream_id: id.clone(),
            }),
        );
        if let Some(first) = peers.first() {
            self.send(
                *first,
                ServerMessage::Start {
                    stream_id: id,
                    subscriber_id: None,
                },
            );
        }
    }

    pub(super) fn leave(&mut self, conn: ConnId, app: &str, id: String) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.p2p.remove(&id);
        }
        self.p2p_remove(conn, &key(app, &id));
        self.send(
            conn,
            ServerMessage::Notification(Notification::Leaved { stream_id: id }),
        );
    }

    /// Removes `conn` from a p2p group and tells the other peer `stop`.
    pub(super) fn p2p_remove(&mut self, conn: ConnId, k: &Key) {
        let Some(peers) = self.p2p.get_mut(k) else {
            return;
        };
        if !peers.contains(&conn) {
            return;
        }
        peers.retain(|c| *c != conn);
        let others = peers.clone();
        if others.is_empty() {
            self.p2p.remove(k);
        }
        for other in others {
            self.send(
                other,
                ServerMessage::Stop {
                    stream_id: k.1.clone(),
                },
            );
        }
    }

    pub(super) fn relay(&mut self, conn: ConnId, app: &str, id: String, msg: ServerMessage) {
        let partner = self
            .p2p
            .get(&key(app, &id))
            .and_then(|peers| peers.iter().find(|c| **c != conn).copied());
        match partner {
            Some(p) => self.send(p, msg),
            None => self.error(conn, SignalError::NoPeerAssociatedBefore, Some(&id)),
        }
    }

    pub(super) fn peer_message(&mut self, conn: ConnId, app: &str, id: String, p: PeerMessage) {
        let msg = ServerMessage::PeerMessageCommand {
            stream_id: id.clone(),
            definition: p.definition,
            data: p.data,
        };
        if self.is_p2p_member(conn, app, &id) {
            self.relay(conn, app, id, msg);
        } else {
            self.error(conn, SignalError::NoPeerAssociatedBefore, Some(&id));
        }
    }
}
