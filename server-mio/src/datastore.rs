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

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use antenna_store::{
    shared, AppSettings, Data, MemStore, Notify, SharedStore, Store, StoreError, StreamSecurity,
    WriteBehind, WriteOp, WriteSeq,
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
    /// Where it lives (`None`: memory).
    pub path: Option<PathBuf>,
}

/// Opens the datastore at `location` (creating the directory), or a [`FailedStore`] saying
/// why not. `notify` is called on the store thread after each durable commit.
pub fn open(location: &StoreLocation, notify: Notify) -> Datastore {
    match location {
        StoreLocation::Memory => Datastore {
            store: shared(MemStore::new()),
            path: None,
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
            }
        }
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

/// The access policy installed into signalling: [`StreamSecurity`] behind a health check, so
/// that a store that cannot be opened or has failed answers `data_store_not_available`. It also
/// records the live status (`broadcasting` / `finished`) and WebRTC viewer count of streams that
/// have a broadcast record, for the REST API (written behind, never waited for).
pub struct Policy {
    store: SharedStore,
    inner: StreamSecurity,
    clock: Box<dyn Fn() -> u64>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").finish_non_exhaustive()
    }
}

impl Policy {
    /// The policy over `store`, reading wall-clock time (unix ms) from `clock`.
    pub fn new(store: SharedStore, clock: impl Fn() -> u64 + Clone + 'static) -> Policy {
        Policy {
            inner: StreamSecurity::new(store.clone(), clock.clone()),
            store,
            clock: Box::new(clock),
        }
    }

    /// The policy as the server runs it: the stream security derives wall-clock time from the
    /// `now` of each call, anchored at `clock()` read once here at `at` (see
    /// [`StreamSecurity::with_anchor`]).
    pub fn with_anchor(
        store: SharedStore,
        clock: impl Fn() -> u64 + 'static,
        at: Instant,
    ) -> Policy {
        let unix_ms = clock();
        Policy {
            inner: StreamSecurity::with_anchor(store.clone(), at, unix_ms),
            store,
            clock: Box::new(clock),
        }
    }

    fn status(&mut self, app: &str, stream_id: &str, status: &str) {
        let now_ms = (self.clock)();
        let mut store = self.store.borrow_mut();
        if let Err(e) =
            antenna_store::set_broadcast_status(&mut *store, app, stream_id, status, now_ms)
        {
            debug!(app, stream_id, status, "status not recorded: {e}");
        }
    }

    fn healthy(&self) -> Result<(), SignalError> {
        self.store.borrow().health().map_err(|e| {
            debug!("refused: {e}");
            SignalError::from(e)
        })
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

    fn on_publish_started(&mut self, app: &str, stream_id: &str) {
        self.status(app, stream_id, "broadcasting");
    }

    fn on_publish_finished(&mut self, app: &str, stream_id: &str) {
        self.status(app, stream_id, "finished");
    }

    fn on_viewer_count(&mut self, app: &str, stream_id: &str, viewers: usize) {
        let mut store = self.store.borrow_mut();
        if let Err(e) = antenna_store::set_webrtc_viewer_count(&mut *store, app, stream_id, viewers)
        {
            debug!(app, stream_id, viewers, "viewer count not recorded: {e}");
        }
    }
}

/// The REST API's "loopback is always allowed" rule, made strict: only `127.0.0.1` and `::1`
/// count as the local host. Another loopback address (`127.0.0.2`, …) must be inside the
/// application's `remoteAllowedCIDR` like any remote caller. `true`: refuse with 403 before the
/// request reaches the REST handlers (which check everything else).
pub fn refuse_other_loopback(peer: IpAddr, settings: &AppSettings) -> bool {
    let peer = peer.to_canonical();
    let strict_local = match peer {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == std::net::Ipv6Addr::LOCALHOST,
    };
    if !peer.is_loopback() || strict_local {
        return false;
    }
    let allowed = antenna_store::parse_cidr_list(&settings.remote_allowed_cidr)
        .map(|nets| nets.iter().any(|n| n.contains(&peer)))
        .unwrap_or(false);
    !allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_layers_defaults_file_and_table() {
        let mut sig = proto_core::Config::default();
        sig.ice_servers.stun_server_uri = "stun:a:1".into();
        let s = seed_for("A", &sig, None).unwrap();
        assert_eq!(s.stun_server_uri, "stun:a:1");
        assert_eq!(s.webrtc_client_start_timeout_ms, 10_000);
        let mut t = Map::new();
        t.insert("publishTokenControlEnabled".into(), true.into());
        t.insert("stunServerURI".into(), "stun:b:2".into());
        let s = seed_for("A", &sig, Some(&t)).unwrap();
        assert!(s.publish_token_control_enabled);
        assert_eq!(s.stun_server_uri, "stun:b:2");
        t.insert("webRTCViewerLimit".into(), "many".into());
        assert!(seed_for("A", &sig, Some(&t)).is_err());
        let mut t = Map::new();
        t.insert("remoteAllowedCIDR".into(), "nope".into());
        assert!(seed_for("A", &sig, Some(&t)).is_err());
        let mut cfg = proto_core::Config::default();
        apply_to_signalling(&s, &mut cfg);
        assert_eq!(cfg.ice_servers.stun_server_uri, "stun:b:2");
        assert_eq!(cfg.ice_servers.turn_server_username, None);
    }

    #[test]
    fn live_status_and_viewers_of_stored_broadcasts() {
        let store = shared(MemStore::new());
        store
            .borrow_mut()
            .write(WriteOp::PutBroadcast {
                app: "A".into(),
                broadcast: Box::new(antenna_store::Broadcast {
                    stream_id: "s".into(),
                    ..antenna_store::Broadcast::default()
                }),
            })
            .unwrap();
        let mut p = Policy::new(store.clone(), || 42);
        p.on_publish_started("A", "s");
        p.on_viewer_count("A", "s", 2);
        p.on_publish_started("A", "unknown");
        let b = store.borrow().data().broadcast("A", "s").cloned().unwrap();
        assert_eq!(
            (b.status.as_str(), b.update_time, b.webrtc_viewer_count),
            ("broadcasting", 42, 2)
        );
        p.on_publish_finished("A", "s");
        assert_eq!(
            store.borrow().data().broadcast("A", "s").unwrap().status,
            "finished"
        );
    }

    #[test]
    fn other_loopback_addresses_need_the_cidr_list() {
        let s = AppSettings::default();
        assert!(!refuse_other_loopback("127.0.0.1".parse().unwrap(), &s));
        assert!(!refuse_other_loopback("::1".parse().unwrap(), &s));
        assert!(!refuse_other_loopback("10.0.0.1".parse().unwrap(), &s));
        assert!(refuse_other_loopback("127.0.0.2".parse().unwrap(), &s));
        let s = AppSettings {
            remote_allowed_cidr: "127.0.0.0/8".into(),
            ..AppSettings::default()
        };
        assert!(!refuse_other_loopback("127.0.0.2".parse().unwrap(), &s));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the policy ignores the Instant; any will do
    fn failed_store_refuses_everything() {
        let store = shared(FailedStore::new("broken".into()));
        let mut p = Policy::new(store, || 0);
        let req = PublishRequest {
            app: "A",
            stream_id: "s",
            token: None,
            subscriber_id: None,
            subscriber_code: None,
            main_track: None,
            room_member: false,
        };
        assert_eq!(
            p.check_publish(Instant::now(), &req),
            Err(SignalError::DataStoreNotAvailable)
        );
    }
}
