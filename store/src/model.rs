//! The stored records: broadcasts, one-time tokens and TOTP subscribers, with AMS JSON names.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Deserialises `null` as the type's default (Jackson writes `null` for unset Java objects).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A stream known to the datastore (AMS `Broadcast`).
///
/// Serialised with the AMS (camelCase) names. Keys this type does not model are kept in
/// [`Broadcast::extra`] and written back unchanged, so a client may round-trip a full AMS object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Broadcast {
    /// The stream id.
    #[serde(deserialize_with = "nullable")]
    pub stream_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `created`, `broadcasting`, `finished`, `preparing`, `error`, `failed`,
    /// `terminated_unexpectedly`.
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    /// `liveStream`, `ipCamera`, `streamSource`, `VoD`, `playlist`.
    #[serde(rename = "type")]
    #[serde(deserialize_with = "nullable")]
    pub stream_type: String,
    /// `WebRTC`, `RTMP`, `Pull`, `SRT`.
    pub publish_type: Option<String>,
    /// Creation time, unix milliseconds.
    pub date: i64,
    /// Planned start, unix seconds (0 = none).
    pub planned_start_date: i64,
    /// Planned end, unix seconds (0 = none).
    pub planned_end_date: i64,
    /// Publishing is allowed only before `date + expireDurationMS` (0 = for ever).
    #[serde(rename = "expireDurationMS")]
    pub expire_duration_ms: i64,
    /// WebRTC viewer limit of this stream (-1 = use the application's).
    #[serde(rename = "webRTCViewerLimit")]
    pub webrtc_viewer_limit: i64,
    /// Current WebRTC viewers (as last reported by the runtime).
    #[serde(rename = "webRTCViewerCount")]
    pub webrtc_viewer_count: i64,
    /// Current HLS viewers.
    pub hls_viewer_count: i64,
    /// Current RTMP viewers.
    pub rtmp_viewer_count: i64,
    /// Current DASH viewers.
    pub dash_viewer_count: i64,
    /// Application metadata (free text, usually JSON).
    pub meta_data: Option<String>,
    /// The main track (room) this stream is a subtrack of.
    pub main_track_stream_id: Option<String>,
    /// Subtracks of this main track.
    #[serde(deserialize_with = "nullable")]
    pub sub_track_stream_ids: Vec<String>,
    /// Maximum subtracks (-1 = unlimited).
    pub subtracks_limit: i64,
    /// Listed publicly.
    pub public_stream: bool,
    /// Delete the record when the stream ends.
    pub zombi: bool,
    /// Video width.
    pub width: i64,
    /// Video height.
    pub height: i64,
    /// Bitrate.
    pub bitrate: i64,
    /// Participant role (conference).
    pub role: Option<String>,
    /// Webhook of this stream.
    #[serde(rename = "listenerHookURL")]
    pub listener_hook_url: Option<String>,
    /// Origin node address (AMS spelling).
    pub origin_adress: Option<String>,
    /// Last status update, unix milliseconds.
    pub update_time: i64,
    /// AMS keys that Antenna does not model, kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Broadcast {
    fn default() -> Self {
        Broadcast {
            stream_id: String::new(),
            name: None,
            description: None,
            status: "created".into(),
            stream_type: "liveStream".into(),
            publish_type: None,
            date: 0,
            planned_start_date: 0,
            planned_end_date: 0,
            expire_duration_ms: 0,
            webrtc_viewer_limit: -1,
            webrtc_viewer_count: 0,
            hls_viewer_count: 0,
            rtmp_viewer_count: 0,
            dash_viewer_count: 0,
            meta_data: None,
            main_track_stream_id: None,
            sub_track_stream_ids: Vec::new(),
            subtracks_limit: -1,
            public_stream: true,
            zombi: false,
            width: 0,
            height: 0,
            bitrate: 0,
            role: None,
            listener_hook_url: None,
            origin_adress: None,
            update_time: 0,
            extra: Map::new(),
        }
    }
}

/// `publish` or `play`: what a token or a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Publishing.
    Publish,
    /// Playing.
    Play,
}

impl TokenType {
    /// The AMS string.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Publish => "publish",
            TokenType::Play => "play",
        }
    }

    /// Parses the AMS string.
    pub fn parse(s: &str) -> Option<TokenType> {
        match s {
            "publish" => Some(TokenType::Publish),
            "play" => Some(TokenType::Play),
            _ => None,
        }
    }
}

/// A one-time token (AMS `Token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// The secret id the client sends in `token`.
    pub token_id: String,
    /// The stream it is for.
    #[serde(default)]
    pub stream_id: String,
    /// Valid while now < expireDate (unix seconds).
    #[serde(default)]
    pub expire_date: i64,
    /// `publish` or `play`.
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// A room token is kept after use and is valid for the room.
    #[serde(default)]
    pub room_id: Option<String>,
}

/// What using a stored one-time token for a request amounts to (see [`Token::check_use`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// Valid; a single-use token, to be deleted.
    Consume,
    /// Valid; a room token, kept for the room's other members.
    Keep,
    /// Not valid for this request.
    Refuse,
}

impl Token {
    /// AMS `validateToken`, with the room rule made explicit and bound to the room's real
    /// streams. The type must match and `now < expireDate`; then
    /// - a room token (`roomId` set) is kept (the room's members share it) when used for the
    ///   room's own id, or for a stream of that room: the request names the room **and**
    ///   `room_member` (signalling or the datastore vouch that the stream belongs to it);
    /// - a token made for the room's stream id, used for a stream of that room (same
    ///   condition), is valid and used up: single use stays single use;
    /// - otherwise the `streamId` must match and the token is used up.
    ///
    /// A client cannot widen a token by naming its stream as `room`/`mainTrack`: without
    /// `room_member` the room counts for nothing.
    pub fn check_use(
        &self,
        what: TokenType,
        stream_id: &str,
        room: Option<&str>,
        room_member: bool,
        now_ms: u64,
    ) -> TokenUse {
        if self.token_type != what || self.expired(now_ms) {
            return TokenUse::Refuse;
        }
        let room = room.filter(|r| !r.is_empty() && room_member);
        if let Some(r) = self.room_id.as_deref().filter(|r| !r.is_empty()) {
            if room == Some(r) || r == stream_id {
                return TokenUse::Keep;
            }
        }
        if self.stream_id == stream_id || (room.is_some() && room == Some(self.stream_id.as_str()))
        {
            TokenUse::Consume
        } else {
            TokenUse::Refuse
        }
    }

    /// Is the token past its `expireDate` at `now_ms`?
    pub fn expired(&self, now_ms: u64) -> bool {
        i128::from(now_ms / 1000) >= i128::from(self.expire_date)
    }
}

/// The type of a TOTP subscriber, or of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriberType {
    /// May play.
    #[serde(rename = "play")]
    Play,
    /// May publish, and play (for conferences).
    #[serde(rename = "publish")]
    Publish,
    /// May publish and play.
    #[serde(rename = "publish_play")]
    PublishPlay,
}

impl SubscriberType {
    /// The AMS string.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberType::Play => "play",
            SubscriberType::Publish => "publish",
            SubscriberType::PublishPlay => "publish_play",
        }
    }

    /// Parses the AMS string.
    pub fn parse(s: &str) -> Option<SubscriberType> {
        match s {
            "play" => Some(SubscriberType::Play),
            "publish" => Some(SubscriberType::Publish),
            "publish_play" => Some(SubscriberType::PublishPlay),
            _ => None,
        }
    }

    /// May a subscriber of this type do `what`? (`publish` may also play.)
    pub fn allows(self, what: TokenType) -> bool {
        match (self, what) {
            (SubscriberType::Play, TokenType::Play) => true,
            (SubscriberType::Play, TokenType::Publish) => false,
            (SubscriberType::Publish | SubscriberType::PublishPlay, _) => true,
        }
    }
}

/// A TOTP subscriber of a stream (AMS `Subscriber`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscriber {
    /// The id the client sends in `subscriberId`.
    pub subscriber_id: String,
    /// Display name.
    #[serde(default)]
    pub subscriber_name: Option<String>,
    /// The stream.
    #[serde(default)]
    pub stream_id: String,
    /// Base32 TOTP secret. Never shown by the REST API (AMS: write-only).
    #[serde(default)]
    pub b32_secret: Option<String>,
    /// What the subscriber may do.
    #[serde(rename = "type")]
    pub subscriber_type: SubscriberType,
    /// TOTP period of this subscriber (10..=1000 s); `None` = the app's `timeTokenPeriod`.
    #[serde(default)]
    pub totp_expiry_period_seconds: Option<u32>,
    /// Concurrent connections allowed (AMS default 1). Stored; not enforced by Antenna.
    #[serde(default = "one")]
    pub concurrent_connections_limit: i64,
    /// Connections in use (as reported by the runtime).
    #[serde(default)]
    pub current_concurrent_connections: i64,
    /// What the block applies to.
    #[serde(default)]
    pub blocked_type: Option<SubscriberType>,
    /// Blocked until this unix time (ms); 0 = not blocked.
    #[serde(default)]
    pub blocked_until_unit_time_stamp_ms: i64,
}

fn one() -> i64 {
    1
}

impl Subscriber {
    /// AMS `isBlocked(type)`: the block covers `what` (or both) and lasts until now or later.
    pub fn is_blocked(&self, what: TokenType, now_ms: u64) -> bool {
        let covers = match self.blocked_type {
            Some(SubscriberType::PublishPlay) => true,
            Some(SubscriberType::Play) => what == TokenType::Play,
            Some(SubscriberType::Publish) => what == TokenType::Publish,
            None => false,
        };
        covers
            && self.blocked_until_unit_time_stamp_ms != 0
            && i128::from(self.blocked_until_unit_time_stamp_ms) >= i128::from(now_ms)
    }

    /// The subscriber as the REST API shows it: without `b32Secret`.
    pub fn public_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("b32Secret");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_uses_ams_names_and_keeps_unknown_keys() {
        let b: Broadcast = serde_json::from_str(
            r#"{"streamId":"s1","webRTCViewerLimit":3,"expireDurationMS":5,"plannedStartDate":7,
                "type":"ipCamera","hlsViewerLimit":9}"#,
        )
        .unwrap();
        assert_eq!(b.stream_id, "s1");
        assert_eq!(b.webrtc_viewer_limit, 3);
        assert_eq!(b.expire_duration_ms, 5);
        assert_eq!(b.planned_start_date, 7);
        assert_eq!(b.stream_type, "ipCamera");
        assert_eq!(b.status, "created");
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["hlsViewerLimit"], 9);
        assert_eq!(v["webRTCViewerLimit"], 3);
        assert_eq!(v["listenerHookURL"], Value::Null);
    }

    #[test]
    fn jackson_nulls_read_as_defaults() {
        let b: Broadcast = serde_json::from_str(
            r#"{"streamId":null,"status":null,"type":null,"subTrackStreamIds":null,"name":null}"#,
        )
        .unwrap();
        assert_eq!(b.stream_id, "");
        assert_eq!(b.status, "");
        assert!(b.sub_track_stream_ids.is_empty());
        assert!(serde_json::from_str::<Broadcast>(r#"{"date":null}"#).is_err());
    }

    #[test]
    fn token_use_rules() {
        let t = Token {
            token_id: "t".into(),
            stream_id: "s1".into(),
            expire_date: 100,
            token_type: TokenType::Play,
            room_id: None,
        };
        let play = TokenType::Play;
        assert_eq!(
            t.check_use(play, "s1", None, false, 99_999),
            TokenUse::Consume
        );
        assert_eq!(
            t.check_use(play, "s1", None, false, 100_000),
            TokenUse::Refuse
        );
        assert!(t.expired(100_000) && !t.expired(99_999));
        assert_eq!(
            t.check_use(TokenType::Publish, "s1", None, false, 0),
            TokenUse::Refuse
        );
        assert_eq!(t.check_use(play, "s2", None, false, 0), TokenUse::Refuse);
        assert_eq!(
            t.check_use(play, "s1", Some(""), false, 0),
            TokenUse::Consume
        );
        let r = Token {
            room_id: Some("room".into()),
            ..t.clone()
        };
        assert_eq!(
            r.check_use(play, "x", Some("room"), true, 0),
            TokenUse::Keep
        );
        assert_eq!(r.check_use(play, "room", None, false, 0), TokenUse::Keep);
        assert_eq!(
            r.check_use(play, "x", Some("other"), true, 0),
            TokenUse::Refuse
        );
        assert_eq!(r.check_use(play, "s1", None, false, 0), TokenUse::Consume);
    }

    /// Finding 1 of issue 9: a token for stream `s1` opened any stream when the request named
    /// `s1` as its room, and was never used up. Now the room counts only for a stream that
    /// really belongs to it, and the token is spent.
    #[test]
    fn a_stream_token_does_not_open_other_streams_by_naming_its_stream_as_room() {
        let t = Token {
            token_id: "t".into(),
            stream_id: "alice".into(),
            expire_date: 100,
            token_type: TokenType::Publish,
            room_id: None,
        };
        let publish = TokenType::Publish;
        for victim in ["victim", "victim2", "victim3"] {
            assert_eq!(
                t.check_use(publish, victim, Some("alice"), false, 0),
                TokenUse::Refuse
            );
        }
        // A stream that really is a subtrack of `alice`: valid, and single use.
        assert_eq!(
            t.check_use(publish, "sub", Some("alice"), true, 0),
            TokenUse::Consume
        );
        // A room token: only for the room's real streams.
        let r = Token {
            room_id: Some("room".into()),
            ..t
        };
        assert_eq!(
            r.check_use(publish, "victim", Some("room"), false, 0),
            TokenUse::Refuse
        );
        assert_eq!(
            r.check_use(publish, "member", Some("room"), true, 0),
            TokenUse::Keep
        );
    }

    #[test]
    fn subscriber_block_rules() {
        let mut s = Subscriber {
            subscriber_id: "sub1".into(),
            subscriber_name: None,
            stream_id: "s".into(),
            b32_secret: Some("SECRET".into()),
            subscriber_type: SubscriberType::Play,
            totp_expiry_period_seconds: None,
            concurrent_connections_limit: 1,
            current_concurrent_connections: 0,
            blocked_type: Some(SubscriberType::Play),
            blocked_until_unit_time_stamp_ms: 1000,
        };
        assert!(s.is_blocked(TokenType::Play, 1000));
        assert!(!s.is_blocked(TokenType::Play, 1001));
        assert!(!s.is_blocked(TokenType::Publish, 10));
        s.blocked_type = Some(SubscriberType::PublishPlay);
        assert!(s.is_blocked(TokenType::Publish, 10));
        s.blocked_until_unit_time_stamp_ms = 0;
        assert!(!s.is_blocked(TokenType::Publish, 0));
        assert!(s.public_json().get("b32Secret").is_none());
        assert!(!SubscriberType::Play.allows(TokenType::Publish));
        assert!(SubscriberType::Publish.allows(TokenType::Play));
    }
}
