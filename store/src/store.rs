//! The datastore seam: an in-memory working set ([`Data`]) plus a write path ([`Store`]).
//! (Over 600 lines: the `Store` trait, the write operations, the working set and `MemStore`
//! belong together; a fifth of it is their unit tests.)
//!
//! Every implementation keeps the whole working set in memory, so reads never touch disk and
//! never fail. Writes are [`WriteOp`]s: applied to memory at once, then made durable by the
//! implementation (not at all, synchronously, or on a store thread). Each write gets a
//! [`WriteSeq`]; [`Store::durable_seq`] says how far writes are durable.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use proto_core::SignalError;

use crate::model::{Broadcast, Subscriber, Token};
use crate::settings::AppSettings;

/// The sequence number of a write. Writes are numbered 1, 2, 3… per store instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WriteSeq(pub u64);

/// The datastore failed: it cannot be opened, or writes cannot be made durable right now.
///
/// The runtime maps it to the `data_store_not_available` error definition
/// (`SignalError::from(err)`), and the REST layer to HTTP 503.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be opened or used: nothing is known about its records (settings
    /// included), so everything that depends on them must be refused.
    Unavailable(String),
    /// The store is loaded, but the disk refuses commits (ENOSPC, EIO, …): writes are kept in
    /// memory and retried with back-off, and the store recovers by itself once a commit
    /// succeeds. Only writes that must be durable before they count
    /// ([`WriteOp::needs_durability`]) are refused meanwhile.
    Degraded(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "data store not available: {why}"),
            StoreError::Degraded(why) => write!(
                f,
                "data store not available: {why} (retrying; changes are kept in memory)"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for SignalError {
    fn from(_: StoreError) -> SignalError {
        SignalError::DataStoreNotAvailable
    }
}

impl StoreError {
    /// The AMS error definition for this failure: `data_store_not_available`.
    pub fn signal_error(&self) -> SignalError {
        SignalError::DataStoreNotAvailable
    }

    /// True for a loaded store whose commits fail for now ([`StoreError::Degraded`]): its
    /// records in memory are still the truth.
    pub fn is_degraded(&self) -> bool {
        matches!(self, StoreError::Degraded(_))
    }
}

/// Called by a durable [`Store`] implementation after each commit, from whatever thread commits
/// (for example `mio::Waker::wake`), so the event loop can release responses waiting for
/// durability (`antenna_persist::WriteBehind` calls it on its store thread).
pub type Notify = Box<dyn Fn() + Send>;

/// One change to the datastore. Every key is namespaced by the application.
///
/// Exhaustive on purpose: every implementation of [`Store`] (here and in `antenna-persist`) must
/// persist every kind of write, so a new variant is a compile error wherever one is missing.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Insert or replace a broadcast (key: its `streamId`).
    PutBroadcast {
        /// Application.
        app: String,
        /// The record.
        broadcast: Box<Broadcast>,
    },
    /// Delete a broadcast (its tokens and subscribers stay; delete them with their own ops).
    DeleteBroadcast {
        /// Application.
        app: String,
        /// Stream id.
        stream_id: String,
    },
    /// Insert or replace a one-time token (key: its `tokenId`).
    PutToken {
        /// Application.
        app: String,
        /// The record.
        token: Token,
    },
    /// Delete a token.
    DeleteToken {
        /// Application.
        app: String,
        /// Token id.
        token_id: String,
    },
    /// Insert or replace a subscriber (key: `streamId`, `subscriberId`).
    PutSubscriber {
        /// Application.
        app: String,
        /// The record.
        subscriber: Subscriber,
    },
    /// Delete a subscriber.
    DeleteSubscriber {
        /// Application.
        app: String,
        /// Stream id.
        stream_id: String,
        /// Subscriber id.
        subscriber_id: String,
    },
    /// Replace the application's settings.
    PutSettings {
        /// Application.
        app: String,
        /// The settings.
        settings: Box<AppSettings>,
    },
}

/// The records of one application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppData {
    /// Settings, if ever stored (else the AMS defaults apply).
    pub settings: Option<AppSettings>,
    /// Broadcasts by stream id.
    pub broadcasts: BTreeMap<String, Broadcast>,
    /// One-time tokens by token id.
    pub tokens: HashMap<String, Token>,
    /// Subscribers by (stream id, subscriber id).
    pub subscribers: BTreeMap<(String, String), Subscriber>,
}

/// The in-memory working set: every record of every application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Data {
    apps: HashMap<String, AppData>,
}

impl Data {
    /// An empty working set.
    pub fn new() -> Self {
        Data::default()
    }

    /// The records of `app`, if it has any.
    pub fn app(&self, app: &str) -> Option<&AppData> {
        self.apps.get(app)
    }

    /// Names of the applications that have records.
    pub fn apps(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// The settings of `app`: the stored ones, else the AMS defaults.
    pub fn settings(&self, app: &str) -> AppSettings {
        self.stored_settings(app).cloned().unwrap_or_default()
    }

    /// The stored settings of `app`, if any.
    pub fn stored_settings(&self, app: &str) -> Option<&AppSettings> {
        self.apps.get(app).and_then(|a| a.settings.as_ref())
    }

    /// A broadcast.
    pub fn broadcast(&self, app: &str, stream_id: &str) -> Option<&Broadcast> {
        self.apps.get(app).and_then(|a| a.broadcasts.get(stream_id))
    }

    /// All broadcasts of `app`, by stream id.
    pub fn broadcasts(&self, app: &str) -> impl Iterator<Item = &Broadcast> {
        self.apps
            .get(app)
            .into_iter()
            .flat_map(|a| a.broadcasts.values())
    }

    /// A token.
    pub fn token(&self, app: &str, token_id: &str) -> Option<&Token> {
        self.apps.get(app).and_then(|a| a.tokens.get(token_id))
    }

    /// The tokens of a stream (in token id order).
    pub fn tokens_of(&self, app: &str, stream_id: &str) -> Vec<&Token> {
        let mut v: Vec<&Token> = self
            .apps
            .get(app)
            .into_iter()
            .flat_map(|a| a.tokens.values())
            .filter(|t| t.stream_id == stream_id)
            .collect();
        v.sort_by(|a, b| a.token_id.cmp(&b.token_id));
        v
    }

    /// A subscriber of a stream.
    pub fn subscriber(
        &self,
        app: &str,
        stream_id: &str,
        subscriber_id: &str,
    ) -> Option<&Subscriber> {
        self.apps.get(app).and_then(|a| {
            a.subscribers
                .get(&(stream_id.to_string(), subscriber_id.to_string()))
        })
    }

    /// The subscribers of a stream, by subscriber id.
    pub fn subscribers_of<'a>(
        &'a self,
        app: &str,
        stream_id: &'a str,
    ) -> impl Iterator<Item = &'a Subscriber> + 'a {
        self.apps
            .get(app)
            .into_iter()
            .flat_map(|a| a.subscribers.iter())
            .filter(move |((s, _), _)| s == stream_id)
            .map(|(_, v)| v)
    }

    /// Applies one write to memory.
    pub fn apply(&mut self, op: &WriteOp) {
        match op {
            WriteOp::PutBroadcast { app, broadcast } => {
                self.app_mut(app)
                    .broadcasts
                    .insert(broadcast.stream_id.clone(), (**broadcast).clone());
            }
            WriteOp::DeleteBroadcast { app, stream_id } => {
                if let Some(a) = self.apps.get_mut(app) {
                    a.broadcasts.remove(stream_id);
                }
            }
            WriteOp::PutToken { app, token } => {
                self.app_mut(app)
                    .tokens
                    .insert(token.token_id.clone(), token.clone());
            }
            WriteOp::DeleteToken { app, token_id } => {
                if let Some(a) = self.apps.get_mut(app) {
                    a.tokens.remove(token_id);
                }
            }
            WriteOp::PutSubscriber { app, subscriber } => {
                self.app_mut(app).subscribers.insert(
                    (
                        subscriber.stream_id.clone(),
                        subscriber.subscriber_id.clone(),
                    ),
                    subscriber.clone(),
                );
            }
            WriteOp::DeleteSubscriber {
                app,
                stream_id,
                subscriber_id,
            } => {
                if let Some(a) = self.apps.get_mut(app) {
                    a.subscribers
                        .remove(&(stream_id.clone(), subscriber_id.clone()));
                }
            }
            WriteOp::PutSettings { app, settings } => {
                self.app_mut(app).settings = Some((**settings).clone());
            }
        }
    }

    fn app_mut(&mut self, app: &str) -> &mut AppData {
        self.apps.entry(app.to_string()).or_default()
    }
}

impl WriteOp {
    /// A security write that counts only once it is durable: spending (deleting) a one-time
    /// token. Kept in memory only, a spent token would come back after a crash and could be
    /// replayed, so while the store is [`StoreError::Degraded`] such writes are refused (the
    /// request that needs one gets `data_store_not_available`) instead of queued.
    pub fn needs_durability(&self) -> bool {
        matches!(self, WriteOp::DeleteToken { .. })
    }
}

/// A datastore: the in-memory working set and a durable write path.
///
/// Implementations: [`MemStore`] (memory only), `antenna_persist::RedbStore` (synchronous
/// commit per write) and `antenna_persist::WriteBehind` (commits on a store thread; the event
/// loop never waits on disk). A PostgreSQL or Redis backend would implement the same trait: load everything at open,
/// apply writes to memory at once, and persist them in the background.
pub trait Store: std::fmt::Debug {
    /// The working set. Reads never block and never fail.
    fn data(&self) -> &Data;

    /// Applies `op` to memory at once and starts making it durable. Returns its sequence
    /// number, or an error if the store cannot take it (then nothing was changed): a store
    /// that could not be opened refuses every write; a degraded one (commits failing, retried)
    /// refuses only [`WriteOp::needs_durability`] writes and writes beyond its backlog bound.
    fn write(&mut self, op: WriteOp) -> Result<WriteSeq, StoreError>;

    /// Every write with a sequence number up to this one is durable.
    fn durable_seq(&self) -> WriteSeq;

    /// Blocks until every write so far is durable. For shutdown, tests, and runtimes that
    /// accept waiting on disk.
    fn flush(&mut self) -> Result<(), StoreError>;

    /// `Err` while the store cannot make writes durable: [`StoreError::Unavailable`] (never
    /// opened) or [`StoreError::Degraded`] (commits failing and being retried; `Ok` again once
    /// one succeeds).
    fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Commit counters and latency of a store with a store thread, for `/metrics`; `None` for
    /// stores that commit nothing in the background (memory, a store that failed to open).
    fn counters(&self) -> Option<StoreCounters> {
        None
    }
}

/// Upper bounds, in microseconds, of the commit-latency buckets of [`StoreCounters`]: 0.5 ms
/// to about 4 s, doubling (a last, unbounded bucket follows).
pub const COMMIT_BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 1_024_000,
    2_048_000, 4_096_000,
];

/// Counters of a store whose commits run on a store thread (copied out of atomics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounters {
    /// Commits that succeeded.
    pub commits: u64,
    /// Commit attempts that failed (each retry counts).
    pub failed_commits: u64,
    /// Times the store recovered (a commit succeeded after failures).
    pub recoveries: u64,
    /// Commit attempts (successful or not) per latency bucket: `commit_buckets[i]` counts the
    /// attempts that took at most [`COMMIT_BUCKETS_MICROS`]`[i]` and more than the bound
    /// before; the last entry counts the slower ones. Not cumulative.
    pub commit_buckets: [u64; COMMIT_BUCKETS_MICROS.len() + 1],
    /// Total time of the commit attempts, in microseconds.
    pub commit_micros_sum: u64,
}

impl StoreCounters {
    /// Commit attempts timed (the sum of the buckets).
    pub fn commit_attempts(&self) -> u64 {
        self.commit_buckets.iter().sum()
    }
}

/// The store shared by [`crate::StreamSecurity`] and [`crate::RestApi`] on the event-loop
/// thread.
pub type SharedStore = Rc<RefCell<dyn Store>>;

/// Wraps a store for sharing.
pub fn shared<S: Store + 'static>(store: S) -> SharedStore {
    Rc::new(RefCell::new(store))
}

/// A store that lives in memory only (tests, and servers that keep nothing).
/// Every write is "durable" at once.
#[derive(Debug, Default)]
pub struct MemStore {
    data: Data,
    seq: u64,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }
}

impl Store for MemStore {
    fn data(&self) -> &Data {
        &self.data
    }

    fn write(&mut self, op: WriteOp) -> Result<WriteSeq, StoreError> {
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

/// Records a live status change of a stored broadcast (`broadcasting`, `finished`, …) and its
/// `updateTime` (unix ms), for the REST API. Does nothing (`Ok(None)`) if the stream has no
/// record or the status is unchanged. For the runtime, on publish start/end.
pub fn set_broadcast_status(
    store: &mut dyn Store,
    app: &str,
    stream_id: &str,
    status: &str,
    now_ms: u64,
) -> Result<Option<WriteSeq>, StoreError> {
    let Some(b) = store.data().broadcast(app, stream_id) else {
        return Ok(None);
    };
    if b.status == status {
        return Ok(None);
    }
    let mut b = b.clone();
    b.status = status.to_string();
    b.update_time = i64::try_from(now_ms).unwrap_or(i64::MAX);
    store
        .write(WriteOp::PutBroadcast {
            app: app.to_string(),
            broadcast: Box::new(b),
        })
        .map(Some)
}

/// Records the current WebRTC viewer count of a stored broadcast (`webRTCViewerCount`, shown by
/// the REST statistics). Does nothing if the stream has no record or the count is unchanged.
pub fn set_webrtc_viewer_count(
    store: &mut dyn Store,
    app: &str,
    stream_id: &str,
    viewers: usize,
) -> Result<Option<WriteSeq>, StoreError> {
    let n = i64::try_from(viewers).unwrap_or(i64::MAX);
    let Some(b) = store.data().broadcast(app, stream_id) else {
        return Ok(None);
    };
    if b.webrtc_viewer_count == n {
        return Ok(None);
    }
    let mut b = b.clone();
    b.webrtc_viewer_count = n;
    store
        .write(WriteOp::PutBroadcast {
            app: app.to_string(),
            broadcast: Box::new(b),
        })
        .map(Some)
}

/// Items (typically HTTP responses) held until the store has made a write durable.
///
/// The runtime pushes a response with its [`crate::RestResponse::durable_after`] and, after each
/// store notification (or loop iteration), pops those whose write is durable:
///
/// ```
/// # use antenna_store::{DurableQueue, WriteSeq};
/// let mut q = DurableQueue::new();
/// q.push(WriteSeq(3), "created s1");
/// q.push(WriteSeq(5), "created s2");
/// assert_eq!(q.pop_ready(WriteSeq(4)), Some("created s1"));
/// assert_eq!(q.pop_ready(WriteSeq(4)), None);
/// assert_eq!(q.pop_ready(WriteSeq(5)), Some("created s2"));
/// ```
#[derive(Debug)]
pub struct DurableQueue<T> {
    items: VecDeque<(WriteSeq, T)>,
}

impl<T> Default for DurableQueue<T> {
    fn default() -> Self {
        DurableQueue {
            items: VecDeque::new(),
        }
    }
}

impl<T> DurableQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        DurableQueue::default()
    }

    /// Holds `item` until write `seq` is durable.
    pub fn push(&mut self, seq: WriteSeq, item: T) {
        self.items.push_back((seq, item));
    }

    /// The oldest held item whose write is durable (`seq <= durable`), if any.
    pub fn pop_ready(&mut self, durable: WriteSeq) -> Option<T> {
        let i = self.items.iter().position(|(seq, _)| *seq <= durable)?;
        self.items.remove(i).map(|(_, item)| item)
    }

    /// Number of held items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SubscriberType, TokenType};

    #[test]
    fn memstore_applies_every_op() {
        let mut s = MemStore::new();
        let b = Broadcast {
            stream_id: "s1".into(),
            ..Broadcast::default()
        };
        assert_eq!(
            s.write(WriteOp::PutBroadcast {
                app: "A".into(),
                broadcast: Box::new(b.clone())
            })
            .unwrap(),
            WriteSeq(1)
        );
        assert_eq!(s.data().broadcast("A", "s1"), Some(&b));
        assert!(s.data().broadcast("B", "s1").is_none());
        let t = Token {
            token_id: "t".into(),
            stream_id: "s1".into(),
            expire_date: 5,
            token_type: TokenType::Play,
            room_id: None,
        };
        s.write(WriteOp::PutToken {
            app: "A".into(),
            token: t.clone(),
        })
        .unwrap();
        assert_eq!(s.data().tokens_of("A", "s1"), vec![&t]);
        let sub = Subscriber {
            subscriber_id: "sub1".into(),
            subscriber_name: None,
            stream_id: "s1".into(),
            b32_secret: None,
            subscriber_type: SubscriberType::Play,
            totp_expiry_period_seconds: None,
            concurrent_connections_limit: 1,
            current_concurrent_connections: 0,
            blocked_type: None,
            blocked_until_unit_time_stamp_ms: 0,
        };
        s.write(WriteOp::PutSubscriber {
            app: "A".into(),
            subscriber: sub.clone(),
        })
        .unwrap();
        assert_eq!(s.data().subscribers_of("A", "s1").count(), 1);
        assert_eq!(s.data().subscriber("A", "s1", "sub1"), Some(&sub));
        s.write(WriteOp::DeleteSubscriber {
            app: "A".into(),
            stream_id: "s1".into(),
            subscriber_id: "sub1".into(),
        })
        .unwrap();
        s.write(WriteOp::DeleteToken {
            app: "A".into(),
            token_id: "t".into(),
        })
        .unwrap();
        s.write(WriteOp::DeleteBroadcast {
            app: "A".into(),
            stream_id: "s1".into(),
        })
        .unwrap();
        assert!(s.data().broadcast("A", "s1").is_none());
        assert!(s.data().token("A", "t").is_none());
        assert!(s.data().subscriber("A", "s1", "sub1").is_none());
        assert_eq!(s.durable_seq(), WriteSeq(6));
        assert_eq!(s.data().settings("A"), AppSettings::default());
        // live status and viewer counts of stored broadcasts only
        assert_eq!(
            set_broadcast_status(&mut s, "A", "s1", "broadcasting", 5),
            Ok(None)
        );
        s.write(WriteOp::PutBroadcast {
            app: "A".into(),
            broadcast: Box::new(b.clone()),
        })
        .unwrap();
        assert_eq!(
            set_broadcast_status(&mut s, "A", "s1", "broadcasting", 5),
            Ok(Some(WriteSeq(8)))
        );
        assert_eq!(
            set_broadcast_status(&mut s, "A", "s1", "broadcasting", 6),
            Ok(None)
        );
        assert_eq!(
            set_webrtc_viewer_count(&mut s, "A", "s1", 3),
            Ok(Some(WriteSeq(9)))
        );
        assert_eq!(set_webrtc_viewer_count(&mut s, "A", "s1", 3), Ok(None));
        let got = s.data().broadcast("A", "s1").unwrap();
        assert_eq!(
            (
                got.status.as_str(),
                got.update_time,
                got.webrtc_viewer_count
            ),
            ("broadcasting", 5, 3)
        );
        assert_eq!(
            SignalError::from(StoreError::Unavailable("x".into())).definition(),
            "data_store_not_available"
        );
    }
}
