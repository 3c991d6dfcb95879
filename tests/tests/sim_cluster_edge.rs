//! A cluster edge as the binary runs it, on the virtual clock: two whole simulated servers
//! (signalling and media), the origin with a browser publishing, the edge with browsers
//! playing. The edge's node makes every decision (its players wait, one look-up, one relay,
//! the relay's AMS client towards the origin, its end); this file only plays the runtime's
//! part: it answers look-ups from a registry of one stream, carries the relay's WebSocket
//! frames and datagrams between the two nodes. With datastores, it also carries the viewer
//! counts through each node's cluster core and one in-memory Redis, as the runtime does.
#![allow(clippy::disallowed_methods)] // none: the clocks are the simulations'

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use antenna_cluster::testing::Link;
use antenna_cluster::{Cluster, ClusterConfig, ClusterEvent, MemRedis};
use antenna_store::{shared, MemStore};
use antenna_tests::media::MediaSim;
use antenna_tests::{server_udp, Sim};
use node::{ClusterMode, NodeOutput};
use proto_core::ConnId;
use rtc_core::{Sfu, SfuConfig};
use serde_json::json;
use str0m::media::MediaKind;

fn relay_addr() -> SocketAddr {
    "10.9.0.1:5001".parse().unwrap()
}

fn origin_http() -> SocketAddr {
    "10.9.0.2:5080".parse().unwrap()
}

struct World {
    origin: MediaSim,
    edge: MediaSim,
    /// The registry: where each stream is live (`None`: nowhere).
    registry: BTreeMap<String, Option<&'static str>>,
    /// Relay WebSocket on the edge → its connection on the origin.
    relays: BTreeMap<ConnId, ConnId>,
    finds: usize,
    opens: usize,
    /// The network between the nodes drops everything (the WebSockets stay open, silent).
    partitioned: bool,
    /// With datastores: each node's cluster core (origin, edge) over one in-memory Redis,
    /// carrying the viewer counts as the runtime does.
    counts: Option<(MemRedis, [Link; 2])>,
}

impl World {
    fn new(seed: u64) -> World {
        World::build(seed, None)
    }

    /// Both nodes with a datastore in which `cam` has this `webRTCViewerLimit`, the origin
    /// checking the relay's cluster credential, and the viewer counts carried through Redis.
    fn with_viewer_limit(seed: u64, limit: i64) -> World {
        World::build(seed, Some(limit))
    }

    fn build(seed: u64, limit: Option<i64>) -> World {
        let mut origin = MediaSim::new(seed);
        let mut edge = MediaSim::new(seed ^ 0xed6e);
        if let Some(limit) = limit {
            for (m, id) in [(&mut origin, "origin"), (&mut edge, "edge")] {
                let sim = std::mem::replace(&mut m.sim, Sim::new(seed));
                m.sim = sim.with_admin(shared(MemStore::new()));
                let record = json!({"streamId": "cam", "webRTCViewerLimit": limit});
                let r = m.sim.rest(
                    "POST",
                    "/WebRTCAppEE/rest/v2/broadcasts/create",
                    Some(record),
                );
                assert_eq!(r.status, 200, "{}", r.body);
                m.sim.node.set_cluster(ClusterMode {
                    node_id: id.into(),
                    secret: "cluster-secret".into(),
                });
            }
        }
        origin.publisher("cam");
        origin.run(Duration::from_millis(500));
        let now = edge.sim.now();
        edge.sim.node.sfu = Sfu::new(
            SfuConfig {
                seed: Some(seed ^ 0x5eed),
                relay_addrs: vec![relay_addr()],
                ..SfuConfig::new(vec![server_udp()], Duration::from_secs(1))
            },
            now,
        );
        edge.sim.node.set_cluster(ClusterMode {
            node_id: "edge".into(),
            secret: "cluster-secret".into(),
        });
        let now = origin.sim.now();
        World {
            origin,
            edge,
            registry: BTreeMap::from([("cam".to_string(), Some("origin"))]),
            relays: BTreeMap::new(),
            finds: 0,
            opens: 0,
            partitioned: false,
            counts: limit.map(|_| {
                let link = |id: &str, port: u16| {
                    let http = SocketAddr::from(([10, 9, 0, 2], port));
                    Link::new(Cluster::new(ClusterConfig::new(id, http, http, 0), now))
                };
                (MemRedis::new(), [link("origin", 5080), link("edge", 5090)])
            }),
        }
    }

    /// The runtime's part of the viewer counts: each node's counts into its cluster core,
    /// the other nodes' sums back (on the origin's clock, shared by Redis and both cores).
    fn carry_counts(&mut self) {
        let Some((redis, links)) = &mut self.counts else {
            return;
        };
        let now = self.origin.sim.now();
        for (m, link) in [&mut self.origin, &mut self.edge].into_iter().zip(links) {
            link.cluster.set_viewers(m.sim.node.viewer_counts());
            link.step(now, redis, true);
            for e in link.events.drain(..) {
                if let ClusterEvent::Viewers {
                    app,
                    stream,
                    others,
                } = e
                {
                    m.sim
                        .cluster_input(|n, now| n.set_remote_viewers(now, &app, &stream, others));
                }
            }
        }
    }

    /// The runtime's part between the two nodes, until nothing moves.
    fn carry(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(out) = self.edge.sim.cluster_out.pop_front() {
                moved = true;
                match out {
                    NodeOutput::FindStream { app, stream } => {
                        self.finds += 1;
                        let origin = self.registry.get(&stream).copied().flatten();
                        self.edge.sim.cluster_input(|n, now| {
                            let found = origin.map(|id| (id, origin_http()));
                            n.stream_located(now, &app, &stream, Ok(found));
                        });
                    }
                    NodeOutput::RelayOpen { conn, addr, path } => {
                        assert_eq!(
                            (addr, path.as_str()),
                            (origin_http(), "/WebRTCAppEE/websocket")
                        );
                        self.opens += 1;
                        let ws = self.origin.sim.connect();
                        self.relays.insert(conn, ws);
                    }
                    NodeOutput::RelaySend(conn, text) => {
                        let ws = self.relays[&conn];
                        self.origin.sim.send(ws, &text);
                    }
                    NodeOutput::RelayClose(conn) => {
                        if let Some(ws) = self.relays.remove(&conn) {
                            self.origin.sim.close(ws);
                        }
                    }
                    other => panic!("not a cluster output: {other:?}"),
                }
            }
            if self.partitioned {
                self.edge.sim.cluster_out.clear();
            }
            let relays: Vec<(ConnId, ConnId)> = self.relays.iter().map(|(a, b)| (*a, *b)).collect();
            for (conn, ws) in relays {
                let frames = self.origin.sim.take(ws);
                if !self.origin.sim.is_open(ws) {
                    self.relays.remove(&conn);
                    self.edge
                        .sim
                        .cluster_input(|n, now| n.relay_closed(now, conn));
                    moved = true;
                }
                for m in frames {
                    moved = true;
                    self.edge
                        .sim
                        .cluster_input(|n, now| n.relay_text(now, conn, &m.to_string()));
                }
            }
            if self.partitioned {
                self.edge.foreign.clear();
                self.origin.foreign.clear();
                return;
            }
            while let Some(d) = self.edge.foreign.pop_front() {
                moved = true;
                assert_eq!(d.source, relay_addr(), "only the relay talks to the origin");
                self.origin.sim.udp_in(d.source, &d.contents);
            }
            while let Some(d) = self.origin.foreign.pop_front() {
                moved = true;
                self.edge.sim.cluster_input(|n, now| {
                    n.handle_udp(now, d.source, d.destination, &d.contents);
                    n.flush_media(now);
                });
            }
            if !moved {
                return;
            }
        }
        panic!("the two nodes did not quiesce");
    }

    /// Runs both nodes for `d` in 1 ms steps.
    fn run(&mut self, d: Duration) {
        for ms in 0..d.as_millis() {
            self.origin.run(Duration::from_millis(1));
            self.carry();
            self.edge.run(Duration::from_millis(1));
            self.carry();
            if ms % 100 == 0 {
                self.carry_counts();
            }
        }
    }

    fn relays_on_edge(&self) -> usize {
        self.edge.sim.node.sfu.relay_count()
    }
}

#[test]
fn edge_players_wait_for_one_relay_get_the_origins_frames_and_finish_with_it() {
    for seed in 1..=2u64 {
        let mut w = World::new(seed);
        let a = w.edge.player("cam");
        let b = w.edge.player("cam");
        w.carry();
        assert!(
            w.edge.browsers[a].received.is_empty(),
            "seed {seed}: the players wait for the relay"
        );
        w.run(Duration::from_secs(3));
        assert_eq!(
            (w.finds, w.opens),
            (1, 1),
            "seed {seed}: one look-up, one relay"
        );
        assert_eq!(w.relays_on_edge(), 1, "seed {seed}");
        for p in [a, b] {
            let c = &w.edge.browsers[p].client;
            let (audio, video) = (
                c.media_count(MediaKind::Audio),
                c.media_count(MediaKind::Video),
            );
            println!("seed {seed}: edge player {p}: {audio} audio, {video} video frames");
            assert!(w.edge.browsers[p].got("play_started"), "seed {seed}");
            assert!(
                audio >= 50 && video >= 30,
                "seed {seed}: player {p} {audio}/{video}"
            );
        }
        // The origin counts the relay as one player of its stream.
        assert_eq!(w.origin.sim.node.sig.session_roles().play, 1, "seed {seed}");
        // A third player joins the running relay: no new look-up.
        let c = w.edge.player("cam");
        w.run(Duration::from_secs(1));
        assert!(w.edge.browsers[c].got("play_started"), "seed {seed}");
        let late = w.edge.browsers[c].client.media_count(MediaKind::Video);
        assert!(
            late >= 10,
            "seed {seed}: the late player's video: {late} frames in 1 s"
        );
        assert_eq!((w.finds, w.opens), (1, 1), "seed {seed}");
        // The origin's publisher stops: every edge player finishes, the relay goes.
        w.origin.browsers[0].gone = true;
        w.origin
            .send(0, json!({"command": "stop", "streamId": "cam"}));
        w.run(Duration::from_millis(200));
        for p in [a, b, c] {
            assert!(w.edge.browsers[p].got("play_finished"), "seed {seed}: {p}");
        }
        assert_eq!(w.relays_on_edge(), 0, "seed {seed}");
        assert!(
            w.relays.is_empty(),
            "seed {seed}: the relay's WebSocket closed"
        );
    }
}

#[test]
fn the_last_edge_player_leaving_stops_the_relay_on_the_origin() {
    let mut w = World::new(5);
    let a = w.edge.player("cam");
    w.run(Duration::from_secs(2));
    assert!(w.edge.browsers[a].got("play_started"));
    assert_eq!(w.origin.sim.node.sig.session_roles().play, 1);
    w.edge.close(a);
    w.run(Duration::from_millis(200));
    assert_eq!(w.relays_on_edge(), 0);
    assert!(w.relays.is_empty());
    assert_eq!(
        w.origin.sim.node.sig.session_roles().play,
        0,
        "the origin's play of the relay ended"
    );
    assert_eq!(w.edge.sim.node.relay_counters().0.stopped, 1);
}

#[test]
fn a_stream_no_node_has_or_a_relay_that_never_comes_refuse_the_players() {
    let mut w = World::new(9);
    w.registry.insert("ghost".into(), None);
    let a = w.edge.player("ghost");
    w.run(Duration::from_millis(10));
    assert!(w.edge.browsers[a].got("no_stream_exist"));
    assert_eq!(w.opens, 0);
    // The registry names an origin that does not have the stream: it refuses the relay.
    w.registry.insert("stale".into(), Some("origin"));
    let b = w.edge.player("stale");
    w.run(Duration::from_millis(10));
    assert!(w.edge.browsers[b].got("no_stream_exist"));
    assert_eq!(w.relays_on_edge(), 0);
    assert_eq!(w.edge.sim.node.relay_counters().0.failed, 1);
    // This node is the registered origin (a stale entry): no relay to itself.
    w.registry.insert("mine".into(), Some("edge"));
    let c = w.edge.player("mine");
    w.run(Duration::from_millis(10));
    assert!(w.edge.browsers[c].got("no_stream_exist"));
    assert_eq!(w.opens, 1);
}

#[test]
fn a_relay_over_the_relay_addresses_refuses_its_players_and_stops_on_the_origin() {
    let mut w = World::new(13);
    w.origin.publisher("cam2");
    w.registry.insert("cam2".into(), Some("origin"));
    w.run(Duration::from_millis(500));
    let a = w.edge.player("cam");
    w.run(Duration::from_secs(2));
    assert!(w.edge.browsers[a].got("play_started"));
    // One relay address: a second stream's relay has none.
    let b = w.edge.player("cam2");
    w.run(Duration::from_secs(1));
    assert!(w.edge.browsers[b].got("no_stream_exist"));
    assert_eq!(w.opens, 2);
    assert_eq!(w.relays.len(), 1, "the refused relay's WebSocket closed");
    assert_eq!(w.edge.sim.node.sfu.counters().relays_refused, 1);
    assert_eq!(
        w.origin.sim.node.sig.session_roles().play,
        1,
        "only the first relay plays"
    );
    assert!(w.edge.browsers[a].client.media_count(MediaKind::Video) >= 30);
}

#[test]
fn a_partition_from_the_origin_ends_the_edge_plays_within_the_silence_timeout() {
    let mut w = World::new(17);
    let a = w.edge.player("cam");
    w.run(Duration::from_secs(2));
    assert!(w.edge.browsers[a].got("play_started"));
    // Nothing crosses between the nodes any more, and no WebSocket closes.
    w.partitioned = true;
    let mut waited = Duration::ZERO;
    while !w.edge.browsers[a].got("play_finished") {
        assert!(
            waited < Duration::from_secs(13),
            "the edge play still runs after {waited:?}"
        );
        w.run(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    println!("edge play finished {waited:?} after the partition");
    assert_eq!(w.relays_on_edge(), 0);
}

#[test]
fn a_viewer_limit_holds_across_the_origin_and_its_edge() {
    for seed in 1..=2u64 {
        let mut w = World::with_viewer_limit(seed, 2);
        let on_origin = w.origin.player("cam");
        let on_edge = w.edge.player("cam");
        w.run(Duration::from_secs(2));
        assert!(
            w.origin.browsers[on_origin].got("play_started"),
            "seed {seed}"
        );
        assert!(w.edge.browsers[on_edge].got("play_started"), "seed {seed}");
        // The edge's relay is no viewer of the origin; its player counts on the edge.
        let cam = |n: usize| vec![("WebRTCAppEE".to_string(), "cam".to_string(), n)];
        assert_eq!(w.origin.sim.node.viewer_counts(), cam(1), "seed {seed}");
        assert_eq!(w.edge.sim.node.viewer_counts(), cam(1), "seed {seed}");
        // Two heartbeats bring each node the other's count.
        w.run(Duration::from_secs(5));
        let record = w
            .origin
            .sim
            .rest("GET", "/WebRTCAppEE/rest/v2/broadcasts/cam", None);
        assert_eq!(
            record.body["webRTCViewerCount"], 2,
            "seed {seed}: {}",
            record.body
        );

        // A third viewer is refused on either node, as one node refuses it.
        let third = w.origin.player("cam");
        let fourth = w.edge.player("cam");
        w.run(Duration::from_millis(300));
        assert!(
            w.origin.browsers[third].got("viewerLimitReached"),
            "seed {seed}"
        );
        assert!(
            w.edge.browsers[fourth].got("viewerLimitReached"),
            "seed {seed}"
        );

        // The edge's viewer leaves: once the origin has read that, it takes one again.
        w.edge.close(on_edge);
        w.run(Duration::from_secs(5));
        let again = w.origin.player("cam");
        w.run(Duration::from_secs(1));
        assert!(w.origin.browsers[again].got("play_started"), "seed {seed}");
        let record = w
            .origin
            .sim
            .rest("GET", "/WebRTCAppEE/rest/v2/broadcasts/cam", None);
        assert_eq!(
            record.body["webRTCViewerCount"], 2,
            "seed {seed}: {}",
            record.body
        );
    }
}
