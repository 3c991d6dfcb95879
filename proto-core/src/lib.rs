//! Sans-IO Ant Media Server (AMS) WebSocket signalling.
//!
//! This crate holds the message model ([`ClientMessage`], [`ServerMessage`]) and one state
//! machine for the whole server ([`Signalling`]). It owns no sockets, threads, clocks or global
//! randomness: time is an input (`now: Instant` is always the first argument) and random ids come
//! from a seeded RNG in [`Config::seed`].
//!
//! # Run loop contract
//!
//! ```text
//! loop {
//!     // feed one input
//!     sig.handle_text(now, conn, text);       // or handle_open / handle_closed /
//!                                            //    handle_media / handle_timeout
//!     // then drain every output
//!     while let Some(out) = sig.poll_output() {
//!         match out {
//!             Output::Send(conn, msg) => { /* write msg.to_json() to conn */ }
//!             Output::Close(conn) => { /* close conn; then call handle_closed */ }
//!             Output::Media(cmd) => { /* hand to the media layer */ }
//!         }
//!     }
//!     // wait no longer than sig.poll_timeout(), then sig.handle_timeout(now)
//! }
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod access;
mod error;
/// The fuzzing and test harness: only with the `testing` feature (and in unit tests).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod fuzzing;
mod media;
mod message;
mod signalling;

pub use access::{
    is_credential_failure, Grant, JoinRoomRequest, RefusalCounters, TotpUse,
    MAX_AUTH_FAILURES_PER_CONN,
};
pub use error::SignalError;
pub use media::{
    FailReason, LocalCandidate, MediaCmd, MediaEvent, OfferedTrack, SessionId, SessionStats,
    Subtrack, TrackKind,
};
pub use message::{
    ClientMessage, ErrorMessage, ForceStreamQuality, GetSubscribers, GetSubtracks,
    GetSubtracksCount, GetTrackList, Join, JoinRoom, Notification, ParseError, PeerMessage, Play,
    Publish, RoomRef, SdpType, ServerMessage, StreamInfo, StreamListEntry, StreamRef,
    TakeCandidate, TakeConfiguration, TrackToggle, UpdateMetaData, VideoTrackAssignment,
    VideoTrackCmd, MAX_MESSAGE_LEN, UNSUPPORTED_COMMANDS,
};
pub use signalling::{
    AccessPolicy, ClusterRole, Config, ConnId, EventKind, HttpMediaRequest, IceServers,
    LimitCounters, Limits, OpenAccess, Output, PlayRequest, PublishRequest, RemoteCounters,
    SessionRoles, Signalling, StoredRecords, StreamEvent, Target, MAX_RELAYED_PER_ROOM,
    MAX_REMOTE_ROOMS, MAX_WAITING_PER_STREAM, MAX_WAITING_STREAMS, REMOTE_PLAY_TIMEOUT, ROOM_POLL,
};

/// True if `id` is a valid AMS stream id: non-empty, only `[A-Za-z0-9_.-]`.
pub fn is_valid_stream_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_rule() {
        assert!(is_valid_stream_id("abc-DEF_1.2"));
        assert!(!is_valid_stream_id(""));
        assert!(!is_valid_stream_id("a b"));
        assert!(!is_valid_stream_id("a/b"));
        assert!(!is_valid_stream_id("é"));
    }
}
