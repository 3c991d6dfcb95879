//! The datastore as the binary uses it: opening it (or failing to), seeding application
//! settings from the configuration, the access policy installed into signalling, and the
//! signalling options that follow the application settings. No IO besides opening the store.
//!
//! # Settings rule
//!
//! The AMS settings of an application live in the datastore. On the first start (no stored
//! settings for the application) they are seeded from the configuration: the AMS defaults,
//! then the top-level signalling keys of the TOML file (`stunServerURI`,
//! `webRTCClientStartTimeoutMs`, …), then the application's `[apps.<App>]` table. After that the
//! **stored settings win**: `PUT /rest/v2/applications/settings/<App>` changes them at once and
//! they persist across restarts; editing the file later has no effect on a stored application
//! (delete the data directory, or use the REST API).
//!
//! Signalling options are server-wide, so they follow the settings of the **first**
//! application (`apps[0]`): `webRTCClientStartTimeoutMs`, `playWebRTCStreamOnceForEachSession`,
//! `stunServerURI`, `turnServerUsername`, `turnServerCredential`, `maxVideoTrackCount`.
//! Security settings are per application and always read live from the store.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use antenna_cluster::{DataConfig, SharedData};
use antenna_persist::{Notify, WriteBehind};
use antenna_store::{
    shared, AppSettings, Data, MemStore, SharedStore, Store, StoreError, StreamSecurity, WriteOp,
    WriteSeq,
};
use proto_core::{AccessPolicy, Grant, JoinRoomRequest, PlayRequest, PublishRequest, SignalError};
use serde_json::{Map, Value};
use tracing::{debug, warn};

use crate::config::{StoreLocation, DB_FILE};

/// A store that could not be opened: reads see nothing, writes and health fail, so every
/// publish and play gets `data_store_not_available` and the REST API answers 503.
#[derive(Debug)]
pub struct FailedStore {
    data: Data,
    why: String,
}

impl FailedStore {
    /// A failed store, with the reason.
    pub fn new(why: String) -> Self {
        FailedStore {
            data: Data::new(),
            why,
        }
    }

    fn error(&self) -> StoreError {
        StoreError::Unavailable(self.why.clone())
    }
}

impl Store for FailedStore {
    fn data(&self) -> &Data {
        &self.data
    }
    fn write(&mut self, _op: WriteOp) -> Result<WriteSeq, StoreError> {
        Err(self.error())
    }
    fn durable_seq(&self) -> WriteSeq {
        WriteSeq(0)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        Err(self.error())
    }
    fn health(&self) -> Result<(), StoreError> {
        Err(self.error())
    }
}

/// The datastore of the process.
#[derive(Debug, Clone)]
pub struct Datastore {
    /// The shared store (a [`FailedStore`] when it could not be opened).
    pub store: SharedStore,
    /// Where it lives (`None`: memory or Redis).
    pub path: Option<PathBuf>,
    /// Cluster mode: the same store as [`SharedData`], whose Redis sockets the runtime
    /// drives (`--cluster`).
    pub cluster: Option<Rc<RefCell<SharedData>>>,
}

/// Opens the datastore at `location` (creating the directory), or a [`FailedStore`] saying
/// why not. `notify` is called on the store thread after each durable commit.
pub fn open(location: &StoreLocation, notify: Notify) -> Datastore {
    match location {
        StoreLocation::Memory => Datastore {
            store: shared(MemStore::new()),
            path: None,
            cluster: None,
        },
        StoreLocation::Dir(dir) => {
            let path = dir.join(DB_FILE);
            let store = match open_dir(dir, &path, notify) {
                Ok(s) => shared(s),
                Err(why) => shared(FailedStore::new(why)),
            };
            Datastore {
                store,
                path: Some(path),
                cluster: None,
            }
        }
    }
}

/// Cluster mode (`--cluster`): the datastore is the cluster's shared data in Redis
/// ([`SharedData`]: every node keeps the records in memory, writes go through to Redis, other
/// nodes' changes come back by pub/sub). Not usable until the runtime has loaded it from
/// Redis: until then its health is `Unavailable` (REST 503, `data_store_not_available`).
pub fn open_cluster(config: DataConfig, now: Instant) -> Datastore {
    let core = Rc::new(RefCell::new(SharedData::new(config, now)));
    let store: SharedStore = core.clone();
    Datastore {
        store,
        path: None,
        cluster: Some(core),
    }
}

fn open_dir(dir: &Path, path: &Path, notify: Notify) -> Result<WriteBehind, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    WriteBehind::open(path, Some(notify)).map_err(|e| format!("{}: {e}", path.display()))
}

impl Datastore {
    /// `Err(reason)` if the store cannot be used.
    pub fn health(&self) -> Result<(), StoreError> {
        self.store.borrow().health()
    }

    /// Stores `seed` as the settings of each application that has none yet. Returns the
    /// applications seeded.
    pub fn seed_settings(&self, seed: &[(String, AppSettings)]) -> Result<Vec<String>, StoreError> {
        let mut seeded = Vec::new();
        let mut store = self.store.borrow_mut();
        for (app, settings) in seed {
            if store.data().stored_settings(app).is_some() {
                continue;
            }
            store.write(WriteOp::PutSettings {
                app: app.clone(),
                settings: Box::new(settings.clone()),
            })?;
            seeded.push(app.clone());
        }
        Ok(seeded)
    }

    /// The effective settings of `app` (stored, else the AMS defaults).
    pub fn settings(&self, app: &str) -> AppSettings {
        self.store.borrow().data().settings(app)
    }
}

/// The admin token file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Where the admin token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Read from this file.
    Read(PathBuf),
    /// Generated now and written to this file (first start).
    Created(PathBuf),
    /// Generated now, kept in memory only (`--memory-store` without a token file).
    Ephemeral,
}

/// The admin REST token: read from `file` (default: `DATA_DIR/admin-token`), or generated from
/// `random` (32 bytes from the OS) and written there with mode 0600 when the file does not
/// exist yet. With a memory store and no file, a token is generated for this run only.
pub fn admin_token(
    location: &StoreLocation,
    file: Option<&Path>,
    random: [u8; 32],
) -> Result<(String, TokenSource), String> {
    let path = match (file, location) {
        (Some(f), _) => f.to_path_buf(),
        (None, StoreLocation::Dir(dir)) => {
            // The data directory may be unusable (the datastore then reports it and refuses
            // media); the admin API still gets a token, for this run only.
            return match token_file(&dir.join(ADMIN_TOKEN_FILE), random) {
                Ok(t) => Ok(t),
                Err(e) => {
                    warn!("{e}; using a token for this run only");
                    Ok((hex(&random), TokenSource::Ephemeral))
                }
            };
        }
        (None, StoreLocation::Memory) => return Ok((hex(&random), TokenSource::Ephemeral)),
    };
    token_file(&path, random)
}

/// Reads the token file at `path`, or creates it with a token made from `random`.
fn token_file(path: &Path, random: [u8; 32]) -> Result<(String, TokenSource), String> {
    let path = path.to_path_buf();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{}: the admin token must be at least 16 printable characters",
                    path.display()
                ));
            }
            Ok((token, TokenSource::Read(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = hex(&random);
            write_secret(&path, &token)
                .map_err(|e| format!("cannot write the admin token to {}: {e}", path.display()))?;
            Ok((token, TokenSource::Created(path)))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `path` (and its directory) with mode 0600 holding `token`; fails if it exists.
fn write_secret(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()
}

/// The settings seeded for `app`: AMS defaults, then the top-level signalling options of the
/// configuration, then the application's table. Keys Antenna does not model are kept (and
/// logged), a wrongly typed value is an error.
pub fn seed_for(
    app: &str,
    signalling: &proto_core::Config,
    table: Option<&Map<String, Value>>,
) -> Result<AppSettings, String> {
    let mut base = AppSettings {
        webrtc_client_start_timeout_ms: u64::try_from(signalling.client_start_timeout.as_millis())
            .unwrap_or(u64::MAX),
        play_webrtc_stream_once_for_each_session: signalling.play_once_per_session,
        stun_server_uri: signalling.ice_servers.stun_server_uri.clone(),
        turn_server_username: signalling
            .ice_servers
            .turn_server_username
            .clone()
            .unwrap_or_default(),
        turn_server_credential: signalling
            .ice_servers
            .turn_server_credential
            .clone()
            .unwrap_or_default(),
        max_video_track_count: signalling.max_track_count,
        ..AppSettings::default()
    };
    if let Some(table) = table {
        let mut merged = match serde_json::to_value(&base) {
            Ok(Value::Object(m)) => m,
            _ => return Err("cannot encode the default settings".into()),
        };
        merged.extend(table.clone());
        base = serde_json::from_value(Value::Object(merged))
            .map_err(|e| format!("[apps.{app}]: {e}"))?;
        antenna_store::parse_cidr_list(&base.remote_allowed_cidr)
            .map_err(|e| format!("[apps.{app}] remoteAllowedCIDR: {e}"))?;
        for key in base.extra.keys() {
            warn!(app, key, "setting not used by antenna; stored as given");
        }
    }
    Ok(base)
}

/// Applies an application's settings to the signalling options that mirror them.
pub fn apply_to_signalling(settings: &AppSettings, config: &mut proto_core::Config) {
    config.client_start_timeout = Duration::from_millis(settings.webrtc_client_start_timeout_ms);
    config.play_once_per_session = settings.play_webrtc_stream_once_for_each_session;
    config.ice_servers = proto_core::IceServers {
        stun_server_uri: settings.stun_server_uri.clone(),
        turn_server_username: Some(settings.turn_server_username.clone()).filter(|s| !s.is_empty()),
        turn_server_credential: Some(settings.turn_server_credential.clone())
            .filter(|s| !s.is_empty()),
    };
    config.max_track_count = settings.max_video_track_count;
}

/// Applies an application's data channel settings (`dataChannelEnabled`,
/// `dataChannelPlayerDistribution`) to the media layer's; the message size limit is kept. An
/// unknown distribution value counts as AMS's default `all`.
pub fn apply_to_data(settings: &AppSettings, config: &mut rtc_core::DataConfig) {
    config.enabled = settings.data_channel_enabled;
    config.player_distribution =
        rtc_core::PlayerDistribution::parse(&settings.data_channel_player_distribution)
            .unwrap_or_else(|| {
                warn!(
                    value = %settings.data_channel_player_distribution,
                    "unknown dataChannelPlayerDistribution; using all"
                );
                rtc_core::PlayerDistribution::All
            });
}

/// The access policy installed into signalling: [`StreamSecurity`] behind a health check, so
/// that a store that could not be opened (its settings are unknown) answers
/// `data_store_not_available` to every publish and play. A store whose commits fail for now
/// ([`StoreError::Degraded`]) keeps serving from memory: only a request that must spend a
/// one-time token gets `data_store_not_available` (the store refuses that write until it is
/// durable again, see [`antenna_store::WriteOp::needs_durability`]). It also
/// records the live status (`broadcasting` / `finished`) and WebRTC viewer count of streams that
/// have a broadcast record, for the REST API (written behind, never waited for).
pub struct Policy {
    store: SharedStore,
    inner: StreamSecurity,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").finish_non_exhaustive()
    }
}

impl Policy {
    /// The policy over `store`, reading wall-clock time (unix ms) from `clock`.
    pub fn new(store: SharedStore, clock: impl Fn() -> u64 + 'static) -> Policy {
        Policy {
            inner: StreamSecurity::new(store.clone(), clock),
            store,
        }
    }

    /// The policy as the server runs it: wall-clock time (token expiry, TOTP windows, the
    /// broadcasts' `updateTime`) is derived from the `now` of each call, anchored at `unix_ms`
    /// read once by the runtime at `at` (see [`StreamSecurity::with_anchor`]).
    pub fn with_anchor(store: SharedStore, at: Instant, unix_ms: u64) -> Policy {
        Policy {
            inner: StreamSecurity::with_anchor(store.clone(), at, unix_ms),
            store,
        }
    }

    fn status(&mut self, now: Instant, app: &str, stream_id: &str, status: &str) {
        let now_ms = self.inner.wall_ms(now);
        let mut store = self.store.borrow_mut();
        if let Err(e) =
            antenna_store::set_broadcast_status(&mut *store, app, stream_id, status, now_ms)
        {
            debug!(app, stream_id, status, "status not recorded: {e}");
        }
    }

    fn healthy(&self) -> Result<(), SignalError> {
        match self.store.borrow().health() {
            Err(e) if !e.is_degraded() => {
                debug!("refused: {e}");
                Err(SignalError::from(e))
            }
            _ => Ok(()),
        }
    }
}

impl AccessPolicy for Policy {
    fn check_publish(
        &mut self,
        now: Instant,
        req: &PublishRequest<'_>,
    ) -> Result<Grant, SignalError> {
        self.healthy()?;
        self.inner.check_publish(now, req)
    }

    fn check_play(&mut self, now: Instant, req: &PlayRequest<'_>) -> Result<Grant, SignalError> {
        self.healthy()?;
        self.inner.check_play(now, req)
    }

    fn commit(&mut self, now: Instant, grant: Grant) -> Result<(), SignalError> {
        self.healthy()?;
        self.inner.commit(now, grant)
    }

    fn check_join_room(
        &mut self,
        now: Instant,
        req: &JoinRoomRequest<'_>,
    ) -> Result<(), SignalError> {
        self.healthy()?;
        self.inner.check_join_room(now, req)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn records(&self) -> Option<&dyn proto_core::StoredRecords> {
        self.inner.records()
    }

    fn on_publish_started(&mut self, now: Instant, app: &str, stream_id: &str) {
        self.status(now, app, stream_id, "broadcasting");
    }

    fn on_publish_finished(&mut self, now: Instant, app: &str, stream_id: &str) {
        self.status(now, app, stream_id, "finished");
    }

    fn on_viewer_count(&mut self, app: &str, stream_id: &str, viewers: usize) {
        let mut store = self.store.borrow_mut();
        if let Err(e) = antenna_store::set_webrtc_viewer_count(&mut *store, app, stream_id, viewers)
        {
            debug!(app, stream_id, viewers, "viewer count not recorded: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
