//! The redb-backed stores: [`RedbStore`] (synchronous commits) and [`WriteBehind`] (commits on a
//! store thread).
//!
//! # Layout
//!
//! One redb file; four tables whose values are the records' AMS JSON (so new fields never need a
//! migration): `broadcasts` `(app, streamId)`, `tokens` `(app, tokenId)`, `subscribers`
//! `(app, streamId, subscriberId)`, `settings` `app`. Every commit uses
//! `Durability::Immediate` (fsync before `commit` returns).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::settings::AppSettings;
use crate::store::{Data, Store, StoreError, WriteOp, WriteSeq};

const BROADCASTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("broadcasts");
const TOKENS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("tokens");
const SUBSCRIBERS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("subscribers");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

/// Most writes committed in one transaction by [`WriteBehind`].
const MAX_BATCH: usize = 4096;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Opens (or creates) the database file, creates the tables and loads the working set.
fn open_db(path: &Path) -> Result<(Database, Data), StoreError> {
    let db = Database::create(path).map_err(unavailable)?;
    let txn = db.begin_write().map_err(unavailable)?;
    {
        txn.open_table(BROADCASTS).map_err(unavailable)?;
        txn.open_table(TOKENS).map_err(unavailable)?;
        txn.open_table(SUBSCRIBERS).map_err(unavailable)?;
        txn.open_table(SETTINGS).map_err(unavailable)?;
    }
    txn.commit().map_err(unavailable)?;
    let data = load(&db)?;
    Ok((db, data))
}

fn decode<T: DeserializeOwned>(what: &str, key: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            // A record this version cannot read is skipped, not fatal: the rest still serves.
            warn!(what, key, error = %e, "skipping unreadable record");
            None
        }
    }
}

fn load(db: &Database) -> Result<Data, StoreError> {
    let mut data = Data::new();
    let txn = db.begin_read().map_err(unavailable)?;
    let t = txn.open_table(BROADCASTS).map_err(unavailable)?;
    for entry in t.iter().map_err(unavailable)? {
        let (k, v) = entry.map_err(unavailable)?;
        let (app, id) = k.value();
        if let Some(broadcast) = decode("broadcast", id, v.value()) {
            data.apply(&WriteOp::PutBroadcast {
                app: app.to_string(),
                broadcast: Box::new(broadcast),
            });
        }
    }
    let t = txn.open_table(TOKENS).map_err(unavailable)?;
    for entry in t.iter().map_err(unavailable)? {
        let (k, v) = entry.map_err(unavailable)?;
        let (app, id) = k.value();
        if let Some(token) = decode("token", id, v.value()) {
            data.apply(&WriteOp::PutToken {
                app: app.to_string(),
                token,
            });
        }
    }
    let t = txn.open_table(SUBSCRIBERS).map_err(unavailable)?;
    for entry in t.iter().map_err(unavailable)? {
        let (k, v) = entry.map_err(unavailable)?;
        let (app, _, id) = k.value();
        if let Some(subscriber) = decode("subscriber", id, v.value()) {
            data.apply(&WriteOp::PutSubscriber {
                app: app.to_string(),
                subscriber,
            });
        }
    }
    let t = txn.open_table(SETTINGS).map_err(unavailable)?;
    for entry in t.iter().map_err(unavailable)? {
        let (k, v) = entry.map_err(unavailable)?;
        let app = k.value();
        // An unreadable settings record must not mean "defaults, every check off": the
        // application fails closed until its settings are written again.
        let settings = decode("settings", app, v.value()).unwrap_or_else(|| {
            warn!(
                app,
                "settings unreadable: stream security refuses this application"
            );
            AppSettings::unreadable()
        });
        data.apply(&WriteOp::PutSettings {
            app: app.to_string(),
            settings: Box::new(settings),
        });
    }
    Ok(data)
}

/// Commits `ops` in one durable transaction.
fn commit(db: &Database, ops: &[WriteOp]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(unavailable)?;
    {
        let mut broadcasts = txn.open_table(BROADCASTS).map_err(unavailable)?;
        let mut tokens = txn.open_table(TOKENS).map_err(unavailable)?;
        let mut subscribers = txn.open_table(SUBSCRIBERS).map_err(unavailable)?;
        let mut settings = txn.open_table(SETTINGS).map_err(unavailable)?;
        for op in ops {
            match op {
                WriteOp::PutBroadcast { app, broadcast } => {
                    let v = serde_json::to_vec(broadcast).map_err(unavailable)?;
                    broadcasts
                        .insert((app.as_str(), broadcast.stream_id.as_str()), v.as_slice())
                        .map_err(unavailable)?;
                }
                WriteOp::DeleteBroadcast { app, stream_id } => {
                    broadcasts
                        .remove((app.as_str(), stream_id.as_str()))
                        .map_err(unavailable)?;
                }
                WriteOp::PutToken { app, token } => {
                    let v = serde_json::to_vec(token).map_err(unavailable)?;
                    tokens
                        .insert((app.as_str(), token.token_id.as_str()), v.as_slice())
                        .map_err(unavailable)?;
                }
                WriteOp::DeleteToken { app, token_id } => {
                    tokens
                        .remove((app.as_str(), token_id.as_str()))
                        .map_err(unavailable)?;
                }
                WriteOp::PutSubscriber { app, subscriber } => {
                    let v = serde_json::to_vec(subscriber).map_err(unavailable)?;
                    subscribers
                        .insert(
                            (
                                app.as_str(),
                                subscriber.stream_id.as_str(),
                                subscriber.subscriber_id.as_str(),
                            ),
                            v.as_slice(),
                        )
                        .map_err(unavailable)?;
                }
                WriteOp::DeleteSubscriber {
                    app,
                    stream_id,
                    subscriber_id,
                } => {
                    subscribers
                        .remove((app.as_str(), stream_id.as_str(), subscriber_id.as_str()))
                        .map_err(unavailable)?;
                }
                WriteOp::PutSettings { app, settings: s } => {
                    let v = serde_json::to_vec(&**s).map_err(unavailable)?;
                    settings
                        .insert(app.as_str(), v.as_slice())
                        .map_err(unavailable)?;
                }
            }
        }
    }
    txn.commit().map_err(unavailable)
}

/// A redb store that commits every write before [`Store::write`] returns.
///
/// Simple and durable on return, but each write waits for an fsync (see the crate docs for the
/// measured latency): use it where the caller may block, or wrap the file in [`WriteBehind`].
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    data: Data,
    seq: u64,
}

impl RedbStore {
    /// Opens or creates the database at `path` and loads it into memory.
    ///
    /// `Err` (`data_store_not_available`) if the file cannot be opened, e.g. another process
    /// holds it.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let (db, data) = open_db(path.as_ref())?;
        Ok(RedbStore { db, data, seq: 0 })
    }
}

impl Store for RedbStore {
    fn data(&self) -> &Data {
        &self.data
    }

    fn write(&mut self, op: WriteOp) -> Result<WriteSeq, StoreError> {
        commit(&self.db, std::slice::from_ref(&op))?;
        self.data.apply(&op);
        self.seq += 1;
        Ok(WriteSeq(self.seq))
    }

    fn durable_seq(&self) -> WriteSeq {
        WriteSeq(self.seq)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

enum Msg {
    Op(u64, WriteOp),
    Flush(Sender<Result<(), StoreError>>),
}

#[derive(Debug, Default)]
struct Shared {
    durable: AtomicU64,
    failed: Mutex<Option<StoreError>>,
}

impl Shared {
    fn failure(&self) -> Option<StoreError> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }
}

/// Called on the store thread after each commit (for example `mio::Waker::wake`), so the event
/// loop can release responses waiting for durability.
pub type Notify = Box<dyn Fn() + Send>;

/// A redb store whose commits happen on a store thread: the event loop never waits on disk.
///
/// [`Store::write`] applies the write to memory, sends it over a `std::sync::mpsc` channel and
/// returns its [`WriteSeq`] at once. The store thread takes everything queued (up to 4096
/// writes) and commits it in **one** durable transaction (group commit), then publishes the
/// highest committed sequence number ([`Store::durable_seq`]) and calls the [`Notify`] hook.
/// A commit failure marks the store failed: later writes return `Err`, and [`Store::health`]
/// reports it. Dropping the store commits what is queued and joins the thread.
pub struct WriteBehind {
    data: Data,
    seq: u64,
    tx: Option<Sender<Msg>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WriteBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehind")
            .field("seq", &self.seq)
            .field("durable", &self.shared.durable.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl WriteBehind {
    /// Opens or creates the database at `path` (on the calling thread, so failures are
    /// reported here), loads it, and starts the store thread.
    pub fn open(path: impl AsRef<Path>, notify: Option<Notify>) -> Result<WriteBehind, StoreError> {
        let (db, data) = open_db(path.as_ref())?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("antenna-store".into())
            .spawn(move || store_thread(db, rx, thread_shared, notify))
            .map_err(unavailable)?;
        Ok(WriteBehind {
            data,
            seq: 0,
            tx: Some(tx),
            shared,
            thread: Some(thread),
        })
    }
}

fn store_thread(db: Database, rx: Receiver<Msg>, shared: Arc<Shared>, notify: Option<Notify>) {
    let mut ops: Vec<WriteOp> = Vec::new();
    let mut flushes: Vec<Sender<Result<(), StoreError>>> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut last = 0;
        let mut take = |m: Msg, ops: &mut Vec<WriteOp>, flushes: &mut Vec<_>| match m {
            Msg::Op(seq, op) => {
                last = seq;
                ops.push(op);
            }
            Msg::Flush(reply) => flushes.push(reply),
        };
        take(first, &mut ops, &mut flushes);
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => take(m, &mut ops, &mut flushes),
                Err(_) => break,
            }
        }
        if !ops.is_empty() && shared.failure().is_none() {
            match commit(&db, &ops) {
                Ok(()) => {
                    debug!(writes = ops.len(), seq = last, "store commit");
                    shared.durable.store(last, Ordering::Release);
                }
                Err(e) => {
                    warn!(error = %e, "store commit failed; the store is now unavailable");
                    if let Ok(mut f) = shared.failed.lock() {
                        *f = Some(e);
                    }
                }
            }
        }
        ops.clear();
        // Wake the event loop before answering flushers, so that when `flush` returns the
        // hook has run too (the loop never misses a commit a flusher already saw).
        if let Some(n) = &notify {
            n();
        }
        let result = shared.failure().map_or(Ok(()), Err);
        for reply in flushes.drain(..) {
            // The flusher may have gone away; nothing to do then.
            let _ = reply.send(result.clone());
        }
    }
}

impl Store for WriteBehind {
    fn data(&self) -> &Data {
        &self.data
    }

    fn write(&mut self, op: WriteOp) -> Result<WriteSeq, StoreError> {
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| unavailable("store thread stopped"))?;
        self.seq += 1;
        let seq = self.seq;
        self.data.apply(&op);
        tx.send(Msg::Op(seq, op))
            .map_err(|_| unavailable("store thread stopped"))?;
        Ok(WriteSeq(seq))
    }

    fn durable_seq(&self) -> WriteSeq {
        WriteSeq(self.shared.durable.load(Ordering::Acquire))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| unavailable("store thread stopped"))?;
        let (reply_tx, reply_rx) = mpsc::channel();
        tx.send(Msg::Flush(reply_tx))
            .map_err(|_| unavailable("store thread stopped"))?;
        reply_rx
            .recv()
            .map_err(|_| unavailable("store thread stopped"))?
    }

    fn health(&self) -> Result<(), StoreError> {
        self.shared.failure().map_or(Ok(()), Err)
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // Closing the channel lets the thread commit what is queued and exit.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Broadcast, Token, TokenType};
    use crate::settings::AppSettings;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("antenna-store-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("db.redb")
    }

    fn sample_ops() -> Vec<WriteOp> {
        vec![
            WriteOp::PutBroadcast {
                app: "LiveApp".into(),
                broadcast: Box::new(Broadcast {
                    stream_id: "s1".into(),
                    name: Some("one".into()),
                    ..Broadcast::default()
                }),
            },
            WriteOp::PutBroadcast {
                app: "LiveApp".into(),
                broadcast: Box::new(Broadcast {
                    stream_id: "gone".into(),
                    ..Broadcast::default()
                }),
            },
            WriteOp::DeleteBroadcast {
                app: "LiveApp".into(),
                stream_id: "gone".into(),
            },
            WriteOp::PutToken {
                app: "LiveApp".into(),
                token: Token {
                    token_id: "tok".into(),
                    stream_id: "s1".into(),
                    expire_date: 99,
                    token_type: TokenType::Publish,
                    room_id: Some("r".into()),
                },
            },
            WriteOp::PutSettings {
                app: "LiveApp".into(),
                settings: Box::new(AppSettings {
                    time_token_period: 33,
                    ..AppSettings::default()
                }),
            },
        ]
    }

    /// Issue 9, finding 6: an unreadable settings record used to mean "defaults, every check
    /// off". It now loads as [`AppSettings::unreadable`] (the policy refuses the app).
    #[test]
    fn unreadable_settings_record_loads_as_unreadable() {
        let path = tmp("bad-settings");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(SETTINGS).unwrap();
                t.insert(
                    "LiveApp",
                    br#"{"timeTokenPeriod":"not a number"}"#.as_slice(),
                )
                .unwrap();
            }
            txn.commit().unwrap();
        }
        let s = RedbStore::open(&path).unwrap();
        let settings = s.data().settings("LiveApp");
        assert!(settings.unreadable);
        assert!(!s.data().settings("OtherApp").unreadable);
    }

    #[test]
    fn redb_store_persists_across_reopen() {
        let path = tmp("reopen");
        let expected = {
            let mut s = RedbStore::open(&path).unwrap();
            for op in sample_ops() {
                s.write(op).unwrap();
            }
            s.data().clone()
        };
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.data(), &expected);
        assert_eq!(s.data().settings("LiveApp").time_token_period, 33);
        assert!(s.data().broadcast("LiveApp", "gone").is_none());
        assert_eq!(
            s.data().broadcast("LiveApp", "s1").unwrap().name.as_deref(),
            Some("one")
        );
    }

    #[test]
    fn write_behind_persists_after_flush_and_drop() {
        let path = tmp("wb");
        let (ntx, nrx) = mpsc::channel();
        let expected = {
            let notify: Notify = Box::new(move || {
                let _ = ntx.send(());
            });
            let mut s = WriteBehind::open(&path, Some(notify)).unwrap();
            let mut last = WriteSeq(0);
            for op in sample_ops() {
                last = s.write(op).unwrap();
            }
            s.flush().unwrap();
            assert!(s.durable_seq() >= last);
            assert!(nrx.try_recv().is_ok(), "notify hook was called");
            // a write after the flush is committed by drop
            s.write(WriteOp::PutBroadcast {
                app: "Other".into(),
                broadcast: Box::new(Broadcast {
                    stream_id: "late".into(),
                    ..Broadcast::default()
                }),
            })
            .unwrap();
            s.data().clone()
        };
        let s = WriteBehind::open(&path, None).unwrap();
        assert_eq!(s.data(), &expected);
        assert!(s.data().broadcast("Other", "late").is_some());
    }

    #[test]
    fn open_failure_is_data_store_not_available() {
        let path = tmp("locked");
        let _held = RedbStore::open(&path).unwrap();
        // The file is locked by the first handle.
        let err = RedbStore::open(&path).unwrap_err();
        assert_eq!(
            proto_core::SignalError::from(err).definition(),
            "data_store_not_available"
        );
        let dir_as_file = std::env::temp_dir();
        assert!(WriteBehind::open(dir_as_file, None).is_err());
    }
}
