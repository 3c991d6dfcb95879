//! The origin → edge relay on the cores: the origin is a whole simulated server (signalling
//! and media, `MediaSim`) with a browser publishing; the edge is a media layer (`Sfu`) whose
//! relay session is driven by the relay's own signalling (`RelayClient`, an AMS client
//! speaking to the origin over a virtual WebSocket), and two str0m players play the relay on
//! the edge. One virtual clock, one in-memory network.
#![allow(clippy::disallowed_methods)] // none: the clock is the simulation's

use std::net::SocketAddr;
use std::time::Duration;

use antenna_cluster::{RelayClient, RelayClientConfig, RelayEnd, RelayOutput};
use antenna_tests::media::MediaSim;
use antenna_tests::server_udp;
use proto_core::{ConnId, MediaCmd, MediaEvent, SessionId};
use rtc_core::testing::{Client, Datagram};
use rtc_core::{Sfu, SfuConfig, SfuOutput};
use str0m::media::MediaKind;

const RELAY: SessionId = SessionId(1_000);

/// The edge node: its media layer, the relay's signalling and its WebSocket to the origin,
/// its players.
struct Edge {
    sfu: Sfu,
    relay: RelayClient,
    ws: ConnId,
    players: Vec<Client>,
    events: Vec<MediaEvent>,
    ended: Option<RelayEnd>,
    playing: bool,
}

fn edge_addr() -> SocketAddr {
    "10.9.0.1:5000".parse().unwrap()
}

fn relay_addr() -> SocketAddr {
    "10.9.0.1:5001".parse().unwrap()
}

struct World {
    origin: MediaSim,
    edge: Edge,
}

impl World {
    fn new(seed: u64) -> World {
        let mut origin = MediaSim::new(seed);
        origin.publisher("cam");
        origin.run(Duration::from_millis(500));
        let now = origin.sim.now();
        let config = SfuConfig {
            seed: Some(seed ^ 0xed6e),
            relay_addrs: vec![relay_addr()],
            ..SfuConfig::new(vec![edge_addr()], Duration::from_secs(1))
        };
        let ws = origin.sim.connect();
        let relay = RelayClient::new(
            RelayClientConfig {
                app: "WebRTCAppEE".into(),
                stream: "cam".into(),
                secret: "cluster-secret".into(),
            },
            now,
        );
        let edge = Edge {
            sfu: Sfu::new(config, now),
            relay,
            ws,
            players: Vec::new(),
            events: Vec::new(),
            ended: None,
            playing: false,
        };
        let mut w = World { origin, edge };
        w.pump();
        w
    }

    /// Moves signalling and datagrams between the origin, the edge and the edge's players
    /// until nothing moves.
    fn pump(&mut self) {
        let now = self.origin.sim.now();
        for _ in 0..10_000 {
            let mut moved = false;
            // Relay signalling: edge → origin, origin → edge.
            while let Some(out) = self.edge.relay.poll_output() {
                moved = true;
                match out {
                    RelayOutput::Send(text) => self.origin.sim.send(self.edge.ws, &text),
                    RelayOutput::StartMedia { offer } => self.edge.sfu.handle_command(
                        now,
                        MediaCmd::StartRelay {
                            session: RELAY,
                            stream: "cam".into(),
                            offer,
                        },
                    ),
                    RelayOutput::RemoteCandidate(candidate) => self.edge.sfu.handle_command(
                        now,
                        MediaCmd::RemoteCandidate {
                            session: RELAY,
                            candidate,
                        },
                    ),
                    RelayOutput::Playing => self.edge.playing = true,
                    RelayOutput::Ended(why) => {
                        self.edge.ended = Some(why);
                        self.edge
                            .sfu
                            .handle_command(now, MediaCmd::Close { session: RELAY });
                    }
                }
            }
            for m in self.origin.sim.take(self.edge.ws) {
                moved = true;
                self.edge.relay.handle_text(now, &m.to_string());
            }
            // The edge's media layer.
            while let Some(out) = self.edge.sfu.poll_output() {
                moved = true;
                match out {
                    SfuOutput::Event(e) => {
                        if let MediaEvent::Answer { session, sdp } = &e {
                            if *session == RELAY {
                                self.edge.relay.handle_answer(sdp);
                            }
                        }
                        self.edge.events.push(e);
                    }
                    SfuOutput::Transmit(t) => {
                        if t.destination == server_udp() {
                            self.origin.sim.udp_in(t.source, &t.contents);
                        } else if let Some(c) = self
                            .edge
                            .players
                            .iter_mut()
                            .find(|c| c.addr == t.destination)
                        {
                            c.handle_datagram(
                                now,
                                &Datagram {
                                    source: t.source,
                                    destination: t.destination,
                                    contents: t.contents,
                                },
                            );
                        }
                    }
                }
            }
            while let Some(d) = self.origin.foreign.pop_front() {
                moved = true;
                self.edge
                    .sfu
                    .handle_receive(now, d.source, d.destination, &d.contents);
                self.edge.sfu.flush(now);
            }
            for c in &mut self.edge.players {
                while let Some(d) = c.outbox.pop_front() {
                    moved = true;
                    self.edge
                        .sfu
                        .handle_receive(now, d.source, d.destination, &d.contents);
                    self.edge.sfu.flush(now);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network did not quiesce");
    }

    /// Runs `d` of virtual time in 1 ms steps (the origin's publisher sends media).
    fn run(&mut self, d: Duration) {
        let end = self.origin.sim.now() + d;
        while self.origin.sim.now() < end {
            self.origin.run(Duration::from_millis(1));
            let now = self.origin.sim.now();
            if self.edge.sfu.poll_timeout().is_some_and(|t| t <= now) {
                self.edge.sfu.handle_timeout(now);
            }
            if self.edge.relay.poll_timeout().is_some_and(|t| t <= now) {
                self.edge.relay.handle_timeout(now);
            }
            for c in &mut self.edge.players {
                if c.rtc.is_alive() && c.deadline <= now {
                    c.handle_timeout(now);
                }
            }
            self.pump();
        }
    }

    /// A str0m player on the edge plays the relay.
    fn edge_player(&mut self, session: SessionId) -> usize {
        let n = self.edge.players.len();
        let now = self.origin.sim.now();
        let addr: SocketAddr = format!("10.9.1.{}:4000", n + 2).parse().unwrap();
        self.edge.players.push(Client::new(now, addr));
        self.edge.sfu.handle_command(
            now,
            MediaCmd::StartPlay {
                session,
                stream: "cam".into(),
                publisher: RELAY,
            },
        );
        self.pump();
        let offer = self
            .edge
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                MediaEvent::Offer {
                    session: s, sdp, ..
                } if *s == session => Some(sdp.clone()),
                _ => None,
            })
            .expect("edge offer");
        let answer = self.edge.players[n].accept_offer(&offer).expect("answer");
        self.edge.sfu.handle_command(
            now,
            MediaCmd::RemoteAnswer {
                session,
                sdp: answer,
            },
        );
        let candidate = self.edge.players[n].candidate_line();
        self.edge
            .sfu
            .handle_command(now, MediaCmd::RemoteCandidate { session, candidate });
        self.pump();
        n
    }

    fn relay_connected(&self) -> bool {
        self.edge
            .events
            .contains(&MediaEvent::Connected { session: RELAY })
    }
}

#[test]
fn an_edge_plays_from_the_origin_through_its_signalling_and_a_relay() {
    for seed in 1..=3u64 {
        let mut w = World::new(seed);
        w.run(Duration::from_secs(2));
        assert!(
            w.relay_connected(),
            "seed {seed}: the relay connects to the origin"
        );
        assert!(w.edge.playing, "seed {seed}: the origin says play_started");
        let (a, b) = (w.edge_player(SessionId(1)), w.edge_player(SessionId(2)));
        w.run(Duration::from_secs(3));
        for p in [a, b] {
            let c = &w.edge.players[p];
            let (audio, video) = (
                c.media_count(MediaKind::Audio),
                c.media_count(MediaKind::Video),
            );
            println!("seed {seed}: edge player {p}: {audio} audio, {video} video frames in 3 s");
            assert!(
                audio >= 100 && video >= 60,
                "seed {seed}: player {p} {audio}/{video}"
            );
        }
        assert_eq!(w.edge.sfu.relay_count(), 1, "one relay for both players");
        // The origin's publisher stops: the origin ends the relay's play (play_finished),
        // the edge's signalling reports the end and the relay session goes.
        w.origin.browsers[0].gone = true;
        w.origin
            .send(0, serde_json::json!({"command": "stop", "streamId": "cam"}));
        w.run(Duration::from_millis(100));
        assert_eq!(w.edge.ended, Some(RelayEnd::Finished), "seed {seed}");
        assert_eq!(w.edge.sfu.relay_count(), 0, "seed {seed}");
    }
}

#[test]
fn an_edge_whose_players_left_stops_the_relay_and_the_origin_frees_its_play() {
    let mut w = World::new(11);
    w.run(Duration::from_secs(2));
    assert!(w.relay_connected());
    let origin_sessions = w.origin.sim.node.sfu.session_count();
    // The edge's last player left: the edge stops the relay (`stop` to the origin).
    w.edge.relay.stop();
    w.run(Duration::from_millis(100));
    assert_eq!(w.edge.ended, Some(RelayEnd::Stopped));
    assert_eq!(w.edge.sfu.relay_count(), 0);
    assert_eq!(
        w.origin.sim.node.sfu.session_count(),
        origin_sessions - 1,
        "the origin closed the relay's play session"
    );
}

#[test]
fn a_relay_of_a_stream_the_origin_does_not_have_ends_with_no_stream() {
    let mut origin = MediaSim::new(7);
    let now = origin.sim.now();
    let ws = origin.sim.connect();
    let mut relay = RelayClient::new(
        RelayClientConfig {
            app: "WebRTCAppEE".into(),
            stream: "nothing".into(),
            secret: "s".into(),
        },
        now,
    );
    while let Some(RelayOutput::Send(t)) = relay.poll_output() {
        origin.sim.send(ws, &t);
    }
    for m in origin.sim.take(ws) {
        relay.handle_text(now, &m.to_string());
    }
    assert_eq!(
        relay.poll_output(),
        Some(RelayOutput::Ended(RelayEnd::NoStream))
    );
}
