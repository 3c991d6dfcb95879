//! Command line and TOML configuration of the `antenna` binary.
//!
//! Every setting can come from the command line or from a TOML file given with `--config`;
//! the command line wins, then the file, then the built-in default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::limits::Limits;
use crate::overload::{CpuLimit, DEFAULT_CPU_LIMIT};

/// Default HTTP/WebSocket address (AMS's HTTP port).
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5080);
/// Default UDP media address: one port for every session (the start of AMS's 50000-60000 range).
pub const DEFAULT_UDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 50000);
/// Default application.
pub const DEFAULT_APP: &str = "WebRTCAppEE";
/// Default log filter.
pub const DEFAULT_LOG: &str = "info";

/// Antenna: a WebRTC media server speaking the Ant Media Server WebSocket protocol.
///
/// Serves `ws://LISTEN/<App>/websocket` for the AMS JavaScript SDK, the demo pages on
/// `http://LISTEN/`, and all WebRTC media on one UDP port.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "antenna", version)]
pub struct Cli {
    /// HTTP and WebSocket listen address [default: 0.0.0.0:5080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// UDP media bind address; one port carries every session [default: 0.0.0.0:50000].
    /// Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<SocketAddr>,

    /// IP address announced in ICE host candidates [default: the --udp IP, or 127.0.0.1 when
    /// --udp binds all interfaces, so that a browser on the same host works out of the box; set
    /// it to the host's reachable address for remote browsers].
    #[arg(long, value_name = "IP")]
    pub announce_ip: Option<IpAddr>,

    /// Application name, served at `/<APP>/websocket`; repeat for several [default: WebRTCAppEE].
    #[arg(long = "app", value_name = "APP")]
    pub apps: Vec<String>,

    /// TOML configuration file (same settings, plus signalling options such as
    /// stun_server_uri, turn_server_username, turn_server_credential,
    /// webRTCClientStartTimeoutMs and seed).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log filter in tracing-subscriber EnvFilter syntax, e.g. `info` or
    /// `server_mio=debug,info` [default: $RUST_LOG, else info].
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    /// Seed of the signalling RNG (generated stream ids) [default: random].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Directory of the datastore (`antenna.redb`: broadcasts, tokens, subscribers, app
    /// settings); created if missing [default: ./antenna-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Keep the datastore in memory only (nothing survives a restart; for tests).
    #[arg(long)]
    pub memory_store: bool,

    /// CPU admission control (AMS `server.cpu_limit`): while the server uses more than PERCENT
    /// of a core, new publishers and players get `highResourceUsage`. 0 or 100 and above turn
    /// it off [default: 75].
    #[arg(long, value_name = "PERCENT")]
    pub cpu_limit: Option<u32>,

    /// After SIGTERM/SIGINT, `/readyz` answers 503 for this long (everything else keeps
    /// working) before the graceful shutdown begins, so load balancers stop sending new
    /// clients; a second signal skips it. At most 600000 [default: 0].
    #[arg(long, value_name = "MS")]
    pub shutdown_drain_ms: Option<u64>,

    /// File holding the admin REST API token (`Authorization: Bearer <token>`); created with a
    /// fresh random token if missing [default: DATA_DIR/admin-token; with --memory-store a new
    /// token per start, printed].
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Development mode: REST callers on 127.0.0.1/::1 need no credential (not behind a proxy
    /// on the same host: every proxied client would arrive from 127.0.0.1).
    #[arg(long)]
    pub rest_trust_loopback: bool,

    /// A host name the REST API answers to (`Host` and `Origin`), besides IP addresses and
    /// `localhost`; repeat for several. Other names get 421 (DNS rebinding).
    #[arg(long = "rest-host", value_name = "NAME")]
    pub rest_hosts: Vec<String>,

    /// A proxy (address or CIDR) whose `X-Forwarded-For` names the REST client; repeat for
    /// several. From anyone else `X-Forwarded-For` is ignored [default: none].
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,

    /// A host webhook calls may go to (`HOST` for any port, `HOST:PORT`, `[V6]:PORT`); repeat
    /// for several. Calls to other hosts are dropped, logged and counted. Without any, every
    /// `listenerHookURL` is called: those of the application settings and of the broadcasts,
    /// which only the admin can set [default: any host].
    #[arg(long = "webhook-allow-host", value_name = "HOST[:PORT]")]
    pub webhook_allow_hosts: Vec<String>,

    /// Cluster mode: register this node and its live streams in the Redis at this URL
    /// (`redis://IP:PORT/DB`; the host must be an IP address or localhost) [default: none,
    /// a single node that needs no Redis].
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,

    /// This node's id in the cluster, unique among the nodes [default: the announced IP and
    /// the HTTP port, `IP:PORT`].
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,

    /// Connections (HTTP and WebSocket) in total; beyond it a new connection gets `503` and is
    /// closed. Always kept 64 below the open-file limit, whose soft value is raised to the hard
    /// one at start; 0: only that bound [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Connections from one IP address; beyond it `503`. 0 turns it off (do so behind a
    /// reverse proxy) [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,

    /// A WebSocket that sends no frame for this long is closed with code 1001 (the AMS SDK
    /// pings every 3 s, browsers answer server pings); 0: never [default: 30000].
    #[arg(long, value_name = "MS")]
    pub ws_idle_timeout_ms: Option<u64>,

    /// A quiet WebSocket gets a ping frame this often; 0: no server pings [default: 10000].
    #[arg(long, value_name = "MS")]
    pub ws_ping_interval_ms: Option<u64>,

    /// Time from connect to a complete HTTP request head (slow clients are dropped)
    /// [default: 10000].
    #[arg(long, value_name = "MS")]
    pub http_head_timeout_ms: Option<u64>,

    /// TCP keepalive idle time on accepted connections, in seconds; 0: off [default: 60].
    #[arg(long, value_name = "SECS")]
    pub tcp_keepalive_s: Option<u64>,

    /// WebSocket output a client may leave unread before it is dropped, in bytes
    /// [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_pending_output: Option<usize>,

    /// Streams one WebSocket connection may publish at once; more get
    /// `connection_limit_reached` [default: 16].
    #[arg(long, value_name = "N")]
    pub max_publishes_per_connection: Option<usize>,

    /// Streams one WebSocket connection may play at once [default: 64].
    #[arg(long, value_name = "N")]
    pub max_plays_per_connection: Option<usize>,

    /// Rooms (`joinRoom` memberships) one WebSocket connection may hold [default: 16].
    #[arg(long, value_name = "N")]
    pub max_rooms_per_connection: Option<usize>,

    /// Peer-to-peer groups one WebSocket connection may join [default: 16].
    #[arg(long, value_name = "N")]
    pub max_p2p_per_connection: Option<usize>,

    /// Remote ICE candidates kept per media session (distinct addresses); further ones are
    /// dropped and counted [default: 32].
    #[arg(long, value_name = "N")]
    pub max_remote_candidates: Option<usize>,
}

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
}

/// How the admin REST API is protected (see `antenna_store::RestGate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where the admin token lives (`None`: the default for the store location).
    pub token_file: Option<PathBuf>,
    /// Callers on 127.0.0.1/::1 need no credential.
    pub trust_loopback: bool,
    /// Host names accepted in `Host` and `Origin`.
    pub hosts: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<antenna_store::IpNet>,
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

/// Where the datastore lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `DIR/antenna.redb`.
    Dir(PathBuf),
    /// Memory only.
    Memory,
}

/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "antenna-data";
/// The database file inside the data directory.
pub const DB_FILE: &str = "antenna.redb";

/// A configuration error: reported and the process exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The resolved settings of one `antenna` process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP/WebSocket listen address.
    pub listen: SocketAddr,
    /// UDP bind address.
    pub udp: SocketAddr,
    /// Announced IP for host candidates.
    pub announce_ip: IpAddr,
    /// Application names.
    pub apps: Vec<String>,
    /// Log filter; `None` means `$RUST_LOG`, else [`DEFAULT_LOG`].
    pub log: Option<String>,
    /// Signalling configuration.
    pub signalling: proto_core::Config,
    /// Media stats interval.
    pub stats_interval: Duration,
    /// Longest data-channel message relayed, in bytes.
    pub data_max_message_size: usize,
    /// The datastore.
    pub store: StoreLocation,
    /// AMS settings per application from the file (`[apps.X]` tables), seeded into the
    /// datastore for applications that have no stored settings yet.
    pub app_settings: Vec<(String, serde_json::Map<String, serde_json::Value>)>,
    /// CPU admission control.
    pub cpu_limit: CpuLimit,
    /// Drain period after a stop signal (readyz 503), at most 10 minutes.
    pub shutdown_drain: std::time::Duration,
    /// Admin REST API protection.
    pub admin: AdminSettings,
    /// Connection caps and timeouts.
    pub limits: Limits,
    /// Remote ICE candidates kept per media session.
    pub max_remote_candidates: usize,
    /// The hosts webhook calls may go to (empty: any).
    pub webhook_allow: crate::hooks::AllowList,
    /// Cluster mode; `None`: a single node.
    pub cluster: Option<ClusterSettings>,
}

/// Cluster mode's settings (`--cluster`, `--node-id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Redis's address.
    pub redis: SocketAddr,
    /// Redis database index.
    pub db: u32,
    /// This node's id; `None`: the announced IP and the HTTP port.
    pub node_id: Option<String>,
}

/// Longest node id in bytes (it is part of Redis keys).
pub const MAX_NODE_ID: usize = 128;

fn cluster_settings(cli: &Cli, file: &FileConfig) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some(url) = cli.cluster.as_ref().or(file.cluster.as_ref()) else {
        return Ok(None);
    };
    let (redis, db) =
        antenna_cluster::parse_url(url).map_err(|e| ConfigError(format!("--cluster {e}")))?;
    let node_id = cli.node_id.clone().or_else(|| file.node_id.clone());
    if let Some(id) = &node_id {
        if id.is_empty()
            || id.len() > MAX_NODE_ID
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(ConfigError(format!(
                "--node-id {id:?}: use 1 to {MAX_NODE_ID} of [A-Za-z0-9_.:-]"
            )));
        }
    }
    Ok(Some(ClusterSettings { redis, db, node_id }))
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

/// True if `app` can be the first path segment of `/<app>/websocket`.
pub fn is_valid_app_name(app: &str) -> bool {
    proto_core::is_valid_stream_id(app) && app != "." && app != ".."
}

impl Settings {
    /// Merges the command line over the file over the defaults. `default_seed` is used when
    /// neither gives a seed (the binary passes a random one).
    pub fn resolve(
        cli: &Cli,
        file: &FileConfig,
        default_seed: u64,
    ) -> Result<Settings, ConfigError> {
        let listen = cli.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN);
        let udp = cli.udp.or(file.udp).unwrap_or(DEFAULT_UDP);
        let announce_ip = cli
            .announce_ip
            .or(file.announce_ip)
            .unwrap_or_else(|| default_announce_ip(udp.ip()));
        if announce_ip.is_unspecified() {
            return Err(ConfigError(format!(
                "--announce-ip {announce_ip} is not an address a browser can reach"
            )));
        }
        if announce_ip.is_ipv4() != udp.is_ipv4() {
            return Err(ConfigError(format!(
                "--announce-ip {announce_ip} and --udp {udp} are of different IP families"
            )));
        }
        let mut apps: Vec<String> = if !cli.apps.is_empty() {
            cli.apps.clone()
        } else {
            match &file.apps {
                Some(AppsConfig::List(l)) => l.clone(),
                Some(AppsConfig::Table(t)) => t.keys().cloned().collect(),
                None => vec![DEFAULT_APP.to_string()],
            }
        };
        let mut seen = std::collections::HashSet::new();
        apps.retain(|a| seen.insert(a.clone()));
        if apps.is_empty() {
            return Err(ConfigError("at least one application is needed".into()));
        }
        if let Some(bad) = apps.iter().find(|a| !is_valid_app_name(a)) {
            return Err(ConfigError(format!(
                "invalid application name {bad:?}: use only [A-Za-z0-9_.-]"
            )));
        }
        let defaults = proto_core::Config::default();
        let signalling = proto_core::Config {
            seed: cli.seed.or(file.seed).unwrap_or(default_seed),
            client_start_timeout: file
                .client_start_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.client_start_timeout),
            bitrate_interval: file
                .bitrate_interval_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.bitrate_interval),
            play_once_per_session: file
                .play_once_per_session
                .unwrap_or(defaults.play_once_per_session),
            ice_servers: proto_core::IceServers {
                stun_server_uri: file.stun_server_uri.clone().unwrap_or_default(),
                turn_server_username: file.turn_server_username.clone(),
                turn_server_credential: file.turn_server_credential.clone(),
            },
            max_track_count: file.max_track_count.unwrap_or(defaults.max_track_count),
            limits: limits(cli, file, &defaults.limits),
            no_packet_timeout: file
                .no_packet_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.no_packet_timeout),
        };
        let stats_interval = Duration::from_millis(file.stats_interval_ms.unwrap_or(1000).max(1));
        let store = if cli.memory_store {
            StoreLocation::Memory
        } else if let Some(dir) = &cli.data_dir {
            StoreLocation::Dir(dir.clone())
        } else if file.memory_store == Some(true) {
            StoreLocation::Memory
        } else {
            StoreLocation::Dir(
                file.data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            )
        };
        let app_settings = match &file.apps {
            Some(AppsConfig::Table(t)) => t
                .iter()
                .filter(|(name, _)| apps.contains(name))
                .map(|(n, s)| (n.clone(), s.clone()))
                .collect(),
            _ => Vec::new(),
        };
        let admin = resolve_admin(cli, file)?;
        let d = Limits::default();
        let ms = |cli: Option<u64>, file: Option<u64>, default: Duration| {
            cli.or(file).map(Duration::from_millis).unwrap_or(default)
        };
        let limits = Limits {
            max_connections: cli
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            max_connections_per_ip: cli
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(d.max_connections_per_ip),
            ws_idle_timeout: ms(
                cli.ws_idle_timeout_ms,
                file.ws_idle_timeout_ms,
                d.ws_idle_timeout,
            ),
            ws_ping_interval: ms(
                cli.ws_ping_interval_ms,
                file.ws_ping_interval_ms,
                d.ws_ping_interval,
            ),
            http_head_timeout: ms(
                cli.http_head_timeout_ms,
                file.http_head_timeout_ms,
                d.http_head_timeout,
            ),
            tcp_keepalive: cli
                .tcp_keepalive_s
                .or(file.tcp_keepalive_s)
                .map(Duration::from_secs)
                .unwrap_or(d.tcp_keepalive),
            max_pending_output: cli
                .max_pending_output
                .or(file.max_pending_output)
                .unwrap_or(d.max_pending_output),
        };
        if limits.http_head_timeout.is_zero() {
            return Err(ConfigError(
                "--http-head-timeout-ms must be above 0 (a request head must have a deadline)"
                    .into(),
            ));
        }
        if limits.max_pending_output < 64 * 1024 {
            return Err(ConfigError(
                "--max-pending-output must be at least 65536 bytes (one signalling message)".into(),
            ));
        }
        let webhook_allow = crate::hooks::AllowList::parse(if cli.webhook_allow_hosts.is_empty() {
            file.webhook_allow_hosts.as_deref().unwrap_or_default()
        } else {
            &cli.webhook_allow_hosts
        })
        .map_err(ConfigError)?;
        let cluster = cluster_settings(cli, file)?;
        Ok(Settings {
            cluster,
            webhook_allow,
            admin,
            limits,
            listen,
            udp,
            announce_ip,
            apps,
            log: cli.log.clone().or_else(|| file.log.clone()),
            signalling,
            stats_interval,
            data_max_message_size: file
                .data_channel_max_message_size
                .unwrap_or(rtc_core::DEFAULT_MAX_DATA_MESSAGE),
            store,
            app_settings,
            shutdown_drain: std::time::Duration::from_millis(
                cli.shutdown_drain_ms
                    .or(file.shutdown_drain_ms)
                    .unwrap_or(0)
                    .min(600_000),
            ),
            cpu_limit: CpuLimit::from_percent(
                cli.cpu_limit
                    .or(file.cpu_limit)
                    .unwrap_or(DEFAULT_CPU_LIMIT),
            ),
            max_remote_candidates: cli
                .max_remote_candidates
                .or(file.max_remote_candidates)
                .unwrap_or(rtc_core::DEFAULT_MAX_REMOTE_CANDIDATES),
        })
    }
}

fn resolve_admin(cli: &Cli, file: &FileConfig) -> Result<AdminSettings, ConfigError> {
    let hosts = if cli.rest_hosts.is_empty() {
        file.rest_hosts.clone().unwrap_or_default()
    } else {
        cli.rest_hosts.clone()
    };
    if let Some(bad) = hosts.iter().find(|h| {
        h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    }) {
        return Err(ConfigError(format!(
            "invalid REST host name {bad:?} (a DNS name, without port)"
        )));
    }
    let proxies = if cli.trusted_proxies.is_empty() {
        file.trusted_proxies.clone().unwrap_or_default()
    } else {
        cli.trusted_proxies.clone()
    };
    let trusted_proxies = antenna_store::parse_cidr_list(&proxies.join(","))
        .map_err(|e| ConfigError(format!("trusted proxies: {e}")))?;
    Ok(AdminSettings {
        token_file: cli
            .admin_token_file
            .clone()
            .or_else(|| file.admin_token_file.clone()),
        trust_loopback: cli.rest_trust_loopback || file.rest_trust_loopback == Some(true),
        hosts,
        trusted_proxies,
    })
}

/// Signalling's per-connection bounds: the command line over the file over the defaults.
fn limits(cli: &Cli, file: &FileConfig, d: &proto_core::Limits) -> proto_core::Limits {
    proto_core::Limits {
        max_publishes_per_conn: cli
            .max_publishes_per_connection
            .or(file.max_publishes_per_connection)
            .unwrap_or(d.max_publishes_per_conn),
        max_plays_per_conn: cli
            .max_plays_per_connection
            .or(file.max_plays_per_connection)
            .unwrap_or(d.max_plays_per_conn),
        max_rooms_per_conn: cli
            .max_rooms_per_connection
            .or(file.max_rooms_per_connection)
            .unwrap_or(d.max_rooms_per_conn),
        max_p2p_per_conn: cli
            .max_p2p_per_connection
            .or(file.max_p2p_per_connection)
            .unwrap_or(d.max_p2p_per_conn),
        max_id_len: file.max_id_length.unwrap_or(d.max_id_len),
        max_name_len: file.max_name_length.unwrap_or(d.max_name_len),
        max_token_len: file.max_token_length.unwrap_or(d.max_token_len),
        max_meta_len: file.max_metadata_length.unwrap_or(d.max_meta_len),
        max_candidate_len: file.max_candidate_length.unwrap_or(d.max_candidate_len),
    }
}

/// The IP put in host candidates when none is configured: the bind IP, or loopback when the
/// socket binds every interface (a browser on the same host then works without flags).
pub fn default_announce_ip(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["antenna"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 7).unwrap();
        assert_eq!(s.listen, DEFAULT_LISTEN);
        assert_eq!(s.udp, DEFAULT_UDP);
        assert_eq!(s.announce_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(s.apps, vec!["WebRTCAppEE".to_string()]);
        assert_eq!(s.signalling.seed, 7);
        assert_eq!(s.signalling.client_start_timeout, Duration::from_secs(10));
        assert_eq!(s.stats_interval, Duration::from_secs(1));
        assert_eq!(s.log, None);
        assert_eq!(s.cpu_limit.percent(), Some(75));
        assert_eq!(s.data_max_message_size, 64 * 1024);
        let file = FileConfig::parse("dataChannelMaxMessageSize = 2048").unwrap();
        let s = Settings::resolve(&cli(&[]), &file, 7).unwrap();
        assert_eq!(s.data_max_message_size, 2048);
    }

    #[test]
    fn webhook_allow_list_from_cli_or_file() {
        let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
        assert!(s.webhook_allow.is_empty(), "default: any host");
        let file = FileConfig::parse("webhook_allow_hosts = [\"hooks.example\"]").unwrap();
        let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
        assert!(s.webhook_allow.allows("hooks.example", 80));
        assert!(!s.webhook_allow.allows("other.example", 80));
        // The command line wins.
        let args = [
            "--webhook-allow-host",
            "127.0.0.1:9000",
            "--webhook-allow-host",
            "[::1]:9000",
        ];
        let s = Settings::resolve(&cli(&args), &file, 0).unwrap();
        assert!(s.webhook_allow.allows("::1", 9000));
        assert!(!s.webhook_allow.allows("hooks.example", 80));
        // A URL is not a host.
        let bad = cli(&["--webhook-allow-host", "http://h/"]);
        assert!(Settings::resolve(&bad, &FileConfig::default(), 0).is_err());
    }

    #[test]
    fn cpu_limit_from_cli_or_file_and_off_switch() {
        let file = FileConfig::parse("cpu_limit = 90").unwrap();
        let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
        assert_eq!(s.cpu_limit.percent(), Some(90));
        // The AMS name works in the file too.
        let ams = FileConfig::parse("cpuLimit = 60").unwrap();
        let s = Settings::resolve(&cli(&[]), &ams, 0).unwrap();
        assert_eq!(s.cpu_limit.percent(), Some(60));
        // The command line wins.
        let s = Settings::resolve(&cli(&["--cpu-limit", "50"]), &file, 0).unwrap();
        assert_eq!(s.cpu_limit.percent(), Some(50));
        // 0 and 100+ turn admission control off, from either source.
        for off in ["0", "100", "400"] {
            let s = Settings::resolve(&cli(&["--cpu-limit", off]), &file, 0).unwrap();
            assert_eq!(s.cpu_limit, CpuLimit::OFF, "--cpu-limit {off}");
        }
        let s =
            Settings::resolve(&cli(&[]), &FileConfig::parse("cpu_limit = 0").unwrap(), 0).unwrap();
        assert_eq!(s.cpu_limit, CpuLimit::OFF);
        // Not a percentage: refused.
        assert!(Cli::try_parse_from(["antenna", "--cpu-limit", "-5"]).is_err());
        assert!(Cli::try_parse_from(["antenna", "--cpu-limit", "high"]).is_err());
        assert!(FileConfig::parse("cpu_limit = \"75%\"").is_err());
    }

    #[test]
    fn limits_from_cli_or_file_with_defaults() {
        let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.limits.ws_idle_timeout, Duration::from_secs(30));
        assert_eq!(s.limits.max_connections_per_ip, 1000);
        let file = FileConfig::parse(
            r#"
            max_connections = 500
            maxConnectionsPerIp = 20
            ws_idle_timeout_ms = 5000
            ws_ping_interval_ms = 2000
            http_head_timeout_ms = 3000
            tcp_keepalive_s = 0
            max_pending_output = 200000
            "#,
        )
        .unwrap();
        let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
        assert_eq!(s.limits.max_connections, 500);
        assert_eq!(s.limits.max_connections_per_ip, 20);
        assert_eq!(s.limits.ws_idle_timeout, Duration::from_secs(5));
        assert_eq!(s.limits.ws_ping_interval, Duration::from_secs(2));
        assert_eq!(s.limits.http_head_timeout, Duration::from_secs(3));
        assert_eq!(s.limits.tcp_keepalive, Duration::ZERO);
        assert_eq!(s.limits.max_pending_output, 200_000);
        let s = Settings::resolve(
            &cli(&[
                "--max-connections",
                "7",
                "--max-connections-per-ip",
                "0",
                "--ws-idle-timeout-ms",
                "0",
                "--tcp-keepalive-s",
                "30",
            ]),
            &file,
            0,
        )
        .unwrap();
        assert_eq!(s.limits.max_connections, 7);
        assert_eq!(s.limits.max_connections_per_ip, 0);
        assert_eq!(s.limits.ws_idle_timeout, Duration::ZERO);
        assert_eq!(s.limits.ws_ping_interval, Duration::from_secs(2));
        assert_eq!(s.limits.tcp_keepalive, Duration::from_secs(30));
        // Nonsense is refused.
        let bad = FileConfig::parse("http_head_timeout_ms = 0").unwrap();
        assert!(Settings::resolve(&cli(&[]), &bad, 0).is_err());
        assert!(Settings::resolve(&cli(&["--max-pending-output", "10"]), &file, 0).is_err());
        assert!(Cli::try_parse_from(["antenna", "--max-connections", "-1"]).is_err());
    }

    #[test]
    fn cli_overrides_file() {
        let file = FileConfig::parse(
            r#"
            listen = "127.0.0.1:6000"
            udp = "10.0.0.5:7000"
            apps = ["A", "B"]
            seed = 3
            log = "debug"
            stunServerURI = "stun:example.org:3478"
            turn_server_username = "u"
            turn_server_credential = "c"
            webRTCClientStartTimeoutMs = 2500
            no_packet_timeout_ms = 4000
            "#,
        )
        .unwrap();
        let s = Settings::resolve(
            &cli(&[
                "--listen",
                "127.0.0.1:7001",
                "--app",
                "LiveApp",
                "--seed",
                "9",
            ]),
            &file,
            1,
        )
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(s.udp, "10.0.0.5:7000".parse().unwrap());
        // A specific bind address is announced as it is.
        assert_eq!(s.announce_ip, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(s.apps, vec!["LiveApp".to_string()]);
        assert_eq!(s.signalling.seed, 9);
        assert_eq!(s.log.as_deref(), Some("debug"));
        assert_eq!(
            s.signalling.ice_servers.stun_server_uri,
            "stun:example.org:3478"
        );
        assert_eq!(
            s.signalling.ice_servers.turn_server_username.as_deref(),
            Some("u")
        );
        assert_eq!(
            s.signalling.ice_servers.turn_server_credential.as_deref(),
            Some("c")
        );
        assert_eq!(
            s.signalling.client_start_timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(s.signalling.no_packet_timeout, Duration::from_millis(4000));
    }

    #[test]
    fn file_apps_used_without_cli_apps() {
        let file = FileConfig::parse("apps = [\"A\", \"B\"]").unwrap();
        let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
        assert_eq!(s.apps, vec!["A".to_string(), "B".to_string()]);
    }

    #[test]
    fn app_tables_name_apps_and_carry_ams_settings() {
        let file = FileConfig::parse(
            r#"
            data_dir = "/tmp/x"
            [apps.WebRTCAppEE]
            publishTokenControlEnabled = true
            webRTCViewerLimit = 2
            [apps.LiveApp]
            remoteAllowedCIDR = "10.0.0.0/8"
            "#,
        )
        .unwrap();
        let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
        assert_eq!(
            s.apps,
            vec!["LiveApp".to_string(), "WebRTCAppEE".to_string()]
        );
        assert_eq!(s.store, StoreLocation::Dir(PathBuf::from("/tmp/x")));
        let (name, web) = &s.app_settings[1];
        assert_eq!(name, "WebRTCAppEE");
        assert_eq!(web["publishTokenControlEnabled"], true);
        assert_eq!(web["webRTCViewerLimit"], 2);
        // --app picks the served apps; tables of other apps are ignored.
        let s = Settings::resolve(&cli(&["--app", "LiveApp", "--memory-store"]), &file, 0).unwrap();
        assert_eq!(s.app_settings.len(), 1);
        assert_eq!(s.store, StoreLocation::Memory);
        let s = Settings::resolve(&cli(&["--data-dir", "d"]), &FileConfig::default(), 0).unwrap();
        assert_eq!(s.store, StoreLocation::Dir(PathBuf::from("d")));
        let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
        assert_eq!(s.store, StoreLocation::Dir(PathBuf::from(DEFAULT_DATA_DIR)));
    }

    #[test]
    fn admin_api_options() {
        let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
        assert_eq!(s.admin, AdminSettings::default());
        let file = FileConfig::parse(
            r#"
            admin_token_file = "/etc/antenna/token"
            rest_trust_loopback = true
            rest_hosts = ["media.example.org"]
            trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
            "#,
        )
        .unwrap();
        let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
        assert_eq!(
            s.admin.token_file.as_deref(),
            Some(Path::new("/etc/antenna/token"))
        );
        assert!(s.admin.trust_loopback);
        assert_eq!(s.admin.hosts, vec!["media.example.org".to_string()]);
        assert_eq!(s.admin.trusted_proxies.len(), 2);
        let s = Settings::resolve(
            &cli(&[
                "--rest-host",
                "a.example",
                "--trusted-proxy",
                "::1",
                "--admin-token-file",
                "t",
            ]),
            &file,
            0,
        )
        .unwrap();
        assert_eq!(s.admin.hosts, vec!["a.example".to_string()]);
        assert_eq!(s.admin.trusted_proxies.len(), 1);
        assert_eq!(s.admin.token_file.as_deref(), Some(Path::new("t")));
        for bad in [
            &["--trusted-proxy", "nope"][..],
            &["--rest-host", "a:80"],
            &["--rest-host", "a/b"],
        ] {
            assert!(
                Settings::resolve(&cli(bad), &FileConfig::default(), 0).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn limits_from_cli_file_and_defaults() {
        let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
        assert_eq!(s.signalling.limits, proto_core::Limits::default());
        assert_eq!(
            s.max_remote_candidates,
            rtc_core::DEFAULT_MAX_REMOTE_CANDIDATES
        );
        let file = FileConfig::parse(
            r#"
            max_publishes_per_connection = 3
            max_plays_per_connection = 4
            max_rooms_per_connection = 5
            max_p2p_per_connection = 6
            max_id_length = 64
            max_name_length = 65
            max_token_length = 66
            max_metadata_length = 67
            max_candidate_length = 68
            max_remote_candidates = 8
            "#,
        )
        .unwrap();
        let s = Settings::resolve(&cli(&["--max-plays-per-connection", "9"]), &file, 0).unwrap();
        let l = &s.signalling.limits;
        assert_eq!(
            (
                l.max_publishes_per_conn,
                l.max_plays_per_conn,
                l.max_rooms_per_conn,
                l.max_p2p_per_conn
            ),
            (3, 9, 5, 6)
        );
        assert_eq!(
            (
                l.max_id_len,
                l.max_name_len,
                l.max_token_len,
                l.max_meta_len,
                l.max_candidate_len
            ),
            (64, 65, 66, 67, 68)
        );
        assert_eq!(s.max_remote_candidates, 8);
        let s = Settings::resolve(&cli(&["--max-remote-candidates", "2"]), &file, 0).unwrap();
        assert_eq!(s.max_remote_candidates, 2);
    }

    #[test]
    fn unknown_key_is_an_error() {
        let err = FileConfig::parse("lisen = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.0.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_app_names_rejected() {
        for bad in ["a/b", "", "..", "a b"] {
            let c = Cli {
                apps: vec![bad.to_string()],
                ..Cli::default()
            };
            assert!(
                Settings::resolve(&c, &FileConfig::default(), 0).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unspecified_announce_ip_rejected() {
        assert!(Settings::resolve(
            &cli(&["--announce-ip", "0.0.0.0"]),
            &FileConfig::default(),
            0
        )
        .is_err());
        assert!(Settings::resolve(
            &cli(&["--udp", "[::]:5000", "--announce-ip", "127.0.0.1"]),
            &FileConfig::default(),
            0
        )
        .is_err());
    }

    #[test]
    fn ipv6_any_announces_ipv6_loopback() {
        let s = Settings::resolve(&cli(&["--udp", "[::]:0"]), &FileConfig::default(), 0).unwrap();
        assert_eq!(s.announce_ip, "::1".parse::<IpAddr>().unwrap());
    }
}
