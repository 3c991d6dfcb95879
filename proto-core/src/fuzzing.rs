//! Fuzzing and property-test driver for [`Signalling`].
//!
//! [`run_ops`] decodes arbitrary bytes into a sequence of operations (connections opening and
//! closing, realistic AMS messages, garbage, media events for live sessions, time passing,
//! overload, shutdown) and drives one [`Signalling`] with them through a [`Harness`], which
//! plays the runtime and the media layer and checks the invariants after every step. It panics
//! only when an invariant is violated.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::media::{MediaCmd, MediaEvent, SessionId};
use crate::signalling::{Config, ConnId, Output, Signalling};

mod ops;

pub use ops::{run, run_ops};

/// `count` pseudo-random inputs of 2000 bytes for [`run`], from a xorshift generator seeded with
/// `seed` (nonzero): the same inputs every time, for the tests that check what the random
/// operations reach.
pub fn sample_inputs(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed;
    (0..count).map(move |_| {
        (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    })
}

/// A stand-in for the runtime and the media layer that checks every output of a [`Signalling`].
#[derive(Debug)]
pub struct Harness {
    /// The machine under test.
    pub sig: Signalling,
    /// Current time.
    pub now: Instant,
    /// Connections open as the runtime sees them.
    pub open: BTreeSet<ConnId>,
    /// Media sessions as the media layer sees them (true = publisher).
    pub media: BTreeMap<SessionId, bool>,
    /// Every output so far, in order, when `record` is set.
    pub log: Vec<Output>,
    /// Keep every output in `log` (default). The fuzz target turns it off: cloning every
    /// output of a long run into a log nobody reads was a large share of its cost.
    pub record: bool,
}

impl Harness {
    /// A harness around a fresh machine.
    ///
    /// The clock is read once, for an arbitrary origin: every later instant is derived from it
    /// by [`Harness::advance`], so a run does not depend on the wall clock.
    #[allow(clippy::disallowed_methods)]
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        Harness {
            sig: Signalling::new(config, now),
            now,
            open: BTreeSet::new(),
            media: BTreeMap::new(),
            log: Vec::new(),
            record: true,
        }
    }

    /// Opens `conn` on `app`; returns the outputs.
    pub fn open(&mut self, conn: u64, app: &str) -> Vec<Output> {
        let conn = ConnId(conn);
        assert!(
            self.open.insert(conn),
            "harness misuse: {conn:?} already open"
        );
        self.sig.handle_open(self.now, conn, app);
        self.drain()
    }

    /// A WHIP `POST` as connection `conn` (see `signalling/whip.rs`).
    pub fn whip(&mut self, conn: u64, app: &str, req: crate::HttpMediaRequest) -> Vec<Output> {
        let conn = ConnId(conn);
        assert!(
            self.open.insert(conn),
            "harness misuse: {conn:?} already open"
        );
        self.sig.handle_whip_publish(self.now, conn, app, req);
        self.drain()
    }

    /// A WHEP `POST` as connection `conn`.
    pub fn whep(&mut self, conn: u64, app: &str, req: crate::HttpMediaRequest) -> Vec<Output> {
        let conn = ConnId(conn);
        assert!(
            self.open.insert(conn),
            "harness misuse: {conn:?} already open"
        );
        self.sig.handle_whep_play(self.now, conn, app, req);
        self.drain()
    }

    /// `DELETE` of the WHIP/WHEP resource of `conn` (stream `id`).
    pub fn http_delete(&mut self, conn: u64, id: &str) -> Vec<Output> {
        let conn = ConnId(conn);
        self.sig.handle_http_delete(self.now, conn, id);
        // The stop's notifications went out before the connection closed.
        let outs = self.drain();
        self.open.remove(&conn);
        outs
    }

    /// A text frame on `conn`.
    pub fn text(&mut self, conn: u64, text: &str) -> Vec<Output> {
        self.sig.handle_text(self.now, ConnId(conn), text);
        self.drain()
    }

    /// `conn` closes.
    pub fn close(&mut self, conn: u64) -> Vec<Output> {
        let conn = ConnId(conn);
        self.open.remove(&conn);
        self.sig.handle_closed(self.now, conn);
        self.drain()
    }

    /// A media event.
    pub fn media_event(&mut self, ev: MediaEvent) -> Vec<Output> {
        if matches!(ev, MediaEvent::Failed { .. } | MediaEvent::Closed { .. }) {
            self.media.remove(&ev.session());
        }
        self.sig.handle_media(self.now, ev);
        self.drain()
    }

    /// Time passes by `d`; due timers fire.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now += d;
        if self.sig.poll_timeout().is_some_and(|t| t <= self.now) {
            self.sig.handle_timeout(self.now);
        }
        self.drain()
    }

    /// Overload on or off.
    pub fn overload(&mut self, on: bool) -> Vec<Output> {
        self.sig.set_overloaded(self.now, on);
        self.drain()
    }

    /// Graceful shutdown.
    pub fn shutdown(&mut self) -> Vec<Output> {
        self.sig.shutdown(self.now);
        self.drain()
    }

    /// Drains the outputs, checking each, then the machine's invariants. Connections the machine
    /// closes are reported closed back to it, as the runtime does.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        let mut closed = Vec::new();
        while let Some(out) = self.sig.poll_output() {
            match &out {
                Output::Send(c, msg) => {
                    assert!(self.open.contains(c), "Send to closed {c:?}: {msg:?}");
                }
                Output::Close(c) => {
                    assert!(self.open.remove(c), "Close of closed {c:?}");
                    closed.push(*c);
                }
                Output::Media(cmd) => self.check_media(cmd),
                Output::FindStream { .. } | Output::FindRoom { .. } => {}
            }
            outs.push(out);
        }
        if let Err(e) = self.sig.check_invariants() {
            panic!("invariant violated: {e}");
        }
        if self.record {
            self.log.extend(outs.iter().cloned());
        }
        for c in closed {
            self.sig.handle_closed(self.now, c);
            outs.extend(self.drain());
        }
        outs
    }

    fn check_media(&mut self, cmd: &MediaCmd) {
        match cmd {
            MediaCmd::StartPublish { session, .. } | MediaCmd::StartRelay { session, .. } => {
                assert!(
                    self.media.insert(*session, true).is_none(),
                    "{session} reused"
                );
            }
            MediaCmd::StartPlay {
                session, publisher, ..
            }
            | MediaCmd::StartPlayAnswer {
                session, publisher, ..
            } => {
                assert_eq!(
                    self.media.get(publisher),
                    Some(&true),
                    "{session} plays unknown publisher {publisher}"
                );
                assert!(
                    self.media.insert(*session, false).is_none(),
                    "{session} reused"
                );
            }
            MediaCmd::SetMainTrack { session, .. } => {
                assert!(
                    self.media.contains_key(session),
                    "SetMainTrack to {session}, not a known publisher or room player"
                );
            }
            MediaCmd::StartRoomPlay {
                session, subtracks, ..
            } => {
                for t in subtracks {
                    assert_eq!(
                        self.media.get(&t.publisher),
                        Some(&true),
                        "{session} plays unknown subtrack publisher {}",
                        t.publisher
                    );
                }
                assert!(
                    self.media.insert(*session, false).is_none(),
                    "{session} reused"
                );
            }
            MediaCmd::SetVideoSlots { session, slots } => {
                assert_eq!(
                    self.media.get(session),
                    Some(&false),
                    "{cmd:?} to a non-player"
                );
                for t in slots.iter().flatten().flatten() {
                    assert_eq!(
                        self.media.get(&t.publisher),
                        Some(&true),
                        "{session} slot of unknown publisher {}",
                        t.publisher
                    );
                }
            }
            MediaCmd::SetSubtrackForwarding {
                session, publisher, ..
            } => {
                assert_eq!(
                    self.media.get(session),
                    Some(&false),
                    "{cmd:?} to a non-player"
                );
                assert_eq!(
                    self.media.get(publisher),
                    Some(&true),
                    "{cmd:?}: unknown publisher"
                );
            }
            MediaCmd::SetSubtracks { session, subtracks } => {
                assert_eq!(
                    self.media.get(session),
                    Some(&false),
                    "{cmd:?} to a non-player"
                );
                for t in subtracks {
                    assert_eq!(
                        self.media.get(&t.publisher),
                        Some(&true),
                        "{session} sent unknown subtrack publisher {}",
                        t.publisher
                    );
                }
            }
            MediaCmd::Close { session } => {
                assert!(
                    self.media.remove(session).is_some(),
                    "Close of unknown {session}"
                );
            }
            MediaCmd::RemoteAnswer { session, .. }
            | MediaCmd::RemoteCandidate { session, .. }
            | MediaCmd::RequestKeyframe { session }
            | MediaCmd::SetForwarding { session, .. }
            | MediaCmd::ForceQuality { session, .. } => {
                assert!(
                    self.media.contains_key(session),
                    "{cmd:?} to unknown session"
                );
            }
        }
    }

    /// Closes every connection, lets every timer fire, and checks that nothing is left.
    pub fn finish(&mut self) {
        let open: Vec<ConnId> = self.open.iter().copied().collect();
        for c in open {
            self.close(c.0);
        }
        self.advance(Duration::from_secs(3600));
        assert!(
            self.sig.is_idle(),
            "state left after every connection closed: {:#?}",
            self.sig
        );
        assert_eq!(self.sig.poll_timeout(), None, "timer left");
        assert!(
            self.media.is_empty(),
            "media sessions leaked: {:?}",
            self.media
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Random operation sequences never break an invariant and never leak.
        #[test]
        fn random_operations_keep_invariants(data in prop::collection::vec(any::<u8>(), 0..3000)) {
            run_ops(&data);
        }

        /// The machine is deterministic: the same inputs give the same outputs.
        #[test]
        fn same_inputs_same_outputs(data in prop::collection::vec(any::<u8>(), 0..1500)) {
            prop_assert_eq!(run(&data).log, run(&data).log);
        }
    }

    /// On cluster edges (odd seeds) the generator opens relays and plays them.
    #[test]
    fn generator_reaches_relays() {
        let (mut opened, mut released, mut failed) = (0, 0, 0);
        for data in super::sample_inputs(0x9e37_79b9, 300) {
            let c = run(&data).sig.remote_counters();
            opened += c.relays_opened;
            released += c.released;
            failed += c.failed;
        }
        assert!(
            opened > 0 && released > 0 && failed > 0,
            "opened {opened}, released {released}, failed {failed}"
        );
    }

    /// The generator reaches the deep flows (otherwise the property test proves little).
    #[test]
    fn generator_reaches_deep_states() {
        use crate::message::{Notification, ServerMessage};
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for data in super::sample_inputs(0x1234_5678, 300) {
            let h = run(&data);
            for out in &h.log {
                let k = match out {
                    Output::Media(MediaCmd::StartPlay { .. }) => "StartPlay",
                    Output::Media(MediaCmd::StartRoomPlay { .. }) => "StartRoomPlay",
                    Output::Media(MediaCmd::SetSubtracks { .. }) => "SetSubtracks",
                    Output::Media(MediaCmd::RemoteAnswer { .. }) => "RemoteAnswer",
                    Output::Media(MediaCmd::SetForwarding { .. }) => "SetForwarding",
                    Output::Send(_, ServerMessage::Notification(n)) => match n {
                        Notification::PlayStarted { .. } => "play_started",
                        Notification::PlayFinished { .. } => "play_finished",
                        Notification::SubtrackAdded { .. } => "subtrackAdded",
                        Notification::SubtrackList { subtrack_list, .. }
                            if !subtrack_list.is_empty() =>
                        {
                            "subtrackList"
                        }
                        Notification::BitrateMeasurement { .. } => "bitrate",
                        Notification::JoinedTheRoom { streams, .. } if !streams.is_empty() => {
                            "joinedTheRoom+streams"
                        }
                        _ => continue,
                    },
                    Output::Send(_, ServerMessage::TakeConfiguration { .. }) => "takeConfiguration",
                    Output::Send(_, ServerMessage::RoomInformation { .. }) => "roomInformation",
                    Output::Send(_, ServerMessage::Stop { .. }) => "p2p stop",
                    Output::Send(_, ServerMessage::Error(e)) => e.definition.definition(),
                    Output::Close(_) => "Close",
                    _ => continue,
                };
                *counts.entry(k).or_default() += 1;
            }
        }
        for k in [
            "StartPlay",
            "StartRoomPlay",
            "SetSubtracks",
            "subtrackAdded",
            "subtrackList",
            "RemoteAnswer",
            "SetForwarding",
            "play_started",
            "play_finished",
            "bitrate",
            "joinedTheRoom+streams",
            "takeConfiguration",
            "roomInformation",
            "p2p stop",
            "Close",
            "publishTimeoutError",
            "already_playing",
            "streamIdInUse",
            "NoSpaceForNewPeer",
        ] {
            assert!(
                counts.get(k).copied().unwrap_or(0) > 0,
                "never reached {k}: {counts:?}"
            );
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        run_ops(&[]);
        run_ops(&[0]);
        run_ops(&[1, 2, 3]);
        run_ops(&[255; 64]);
    }
}
