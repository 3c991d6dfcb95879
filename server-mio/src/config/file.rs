//! The TOML configuration file ([`FileConfig`], `serde`): the same settings as the command
//! line, with the AMS setting names as aliases.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// The TOML file. Keys use snake_case; the AMS setting names are accepted as aliases.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Cli::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Cli::udp`].
    pub udp: Option<SocketAddr>,
    /// See [`Cli::announce_ip`].
    #[serde(alias = "announceIp")]
    pub announce_ip: Option<IpAddr>,
    /// See [`Cli::apps`]: a list of names, or one table per application holding its AMS
    /// settings (`[apps.WebRTCAppEE]` with `publishTokenControlEnabled = true`, …).
    #[serde(alias = "app")]
    pub apps: Option<AppsConfig>,
    /// See [`Cli::data_dir`].
    #[serde(alias = "dataDir")]
    pub data_dir: Option<PathBuf>,
    /// See [`Cli::memory_store`].
    pub memory_store: Option<bool>,
    /// See [`Cli::log`].
    pub log: Option<String>,
    /// See [`Cli::seed`].
    pub seed: Option<u64>,
    /// STUN or TURN URI sent to clients in `iceServerConfig` (empty: none).
    #[serde(alias = "stunServerURI")]
    pub stun_server_uri: Option<String>,
    /// TURN user name.
    #[serde(alias = "turnServerUsername")]
    pub turn_server_username: Option<String>,
    /// TURN credential.
    #[serde(alias = "turnServerCredential")]
    pub turn_server_credential: Option<String>,
    /// How long a publisher may take to send media (AMS default 10000).
    #[serde(
        rename = "webRTCClientStartTimeoutMs",
        alias = "webrtc_client_start_timeout_ms"
    )]
    pub client_start_timeout_ms: Option<u64>,
    /// How often `bitrateMeasurement` is sent to players, in ms.
    pub bitrate_interval_ms: Option<u64>,
    /// `playWebRTCStreamOnceForEachSession`.
    #[serde(
        rename = "playWebRTCStreamOnceForEachSession",
        alias = "play_once_per_session"
    )]
    pub play_once_per_session: Option<bool>,
    /// `maxVideoTrackCount` (-1 = unlimited).
    #[serde(rename = "maxVideoTrackCount", alias = "max_track_count")]
    pub max_track_count: Option<i64>,
    /// How long a publisher's media may stop, once it started, before it ends with
    /// `noPacketReceivedForTimeoutDuration`, in ms (default 10000; 0 turns the check off).
    #[serde(alias = "noPacketTimeoutMs")]
    pub no_packet_timeout_ms: Option<u64>,
    /// How often the media layer reports session statistics, in ms (default 1000).
    pub stats_interval_ms: Option<u64>,
    /// Longest data-channel message relayed, in bytes (default 65536); longer ones are
    /// dropped and counted.
    #[serde(alias = "dataChannelMaxMessageSize")]
    pub data_channel_max_message_size: Option<usize>,
    /// See [`Cli::cpu_limit`] (AMS `server.cpu_limit`, `cpuLimit` in its server settings).
    #[serde(alias = "cpuLimit")]
    pub cpu_limit: Option<u32>,
    /// See [`Cli::shutdown_drain_ms`].
    pub shutdown_drain_ms: Option<u64>,
    /// See [`Cli::max_connections`].
    #[serde(alias = "maxConnections")]
    pub max_connections: Option<usize>,
    /// See [`Cli::max_connections_per_ip`].
    #[serde(alias = "maxConnectionsPerIp")]
    pub max_connections_per_ip: Option<usize>,
    /// See [`Cli::ws_idle_timeout_ms`].
    pub ws_idle_timeout_ms: Option<u64>,
    /// See [`Cli::ws_ping_interval_ms`].
    pub ws_ping_interval_ms: Option<u64>,
    /// See [`Cli::http_head_timeout_ms`].
    pub http_head_timeout_ms: Option<u64>,
    /// See [`Cli::tcp_keepalive_s`].
    pub tcp_keepalive_s: Option<u64>,
    /// See [`Cli::max_pending_output`].
    pub max_pending_output: Option<usize>,
    /// See [`Cli::admin_token_file`].
    pub admin_token_file: Option<PathBuf>,
    /// See [`Cli::rest_trust_loopback`].
    pub rest_trust_loopback: Option<bool>,
    /// See [`Cli::rest_hosts`].
    pub rest_hosts: Option<Vec<String>>,
    /// See [`Cli::trusted_proxies`].
    pub trusted_proxies: Option<Vec<String>>,
    /// See [`Cli::webhook_allow_hosts`].
    pub webhook_allow_hosts: Option<Vec<String>>,
    /// See [`Cli::cluster`].
    pub cluster: Option<String>,
    /// See [`Cli::node_id`].
    pub node_id: Option<String>,
    /// See [`Cli::cluster_secret`].
    pub cluster_secret: Option<String>,
    /// See [`Cli::relay_ports`].
    pub relay_ports: Option<String>,
    /// See [`Cli::cluster_role`].
    pub cluster_role: Option<String>,
    /// See [`Cli::max_publishes_per_connection`].
    pub max_publishes_per_connection: Option<usize>,
    /// See [`Cli::max_plays_per_connection`].
    pub max_plays_per_connection: Option<usize>,
    /// See [`Cli::max_rooms_per_connection`].
    pub max_rooms_per_connection: Option<usize>,
    /// See [`Cli::max_p2p_per_connection`].
    pub max_p2p_per_connection: Option<usize>,
    /// Longest stream, room or p2p id in bytes (default 128); longer gets `invalidStreamName`.
    pub max_id_length: Option<usize>,
    /// Longest stream name, role or subscriber id in bytes (default 256).
    pub max_name_length: Option<usize>,
    /// Longest token or subscriber code in bytes (default 4096).
    pub max_token_length: Option<usize>,
    /// Longest `metaData`/`metadata` in bytes (default 4096); longer gets `parameter_too_long`.
    pub max_metadata_length: Option<usize>,
    /// Longest ICE candidate line in bytes (default 1024).
    pub max_candidate_length: Option<usize>,
    /// See [`Cli::max_remote_candidates`].
    pub max_remote_candidates: Option<usize>,
    /// See [`Cli::forwarding`].
    pub forwarding: Option<String>,
}

/// The `apps` key: names only, or names with their AMS settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AppsConfig {
    /// `apps = ["WebRTCAppEE", "LiveApp"]`.
    List(Vec<String>),
    /// `[apps.WebRTCAppEE]` tables of AMS settings (AMS key names and JSON types), in name order.
    Table(std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>),
}

impl FileConfig {
    /// Parses the TOML text of a configuration file.
    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("invalid configuration: {e}")))
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        FileConfig::parse(&text)
            .map_err(|ConfigError(e)| ConfigError(format!("{}: {e}", path.display())))
    }
}
