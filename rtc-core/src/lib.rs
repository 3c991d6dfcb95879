//! Sans-IO media for Antenna: one `str0m::Rtc` per publish or play session, UDP routing, and
//! forwarding from each publisher to its players.
//!
//! (Skeleton: the API is fixed; the implementation is being filled in.)
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::{MediaCmd, MediaEvent};

/// Media layer configuration.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The server's UDP addresses, announced as host candidates.
    pub local_addrs: Vec<SocketAddr>,
    /// How often [`MediaEvent::Stats`] is emitted per session.
    pub stats_interval: Duration,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Local address to send from.
    pub source: SocketAddr,
    /// Remote address.
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: Vec<u8>,
}

/// An output of the [`Sfu`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuOutput {
    /// Send a datagram.
    Transmit(Transmit),
    /// An event for signalling.
    Event(MediaEvent),
}

/// All media sessions of the server.
#[derive(Debug)]
pub struct Sfu {
    config: SfuConfig,
    outputs: VecDeque<SfuOutput>,
}

impl Sfu {
    /// A media layer with no sessions.
    pub fn new(config: SfuConfig, _now: Instant) -> Self {
        Sfu {
            config,
            outputs: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SfuConfig {
        &self.config
    }

    /// A command from signalling.
    pub fn handle_command(&mut self, _now: Instant, _cmd: MediaCmd) {}

    /// A UDP datagram arrived from `source` on local address `destination`.
    pub fn handle_receive(
        &mut self,
        _now: Instant,
        _source: SocketAddr,
        _destination: SocketAddr,
        _data: &[u8],
    ) {
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// The next output.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<SfuOutput> {
        self.outputs.pop_front()
    }

    /// When [`Sfu::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}
