//! Antenna stream security and data: the datastore, the AMS security chain and the AMS REST API.
//!
//! Sans-IO like the other cores: no sockets, no clock reads in the logic (wall-clock time is a
//! parameter, unix milliseconds), and randomness from a seed the runtime provides. The only
//! thread is the optional [`WriteBehind`] store thread, which owns the database file.
//!
//! # Pieces
//!
//! - [`Store`]: the datastore seam. The whole working set ([`Data`]: broadcasts, one-time tokens,
//!   TOTP subscribers, per-app [`AppSettings`]) lives in memory, so reads never touch disk; writes
//!   are [`WriteOp`]s applied to memory at once and made durable by the implementation:
//!   [`MemStore`] (memory only), [`RedbStore`] (synchronous commit), [`WriteBehind`] (commits
//!   on a store thread). Opening fails with [`StoreError`], which maps to the
//!   `data_store_not_available` error definition.
//! - [`StreamSecurity`]: implements [`proto_core::AccessPolicy`] with the AMS checks in the AMS
//!   order (registered streams, one-time token, hash, JWT, TOTP, expiry and planned dates,
//!   viewer limits).
//! - [`RestApi`]: the AMS REST endpoints under `/{App}/rest/v2/` as a pure function
//!   ([`RestApi::handle`]), with IP (`remoteAllowedCIDR`) and JWT (`jwtControlEnabled`) access
//!   control, and an OpenAPI document ([`OPENAPI_JSON`]).
//! - [`RestGate`]: the server's access decision on a REST request's head, before any body byte
//!   is read: client address (with trusted proxies), `Host` (DNS rebinding), `Origin`
//!   (cross-site requests), the admin credential, `Content-Type`, the settings method and the
//!   store's health; then [`RestApi::serve`] answers.
//!
//! # Durability: "the event loop never waits on disk"
//!
//! The default for the server is [`WriteBehind`]: a write is applied to memory and queued on a
//! `std::sync::mpsc` channel; the store thread commits everything queued in one redb
//! transaction with `Durability::Immediate` (group commit) and publishes the highest durable
//! [`WriteSeq`]. A REST write answers with [`RestResponse::durable_after`] set: the runtime holds
//! the HTTP response until [`Store::durable_seq`] reaches it (the [`Notify`] hook, e.g. a
//! `mio::Waker`, wakes the loop after each commit), so a client is told "created" only once the
//! record is on disk. Security writes (a consumed one-time token) are not waited for.
//! A runtime that accepts blocking can use [`RedbStore`] or call [`Store::flush`].
//!
//! Measured with `cargo run -p antenna-store --release --bin store-bench` on the development
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
//! # Clock
//!
//! [`proto_core::AccessPolicy`] passes a monotonic `Instant`, but tokens carry unix times. The
//! server builds the policy with [`StreamSecurity::with_anchor`]: one wall-clock reading
//! the runtime takes at start with the `Instant` of that moment; the wall time of each call is derived from
//! its `now`, so no clock is read inside a signalling call and a virtual clock drives expiry in
//! tests. [`StreamSecurity::new`] takes a wall-clock closure (unix ms) instead (tests, tools).
//! [`StreamSecurity::check_publish_at`] / [`StreamSecurity::check_play_at`] and
//! [`RestApi::handle`] take the time explicitly.
//!
//! # Runtime wiring
//!
//! ```no_run
//! use antenna_store::{shared, os_random_seed, RestApi, RestRequest, StreamSecurity, WriteBehind};
//! # fn system_clock() -> u64 { 1_700_000_000_000 } // the runtime's wall clock (unix ms)
//! let store = match WriteBehind::open("antenna.redb", None /* Some(Box::new(move || waker.wake())) */) {
//!     Ok(s) => shared(s),
//!     Err(e) => panic!("{e}"), // or serve with MemStore and answer data_store_not_available
//! };
//! # let now = std::time::Instant::now();
//! // signalling.set_access_policy(Box::new(StreamSecurity::with_anchor(store.clone(), now, system_clock())));
//! let _policy = StreamSecurity::with_anchor(store.clone(), now, system_clock());
//! let mut rest = RestApi::new(store.clone(), os_random_seed().expect("/dev/urandom"));
//! // For an HTTP request whose path satisfies antenna_store::is_rest_path(path):
//! let resp = rest.handle(system_clock(), &RestRequest {
//!     method: "GET", path: "/LiveApp/rest/v2/broadcasts/count", query: "",
//!     authorization: None, body: b"", peer: "127.0.0.1".parse().unwrap(),
//! });
//! // Send it once store.borrow().durable_seq() >= resp.durable_after (if Some): see
//! // DurableQueue, drained when the Notify hook wakes the loop.
//! # let _ = resp;
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod crypto;
mod gate;
mod model;
#[cfg(feature = "redb")]
mod persist;
mod records;
mod rest;
mod security;
mod settings;
mod store;

pub use gate::{
    is_local_host, AdminAccess, Credential, GateCounters, Granted, Refusal, Refused, RestGate,
    RestHead, MAX_BODY_LEN,
};
pub use ipnet::IpNet;
pub use model::{Broadcast, Subscriber, SubscriberType, Token, TokenType, TokenUse};
#[cfg(feature = "redb")]
pub use persist::{
    Notify, RedbStore, WriteBehind, FIRST_RETRY_DELAY, MAX_OUTSTANDING, MAX_RETRY_DELAY,
};
pub use rest::{
    is_rest_path, os_random_seed, RestApi, RestRequest, RestResponse, MAX_LIST, OPENAPI_JSON,
};
pub use security::{
    StreamSecurity, WallClock, PURGE_INTERVAL, PURGE_MAX_DELETES, TOTP_FREE_FAILURES,
    TOTP_FREE_FAILURES_PER_STREAM, TOTP_MAX_LOCK, TOTP_MAX_TRACKED, TOTP_RETAIN,
};
pub use settings::{
    is_secret_key, parse_cidr_list, restore_redacted, AppSettings, CidrError, REDACTED,
};
pub use store::{
    set_broadcast_status, set_webrtc_viewer_count, shared, AppData, Data, DurableQueue, MemStore,
    SharedStore, Store, StoreCounters, StoreError, WriteOp, WriteSeq, COMMIT_BUCKETS_MICROS,
};
