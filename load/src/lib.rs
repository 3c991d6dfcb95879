//! `antenna-load`: a load generator for Antenna (AMS signalling) and Janus (videoroom), with
//! many synthetic WebRTC clients on one thread.
//!
//! Every client is a str0m peer (real ICE, DTLS, SRTP) on its own loopback UDP socket plus a
//! WebSocket for signalling, all driven by one `mio::Poll` ([`engine`]). Publishers send
//! VP8/Opus-shaped RTP at a set bitrate with a send timestamp in the payload ([`media`]);
//! players count packets and loss from RTP sequence numbers ([`stats`]) and, for a few
//! *probe* players that decrypt, one-way latency and time to the first keyframe ([`peer`]).
//!
//! Benchmarks: [`fanout`] (1 publisher to N players in steps), [`rooms`] (conference rooms of
//! 4, everyone publishing and playing the others, rooms added in steps), [`sessions`] (memory
//! per idle session or WebSocket, joinRoom/leaveFromRoom churn), [`ping`] (signalling round
//! trips, closed or open loop), [`ceiling`]
//! (a trivial AES-GCM UDP forwarder).
//! Network traffic is restricted to loopback.

pub mod ceiling;
pub mod engine;
pub mod fanout;
pub mod janus;
pub mod media;
pub mod peer;
pub mod ping;
pub mod procfs;
pub mod rooms;
pub mod sessions;
pub mod sig;
pub mod stats;
pub mod ws;
