//! The runtime's side of cluster mode (`--cluster redis://HOST:PORT/DB`): the mio loop owns
//! the one TCP socket to Redis and moves bytes between it and the pure cluster core
//! ([`antenna_cluster::Cluster`]), which decides everything else (what to write, when to
//! heartbeat, when to reconnect). The socket is non-blocking like every other: a connect in
//! progress, a slow Redis or a dead one never stalls the loop. Without `--cluster` none of
//! this exists.

use std::net::SocketAddr;
use std::time::Instant;

use antenna_cluster::{Cluster, ClusterConfig, ClusterEvent, ClusterOutput};
use mio::Token;
use proto_core::{EventKind, StreamEvent};
use tracing::{debug, info, warn};

use super::redis_socket::{Ready, RedisSocket};
use super::Runtime;

/// The Redis socket's token.
pub(super) const REDIS: Token = Token(4);

/// The Redis socket and the cluster core.
#[derive(Debug)]
pub(super) struct RedisLink {
    pub(super) core: Cluster,
    socket: RedisSocket,
    /// Redis is reachable (as last reported by the core).
    pub(super) up: bool,
}

impl Runtime {
    /// Cluster mode: this node registers itself and its live streams in the Redis at `redis`
    /// (see `antenna_cluster`). Stream events must be recorded (see `with_webhooks`).
    pub fn with_cluster(mut self, redis: SocketAddr, config: ClusterConfig) -> Runtime {
        let now = Instant::now();
        info!(node = %config.node_id, %redis, db = config.conn.db, "cluster mode: Redis registry");
        self.node.sig.set_record_events(true);
        self.cluster = Some(RedisLink {
            core: Cluster::new(config, now),
            socket: RedisSocket::new(redis, REDIS),
            up: false,
        });
        self.with_shared_data(redis);
        self
    }

    /// Readiness of the Redis socket.
    pub(super) fn redis_ready(&mut self, now: Instant, event: &mio::event::Event) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        let registry = self.poll.registry();
        match link.socket.ready(registry) {
            Ready::Pending => return,
            Ready::Failed(why) => return link.core.handle_closed(now, &why),
            Ready::Connected => link.core.handle_connected(now),
            Ready::Open => {}
        }
        if event.is_readable() || event.is_read_closed() || link.socket.more {
            let core = &mut link.core;
            if let Err(why) = link.socket.read(registry, |b| core.handle_input(now, b)) {
                link.core.handle_closed(now, &why);
            }
        }
    }

    /// Runs the cluster core's timer when due.
    pub(super) fn cluster_timeout(&mut self, now: Instant) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        if link.core.poll_timeout().is_some_and(|t| t <= now) {
            link.core.handle_timeout(now);
        }
        if link.socket.more {
            let core = &mut link.core;
            if let Err(why) = link
                .socket
                .read(self.poll.registry(), |b| core.handle_input(now, b))
            {
                link.core.handle_closed(now, &why);
            }
        }
    }

    /// The cluster core's next deadline.
    pub(super) fn cluster_deadline(&self) -> Option<Instant> {
        self.cluster.as_ref().and_then(|l| l.core.poll_timeout())
    }

    /// A stream event of signalling: live streams enter and leave the registry.
    pub(super) fn cluster_stream_event(&mut self, now: Instant, ev: &StreamEvent) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        let room = ev.main_track.as_deref();
        match ev.kind {
            EventKind::PublishStarted => {
                link.core.stream_started(now, &ev.app, &ev.stream);
                if let Some(room) = room {
                    link.core.member_started(now, &ev.app, room, &ev.stream);
                }
            }
            EventKind::PublishEnded => {
                link.core.stream_ended(now, &ev.app, &ev.stream);
                if let Some(room) = room {
                    link.core.member_ended(now, &ev.app, room, &ev.stream);
                }
            }
            _ => {}
        }
    }

    /// The node's load and viewer counts for the next heartbeat, and a graceful leave at
    /// shutdown.
    pub(super) fn cluster_housekeeping(&mut self, now: Instant, leaving: bool) {
        let load = self.conns.len() as u64;
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        link.core.set_load(load);
        link.core.set_viewers(self.node.viewer_counts());
        if leaving {
            link.core.leave(now);
        }
    }

    /// The node asks where a stream is live (a play waits for a relay): the registry is
    /// asked; its answer goes back to the node from `cluster_drain`.
    pub(super) fn cluster_find(&mut self, now: Instant, app: &str, stream: &str) {
        match self.cluster.as_mut() {
            Some(link) => link.core.lookup_stream(now, app, stream),
            None => self.node.stream_located(now, app, stream, Err(())),
        }
    }

    /// The node asks for a room's members on every node: the registry is asked; its answer
    /// goes back to the node from `cluster_drain`.
    pub(super) fn cluster_find_room(&mut self, now: Instant, app: &str, room: &str) {
        match self.cluster.as_mut() {
            Some(link) => link.core.lookup_room(now, app, room),
            None => self.node.room_members(now, app, room, Err(())),
        }
    }

    /// Carries out what the cluster core asks for until it has nothing more; part of the
    /// loop turn's one drain point (`Runtime::drain`). True if look-up answers went to the
    /// node (which may then have output).
    pub(super) fn cluster_drain(&mut self, now: Instant) -> bool {
        let Some(link) = self.cluster.as_mut() else {
            return false;
        };
        let mut located = Vec::new();
        let mut rooms = Vec::new();
        let mut viewers = Vec::new();
        let registry = self.poll.registry();
        loop {
            let mut any = false;
            while let Some(o) = link.core.poll_output() {
                any = true;
                match o {
                    ClusterOutput::Connect => {
                        if let Err(why) = link.socket.connect(registry) {
                            link.core.handle_closed(now, &why);
                        }
                    }
                    ClusterOutput::Close => link.socket.close(registry),
                    ClusterOutput::Transmit(b) => link.socket.queue(&b),
                    ClusterOutput::Event(ClusterEvent::Up) => link.up = true,
                    ClusterOutput::Event(ClusterEvent::Down { reason }) => {
                        if link.up {
                            warn!(%reason, "CLUSTER: Redis not available; local streams go on, \
                                   the registry is written again when it returns");
                        } else {
                            debug!(%reason, "cluster: Redis still not available");
                        }
                        link.up = false;
                    }
                    ClusterOutput::Event(ClusterEvent::StreamOrigin { app, stream, entry }) => {
                        located.push((app, stream, Ok(entry)));
                    }
                    ClusterOutput::Event(ClusterEvent::Unavailable { app, stream }) => {
                        located.push((app, stream, Err(())));
                    }
                    ClusterOutput::Event(ClusterEvent::RoomMembers { app, room, members }) => {
                        rooms.push((app, room, Ok(members)));
                    }
                    ClusterOutput::Event(ClusterEvent::RoomUnavailable { app, room }) => {
                        rooms.push((app, room, Err(())));
                    }
                    ClusterOutput::Event(ClusterEvent::Viewers {
                        app,
                        stream,
                        others,
                    }) => viewers.push((app, stream, others)),
                }
            }
            if let Err(why) = link.socket.write(registry) {
                link.core.handle_closed(now, &why);
                continue;
            }
            // A failed write reports to the core, which may have more to say.
            if !any {
                break;
            }
        }
        let fed = !located.is_empty() || !rooms.is_empty() || !viewers.is_empty();
        for (app, stream, others) in viewers {
            self.node.set_remote_viewers(now, &app, &stream, others);
        }
        for (app, room, members) in rooms {
            let members = members.as_deref().map_err(|_| ());
            self.node.room_members(now, &app, &room, members);
        }
        for (app, stream, found) in located {
            let found = found.map(|e| e.map(|e| (e.origin, e.http)));
            let found = match &found {
                Ok(Some((origin, http))) => Ok(Some((origin.as_str(), *http))),
                Ok(None) => Ok(None),
                Err(()) => Err(()),
            };
            self.node.stream_located(now, &app, &stream, found);
        }
        fed
    }
}
