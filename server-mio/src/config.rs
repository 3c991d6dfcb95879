//! Command line and TOML configuration of the `antenna` binary.
//!
//! Every setting can come from the command line or from a TOML file given with `--config`;
//! the command line wins, then the file, then the built-in default. The command line is
//! `config/cli.rs` ([`Cli`]), the file `config/file.rs` ([`FileConfig`]); this module merges
//! them over the defaults and validates the result ([`Settings::resolve`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

mod cli;
mod file;

pub use cli::Cli;
pub use file::{AppsConfig, FileConfig};

use proto_core::ClusterRole;

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
    /// Players' RTP sealed by Antenna where their SRTP allows (`--forwarding fast`).
    pub fast_path: bool,
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
    /// The cluster's shared secret (the relays' credential); empty: no relays.
    pub secret: String,
    /// The relay UDP ports (`START-END`, one relay each); `None`: [`DEFAULT_RELAYS`] ports
    /// the system picks.
    pub relay_ports: Option<(u16, u16)>,
    /// This node's role (`--cluster-role`).
    pub role: ClusterRole,
}

/// Relay sockets bound when `--relay-ports` is not given.
pub const DEFAULT_RELAYS: usize = 16;
/// Most relay ports.
pub const MAX_RELAYS: usize = 1024;

fn parse_ports(s: &str) -> Result<(u16, u16), ConfigError> {
    let bad = || {
        ConfigError(format!(
            "--relay-ports {s:?}: use START-END (at most {MAX_RELAYS} ports)"
        ))
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || b < a || usize::from(b - a) >= MAX_RELAYS {
        return Err(bad());
    }
    Ok((a, b))
}

/// Longest node id in bytes (it is part of Redis keys).
pub const MAX_NODE_ID: usize = 128;

fn cluster_settings(cli: &Cli, file: &FileConfig) -> Result<Option<ClusterSettings>, ConfigError> {
    let secret = cli
        .cluster_secret
        .clone()
        .or_else(|| file.cluster_secret.clone());
    let ports = cli.relay_ports.clone().or_else(|| file.relay_ports.clone());
    let role = cli.cluster_role.as_ref().or(file.cluster_role.as_ref());
    let Some(url) = cli.cluster.as_ref().or(file.cluster.as_ref()) else {
        if secret.is_some() || ports.is_some() || role.is_some() {
            return Err(ConfigError(
                "--cluster-secret, --relay-ports and --cluster-role need --cluster".into(),
            ));
        }
        return Ok(None);
    };
    let relay_ports = ports.as_deref().map(parse_ports).transpose()?;
    let role = match role {
        None => ClusterRole::Both,
        Some(r) => ClusterRole::parse(r).ok_or_else(|| {
            ConfigError(format!("--cluster-role {r:?}: use origin, edge or both"))
        })?,
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
    Ok(Some(ClusterSettings {
        redis,
        db,
        node_id,
        secret: secret.unwrap_or_default(),
        relay_ports,
        role,
    }))
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
            fast_path: match cli.forwarding.as_deref().or(file.forwarding.as_deref()) {
                None | Some("fast") => true,
                Some("str0m") => false,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "--forwarding: `{other}` is neither `fast` nor `str0m`"
                    )))
                }
            },
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
mod tests;
