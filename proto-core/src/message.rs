//! The AMS WebSocket message model: what clients send and what the server answers.
//!
//! Parsing ([`ClientMessage::parse`]) is tolerant where the real SDK is loose: unknown fields are
//! ignored, `""` and `null` mean "absent", and booleans or numbers sent as strings are accepted.
//! It is strict elsewhere: every failure is one [`ParseError`].
//!
//! Serialisation ([`ServerMessage::to_json`]) produces exactly the field names the SDK reads.

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

use crate::error::SignalError;

/// The largest text frame accepted, as the real server does (80 KB).
pub const MAX_MESSAGE_LEN: usize = 80 * 1024;

/// Why a text frame is not a valid client message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Longer than [`MAX_MESSAGE_LEN`].
    TooLarge {
        /// Length of the frame in bytes.
        len: usize,
    },
    /// Not JSON at all.
    InvalidJson(String),
    /// JSON, but not an object.
    NotAnObject,
    /// An object with no string `command`.
    MissingCommand,
    /// A `command` Antenna does not know.
    UnknownCommand(String),
    /// A known command with a field of the wrong type (or a required field missing).
    InvalidField {
        /// The command.
        command: &'static str,
        /// serde's description of the problem.
        detail: String,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLarge { len } => {
                write!(f, "message of {len} bytes exceeds {MAX_MESSAGE_LEN}")
            }
            ParseError::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            ParseError::NotAnObject => f.write_str("message is not a JSON object"),
            ParseError::MissingCommand => f.write_str("message has no command"),
            ParseError::UnknownCommand(c) => write!(f, "unknown command {c:?}"),
            ParseError::InvalidField { command, detail } => {
                write!(f, "invalid field in {command}: {detail}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// The error definition sent back to the client for this parse failure.
    pub fn signal_error(&self) -> SignalError {
        match self {
            ParseError::UnknownCommand(_) => SignalError::UnsupportedCommand,
            // serde names a required field that is absent this way ("missing field `type`").
            ParseError::InvalidField { detail, .. } if detail.starts_with("missing field") => {
                SignalError::MissingParameter
            }
            _ => SignalError::InvalidMessage,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient field decoders.

mod lenient {
    use super::*;

    /// A string where `""` and `null` mean absent. Numbers are accepted and stringified.
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(de::Error::custom(format!(
                "expected a string, got {}",
                kind(&other)
            ))),
        }
    }

    /// A string that may be empty but must be present as a string (SDP, candidate).
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(String::new()),
            Value::String(s) => Ok(s),
            other => Err(de::Error::custom(format!(
                "expected a string, got {}",
                kind(&other)
            ))),
        }
    }

    /// A boolean, also as `"true"`/`"false"` (any case); `null`/`""` mean absent.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(de::Error::custom(format!(
                "expected a boolean, got {}",
                kind(&other)
            ))),
        }
    }

    /// An integer, also as a numeric string; `null`/`""` mean absent.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| de::Error::custom("number out of range")),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("expected an integer, got {s:?}"))),
            Some(other) => Err(de::Error::custom(format!(
                "expected an integer, got {}",
                kind(&other)
            ))),
        }
    }

    /// A list of strings; a single string is a one-element list; `null`/`""` are empty.
    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s]),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(de::Error::custom(format!(
                        "expected a list of strings, found {}",
                        kind(&other)
                    ))),
                })
                .collect(),
            Some(other) => Err(de::Error::custom(format!(
                "expected a list of strings, got {}",
                kind(&other)
            ))),
        }
    }

    /// Free-form metadata: a string as is, any other JSON value re-encoded as text.
    pub fn opt_meta<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Ok(Some(other.to_string())),
        }
    }

    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client messages.

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

/// One parsed client command.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum ClientMessage {
    Ping,
    GetIceServerConfig,
    Publish(Publish),
    Play(Play),
    TakeConfiguration(TakeConfiguration),
    TakeCandidate(TakeCandidate),
    Stop(StreamRef),
    Join(Join),
    Leave(StreamRef),
    JoinRoom(JoinRoom),
    LeaveFromRoom(RoomRef),
    GetRoomInfo(RoomRef),
    GetStreamInfo(StreamRef),
    GetTrackList(GetTrackList),
    EnableTrack(TrackToggle),
    ToggleVideo(TrackToggle),
    ToggleAudio(TrackToggle),
    ForceStreamQuality(ForceStreamQuality),
    PeerMessageCommand(PeerMessage),
    GetBroadcastObject(StreamRef),
    GetSubscriberCount(StreamRef),
    UpdateStreamMetaData(UpdateMetaData),
    GetSubtracks(GetSubtracks),
    GetSubtracksCount(GetSubtracksCount),
    GetSubscribers(GetSubscribers),
    GetVideoTrackAssignments(StreamRef),
    AssignVideoTrack(VideoTrackCmd),
    UpdateVideoTrackAssignments(VideoTrackCmd),
    SetMaxVideoTrackCount(VideoTrackCmd),
    /// A command of the AMS protocol that Antenna parses but does not serve
    /// (multitrack assignment, push notifications, debug info...).
    Unsupported {
        /// The command name.
        command: &'static str,
        /// Its `streamId`, if any.
        stream_id: Option<String>,
    },
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
        use ClientMessage as M;
        Ok(match command.as_str() {
            "ping" => M::Ping,
            "getIceServerConfig" => M::GetIceServerConfig,
            "publish" => M::Publish(field("publish", value)?),
            "play" => M::Play(field("play", value)?),
            "takeConfiguration" => M::TakeConfiguration(field("takeConfiguration", value)?),
            "takeCandidate" => M::TakeCandidate(field("takeCandidate", value)?),
            "stop" => M::Stop(field("stop", value)?),
            "join" => M::Join(field("join", value)?),
            "leave" => M::Leave(field("leave", value)?),
            "joinRoom" => M::JoinRoom(field("joinRoom", value)?),
            "leaveFromRoom" => M::LeaveFromRoom(field("leaveFromRoom", value)?),
            "getRoomInfo" => M::GetRoomInfo(field("getRoomInfo", value)?),
            "getStreamInfo" => M::GetStreamInfo(field("getStreamInfo", value)?),
            "getTrackList" => M::GetTrackList(field("getTrackList", value)?),
            "enableTrack" => M::EnableTrack(field("enableTrack", value)?),
            "toggleVideo" => M::ToggleVideo(field("toggleVideo", value)?),
            "toggleAudio" => M::ToggleAudio(field("toggleAudio", value)?),
            "forceStreamQuality" => M::ForceStreamQuality(field("forceStreamQuality", value)?),
            "peerMessageCommand" => M::PeerMessageCommand(field("peerMessageCommand", value)?),
            "getBroadcastObject" => M::GetBroadcastObject(field("getBroadcastObject", value)?),
            "getSubscriberCount" => M::GetSubscriberCount(field("getSubscriberCount", value)?),
            "updateStreamMetaData" => {
                M::UpdateStreamMetaData(field("updateStreamMetaData", value)?)
            }
            "getSubtracks" => M::GetSubtracks(field("getSubtracks", value)?),
            "getSubtracksCount" => M::GetSubtracksCount(field("getSubtracksCount", value)?),
            "getSubscribers" => M::GetSubscribers(field("getSubscribers", value)?),
            "getVideoTrackAssignmentsCommand" => {
                M::GetVideoTrackAssignments(field("getVideoTrackAssignmentsCommand", value)?)
            }
            "assignVideoTrackCommand" => {
                M::AssignVideoTrack(field("assignVideoTrackCommand", value)?)
            }
            "updateVideoTrackAssignmentsCommand" => {
                M::UpdateVideoTrackAssignments(field("updateVideoTrackAssignmentsCommand", value)?)
            }
            "setMaxVideoTrackCountCommand" => {
                M::SetMaxVideoTrackCount(field("setMaxVideoTrackCountCommand", value)?)
            }
            other => match UNSUPPORTED_COMMANDS.iter().find(|c| **c == other) {
                Some(c) => {
                    let r: StreamRef = field(c, value)?;
                    M::Unsupported {
                        command: c,
                        stream_id: r.stream_id,
                    }
                }
                None => return Err(ParseError::UnknownCommand(truncate(other, 64))),
            },
        })
    }

    /// The wire name of this command.
    pub fn command(&self) -> &'static str {
        use ClientMessage as M;
        match self {
            M::Ping => "ping",
            M::GetIceServerConfig => "getIceServerConfig",
            M::Publish(_) => "publish",
            M::Play(_) => "play",
            M::TakeConfiguration(_) => "takeConfiguration",
            M::TakeCandidate(_) => "takeCandidate",
            M::Stop(_) => "stop",
            M::Join(_) => "join",
            M::Leave(_) => "leave",
            M::JoinRoom(_) => "joinRoom",
            M::LeaveFromRoom(_) => "leaveFromRoom",
            M::GetRoomInfo(_) => "getRoomInfo",
            M::GetStreamInfo(_) => "getStreamInfo",
            M::GetTrackList(_) => "getTrackList",
            M::EnableTrack(_) => "enableTrack",
            M::ToggleVideo(_) => "toggleVideo",
            M::ToggleAudio(_) => "toggleAudio",
            M::ForceStreamQuality(_) => "forceStreamQuality",
            M::PeerMessageCommand(_) => "peerMessageCommand",
            M::GetBroadcastObject(_) => "getBroadcastObject",
            M::GetSubscriberCount(_) => "getSubscriberCount",
            M::UpdateStreamMetaData(_) => "updateStreamMetaData",
            M::GetSubtracks(_) => "getSubtracks",
            M::GetSubtracksCount(_) => "getSubtracksCount",
            M::GetSubscribers(_) => "getSubscribers",
            M::GetVideoTrackAssignments(_) => "getVideoTrackAssignmentsCommand",
            M::AssignVideoTrack(_) => "assignVideoTrackCommand",
            M::UpdateVideoTrackAssignments(_) => "updateVideoTrackAssignmentsCommand",
            M::SetMaxVideoTrackCount(_) => "setMaxVideoTrackCountCommand",
            M::Unsupported { command, .. } => command,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Server messages.

/// One entry of `streamInformation.streamInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StreamInfo {
    pub stream_width: u32,
    pub stream_height: u32,
    /// bits per second.
    pub video_bitrate: u64,
    /// bits per second.
    pub audio_bitrate: u64,
    pub video_codec: String,
}

/// One entry of `streamList` in `joinedTheRoom` / `roomInformation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StreamListEntry {
    pub stream_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<String>,
}

/// `notification` messages, tagged by `definition`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "definition")]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Notification {
    #[serde(rename = "publish_started", rename_all = "camelCase")]
    PublishStarted {
        stream_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subscriber_id: Option<String>,
        #[serde(rename = "ATTR_ROOM_NAME", skip_serializing_if = "Option::is_none")]
        attr_room_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    #[serde(rename = "publish_finished", rename_all = "camelCase")]
    PublishFinished {
        stream_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subscriber_id: Option<String>,
    },
    #[serde(rename = "play_started", rename_all = "camelCase")]
    PlayStarted {
        stream_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subscriber_id: Option<String>,
    },
    #[serde(rename = "play_finished", rename_all = "camelCase")]
    PlayFinished {
        stream_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subscriber_id: Option<String>,
    },
    /// A publisher that dropped ungracefully published the same id again within
    /// `webRTCClientStartTimeoutMs`: its session (and its players) carried on.
    #[serde(rename = "session_restored", rename_all = "camelCase")]
    SessionRestored {
        stream_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subscriber_id: Option<String>,
    },
    #[serde(rename = "joined", rename_all = "camelCase")]
    Joined { stream_id: String },
    #[serde(rename = "leaved", rename_all = "camelCase")]
    Leaved { stream_id: String },
    #[serde(rename = "joinedTheRoom", rename_all = "camelCase")]
    JoinedTheRoom {
        stream_id: String,
        streams: Vec<String>,
        stream_list: Vec<StreamListEntry>,
        #[serde(rename = "ATTR_ROOM_NAME")]
        attr_room_name: String,
        room: String,
        max_track_count: i64,
    },
    #[serde(rename = "leavedFromRoom", rename_all = "camelCase")]
    LeavedFromRoom {
        #[serde(rename = "ATTR_ROOM_NAME")]
        attr_room_name: String,
        room: String,
    },
    #[serde(rename = "bitrateMeasurement", rename_all = "camelCase")]
    BitrateMeasurement {
        stream_id: String,
        target_bitrate: u64,
        video_bitrate: u64,
        audio_bitrate: u64,
    },
    #[serde(rename = "resolutionChangeInfo", rename_all = "camelCase")]
    ResolutionChangeInfo {
        stream_id: String,
        stream_height: u32,
    },
    #[serde(rename = "broadcastObject", rename_all = "camelCase")]
    BroadcastObject {
        stream_id: String,
        /// The Broadcast record as a JSON string (as AMS sends it).
        broadcast: String,
    },
    #[serde(rename = "subscriberCount", rename_all = "camelCase")]
    SubscriberCount { stream_id: String, count: u64 },
    /// A page of a main track's subtracks, each a Broadcast as a JSON string.
    #[serde(rename = "subtrackList", rename_all = "camelCase")]
    SubtrackList {
        stream_id: String,
        subtrack_list: Vec<String>,
    },
    /// A page of a stream's TOTP subscribers, each a Subscriber as a JSON string.
    #[serde(rename = "subscriberList", rename_all = "camelCase")]
    SubscriberList {
        stream_id: String,
        subscriber_list: Vec<String>,
    },
    #[serde(rename = "subtrackCount", rename_all = "camelCase")]
    SubtrackCount { stream_id: String, count: u64 },
    /// To a player of main track `stream_id`: subtrack `track_id` started.
    #[serde(rename = "subtrackAdded", rename_all = "camelCase")]
    SubtrackAdded { stream_id: String, track_id: String },
    /// To a player of main track `stream_id`: subtrack `track_id` ended.
    #[serde(rename = "subtrackRemoved", rename_all = "camelCase")]
    SubtrackRemoved { stream_id: String, track_id: String },
    /// Answer to `getVideoTrackAssignmentsCommand`: which subtrack each `videoTrack<k>` slot
    /// of a Last-N room play carries.
    #[serde(rename = "videoTrackAssignmentList", rename_all = "camelCase")]
    VideoTrackAssignmentList {
        stream_id: String,
        payload: Vec<VideoTrackAssignment>,
    },
    #[serde(rename = "server_will_stop")]
    ServerWillStop,
}

/// One slot of a Last-N room play and the subtrack it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoTrackAssignment {
    /// `videoTrack<k>`.
    pub video_label: String,
    /// The subtrack's stream id.
    pub track_id: String,
}

/// An `error` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    /// The error definition.
    pub definition: SignalError,
    /// The stream concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// The room concerned (`no_active_streams_in_room`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// `"404"` for `no_stream_exist`, as AMS sends it.
    #[serde(rename = "error_code", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Human-readable detail (Antenna adds it for parse errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub information: Option<String>,
}

impl ErrorMessage {
    /// An error with only a definition and an optional stream id.
    pub fn new(definition: SignalError, stream_id: Option<String>) -> Self {
        let error_code = (definition == SignalError::NoStreamExist).then(|| "404".to_string());
        ErrorMessage {
            definition,
            stream_id,
            room: None,
            error_code,
            information: None,
        }
    }
}

/// Every message the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "camelCase")]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum ServerMessage {
    /// Tells a publisher (or the first p2p peer) to create its offer.
    #[serde(rename_all = "camelCase")]
    Start {
        stream_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subscriber_id: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    TakeConfiguration {
        stream_id: String,
        #[serde(rename = "type")]
        sdp_type: SdpType,
        sdp: String,
        /// mid -> `ARDAMSv<id>`/`ARDAMSa<id>`; required by the SDK on play offers.
        #[serde(skip_serializing_if = "Option::is_none")]
        id_mapping: Option<BTreeMap<String, String>>,
    },
    #[serde(rename_all = "camelCase")]
    TakeCandidate {
        stream_id: String,
        /// sdpMLineIndex: the only index the SDK reads.
        label: u32,
        /// sdpMid.
        id: String,
        candidate: String,
    },
    /// Closes the peer connection of that stream on the client (p2p).
    #[serde(rename_all = "camelCase")]
    Stop {
        stream_id: String,
    },
    Pong,
    Notification(Notification),
    Error(ErrorMessage),
    #[serde(rename_all = "camelCase")]
    StreamInformation {
        stream_id: String,
        stream_info: Vec<StreamInfo>,
    },
    #[serde(rename_all = "camelCase")]
    RoomInformation {
        streams: Vec<String>,
        stream_list: Vec<StreamListEntry>,
        #[serde(rename = "ATTR_ROOM_NAME")]
        attr_room_name: String,
        room: String,
    },
    #[serde(rename_all = "camelCase")]
    TrackList {
        stream_id: String,
        track_list: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    IceServerConfig {
        stun_server_uri: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        turn_server_username: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        turn_server_credential: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    PeerMessageCommand {
        stream_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        definition: Option<String>,
        data: Value,
    },
}

impl ServerMessage {
    /// An `error` message.
    pub fn error(definition: SignalError, stream_id: Option<&str>) -> Self {
        ServerMessage::Error(ErrorMessage::new(definition, stream_id.map(str::to_string)))
    }

    /// The JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every key is a string and no value is a
        // float NaN; fall back to a generic error rather than panic.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"command":"error","definition":"server_error_check_logs"}"#.to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_recorded_publish() {
        let m = ClientMessage::parse(r#"{"command":"publish","streamId":"h1","token":"tok1","subscriberId":"sub1","subscriberCode":"code1","streamName":"name1","mainTrack":"room1","video":true,"audio":true,"metaData":"{\"m\":1}","role":""}"#).unwrap();
        let ClientMessage::Publish(p) = m else {
            panic!()
        };
        assert_eq!(p.stream_id.as_deref(), Some("h1"));
        assert_eq!(p.main_track.as_deref(), Some("room1"));
        assert_eq!(p.video, Some(true));
        assert_eq!(p.role, None);
    }

    #[test]
    fn lenient_fields() {
        let m = ClientMessage::parse(
            r#"{"command":"takeCandidate","streamId":"a","label":"1","id":"1","candidate":"c","extra":5}"#,
        )
        .unwrap();
        let ClientMessage::TakeCandidate(c) = m else {
            panic!()
        };
        assert_eq!(c.label, Some(1));
        let m =
            ClientMessage::parse(r#"{"command":"toggleVideo","streamId":"a","enabled":"false"}"#)
                .unwrap();
        assert_eq!(
            m,
            ClientMessage::ToggleVideo(TrackToggle {
                stream_id: Some("a".into()),
                track_id: None,
                enabled: Some(false)
            })
        );
    }

    #[test]
    fn strict_errors() {
        assert!(matches!(
            ClientMessage::parse("{"),
            Err(ParseError::InvalidJson(_))
        ));
        assert_eq!(ClientMessage::parse("[1]"), Err(ParseError::NotAnObject));
        assert_eq!(ClientMessage::parse("{}"), Err(ParseError::MissingCommand));
        assert_eq!(
            ClientMessage::parse(r#"{"command":"fly"}"#),
            Err(ParseError::UnknownCommand("fly".into()))
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"command":"publish","streamId":{}}"#),
            Err(ParseError::InvalidField {
                command: "publish",
                ..
            })
        ));
        let big = format!(
            r#"{{"command":"ping","x":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_LEN)
        );
        assert!(matches!(
            ClientMessage::parse(&big),
            Err(ParseError::TooLarge { .. })
        ));
    }

    #[test]
    fn missing_required_field_is_missing_parameter() {
        let e = ClientMessage::parse(r#"{"command":"takeConfiguration","streamId":"a","sdp":"x"}"#)
            .unwrap_err();
        assert_eq!(e.signal_error(), SignalError::MissingParameter, "{e}");
        let e = ClientMessage::parse(
            r#"{"command":"takeConfiguration","streamId":"a","type":"x","sdp":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(e.signal_error(), SignalError::InvalidMessage, "{e}");
    }

    #[test]
    fn serialises_sdk_field_names() {
        let m = ServerMessage::TakeCandidate {
            stream_id: "s".into(),
            label: 0,
            id: "0".into(),
            candidate: "c".into(),
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"command":"takeCandidate","streamId":"s","label":0,"id":"0","candidate":"c"})
        );
        let m = ServerMessage::Notification(Notification::LeavedFromRoom {
            attr_room_name: "r".into(),
            room: "r".into(),
        });
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"command":"notification","definition":"leavedFromRoom","ATTR_ROOM_NAME":"r","room":"r"})
        );
        let m = ServerMessage::error(SignalError::NoStreamExist, Some("x"));
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"command":"error","definition":"no_stream_exist","streamId":"x","error_code":"404"})
        );
        assert_eq!(ServerMessage::Pong.to_json(), r#"{"command":"pong"}"#);
    }
}
