//! What the server sends: [`ServerMessage`], its [`Notification`]s and [`ErrorMessage`].
//! Serialisation produces exactly the field names the SDK reads.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

use super::SdpType;
use crate::error::SignalError;

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
