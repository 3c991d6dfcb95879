//! What clients send: one struct per command's fields, and the command table
//! (`client_commands!`) that names each command once for the enum, the parser, the wire
//! name and the stream id.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{lenient, ParseError, MAX_MESSAGE_LEN};

/// SDP type of a `takeConfiguration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
}

/// `publish`: start publishing a stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct Publish {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub token: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub subscriber_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub subscriber_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub main_track: Option<String>,
    /// Whether the publisher sends video (AMS: true when missing).
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub video: Option<bool>,
    /// Whether the publisher sends audio (true when missing).
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub audio: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_meta")]
    pub meta_data: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub role: Option<String>,
}

/// `play`: start playing a stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct Play {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub token: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub room: Option<String>,
    #[serde(deserialize_with = "lenient::string_list")]
    pub track_list: Vec<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub subscriber_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub subscriber_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_meta")]
    pub viewer_info: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub role: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_publish_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub subscriber_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub disable_tracks_by_default: Option<bool>,
}

/// `takeConfiguration`: an SDP offer or answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct TakeConfiguration {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(rename = "type")]
    pub sdp_type: SdpType,
    #[serde(deserialize_with = "lenient::string")]
    pub sdp: String,
}

/// `takeCandidate`: one trickled ICE candidate.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct TakeCandidate {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    /// sdpMLineIndex (a number in the SDK; strings accepted).
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub label: Option<i64>,
    /// sdpMid.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// The candidate line; `""` is the end-of-candidates marker.
    #[serde(deserialize_with = "lenient::string")]
    pub candidate: String,
}

/// A command that carries only a stream id (`stop`, `leave`, `getStreamInfo`, ...).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamRef {
    /// The stream id.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
}

/// `join`: peer-to-peer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct Join {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub multi_peer: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub mode: Option<String>,
}

/// `joinRoom`: legacy conference.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct JoinRoom {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub room: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub main_track: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub mode: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub role: Option<String>,
    /// Lower-case `metadata`, as the SDK sends it here.
    #[serde(deserialize_with = "lenient::opt_meta")]
    pub metadata: Option<String>,
}

/// `leaveFromRoom` and `getRoomInfo`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct RoomRef {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub room: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub main_track: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
}

/// `getTrackList`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct GetTrackList {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub token: Option<String>,
}

/// `enableTrack`, `toggleVideo`, `toggleAudio`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct TrackToggle {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub track_id: Option<String>,
    /// Missing means `true`.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub enabled: Option<bool>,
}

/// `forceStreamQuality`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct ForceStreamQuality {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    /// 0 or missing means automatic.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub stream_height: Option<i64>,
}

/// `peerMessageCommand`: relayed between p2p peers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct PeerMessage {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub definition: Option<String>,
    pub data: Value,
}

/// `updateStreamMetaData`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct UpdateMetaData {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_meta")]
    pub meta_data: Option<String>,
}

/// `getSubtracks`: a page of a main track's subtracks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct GetSubtracks {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    /// Only subtracks published with this `role` (absent: all).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub role: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub offset: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
}

/// `getSubscribers`: a page of a stream's TOTP subscribers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct GetSubscribers {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub offset: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
}

/// `getSubtracksCount`: how many subtracks a main track has.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct GetSubtracksCount {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    /// Only subtracks published with this `role` (absent: all).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub role: Option<String>,
    /// Only subtracks in this status (`broadcasting`, `preparing`; absent: all).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

/// The Last-N video track commands: `assignVideoTrackCommand` (`videoTrackId`, `trackId`,
/// `enabled`), `updateVideoTrackAssignmentsCommand` (`offset`, `size`) and
/// `setMaxVideoTrackCountCommand` (`maxTrackCount`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct VideoTrackCmd {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stream_id: Option<String>,
    /// The slot label, `videoTrack<k>`.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub video_track_id: Option<String>,
    /// The subtrack to pin (absent: the SDK form, where `streamId` names the subtrack).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub track_id: Option<String>,
    /// Missing means `true`.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub enabled: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub offset: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub max_track_count: Option<i64>,
}

/// The command table: every client command once, as `"wireName" => Variant(Fields)` (or a
/// bare `Variant` for a command without fields). It defines [`ClientMessage`] and, from the
/// same lines, the parser ([`ClientMessage::from_value`]), the wire name
/// ([`ClientMessage::command`]) and the stream id ([`ClientMessage::stream_id`]); every
/// `Fields` type has a `stream_id`. Adding a command is one line here (and its `Fields` struct
/// above when it has new fields) plus its rules in `Signalling::handle_message` and its length
/// bounds in `Limits` (both exhaustive matches, so the compiler points at them).
macro_rules! client_commands {
    ($($wire:literal => $variant:ident $(($fields:ty))?,)*) => {
        /// One parsed client command.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        #[allow(missing_docs)]
        pub enum ClientMessage {
            $($variant $(($fields))?,)*
            /// A command of the AMS protocol that Antenna parses but does not serve
            /// (multitrack assignment, push notifications, debug info...).
            Unsupported {
                /// The command name.
                command: &'static str,
                /// Its `streamId`, if any.
                stream_id: Option<String>,
            },
        }

        impl ClientMessage {
            /// The wire names of every command Antenna serves, in table order.
            pub const COMMANDS: &'static [&'static str] = &[$($wire,)*];

            /// The message of the known command `command`, its fields read from `value`;
            /// `Err(value)` when the table does not have `command`.
            fn from_command(command: &str, value: Value) -> Result<Result<Self, ParseError>, Value> {
                Ok(match command {
                    $($wire => client_commands!(@parse $wire, $variant, value $(, $fields)?),)*
                    _ => return Err(value),
                })
            }

            /// The wire name of this command.
            pub fn command(&self) -> &'static str {
                match self {
                    $(ClientMessage::$variant { .. } => $wire,)*
                    ClientMessage::Unsupported { command, .. } => command,
                }
            }

            /// The `streamId` the command carries, if any (as sent, possibly empty).
            pub fn stream_id(&self) -> Option<&str> {
                match self {
                    $(client_commands!(@pattern $variant, f $(, $fields)?) => {
                        client_commands!(@stream_id f $(, $fields)?)
                    })*
                    ClientMessage::Unsupported { stream_id, .. } => stream_id.as_deref(),
                }
            }
        }
    };
    (@parse $wire:literal, $variant:ident, $value:ident, $fields:ty) => {
        field::<$fields>($wire, $value).map(ClientMessage::$variant)
    };
    (@parse $wire:literal, $variant:ident, $value:ident) => {
        Ok(ClientMessage::$variant)
    };
    (@pattern $variant:ident, $f:ident, $fields:ty) => { ClientMessage::$variant($f) };
    (@pattern $variant:ident, $f:ident) => { ClientMessage::$variant };
    (@stream_id $f:ident, $fields:ty) => { $f.stream_id.as_deref() };
    (@stream_id $f:ident) => { None };
}

client_commands! {
    "ping" => Ping,
    "getIceServerConfig" => GetIceServerConfig,
    "publish" => Publish(Publish),
    "play" => Play(Play),
    "takeConfiguration" => TakeConfiguration(TakeConfiguration),
    "takeCandidate" => TakeCandidate(TakeCandidate),
    "stop" => Stop(StreamRef),
    "join" => Join(Join),
    "leave" => Leave(StreamRef),
    "joinRoom" => JoinRoom(JoinRoom),
    "leaveFromRoom" => LeaveFromRoom(RoomRef),
    "getRoomInfo" => GetRoomInfo(RoomRef),
    "getStreamInfo" => GetStreamInfo(StreamRef),
    "getTrackList" => GetTrackList(GetTrackList),
    "enableTrack" => EnableTrack(TrackToggle),
    "toggleVideo" => ToggleVideo(TrackToggle),
    "toggleAudio" => ToggleAudio(TrackToggle),
    "forceStreamQuality" => ForceStreamQuality(ForceStreamQuality),
    "peerMessageCommand" => PeerMessageCommand(PeerMessage),
    "getBroadcastObject" => GetBroadcastObject(StreamRef),
    "getSubscriberCount" => GetSubscriberCount(StreamRef),
    "updateStreamMetaData" => UpdateStreamMetaData(UpdateMetaData),
    "getSubtracks" => GetSubtracks(GetSubtracks),
    "getSubtracksCount" => GetSubtracksCount(GetSubtracksCount),
    "getSubscribers" => GetSubscribers(GetSubscribers),
    "getVideoTrackAssignmentsCommand" => GetVideoTrackAssignments(StreamRef),
    "assignVideoTrackCommand" => AssignVideoTrack(VideoTrackCmd),
    "updateVideoTrackAssignmentsCommand" => UpdateVideoTrackAssignments(VideoTrackCmd),
    "setMaxVideoTrackCountCommand" => SetMaxVideoTrackCount(VideoTrackCmd),
}

/// Commands of the AMS protocol that Antenna recognises but does not implement.
pub const UNSUPPORTED_COMMANDS: &[&str] = &[
    "getDebugInfo",
    "registerPushNotificationToken",
    "sendPushNotification",
];

fn field<T: DeserializeOwned>(command: &'static str, v: Value) -> Result<T, ParseError> {
    serde_json::from_value(v).map_err(|e| ParseError::InvalidField {
        command,
        detail: e.to_string(),
    })
}

impl ClientMessage {
    /// Parses one WebSocket text frame.
    pub fn parse(text: &str) -> Result<ClientMessage, ParseError> {
        if text.len() > MAX_MESSAGE_LEN {
            return Err(ParseError::TooLarge { len: text.len() });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| ParseError::InvalidJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// Interprets an already decoded JSON value.
    pub fn from_value(value: Value) -> Result<ClientMessage, ParseError> {
        let Value::Object(map) = &value else {
            return Err(ParseError::NotAnObject);
        };
        let command = match map.get("command") {
            Some(Value::String(c)) if !c.is_empty() => c.clone(),
            _ => return Err(ParseError::MissingCommand),
        };
        let value = match Self::from_command(&command, value) {
            Ok(msg) => return msg,
            Err(value) => value,
        };
        match UNSUPPORTED_COMMANDS.iter().find(|c| **c == command) {
            Some(c) => {
                let r: StreamRef = field(c, value)?;
                Ok(ClientMessage::Unsupported {
                    command: c,
                    stream_id: r.stream_id,
                })
            }
            None => Err(ParseError::UnknownCommand(truncate(&command, 64))),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}
