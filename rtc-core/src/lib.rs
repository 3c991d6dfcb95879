//! Sans-IO media for Antenna: one `str0m::Rtc` per publish or play session, UDP routing, and
//! forwarding from each publisher to its players.
//!
//! # Run loop contract
//!
//! The [`Sfu`] owns no socket and never reads the clock: every call takes `now`.
//!
//! ```text
//! sfu.handle_command(now, cmd);              // from signalling
//! sfu.handle_receive(now, src, dst, &buf);   // a UDP datagram
//! sfu.flush(now);                            // send the media it wrote to players
//! sfu.handle_timeout(now);                   // when poll_timeout() is reached
//! while let Some(out) = sfu.poll_output() {
//!     match out {
//!         SfuOutput::Transmit(t) => { /* send t.contents from t.source to t.destination */ }
//!         SfuOutput::Event(ev) => { /* signalling.handle_media(now, ev) */ }
//!     }
//! }
//! // wait for a datagram, a command, or poll_timeout()
//! ```
//!
//! Inside, every mutation of a session's `Rtc` (input, timeout, SDP, candidate, a forwarded
//! packet) is followed by a drain of `poll_output` until `Output::Timeout`, as str0m requires.
//! Each session's next deadline (str0m's timeout, its stats tick, its connect timeout) is kept
//! in an ordered index, so [`Sfu::poll_timeout`] is O(1) and [`Sfu::handle_timeout`] touches
//! only sessions that are due.
//!
//! # Sessions
//!
//! - Every session is an ICE-lite `Rtc` with a host candidate per [`SfuConfig::local_addrs`]
//!   address, all sharing one DTLS certificate generated at start.
//! - A publisher accepts the browser's offer (Opus without RED, VP8, VP9, H.264, and the
//!   data channel m-line) and answers.
//! - A player gets a server offer with one sendonly m-line per kind the publisher sends,
//!   offering exactly the publisher's negotiated codecs (same payload types), with the stream
//!   name as msid stream id so the browser's `ontrack` has `event.streams[0]`, then (when the
//!   data channel is enabled) one `m=application` carrying a channel labelled with the stream
//!   id that the server opens.
//! - Data channels (`data.rs`): publisher messages go to its players and, for a subtrack, to
//!   the players of its main track; player messages follow `dataChannelPlayerDistribution`.
//!   A data-only publish (only `m=application`) reports [`MediaEvent::MediaStarted`] when its
//!   channel opens. Size, rate and per-receiver buffer bounds drop messages, counted in
//!   [`DataStats`]; nothing waits.
//! - A room player (`StartRoomPlay`: the player of a main track) gets one sendonly m-line per
//!   kind of each subtrack it is sent, the usual codecs offered and each publisher's payload
//!   types mapped per m-line; `SetSubtracks` renegotiates it with a new server offer that
//!   deactivates, reuses or adds m-lines (`sfu/multitrack.rs`).
//!
//! # Forwarding: RTP mode, not frames
//!
//! Sessions run str0m in RTP mode (`set_rtp_mode(true)`). A publisher's `Event::RtpPacket`
//! is written to each player's `StreamTx` with `write_rtp`, payload shared (`Arc`), never
//! depacketised nor re-packetised. Why this over the frame API (`MediaData` + `Writer::write`,
//! as str0m's chat example does):
//!
//! - cost: no jitter buffer, depacketiser and packetiser per player and per frame; SRTP is the
//!   only per-player per-packet work;
//! - latency: a packet goes out when it arrives, not when its frame completes;
//! - loss stays visible: sequence numbers map with a fixed offset per player track
//!   (`forward.rs`), so a gap at the publisher is a gap at the player, who NACKs it; str0m
//!   answers NACKs from its send-side RTX cache. The offset is re-based when forwarding resumes
//!   after `SetForwarding` or the source SSRC changes, so players never see a jump.
//! - payload types are mapped per player from the negotiated parameters
//!   (`CodecConfig::match_params` and the answer's payload types); a codec the player's browser
//!   did not accept is not forwarded.
//!
//! str0m still terminates RTCP on both sides: it sends NACKs and receiver reports to the
//! publisher (and unwraps RTX), and sender reports to players.
//!
//! # The fast path
//!
//! Once a player's DTLS is up with an AEAD-AES-GCM SRTP profile (what browsers, GStreamer
//! and str0m negotiate), its RTP skips str0m's send path: `fast.rs` writes the 12-byte header,
//! seals the publisher's payload with the player's SRTP key (taken from its DTLS, `dtls.rs`)
//! and queues the datagram at once; nothing waits for [`Sfu::flush`]. It keeps the player's
//! video for NACKs (500 ms) and gives str0m's sender reports its RTP time and counts.
//! AES-CM players, and every player after [`Sfu::set_fast_path`]`(false)`, stay on str0m's
//! path above.
//!
//! # Keyframes, stats, ends
//!
//! - `RequestKeyframe` sends a PLI to the publisher (at most every 300 ms), and so does a
//!   player connecting. A player's PLI/FIR is both reported as
//!   [`MediaEvent::KeyframeRequested`] and forwarded to its publisher directly; resuming video
//!   with `SetForwarding` also asks for one.
//! - [`MediaEvent::Stats`] every [`SfuConfig::stats_interval`]: bitrates from the bytes
//!   received (publisher) or forwarded (player) over the interval, picture size from keyframes
//!   (VP8 frame header, VP9 scalability structure, H.264 SPS), loss from str0m's RTCP-based
//!   stats, and the player's BWE estimate (TWCC, see [`Sfu::set_player_bwe`]).
//! - Cost: in the in-memory harness (`tests/fanout_cost.rs`, release, 20-100 players, a
//!   loaded shared 2-core machine) the SFU spent about 5-19 us per datagram sent to players,
//!   all work included (publisher SRTP/RTCP, per-player SRTP, timers, BWE); not a clean
//!   benchmark.
//! - `ForceQuality` is recorded but advisory: without simulcast there is no layer to switch to.
//! - Dead `Rtc`s (ICE consent lost, DTLS closed, errors, no connection within
//!   [`DEFAULT_CONNECT_TIMEOUT`]) are dropped and reported as [`MediaEvent::Closed`] or
//!   [`MediaEvent::Failed`]; `Close` drops a session silently after sending DTLS close_notify.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::net::SocketAddr;
use std::time::Duration;

use proto_core::MediaEvent;

mod codec;
mod data;
mod dtls;
mod fast;
mod forward;
mod remb;
mod resume;
mod rng;
mod route;
mod session;
mod sfu;
/// The in-memory test harness: only with the `testing` feature (and in unit tests).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

pub use data::{DataConfig, DataStats, PlayerDistribution, DEFAULT_MAX_DATA_MESSAGE};
pub use dtls::SfuCrypto;
pub use route::{SfuCounters, DEFAULT_MAX_REMOTE_CANDIDATES};
pub use sfu::{
    IceRestart, IceRestartError, IceRestarted, RoomLine, Sfu, DEFAULT_CONNECT_TIMEOUT, TIMER_BUDGET,
};

/// Media layer configuration.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The server's UDP addresses, announced as host candidates.
    pub local_addrs: Vec<SocketAddr>,
    /// How often [`MediaEvent::Stats`] is emitted per session.
    pub stats_interval: Duration,
    /// The crypto provider and DTLS certificate of every session.
    pub crypto: SfuCrypto,
    /// `Some`: str0m's generator on this thread is seeded with it when the `Sfu` is made
    /// (ICE credentials, SSRCs and mids become a function of it), and it is mixed into the
    /// stable mids of players (see `rng.rs`). `None`: str0m's generator is left as it is.
    pub seed: Option<u64>,
    /// Local UDP addresses reserved for relay sessions ([`proto_core::MediaCmd::StartRelay`]),
    /// one relay each; their number bounds the relays. Empty: no relays.
    pub relay_addrs: Vec<SocketAddr>,
}

impl SfuConfig {
    /// `local_addrs` and `stats_interval`, a new [`SfuCrypto`], no seed.
    pub fn new(local_addrs: Vec<SocketAddr>, stats_interval: Duration) -> Self {
        SfuConfig {
            local_addrs,
            stats_interval,
            crypto: SfuCrypto::generate(),
            seed: None,
            relay_addrs: Vec::new(),
        }
    }
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
