//! A conference whose members sit on two nodes, on one virtual clock: each node has a member
//! publishing with `mainTrack` = room and that member's room player (as the SDK's conference
//! page does). Each node's signalling asks for the room's members, looks up the other node's
//! member and relays it into its local room; this file only plays the runtime's part: a
//! registry of the live members (what `server-mio`'s stream events write into Redis), the
//! relays' WebSockets and the datagrams between the nodes.
#![allow(clippy::disallowed_methods)] // none: the clocks are the simulations'

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use antenna_tests::media::MediaSim;
use antenna_tests::server_udp;
use node::{ClusterMode, NodeOutput};
use proto_core::{ConnId, MAX_RELAYED_PER_ROOM};
use rtc_core::{Sfu, SfuConfig};
use serde_json::json;
use str0m::media::MediaKind;

const NAMES: [&str; 2] = ["n1", "n2"];

fn relay_addr(n: usize) -> SocketAddr {
    SocketAddr::from(([10, 9, 0, 1 + 2 * n as u8], 5001))
}

fn http(n: usize) -> SocketAddr {
    SocketAddr::from(([10, 9, 0, 2 + 2 * n as u8], 5080))
}

struct World {
    nodes: [MediaSim; 2],
    /// The registry: room member stream → the node it is live on.
    members: BTreeMap<String, usize>,
    /// Relay WebSocket on node `n` → its connection on the other node.
    relays: [BTreeMap<ConnId, ConnId>; 2],
    room_finds: usize,
    /// Stream look-ups by node.
    stream_finds: [usize; 2],
}

impl World {
    fn new(seed: u64) -> World {
        let nodes = [0, 1].map(|n| {
            let mut m = MediaSim::new(seed ^ (n as u64 * 0x9e37));
            let now = m.sim.now();
            m.sim.node.sfu = Sfu::new(
                SfuConfig {
                    seed: Some(seed ^ 0x5eed ^ n as u64),
                    relay_addrs: vec![relay_addr(n)],
                    ..SfuConfig::new(vec![server_udp()], Duration::from_secs(1))
                },
                now,
            );
            m.sim.node.set_cluster(ClusterMode {
                node_id: NAMES[n].into(),
                secret: "cluster-secret".into(),
            });
            m
        });
        World {
            nodes,
            members: BTreeMap::new(),
            relays: [BTreeMap::new(), BTreeMap::new()],
            room_finds: 0,
            stream_finds: [0; 2],
        }
    }

    /// A member of `room` publishing `stream` on node `n`, registered once it is live.
    fn member(&mut self, n: usize, stream: &str, room: &str) -> usize {
        let i = self.nodes[n].subtrack_publisher(stream, room);
        self.run(Duration::from_millis(300));
        assert!(self.nodes[n].browsers[i].got("publish_started"));
        self.members.insert(stream.to_string(), n);
        i
    }

    /// The runtime's part of node `n`, one pass; true if anything moved.
    fn carry_from(&mut self, n: usize) -> bool {
        let o = 1 - n;
        let mut moved = false;
        while let Some(out) = self.nodes[n].sim.cluster_out.pop_front() {
            moved = true;
            match out {
                NodeOutput::FindRoom { app, room } => {
                    self.room_finds += 1;
                    let members: Vec<String> = self.members.keys().cloned().collect();
                    self.nodes[n].sim.cluster_input(|node, now| {
                        node.room_members(now, &app, &room, Ok(&members));
                    });
                }
                NodeOutput::FindStream { app, stream } => {
                    self.stream_finds[n] += 1;
                    let at = self.members.get(&stream).map(|m| (NAMES[*m], http(*m)));
                    self.nodes[n].sim.cluster_input(|node, now| {
                        node.stream_located(now, &app, &stream, Ok(at));
                    });
                }
                NodeOutput::RelayOpen { conn, addr, path } => {
                    assert_eq!((addr, path.as_str()), (http(o), "/WebRTCAppEE/websocket"));
                    let ws = self.nodes[o].sim.connect();
                    self.relays[n].insert(conn, ws);
                }
                NodeOutput::RelaySend(conn, text) => {
                    let ws = self.relays[n][&conn];
                    self.nodes[o].sim.send(ws, &text);
                }
                NodeOutput::RelayClose(conn) => {
                    if let Some(ws) = self.relays[n].remove(&conn) {
                        self.nodes[o].sim.close(ws);
                    }
                }
                other => panic!("not a cluster output: {other:?}"),
            }
        }
        let relays: Vec<(ConnId, ConnId)> = self.relays[n].iter().map(|(a, b)| (*a, *b)).collect();
        for (conn, ws) in relays {
            let frames = self.nodes[o].sim.take(ws);
            if !self.nodes[o].sim.is_open(ws) {
                self.relays[n].remove(&conn);
                self.nodes[n]
                    .sim
                    .cluster_input(|node, now| node.relay_closed(now, conn));
                moved = true;
            }
            for m in frames {
                moved = true;
                self.nodes[n]
                    .sim
                    .cluster_input(|node, now| node.relay_text(now, conn, &m.to_string()));
            }
        }
        while let Some(d) = self.nodes[n].foreign.pop_front() {
            moved = true;
            if d.source == relay_addr(n) {
                // This node's relay towards the other node's media port.
                self.nodes[o].sim.udp_in(d.source, &d.contents);
            } else {
                assert_eq!(d.destination, relay_addr(o), "only relays cross nodes");
                self.nodes[o].sim.cluster_input(|node, now| {
                    node.handle_udp(now, d.source, d.destination, &d.contents);
                    node.flush_media(now);
                });
            }
        }
        moved
    }

    fn carry(&mut self) {
        for _ in 0..1000 {
            let a = self.carry_from(0);
            let b = self.carry_from(1);
            if !a && !b {
                return;
            }
        }
        panic!("the two nodes did not quiesce");
    }

    /// Runs both nodes for `d` in 1 ms steps.
    fn run(&mut self, d: Duration) {
        for _ in 0..d.as_millis() {
            for n in 0..2 {
                self.nodes[n].run(Duration::from_millis(1));
                self.carry();
            }
        }
    }

    fn video(&self, n: usize, i: usize) -> usize {
        self.nodes[n].browsers[i]
            .client
            .media_count(MediaKind::Video)
    }
}

#[test]
fn a_room_spanning_two_nodes_each_room_player_gets_the_other_nodes_member() {
    for seed in 1..=2u64 {
        let mut w = World::new(seed);
        w.member(0, "alice", "room1");
        w.member(1, "bob", "room1");
        let pa = w.nodes[0].room_player("room1", "alice", &[]);
        let pb = w.nodes[1].room_player("room1", "bob", &[]);
        w.run(Duration::from_secs(4));
        for (n, p, other) in [(0, pa, "bob"), (1, pb, "alice")] {
            let b = &w.nodes[n].browsers[p];
            let (audio, video) = (
                b.client.media_count(MediaKind::Audio),
                b.client.media_count(MediaKind::Video),
            );
            println!("seed {seed}: node {n}'s room player: {audio} audio, {video} video frames");
            assert!(b.got("play_started"), "seed {seed}: node {n}");
            assert!(
                b.received
                    .iter()
                    .any(|m| m["definition"] == "subtrackAdded" && m["trackId"] == other),
                "seed {seed}: node {n}'s room player is told {other} joined"
            );
            assert!(
                audio >= 50 && video >= 30,
                "seed {seed}: node {n}: {audio}/{video}"
            );
            assert!(
                b.id_mapping()
                    .iter()
                    .any(|(_, id)| *id == format!("ARDAMSv{other}")),
                "seed {seed}: node {n}: {:?}",
                b.id_mapping()
            );
            assert_eq!(
                w.nodes[n].sim.node.sfu.relay_count(),
                1,
                "seed {seed}: one relay"
            );
        }
        // Each node plays its own member to the other once, as one relay's play.
        for n in 0..2 {
            assert_eq!(
                w.nodes[n].sim.node.sig.session_roles().play,
                1,
                "seed {seed}"
            );
        }
        // Polls go on (every 2 s) and find nothing new: no second look-up of a member.
        assert_eq!(w.stream_finds, [1, 1], "seed {seed}");
        assert!(w.room_finds >= 2 * 2, "seed {seed}: {}", w.room_finds);
    }
}

#[test]
fn a_member_that_joins_later_is_found_by_the_poll_and_one_that_leaves_is_removed() {
    let mut w = World::new(7);
    w.member(0, "alice", "room1");
    let pa = w.nodes[0].room_player("room1", "alice", &[]);
    w.run(Duration::from_secs(1));
    assert_eq!(w.nodes[0].sim.node.sfu.relay_count(), 0);
    // Bob joins on node 2 after the room play on node 1 started: found at the next poll.
    w.member(1, "bob", "room1");
    w.run(Duration::from_secs(4));
    assert_eq!(w.nodes[0].sim.node.sfu.relay_count(), 1);
    let before = w.video(0, pa);
    assert!(
        before >= 20,
        "alice's room player has bob's video: {before}"
    );
    // Bob stops: the relay on node 1 ends and alice's room player loses him.
    w.nodes[1].browsers[0].gone = true;
    w.nodes[1].send(0, json!({"command": "stop", "streamId": "bob"}));
    w.members.remove("bob");
    w.run(Duration::from_millis(300));
    assert_eq!(w.nodes[0].sim.node.sfu.relay_count(), 0);
    assert!(w.relays[0].is_empty(), "the relay's WebSocket closed");
    let b = &w.nodes[0].browsers[pa];
    assert!(
        b.received
            .iter()
            .any(|m| m["definition"] == "subtrackRemoved" && m["trackId"] == "bob"),
        "alice's room player is told bob left"
    );
    assert!(
        !b.got("play_finished"),
        "the room play goes on with alice alone"
    );
}

#[test]
fn the_last_room_player_leaving_ends_the_members_relays_at_the_next_poll() {
    let mut w = World::new(11);
    w.member(0, "alice", "room1");
    w.member(1, "bob", "room1");
    let pa = w.nodes[0].room_player("room1", "alice", &[]);
    w.run(Duration::from_secs(2));
    assert_eq!(w.nodes[0].sim.node.sfu.relay_count(), 1);
    assert_eq!(w.nodes[1].sim.node.sig.session_roles().play, 1);
    w.nodes[0].close(pa);
    w.run(Duration::from_millis(2_100));
    assert_eq!(w.nodes[0].sim.node.sfu.relay_count(), 0);
    assert!(w.relays[0].is_empty());
    assert_eq!(
        w.nodes[1].sim.node.sig.session_roles().play,
        0,
        "the origin's play of the relay ended"
    );
}

#[test]
fn members_relayed_into_one_room_are_bounded() {
    let mut w = World::new(13);
    w.member(0, "alice", "room1");
    // More members on node 2 than one room relays: only the bound are looked up.
    let extra = MAX_RELAYED_PER_ROOM + 3;
    for i in 0..extra {
        w.members.insert(format!("m{i:02}"), 1);
    }
    w.nodes[0].room_player("room1", "alice", &[]);
    w.run(Duration::from_millis(50));
    assert_eq!(w.stream_finds[0], MAX_RELAYED_PER_ROOM);
    let c = w.nodes[0].sim.node.sig.remote_counters();
    assert_eq!(c.room_members, MAX_RELAYED_PER_ROOM as u64);
    assert_eq!(c.room_overflow, 3);
}
