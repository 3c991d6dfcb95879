//! Per-application settings with the AMS names and defaults (ams-v2.16.2).

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The settings of one application (AMS `AppSettings`), serialised with the AMS names.
///
/// Keys Antenna does not model are **preserved** in [`AppSettings::extra`]: a management client
/// may `PUT` a full AMS settings object and read it back unchanged. Defaults are the AMS ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppSettings {
    /// Only streams with a datastore record may publish.
    pub accept_only_streams_in_data_store: bool,
    /// Only rooms with a datastore record may be used.
    pub accept_only_rooms_in_data_store: bool,
    /// One-time tokens required to publish.
    pub publish_token_control_enabled: bool,
    /// One-time tokens required to play.
    pub play_token_control_enabled: bool,
    /// JWT stream tokens required to publish.
    pub publish_jwt_control_enabled: bool,
    /// JWT stream tokens required to play.
    pub play_jwt_control_enabled: bool,
    /// HS256 key of JWT stream tokens.
    #[serde(deserialize_with = "crate::model::nullable")]
    pub jwt_stream_secret_key: String,
    /// Hash tokens required to publish.
    pub hash_control_publish_enabled: bool,
    /// Hash tokens required to play.
    pub hash_control_play_enabled: bool,
    /// Secret of hash tokens.
    #[serde(deserialize_with = "crate::model::nullable")]
    pub token_hash_secret: String,
    /// TOTP required to publish.
    pub enable_time_token_for_publish: bool,
    /// TOTP required to play.
    pub enable_time_token_for_play: bool,
    /// Deprecated: TOTP required to play, and only for stored subscribers.
    pub time_token_subscriber_only: bool,
    /// TOTP secret for publishers without a stored `b32Secret`.
    pub time_token_secret_for_publish: Option<String>,
    /// TOTP secret for players without a stored `b32Secret`.
    pub time_token_secret_for_play: Option<String>,
    /// TOTP period, seconds.
    pub time_token_period: u32,
    /// WebRTC viewers per stream (-1 = unlimited).
    #[serde(rename = "webRTCViewerLimit")]
    pub webrtc_viewer_limit: i64,
    /// Publishing streams per application (-1 = unlimited). Stored; not enforced here.
    pub ingesting_stream_limit: i64,
    /// How long a publisher may take to send media, ms.
    #[serde(rename = "webRTCClientStartTimeoutMs")]
    pub webrtc_client_start_timeout_ms: u64,
    /// Comma-separated CIDRs (or bare addresses) allowed to use the REST API besides loopback.
    #[serde(rename = "remoteAllowedCIDR")]
    #[serde(deserialize_with = "crate::model::nullable")]
    pub remote_allowed_cidr: String,
    /// REST API requires a JWT in `Authorization`.
    pub jwt_control_enabled: bool,
    /// HS256 key of REST API JWTs.
    #[serde(deserialize_with = "crate::model::nullable")]
    pub jwt_secret_key: String,
    /// A session may play a stream id only once.
    #[serde(rename = "playWebRTCStreamOnceForEachSession")]
    pub play_webrtc_stream_once_for_each_session: bool,
    /// STUN/TURN URI handed out in `iceServerConfig`.
    #[serde(rename = "stunServerURI")]
    #[serde(deserialize_with = "crate::model::nullable")]
    pub stun_server_uri: String,
    /// TURN user name.
    #[serde(deserialize_with = "crate::model::nullable")]
    pub turn_server_username: String,
    /// TURN credential.
    #[serde(deserialize_with = "crate::model::nullable")]
    pub turn_server_credential: String,
    /// Data channels enabled.
    pub data_channel_enabled: bool,
    /// Where player data-channel messages go: `none`, `publisher`, `all`.
    #[serde(deserialize_with = "crate::model::nullable")]
    pub data_channel_player_distribution: String,
    /// Lowest WebRTC UDP port.
    #[serde(rename = "webRTCPortRangeMin")]
    pub webrtc_port_range_min: u16,
    /// Highest WebRTC UDP port.
    #[serde(rename = "webRTCPortRangeMax")]
    pub webrtc_port_range_max: u16,
    /// TCP ICE candidates.
    #[serde(rename = "webRTCTcpCandidatesEnabled")]
    pub webrtc_tcp_candidates_enabled: bool,
    /// H.264 enabled.
    #[serde(rename = "h264Enabled")]
    pub h264_enabled: bool,
    /// VP8 enabled.
    #[serde(rename = "vp8Enabled")]
    pub vp8_enabled: bool,
    /// Video tracks per conference player (-1 = unlimited).
    pub max_video_track_count: i64,
    /// Transcoding ladder ("" = SFU only).
    #[serde(deserialize_with = "crate::model::nullable")]
    pub encoder_settings_string: String,
    /// AMS keys that Antenna does not model, preserved as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The stored record could not be read ([`AppSettings::unreadable`]): the stream security
    /// fails closed (`data_store_not_available`) until the settings are written again. Never
    /// serialised.
    #[serde(skip)]
    pub unreadable: bool,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            accept_only_streams_in_data_store: false,
            accept_only_rooms_in_data_store: false,
            publish_token_control_enabled: false,
            play_token_control_enabled: false,
            publish_jwt_control_enabled: false,
            play_jwt_control_enabled: false,
            jwt_stream_secret_key: String::new(),
            hash_control_publish_enabled: false,
            hash_control_play_enabled: false,
            token_hash_secret: String::new(),
            enable_time_token_for_publish: false,
            enable_time_token_for_play: false,
            time_token_subscriber_only: false,
            time_token_secret_for_publish: None,
            time_token_secret_for_play: None,
            time_token_period: 60,
            webrtc_viewer_limit: -1,
            ingesting_stream_limit: -1,
            webrtc_client_start_timeout_ms: 10_000,
            remote_allowed_cidr: "127.0.0.1".into(),
            jwt_control_enabled: false,
            jwt_secret_key: String::new(),
            play_webrtc_stream_once_for_each_session: true,
            stun_server_uri: "stun:stun1.l.google.com:19302".into(),
            turn_server_username: String::new(),
            turn_server_credential: String::new(),
            data_channel_enabled: true,
            data_channel_player_distribution: "all".into(),
            webrtc_port_range_min: 50_000,
            webrtc_port_range_max: 60_000,
            webrtc_tcp_candidates_enabled: false,
            h264_enabled: true,
            vp8_enabled: false,
            max_video_track_count: -1,
            encoder_settings_string: String::new(),
            extra: Map::new(),
            unreadable: false,
        }
    }
}

/// What a secret reads as in `GET /rest/v2/applications/settings/{App}`. A `PUT` that sends
/// it back unchanged keeps the stored value.
pub const REDACTED: &str = "[redacted]";

/// Is this settings key a secret (write-only over REST)? The AMS secret keys Antenna models
/// (`jwtSecretKey`, `jwtStreamSecretKey`, `tokenHashSecret`, `timeTokenSecretForPublish`,
/// `timeTokenSecretForPlay`, `turnServerCredential`), and any other key whose name contains
/// `secret`, `password`, `credential` or `privatekey` (case-insensitive; AMS keys Antenna
/// keeps without modelling, such as `s3SecretKey`).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "credential", "privatekey"]
        .iter()
        .any(|w| k.contains(w))
}

/// Replaces each secret of `patch` that is still [`REDACTED`] by its value in `current` (a
/// `PUT` of the settings as read keeps the secrets).
pub fn restore_redacted(patch: &mut Map<String, Value>, current: &Map<String, Value>) {
    for (k, v) in patch.iter_mut() {
        if is_secret_key(k) && v.as_str() == Some(REDACTED) {
            *v = current.get(k).cloned().unwrap_or(Value::Null);
        }
    }
}

/// A bad `remoteAllowedCIDR` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(pub String);

impl std::fmt::Display for CidrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a CIDR or IP address: {:?}", self.0)
    }
}

impl std::error::Error for CidrError {}

/// Parses a comma-separated list of CIDRs or bare addresses (`"127.0.0.1, 10.0.0.0/8"`).
/// Empty entries are skipped.
pub fn parse_cidr_list(list: &str) -> Result<Vec<IpNet>, CidrError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            IpNet::from_str(s)
                .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
                .map_err(|_| CidrError(s.to_string()))
        })
        .collect()
}

impl AppSettings {
    /// What an application whose stored settings record cannot be read gets: the defaults
    /// marked [`AppSettings::unreadable`], so publish, play and joinRoom are refused with
    /// `data_store_not_available` (fail closed) instead of running with every check off.
    pub fn unreadable() -> AppSettings {
        AppSettings {
            unreadable: true,
            ..AppSettings::default()
        }
    }

    /// May a client at `client` use the REST API? The local host (`127.0.0.1`, `::1`) always
    /// may; others only inside `remoteAllowedCIDR`. An unparsable list allows the local host
    /// only. The one address rule: the gate ([`crate::RestGate`]) asks it.
    pub fn rest_allowed(&self, client: IpAddr) -> bool {
        crate::gate::is_local_host(client)
            || parse_cidr_list(&self.remote_allowed_cidr)
                .map(|nets| nets.iter().any(|n| n.contains(&client.to_canonical())))
                .unwrap_or(false)
    }

    /// The settings as the REST API shows them: every secret that is set is replaced by
    /// [`REDACTED`] (secrets are write-only; see [`is_secret_key`]).
    pub fn redacted_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            for (k, val) in m.iter_mut() {
                let set = match val {
                    Value::Null => false,
                    Value::String(s) => !s.is_empty(),
                    _ => true,
                };
                if set && is_secret_key(k) {
                    *val = Value::String(REDACTED.into());
                }
            }
        }
        v
    }

    /// The TOTP secret for publishing or playing, if set and non-empty.
    pub fn time_token_secret(&self, what: crate::model::TokenType) -> Option<&str> {
        let s = match what {
            crate::model::TokenType::Publish => self.time_token_secret_for_publish.as_deref(),
            crate::model::TokenType::Play => self.time_token_secret_for_play.as_deref(),
        };
        s.filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_ams_ones_and_names_match() {
        let v = serde_json::to_value(AppSettings::default()).unwrap();
        assert_eq!(v["acceptOnlyStreamsInDataStore"], false);
        assert_eq!(v["webRTCViewerLimit"], -1);
        assert_eq!(v["webRTCClientStartTimeoutMs"], 10_000);
        assert_eq!(v["remoteAllowedCIDR"], "127.0.0.1");
        assert_eq!(v["timeTokenPeriod"], 60);
        assert_eq!(v["timeTokenSecretForPublish"], Value::Null);
        assert_eq!(v["playWebRTCStreamOnceForEachSession"], true);
        assert_eq!(v["stunServerURI"], "stun:stun1.l.google.com:19302");
        assert_eq!(v["jwtStreamSecretKey"], "");
        assert_eq!(v["hashControlPlayEnabled"], false);
    }

    #[test]
    fn unknown_keys_are_preserved() {
        let s: AppSettings =
            serde_json::from_str(r#"{"hlsMuxingEnabled":true,"timeTokenPeriod":30}"#).unwrap();
        assert_eq!(s.time_token_period, 30);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["hlsMuxingEnabled"], true);
        assert!(serde_json::from_str::<AppSettings>(r#"{"timeTokenPeriod":"x"}"#).is_err());
        let s: AppSettings =
            serde_json::from_str(r#"{"jwtStreamSecretKey":null,"remoteAllowedCIDR":null}"#)
                .unwrap();
        assert_eq!(s.jwt_stream_secret_key, "");
        assert_eq!(s.remote_allowed_cidr, "");
    }

    #[test]
    fn secrets_are_redacted_and_placeholders_keep_them() {
        let s: AppSettings = serde_json::from_str(
            r#"{"jwtSecretKey":"a","jwtStreamSecretKey":"b","tokenHashSecret":"c",
                "timeTokenSecretForPublish":"d","timeTokenSecretForPlay":null,
                "turnServerCredential":"","s3SecretKey":"e","remoteAllowedCIDR":"10.0.0.0/8"}"#,
        )
        .unwrap();
        let v = s.redacted_json();
        for k in [
            "jwtSecretKey",
            "jwtStreamSecretKey",
            "tokenHashSecret",
            "timeTokenSecretForPublish",
            "s3SecretKey",
        ] {
            assert_eq!(v[k], REDACTED, "{k}");
        }
        // Unset secrets show as unset; other keys as they are.
        assert_eq!(v["timeTokenSecretForPlay"], Value::Null);
        assert_eq!(v["turnServerCredential"], "");
        assert_eq!(v["remoteAllowedCIDR"], "10.0.0.0/8");
        assert!(!v.to_string().contains("\"a\""));
        let current = match serde_json::to_value(&s).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let mut patch = match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        patch.insert("tokenHashSecret".into(), "new".into());
        restore_redacted(&mut patch, &current);
        assert_eq!(patch["jwtSecretKey"], "a");
        assert_eq!(patch["s3SecretKey"], "e");
        assert_eq!(patch["tokenHashSecret"], "new");
    }

    #[test]
    fn unreadable_marker_is_never_serialised() {
        let s = AppSettings::unreadable();
        assert!(s.unreadable);
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("unreadable").is_none());
        let back: AppSettings = serde_json::from_value(v).unwrap();
        assert!(
            !back.unreadable,
            "writing the settings again clears the marker"
        );
    }

    #[test]
    fn cidr_lists() {
        let s = AppSettings {
            remote_allowed_cidr: "10.0.0.0/8, 192.168.1.7".into(),
            ..AppSettings::default()
        };
        assert!(s.rest_allowed("10.1.2.3".parse().unwrap()));
        assert!(s.rest_allowed("192.168.1.7".parse().unwrap()));
        assert!(!s.rest_allowed("192.168.1.8".parse().unwrap()));
        assert!(s.rest_allowed("::1".parse().unwrap()));
        assert!(s.rest_allowed("::ffff:10.0.0.1".parse().unwrap()));
        assert!(parse_cidr_list("10.0.0.0/33").is_err());
        assert!(parse_cidr_list("nope").is_err());
        let bad = AppSettings {
            remote_allowed_cidr: "junk".into(),
            ..AppSettings::default()
        };
        assert!(!bad.rest_allowed("10.1.2.3".parse().unwrap()));
        assert!(bad.rest_allowed("127.0.0.1".parse().unwrap()));
        assert!(
            !bad.rest_allowed("127.0.0.2".parse().unwrap()),
            "only 127.0.0.1 and ::1 are the local host"
        );
    }
}
