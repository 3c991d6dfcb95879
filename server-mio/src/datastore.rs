//! The datastore as the binary uses it: opening it (or failing to: a
//! [`antenna_store::FailedStore`]), seeding application settings from the configuration, and
//! the admin token file. The settings rules and the access policy are the admin core's
//! (`node::admin`). No IO besides opening the store and the token file.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use antenna_cluster::{DataConfig, SharedData};
use antenna_persist::{Notify, WriteBehind};
use antenna_store::{shared, AppSettings, FailedStore, MemStore, SharedStore, StoreError, WriteOp};
use tracing::warn;

use crate::config::{StoreLocation, DB_FILE};
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

#[cfg(test)]
mod tests;
