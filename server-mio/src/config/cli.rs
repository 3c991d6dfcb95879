//! The command line ([`Cli`], `clap`): every setting, each also a key of the TOML file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

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

    /// The cluster's shared secret: this node relays other nodes' streams to its players,
    /// and accepts other nodes' relays, with credentials made from it (the same on every
    /// node; prefer the TOML file, a command line is visible to other local users)
    /// [default: none, no relays].
    #[arg(long, value_name = "SECRET")]
    pub cluster_secret: Option<String>,

    /// UDP ports of this node's relays (`START-END`, one relay each, so their number bounds
    /// the streams relayed here) [default: 16 ports the system picks].
    #[arg(long, value_name = "START-END")]
    pub relay_ports: Option<String>,

    /// This node's role in the cluster: `origin` takes publishers and pulls no other node's
    /// stream, `edge` serves players and refuses publishers (`unauthorized_access`, WHIP
    /// `403`), `both` does both; a WebSocket URL's `?target=edge` makes its connection an
    /// edge's on any node [default: both].
    #[arg(long, value_name = "ROLE")]
    pub cluster_role: Option<String>,

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

    /// How RTP is sent to players: `fast` (sealed by Antenna once the player's SRTP is
    /// AES-GCM, str0m otherwise) or `str0m` (always str0m's send path) [default: fast].
    #[arg(long, value_name = "fast|str0m")]
    pub forwarding: Option<String>,
}
