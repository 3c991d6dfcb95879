//! Antenna's datastore file: the redb-backed implementations of [`antenna_store::Store`],
//! [`RedbStore`] (synchronous commits) and [`WriteBehind`] (commits on a store thread).
//! (About 600 lines: the redb schema, its load and commit, and the store thread that uses them
//! are one unit; the tests are in `tests.rs`.)
//!
//! The pure `antenna-store` crate owns the data model, the security rules and REST; this crate
//! owns what needs a file, a thread and the clock (commit timing, retry pauses), and only the
//! runtime (`server-mio`) and its tools depend on it.
//!
//! # Durability: "the event loop never waits on disk"
//!
//! The default for the server is [`WriteBehind`]: a write is applied to memory and queued on a
//! `std::sync::mpsc` channel; the store thread commits everything queued in one redb
//! transaction with `Durability::Immediate` (group commit) and publishes the highest durable
//! `WriteSeq`. A REST write answers with `RestResponse::durable_after` set: the runtime holds
//! the HTTP response until [`Store::durable_seq`] reaches it (the [`Notify`] hook, e.g. a
//! `mio::Waker`, wakes the loop after each commit), so a client is told "created" only once the
//! record is on disk. Security writes (a consumed one-time token) are not waited for.
//! A runtime that accepts blocking can use [`RedbStore`] or call [`Store::flush`].
//!
//! Measured with `cargo run -p antenna-persist --release --bin store-bench` on the development
//! machine (2 cores shared with other builds, ext4 on a virtio disk), 300 samples each:
//!
//! | operation | p50 | p99 | max |
//! |---|---|---|---|
//! | [`RedbStore`] `write` (one durable commit, fsync) | 1.7 ms | 10.0 ms | 13.3 ms |
//! | [`WriteBehind`] `write` on the event loop | 12 µs | 0.5 ms | 5.8 ms |
//! | [`WriteBehind`] `write` → durable, isolated writes | 1.6 ms | 8.1 ms | 9.5 ms |
//! | [`WriteBehind`] `write` during a 10 000-write burst | 2 µs | 18 µs | 17.7 ms |
//!
//! The burst of 10 000 writes was durable after 447 ms (about 22 000 writes/s, 4 commits):
//! group commit amortises the fsync. The tail of the event-loop cost is scheduling noise on the
//! loaded 2-core machine (the store thread and other builds compete for the CPU), not disk.
//!
//! # Layout
//!
//! One redb file; four tables whose values are the records' AMS JSON (so new fields never need a
//! migration): `broadcasts` `(app, streamId)`, `tokens` `(app, tokenId)`, `subscribers`
//! `(app, streamId, subscriberId)`, `settings` `app`. Every commit uses
//! `Durability::Immediate` (fsync before `commit` returns).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use antenna_store::AppSettings;
use antenna_store::{
    Data, Store, StoreCounters, StoreError, WriteOp, WriteSeq, COMMIT_BUCKETS_MICROS,
};

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

/// First pause before a failed commit is retried; it doubles after each further failure, up to
/// [`MAX_RETRY_DELAY`].
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Longest pause between two commit attempts while the disk fails.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Most writes that may wait for the disk (applied to memory, not yet durable). Beyond it
/// [`Store::write`] refuses: a store that stays down cannot grow the queue without limit.
pub const MAX_OUTSTANDING: u64 = 100_000;

#[derive(Debug, Default)]
struct Shared {
    durable: AtomicU64,
    /// The current failure, while commits fail (cleared by the next successful commit).
    failed: Mutex<Option<StoreError>>,
    /// Fault injection for tests: while set, every commit fails as if the disk did.
    inject: AtomicBool,
    /// Commit attempts that failed, and recoveries (a success after failures).
    failed_commits: AtomicU64,
    recoveries: AtomicU64,
    /// Successful commits, and the latency of every attempt (see [`StoreCounters`]).
    commits: AtomicU64,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS_MICROS.len() + 1],
    commit_micros_sum: AtomicU64,
}

impl Shared {
    fn failure(&self) -> Option<StoreError> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// Counts one commit attempt that took `took`.
    fn observe_commit(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // The first bucket whose bound holds `us`, else the last (unbounded) one.
        let bucket = COMMIT_BUCKETS_MICROS
            .iter()
            .zip(&self.commit_buckets)
            .find(|(&bound, _)| us <= bound)
            .map_or(self.commit_buckets.last(), |(_, n)| Some(n));
        if let Some(n) = bucket {
            n.fetch_add(1, Ordering::Relaxed);
        }
        self.commit_micros_sum.fetch_add(us, Ordering::Relaxed);
    }

    fn counters(&self) -> StoreCounters {
        let mut c = StoreCounters {
            commits: self.commits.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
            commit_micros_sum: self.commit_micros_sum.load(Ordering::Relaxed),
            ..StoreCounters::default()
        };
        for (out, n) in c.commit_buckets.iter_mut().zip(&self.commit_buckets) {
            *out = n.load(Ordering::Relaxed);
        }
        c
    }

    fn set_failure(&self, e: Option<StoreError>) {
        if let Ok(mut f) = self.failed.lock() {
            *f = e;
        }
    }
}

pub use antenna_store::Notify;

/// A redb store whose commits happen on a store thread: the event loop never waits on disk.
///
/// [`Store::write`] applies the write to memory, sends it over a `std::sync::mpsc` channel and
/// returns its [`WriteSeq`] at once. The store thread takes everything queued (up to 4096
/// writes) and commits it in **one** durable transaction (group commit), then publishes the
/// highest committed sequence number ([`Store::durable_seq`]) and calls the [`Notify`] hook.
///
/// # Failures
///
/// A failed commit (ENOSPC, EIO, …) does not lose the writes and does not stop the store: the
/// thread keeps them, reopens the database file (redb refuses further use of a handle after an
/// I/O error) and retries everything pending after [`FIRST_RETRY_DELAY`], doubling the pause up
/// to [`MAX_RETRY_DELAY`]; new writes join the pending batch. Meanwhile [`Store::health`]
/// reports [`StoreError::Degraded`], writes still apply to memory (up to [`MAX_OUTSTANDING`]
/// not yet durable), except those that must be durable before they count
/// ([`WriteOp::needs_durability`]), which are refused. The first successful commit clears the
/// failure, publishes the new durable sequence and calls the hook. Dropping the store commits
/// what is queued (one last attempt) and joins the thread.
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
        let path = path.as_ref().to_path_buf();
        let (db, data) = open_db(&path)?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("antenna-store".into())
            .spawn(move || {
                StoreThread {
                    path,
                    db: Some(db),
                    shared: thread_shared,
                    notify,
                }
                .run(rx)
            })
            .map_err(unavailable)?;
        Ok(WriteBehind {
            data,
            seq: 0,
            tx: Some(tx),
            shared,
            thread: Some(thread),
        })
    }

    /// Fault injection for tests: while `on`, every commit attempt fails as a full or broken
    /// disk would make it fail (the writes stay pending and are retried).
    #[doc(hidden)]
    pub fn inject_commit_failures(&self, on: bool) {
        self.shared.inject.store(on, Ordering::Release);
    }
}

/// The store thread: commits what the event loop queued, retrying failed commits.
struct StoreThread {
    path: PathBuf,
    /// `None` after a failed commit: reopened before the next attempt.
    db: Option<Database>,
    shared: Arc<Shared>,
    notify: Option<Notify>,
}

impl StoreThread {
    // The store thread is IO, not core logic: it times its retries with the clock.
    #[allow(clippy::disallowed_methods)]
    fn run(mut self, rx: Receiver<Msg>) {
        let mut pending: Vec<WriteOp> = Vec::new();
        let mut last = 0;
        let mut flushes: Vec<Sender<Result<(), StoreError>>> = Vec::new();
        // While commits fail: the pause before the next attempt, and when it is due.
        let mut retry: Option<(Duration, Instant)> = None;
        let mut open = true;
        while open {
            let first = match retry {
                None => rx.recv().ok(),
                Some((_, due)) => {
                    match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => {
                            open = false;
                            None
                        }
                    }
                }
            };
            if retry.is_none() && first.is_none() {
                open = false;
            }
            let mut take = |m: Msg| match m {
                Msg::Op(seq, op) => {
                    last = seq;
                    pending.push(op);
                }
                Msg::Flush(reply) => flushes.push(reply),
            };
            if let Some(m) = first {
                take(m);
            }
            let mut batch = 0;
            while batch < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => take(m),
                    Err(_) => break,
                }
                batch += 1;
            }
            let due = match retry {
                None => true,
                // A flush or the end of the channel tries at once; new writes wait their turn.
                Some((_, due)) => !open || !flushes.is_empty() || Instant::now() >= due,
            };
            if !pending.is_empty() && due {
                let started = Instant::now();
                let result = self.attempt(&pending);
                self.shared.observe_commit(started.elapsed());
                match result {
                    Ok(()) => {
                        self.shared.commits.fetch_add(1, Ordering::Relaxed);
                        debug!(writes = pending.len(), seq = last, "store commit");
                        pending.clear();
                        self.shared.durable.store(last, Ordering::Release);
                        if retry.take().is_some() {
                            let n = self.shared.recoveries.fetch_add(1, Ordering::Relaxed) + 1;
                            info!(
                                seq = last,
                                recoveries = n,
                                "store commit succeeded again; the datastore has recovered"
                            );
                            self.shared.set_failure(None);
                        }
                    }
                    Err(e) => {
                        let n = self.shared.failed_commits.fetch_add(1, Ordering::Relaxed) + 1;
                        let delay = match retry {
                            None => {
                                warn!(error = %e, pending = pending.len(), failed_commits = n,
                                    "store commit failed; writes are kept in memory and retried");
                                FIRST_RETRY_DELAY
                            }
                            Some((d, _)) => {
                                debug!(error = %e, pending = pending.len(), failed_commits = n,
                                    "store commit failed again");
                                (d * 2).min(MAX_RETRY_DELAY)
                            }
                        };
                        retry = Some((delay, Instant::now() + delay));
                        self.shared
                            .set_failure(Some(StoreError::Degraded(e.to_string())));
                    }
                }
            }
            // Wake the event loop before answering flushers, so that when `flush` returns the
            // hook has run too (the loop never misses a commit a flusher already saw).
            if let Some(n) = &self.notify {
                n();
            }
            let result = self.shared.failure().map_or(Ok(()), Err);
            for reply in flushes.drain(..) {
                // The flusher may have gone away; nothing to do then.
                let _ = reply.send(result.clone());
            }
        }
        if !pending.is_empty() {
            warn!(
                writes = pending.len(),
                "store closed while commits failed: the last writes were not saved"
            );
        }
    }

    fn attempt(&mut self, ops: &[WriteOp]) -> Result<(), StoreError> {
        if self.shared.inject.load(Ordering::Acquire) {
            self.db = None;
            return Err(unavailable("injected commit failure (test)"));
        }
        let db = match self.db.take() {
            Some(db) => db,
            None => Database::create(&self.path).map_err(unavailable)?,
        };
        commit(&db, ops)?;
        self.db = Some(db);
        Ok(())
    }
}

impl Store for WriteBehind {
    fn data(&self) -> &Data {
        &self.data
    }

    fn write(&mut self, op: WriteOp) -> Result<WriteSeq, StoreError> {
        if let Some(e) = self.shared.failure() {
            if op.needs_durability() {
                return Err(e);
            }
        }
        if self
            .seq
            .saturating_sub(self.shared.durable.load(Ordering::Acquire))
            >= MAX_OUTSTANDING
        {
            return Err(StoreError::Degraded(format!(
                "{MAX_OUTSTANDING} writes are waiting for the disk"
            )));
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

    fn counters(&self) -> Option<StoreCounters> {
        Some(self.shared.counters())
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
mod tests;
