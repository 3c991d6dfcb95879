//! Several [`Sfu`]s (nodes of a cluster) and str0m clients on one in-memory network with a
//! virtual clock: the harness of relay tests (an origin node, edge nodes relaying from it).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::{MediaCmd, MediaEvent, SessionId};

use super::{Client, Datagram};
use crate::{Sfu, SfuConfig, SfuOutput};

/// One node: its media layer, its addresses and the events it reported.
#[derive(Debug)]
pub struct NodeSfu {
    pub sfu: Sfu,
    /// The main media address (players and publishers).
    pub addr: SocketAddr,
    /// Addresses reserved for relays.
    pub relay_addrs: Vec<SocketAddr>,
    pub events: Vec<(Duration, MediaEvent)>,
}

impl NodeSfu {
    fn owns(&self, a: SocketAddr) -> bool {
        a == self.addr || self.relay_addrs.contains(&a)
    }
}

/// Nodes and clients, wired in memory.
#[derive(Debug)]
pub struct Nodes {
    pub nodes: Vec<NodeSfu>,
    pub clients: Vec<Client>,
    pub start: Instant,
    pub now: Instant,
    /// Datagrams to an address nobody has.
    pub undeliverable: usize,
    /// Datagrams between two nodes (the relays' traffic).
    pub node_to_node: usize,
}

impl Nodes {
    pub fn new(start: Instant) -> Self {
        Nodes {
            nodes: Vec::new(),
            clients: Vec::new(),
            start,
            now: start,
            undeliverable: 0,
            node_to_node: 0,
        }
    }

    /// A node at 10.(n+1).0.1:5000 with `relays` relay addresses (ports 5001..); returns
    /// its index.
    pub fn add_node(&mut self, seed: u64, relays: u16) -> usize {
        let n = self.nodes.len();
        let addr: SocketAddr = format!("10.{}.0.1:5000", n + 1).parse().unwrap();
        let relay_addrs: Vec<SocketAddr> = (1..=relays)
            .map(|i| SocketAddr::new(addr.ip(), 5000 + i))
            .collect();
        let config = SfuConfig {
            seed: Some(seed),
            relay_addrs: relay_addrs.clone(),
            ..SfuConfig::new(vec![addr], Duration::from_secs(1))
        };
        self.nodes.push(NodeSfu {
            sfu: Sfu::new(config, self.now),
            addr,
            relay_addrs,
            events: Vec::new(),
        });
        n
    }

    /// A client at 192.168.(n/200).(n%200+2):4000; returns its index.
    pub fn add_client(&mut self) -> usize {
        let n = self.clients.len();
        let addr: SocketAddr = format!("192.168.{}.{}:4000", n / 200, n % 200 + 2)
            .parse()
            .unwrap();
        self.clients.push(Client::new(self.now, addr));
        n
    }

    pub fn command(&mut self, node: usize, cmd: MediaCmd) {
        self.nodes[node].sfu.handle_command(self.now, cmd);
        self.pump();
    }

    fn deliver(&mut self, d: Datagram) {
        if let Some(n) = self.nodes.iter().position(|n| n.owns(d.destination)) {
            if self.nodes.iter().any(|m| m.owns(d.source)) {
                self.node_to_node += 1;
            }
            let sfu = &mut self.nodes[n].sfu;
            sfu.handle_receive(self.now, d.source, d.destination, &d.contents);
            sfu.flush(self.now);
        } else if let Some(c) = self.clients.iter_mut().find(|c| c.addr == d.destination) {
            c.handle_datagram(self.now, &d);
        } else {
            self.undeliverable += 1;
        }
    }

    /// Moves datagrams and events until nothing is in flight.
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for n in 0..self.nodes.len() {
                while let Some(out) = self.nodes[n].sfu.poll_output() {
                    moved = true;
                    match out {
                        SfuOutput::Event(e) => {
                            let at = self.now - self.start;
                            self.nodes[n].events.push((at, e));
                        }
                        SfuOutput::Transmit(t) => self.deliver(Datagram {
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents,
                        }),
                    }
                }
            }
            for i in 0..self.clients.len() {
                while let Some(d) = self.clients[i].outbox.pop_front() {
                    moved = true;
                    self.deliver(d);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("nodes did not quiesce");
    }

    /// Advances the clock to the next deadline, at most by `max_step`, and fires timeouts.
    pub fn step(&mut self, max_step: Duration) {
        self.pump();
        let mut next = self.now + max_step;
        for n in &self.nodes {
            if let Some(t) = n.sfu.poll_timeout() {
                next = next.min(t);
            }
        }
        for c in &self.clients {
            if c.rtc.is_alive() {
                next = next.min(c.deadline);
            }
        }
        // A deadline in the past still moves the clock a little, so a run always ends.
        self.now = next.max(self.now + Duration::from_micros(100));
        let now = self.now;
        for n in &mut self.nodes {
            if n.sfu.poll_timeout().is_some_and(|t| t <= now) {
                n.sfu.handle_timeout(now);
            }
        }
        for c in &mut self.clients {
            if c.rtc.is_alive() && c.deadline <= now {
                c.handle_timeout(now);
            }
        }
        self.pump();
    }

    /// Steps until `cond` holds or `limit` of virtual time passed; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&Nodes) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if cond(self) {
                return true;
            }
            self.step(Duration::from_millis(10));
        }
        cond(self)
    }

    /// Runs for `d` while client `c` sends Opus every 20 ms and VP8 every 40 ms (a keyframe
    /// every 25th frame). Returns the (audio, video) frames written.
    pub fn run_media(&mut self, c: usize, d: Duration) -> (usize, usize) {
        use str0m::format::Codec;
        use str0m::media::MediaKind;
        let end = self.now + d;
        let (mut audio, mut video) = (0usize, 0usize);
        let (mut next_audio, mut next_video) = (self.now, self.now);
        while self.now < end {
            let now = self.now;
            let client = &mut self.clients[c];
            if now >= next_audio {
                client.write_frame(now, MediaKind::Audio, Codec::Opus, &super::opus_frame(80));
                audio += 1;
                next_audio += Duration::from_millis(20);
            }
            if now >= next_video {
                let frame = if video % 25 == 0 {
                    super::vp8_keyframe(640, 480, 3000)
                } else {
                    super::vp8_delta(1200)
                };
                client.write_frame(now, MediaKind::Video, Codec::Vp8, &frame);
                video += 1;
                next_video += Duration::from_millis(40);
            }
            let next = next_audio.min(next_video).min(end);
            self.step(
                next.saturating_duration_since(self.now)
                    .max(Duration::from_millis(1)),
            );
        }
        (audio, video)
    }

    /// The last event of `node` about `session` that `f` picks.
    pub fn find<T>(
        &self,
        node: usize,
        session: SessionId,
        f: impl Fn(&MediaEvent) -> Option<T>,
    ) -> Option<T> {
        self.nodes[node]
            .events
            .iter()
            .rev()
            .filter(|(_, e)| e.session() == session)
            .find_map(|(_, e)| f(e))
    }

    pub fn has_event(&self, node: usize, f: impl Fn(&MediaEvent) -> bool) -> bool {
        self.nodes[node].events.iter().any(|(_, e)| f(e))
    }

    /// Publishes from client `c` on `node` as `session`: offer, StartPublish, answer applied.
    pub fn publish(&mut self, node: usize, c: usize, session: SessionId, stream: &str) {
        let offer = self.clients[c].publish_offer(true, true);
        self.command(
            node,
            MediaCmd::StartPublish {
                session,
                stream: stream.into(),
                offer,
            },
        );
        let answer = self
            .find(node, session, |e| match e {
                MediaEvent::Answer { sdp, .. } => Some(sdp.clone()),
                _ => None,
            })
            .expect("answer");
        self.clients[c]
            .accept_answer(&answer)
            .expect("answer accepted");
        self.pump();
    }

    /// Plays `publisher` of `node` on client `c` as `session`.
    pub fn play(
        &mut self,
        node: usize,
        c: usize,
        session: SessionId,
        stream: &str,
        publisher: SessionId,
    ) {
        self.command(
            node,
            MediaCmd::StartPlay {
                session,
                stream: stream.into(),
                publisher,
            },
        );
        let offer = self
            .find(node, session, |e| match e {
                MediaEvent::Offer { sdp, .. } => Some(sdp.clone()),
                _ => None,
            })
            .expect("offer");
        let answer = self.clients[c]
            .accept_offer(&offer)
            .expect("offer accepted");
        self.command(
            node,
            MediaCmd::RemoteAnswer {
                session,
                sdp: answer,
            },
        );
        let candidate = self.clients[c].candidate_line();
        self.command(node, MediaCmd::RemoteCandidate { session, candidate });
    }

    /// Relays `publisher` of node `origin` to node `edge`: a play session `play` on the
    /// origin, a relay session `relay` on the edge, offer and answer carried between them as
    /// the signalling would. Returns false if the edge refused or failed the relay.
    #[allow(clippy::too_many_arguments)]
    pub fn relay(
        &mut self,
        origin: usize,
        play: SessionId,
        publisher: SessionId,
        edge: usize,
        relay: SessionId,
        stream: &str,
    ) -> bool {
        self.command(
            origin,
            MediaCmd::StartPlay {
                session: play,
                stream: stream.into(),
                publisher,
            },
        );
        let offer = self
            .find(origin, play, |e| match e {
                MediaEvent::Offer { sdp, .. } => Some(sdp.clone()),
                _ => None,
            })
            .expect("origin offer");
        self.command(
            edge,
            MediaCmd::StartRelay {
                session: relay,
                stream: stream.into(),
                offer,
            },
        );
        let Some(answer) = self.find(edge, relay, |e| match e {
            MediaEvent::Answer { sdp, .. } => Some(sdp.clone()),
            _ => None,
        }) else {
            self.command(origin, MediaCmd::Close { session: play });
            return false;
        };
        self.command(
            origin,
            MediaCmd::RemoteAnswer {
                session: play,
                sdp: answer,
            },
        );
        true
    }
}
