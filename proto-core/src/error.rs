//! The AMS error definitions, and the errors of this crate's API.

use serde::{Serialize, Serializer};
use std::fmt;

macro_rules! definitions {
    ($( $(#[$doc:meta])* $variant:ident => $wire:literal, )*) => {
        /// Every error definition of the AMS WebSocket protocol.
        ///
        /// Serialised as its wire string (`definition` field of an `error` message).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum SignalError {
            $( $(#[$doc])* $variant, )*
        }

        impl SignalError {
            /// All definitions, in declaration order.
            pub const ALL: &'static [SignalError] = &[$(SignalError::$variant,)*];

            /// The string AMS puts in `definition`.
            pub fn definition(self) -> &'static str {
                match self { $( SignalError::$variant => $wire, )* }
            }

            /// Looks a definition up by its wire string.
            pub fn from_definition(s: &str) -> Option<SignalError> {
                match s { $( $wire => Some(SignalError::$variant), )* _ => None }
            }
        }
    };
}

definitions! {
    /// `streamId` missing or empty.
    NoStreamNameSpecified => "noStreamNameSpecified",
    /// `streamId` has a character outside `[A-Za-z0-9_.-]`.
    InvalidStreamName => "invalidStreamName",
    /// Another client is publishing this stream id.
    StreamIdInUse => "streamIdInUse",
    /// This connection already publishes this stream id.
    AlreadyPublishing => "already_publishing",
    /// This connection already plays this stream id.
    AlreadyPlaying => "already_playing",
    /// The stream is not live.
    NoStreamExist => "no_stream_exist",
    /// Only streams registered in the datastore may publish.
    NotAllowedUnregisteredStreams => "not_allowed_unregistered_streams",
    /// A token, JWT, hash or TOTP check failed.
    UnauthorizedAccess => "unauthorized_access",
    /// A TOTP subscriber is blocked.
    UserBlocked => "user_blocked",
    /// Outside the stream's planned start/end dates.
    StreamNotActiveOrExpired => "stream_not_active_or_expired",
    /// Outside the room's planned start/end dates.
    RoomNotActiveOrExpired => "room_not_active_or_expired",
    /// The stream reached its WebRTC viewer limit.
    ViewerLimitReached => "viewerLimitReached",
    /// `joinRoom` without a room.
    NoRoomSpecified => "no_room_specified",
    /// `getRoomInfo` on a room where nobody else publishes.
    NoActiveStreamsInRoom => "no_active_streams_in_room",
    /// A p2p relay with no partner on the id.
    NoPeerAssociatedBefore => "no_peer_associated_before",
    /// A third peer tried to `join` a p2p id.
    NoSpaceForNewPeer => "NoSpaceForNewPeer",
    /// The server is overloaded (CPU or memory).
    HighResourceUsage => "highResourceUsage",
    /// AMS licence check failed. Cannot occur in Antenna (no licence).
    LicenseSuspended => "license_suspended_please_renew_license",
    /// The datastore cannot be used.
    DataStoreNotAvailable => "data_store_not_available",
    /// The application is not started yet.
    NotInitializedYet => "not_initialized_yet",
    /// No codec the client offered is enabled.
    NoCodecEnabledInTheServer => "no_codec_enabled_in_the_server",
    /// Media did not start within the client start timeout.
    PublishTimeoutError => "publishTimeoutError",
    /// A transcoder encoder failed. Cannot occur in Antenna (no transcoding).
    EncoderNotOpened => "encoderNotOpened",
    /// A transcoder encoder blocked. Cannot occur in Antenna (no transcoding).
    EncoderBlocked => "encoderBlocked",
    /// The server could not create its local description.
    NotSetLocalDescription => "notSetLocalDescription",
    /// The server could not apply the client's SDP.
    NotSetRemoteDescription => "notSetRemoteDescription",
    /// Media stopped arriving for the timeout duration.
    NoPacketReceivedForTimeoutDuration => "noPacketReceivedForTimeoutDuration",
    /// An internal failure; details are in the server log.
    ServerErrorCheckLogs => "server_error_check_logs",
    /// A datastore operation on the main track failed.
    MainTrackDbOperationFailed => "mainTrackDBOperationFailed",
    /// The main track has its maximum number of subtracks.
    MainTrackHasMaxSubtrackCount => "main_track_has_max_subtrack_count__not_allowed_to_add_more_subtracks",
    /// The stream does not exist or is not streaming.
    StreamNotExistOrNotStreaming => "stream_not_exist_or_not_streaming",
    /// WebRTC is disabled for the application.
    WebrtcNotEnabled => "webrtc_not_enabled",
    /// The authentication token is not valid.
    AuthenticationTokenNotValid => "authenticationTokenNotValid",
    /// A required parameter is missing.
    MissingParameter => "missingParameter",
    /// The message could not be parsed (Antenna's own definition; AMS drops such input silently).
    InvalidMessage => "invalid_message",
    /// The command is not one Antenna knows (Antenna's own definition).
    UnsupportedCommand => "unsupported_command",
    /// A field is longer than its bound (Antenna's own definition; `information` names it).
    ParameterTooLong => "parameter_too_long",
    /// The connection holds as many publishes, plays, rooms or p2p groups as it may
    /// (Antenna's own definition; `information` names the bound).
    ConnectionLimitReached => "connection_limit_reached",
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.definition())
    }
}

impl std::error::Error for SignalError {}

impl Serialize for SignalError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.definition())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in SignalError::ALL {
            assert!(seen.insert(e.definition()), "duplicate {e}");
            assert_eq!(SignalError::from_definition(e.definition()), Some(*e));
        }
        assert_eq!(SignalError::from_definition("nope"), None);
    }
}
