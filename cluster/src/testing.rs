//! A [`Cluster`] (and a [`SharedData`]) wired to a [`MemRedis`] through the same RESP bytes,
//! with Redis outages:
//! the unit tests' and the simulation's harness (pure: time is given).

use std::time::Instant;

use crate::data::{DataEvent, DataOutput, Link as DLink, SharedData};
use crate::model::{ClientId, MemRedis};
use crate::registry::{Cluster, ClusterEvent, ClusterOutput};

/// One node's cluster core and its connection to the shared model.
#[derive(Debug)]
pub struct Link {
    /// The node's cluster core.
    pub cluster: Cluster,
    client: Option<ClientId>,
    /// Events the core reported, oldest first.
    pub events: Vec<ClusterEvent>,
}

impl Link {
    /// A link for `cluster` (not connected yet).
    pub fn new(cluster: Cluster) -> Link {
        Link {
            cluster,
            client: None,
            events: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything; `redis_up` false refuses
    /// connects and drops a connection (Redis stopped). Runs the core's timer when due.
    pub fn step(&mut self, now: Instant, redis: &mut MemRedis, redis_up: bool) {
        if let Some(c) = self.client {
            if !redis_up || !redis.is_connected(c) {
                self.client = None;
                redis.disconnect(c);
                self.cluster.handle_closed(now, "connection reset");
            }
        }
        if self.cluster.poll_timeout().is_some_and(|t| t <= now) {
            self.cluster.handle_timeout(now);
        }
        loop {
            let mut moved = false;
            while let Some(o) = self.cluster.poll_output() {
                moved = true;
                match o {
                    ClusterOutput::Connect => {
                        if let Some(c) = self.client.take() {
                            redis.disconnect(c);
                        }
                        if redis_up {
                            self.client = Some(redis.connect());
                            self.cluster.handle_connected(now);
                        } else {
                            self.cluster.handle_closed(now, "connection refused");
                        }
                    }
                    ClusterOutput::Close => {
                        if let Some(c) = self.client.take() {
                            redis.disconnect(c);
                        }
                    }
                    ClusterOutput::Transmit(b) => {
                        if let Some(c) = self.client {
                            if !redis.handle_input(now, c, &b) {
                                self.client = None;
                                self.cluster.handle_closed(now, "connection reset");
                            }
                        }
                    }
                    ClusterOutput::Event(e) => self.events.push(e),
                }
            }
            if let Some(c) = self.client {
                if let Some(bytes) = redis.poll_transmit(c) {
                    moved = true;
                    self.cluster.handle_input(now, &bytes);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// The node dies without a word: its connection is dropped, nothing more is sent.
    pub fn kill(&mut self, redis: &mut MemRedis) {
        if let Some(c) = self.client.take() {
            redis.disconnect(c);
        }
    }
}

/// One node's [`SharedData`] and its two connections to the shared model.
#[derive(Debug)]
pub struct DataLink {
    /// The node's shared data.
    pub data: SharedData,
    clients: [Option<ClientId>; 2],
    /// Events it reported, oldest first.
    pub events: Vec<DataEvent>,
}

fn slot(link: DLink) -> usize {
    match link {
        DLink::Cmd => 0,
        DLink::Sub => 1,
    }
}

impl DataLink {
    /// A link for `data` (not connected yet).
    pub fn new(data: SharedData) -> DataLink {
        DataLink {
            data,
            clients: [None, None],
            events: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything, as [`Link::step`] does.
    pub fn step(&mut self, now: Instant, redis: &mut MemRedis, redis_up: bool) {
        for link in [DLink::Cmd, DLink::Sub] {
            if let Some(c) = self.clients[slot(link)] {
                if !redis_up || !redis.is_connected(c) {
                    self.clients[slot(link)] = None;
                    redis.disconnect(c);
                    self.data.handle_closed(now, link, "connection reset");
                }
            }
        }
        if self.data.poll_timeout().is_some_and(|t| t <= now) {
            self.data.handle_timeout(now);
        }
        loop {
            let mut moved = false;
            while let Some(o) = self.data.poll_output() {
                moved = true;
                match o {
                    DataOutput::Connect(link) => {
                        if let Some(c) = self.clients[slot(link)].take() {
                            redis.disconnect(c);
                        }
                        if redis_up {
                            self.clients[slot(link)] = Some(redis.connect());
                            self.data.handle_connected(now, link);
                        } else {
                            self.data.handle_closed(now, link, "connection refused");
                        }
                    }
                    DataOutput::Close(link) => {
                        if let Some(c) = self.clients[slot(link)].take() {
                            redis.disconnect(c);
                        }
                    }
                    DataOutput::Transmit(link, b) => {
                        if let Some(c) = self.clients[slot(link)] {
                            if !redis.handle_input(now, c, &b) {
                                self.clients[slot(link)] = None;
                                self.data.handle_closed(now, link, "connection reset");
                            }
                        }
                    }
                    DataOutput::Event(e) => self.events.push(e),
                }
            }
            for link in [DLink::Cmd, DLink::Sub] {
                if let Some(c) = self.clients[slot(link)] {
                    if let Some(bytes) = redis.poll_transmit(c) {
                        moved = true;
                        self.data.handle_input(now, link, &bytes);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }
}
