//! Signalling's configuration ([`Config`], [`IceServers`]) and the connection id the runtime
//! allocates ([`ConnId`]).

use std::time::Duration;

use super::Limits;

/// One WebSocket connection, allocated by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// STUN/TURN servers handed to clients in `iceServerConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServers {
    /// `stun:` or `turn:` URI; empty means none (the SDK then keeps its defaults).
    pub stun_server_uri: String,
    /// TURN user name.
    pub turn_server_username: Option<String>,
    /// TURN credential.
    pub turn_server_credential: Option<String>,
}

/// Signalling configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seed of the RNG that makes generated stream ids.
    pub seed: u64,
    /// `webRTCClientStartTimeoutMs`: how long a publisher may take to send media.
    pub client_start_timeout: Duration,
    /// How often `bitrateMeasurement` is sent to players.
    pub bitrate_interval: Duration,
    /// `playWebRTCStreamOnceForEachSession`.
    pub play_once_per_session: bool,
    /// STUN/TURN servers for `iceServerConfig`.
    pub ice_servers: IceServers,
    /// `maxVideoTrackCount` reported in `joinedTheRoom` (-1 = unlimited).
    pub max_track_count: i64,
    /// Per-connection bounds (counts and field lengths).
    pub limits: Limits,
    /// A publisher whose media started and then stopped for this long ends with
    /// `noPacketReceivedForTimeoutDuration`; zero turns the check off. Measured from the media
    /// layer's periodic statistics.
    pub no_packet_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 0,
            client_start_timeout: Duration::from_millis(10_000),
            bitrate_interval: Duration::from_secs(5),
            play_once_per_session: true,
            ice_servers: IceServers::default(),
            max_track_count: -1,
            limits: Limits::default(),
            no_packet_timeout: Duration::from_millis(10_000),
        }
    }
}
