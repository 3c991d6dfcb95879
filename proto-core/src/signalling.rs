//! The signalling state machine: one object for the whole server.
//!
//! (Skeleton: the API is fixed; the flows are being filled in.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::SignalError;
use crate::media::{MediaCmd, MediaEvent};
use crate::message::{ClientMessage, ServerMessage};

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
        }
    }
}

/// What a publisher asks for, as the access policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest<'a> {
    /// The application (first path segment of the WebSocket URL).
    pub app: &'a str,
    /// The stream id.
    pub stream_id: &'a str,
    /// `token`, if given.
    pub token: Option<&'a str>,
    /// `subscriberId`, if given.
    pub subscriber_id: Option<&'a str>,
    /// `subscriberCode`, if given.
    pub subscriber_code: Option<&'a str>,
    /// `mainTrack` / room, if given.
    pub main_track: Option<&'a str>,
}

/// What a player asks for, as the access policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayRequest<'a> {
    /// The application.
    pub app: &'a str,
    /// The stream id.
    pub stream_id: &'a str,
    /// `token`, if given.
    pub token: Option<&'a str>,
    /// `subscriberId`, if given.
    pub subscriber_id: Option<&'a str>,
    /// `subscriberCode`, if given.
    pub subscriber_code: Option<&'a str>,
    /// `room`, if given.
    pub room: Option<&'a str>,
    /// Current WebRTC viewers of the stream (before this one).
    pub viewers: usize,
}

/// The seam for stream security and the datastore (tokens, TOTP, registered streams, planned
/// dates, viewer limits). Called synchronously; implementations answer from memory.
pub trait AccessPolicy: std::fmt::Debug {
    /// May this client publish? `Err` is sent to the client as that error definition.
    fn check_publish(&mut self, now: Instant, req: &PublishRequest<'_>) -> Result<(), SignalError>;
    /// May this client play?
    fn check_play(&mut self, now: Instant, req: &PlayRequest<'_>) -> Result<(), SignalError>;
}

/// The policy of an open server: everything is allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAccess;

impl AccessPolicy for OpenAccess {
    fn check_publish(&mut self, _: Instant, _: &PublishRequest<'_>) -> Result<(), SignalError> {
        Ok(())
    }
    fn check_play(&mut self, _: Instant, _: &PlayRequest<'_>) -> Result<(), SignalError> {
        Ok(())
    }
}

/// An output of [`Signalling`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this message on that connection.
    Send(ConnId, ServerMessage),
    /// Close that connection (after sending what was queued before).
    Close(ConnId),
    /// A command for the media layer.
    Media(MediaCmd),
}

/// The signalling state machine for the whole server.
#[derive(Debug)]
pub struct Signalling {
    config: Config,
    outputs: VecDeque<Output>,
    access: Box<dyn AccessPolicy>,
}

impl Signalling {
    /// A server with no connections.
    pub fn new(config: Config, _now: Instant) -> Self {
        Signalling {
            config,
            outputs: VecDeque::new(),
            access: Box::new(OpenAccess),
        }
    }

    /// Replaces the access policy (default [`OpenAccess`]).
    pub fn set_access_policy(&mut self, policy: Box<dyn AccessPolicy>) {
        self.access = policy;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A WebSocket connection opened on application `app`.
    pub fn handle_open(&mut self, _now: Instant, _conn: ConnId, _app: &str) {}

    /// A text frame arrived on `conn`.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        match ClientMessage::parse(text) {
            Ok(msg) => self.handle_message(now, conn, msg),
            Err(e) => self.outputs.push_back(Output::Send(
                conn,
                ServerMessage::error(e.signal_error(), None),
            )),
        }
    }

    /// A parsed client message arrived on `conn`.
    pub fn handle_message(&mut self, _now: Instant, conn: ConnId, msg: ClientMessage) {
        if let ClientMessage::Ping = msg {
            self.outputs
                .push_back(Output::Send(conn, ServerMessage::Pong));
        }
    }

    /// `conn` closed (either side). Ends everything it owned.
    pub fn handle_closed(&mut self, _now: Instant, _conn: ConnId) {}

    /// An event from the media layer.
    pub fn handle_media(&mut self, _now: Instant, _event: MediaEvent) {}

    /// Time passed; fire due timers.
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// The runtime reports CPU/memory over (or back under) the limit.
    pub fn set_overloaded(&mut self, _now: Instant, _overloaded: bool) {}

    /// Graceful shutdown: `server_will_stop` to every connection, then close them all.
    pub fn shutdown(&mut self, _now: Instant) {}

    /// The next output, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest instant at which [`Signalling::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}
