//! Antenna stream security and data: the datastore, the AMS security chain and the AMS REST API.
//!
//! Sans-IO like the other cores: no sockets, no clock reads in the logic (wall-clock time is a
//! parameter, unix milliseconds), and randomness from a seed the runtime provides. No thread, no
//! file: the database file and its write-behind thread are the `antenna-persist` crate's, which
//! implements [`Store`].
//!
//! # Pieces
//!
//! - [`Store`]: the datastore seam. The whole working set ([`Data`]: broadcasts, one-time tokens,
//!   TOTP subscribers, per-app [`AppSettings`]) lives in memory, so reads never touch disk; writes
//!   are [`WriteOp`]s applied to memory at once and made durable by the implementation:
//!   [`MemStore`] (memory only, here), `RedbStore` (synchronous commit) and `WriteBehind`
//!   (commits on a store thread) in `antenna-persist`. Opening fails with [`StoreError`],
//!   which maps to the `data_store_not_available` error definition.
//! - [`StreamSecurity`]: implements [`proto_core::AccessPolicy`] with the AMS checks in the AMS
//!   order (registered streams, one-time token, hash, JWT, TOTP, expiry and planned dates,
//!   viewer limits).
//! - [`RestApi`]: the AMS REST endpoints under `/{App}/rest/v2/` as a pure function
//!   ([`RestApi::serve`]), and an OpenAPI document ([`OPENAPI_JSON`]).
//! - [`RestGate`]: the server's access decision on a REST request's head, before any body byte
//!   is read: client address (with trusted proxies), `Host` (DNS rebinding), `Origin`
//!   (cross-site requests), the admin credential, `Content-Type`, the settings method and the
//!   store's health; then [`RestApi::serve`] answers.
//!
//! # Durability
//!
//! A REST write answers with [`RestResponse::durable_after`] set: the runtime holds the HTTP
//! response until [`Store::durable_seq`] reaches it, so a client is told "created" only once the
//! record is on disk (`antenna-persist` documents the write-behind design and its measurements).
//!
//! # Clock
//!
//! [`proto_core::AccessPolicy`] passes a monotonic `Instant`, but tokens carry unix times. The
//! server builds the policy with [`StreamSecurity::with_anchor`]: one wall-clock reading
//! the runtime takes at start with the `Instant` of that moment; the wall time of each call is derived from
//! its `now`, so no clock is read inside a signalling call and a virtual clock drives expiry in
//! tests. [`StreamSecurity::new`] takes a wall-clock closure (unix ms) instead (tests, tools).
//! [`StreamSecurity::check_publish_at`] / [`StreamSecurity::check_play_at`] and
//! [`RestApi::serve`] take the time explicitly.
//!
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod crypto;
mod failed;
mod gate;
mod model;
mod records;
mod rest;
mod security;
mod settings;
mod store;

pub use failed::FailedStore;
pub use gate::{
    is_local_host, AdminAccess, Credential, GateCounters, Granted, Refusal, Refused, RestGate,
    RestHead, MAX_BODY_LEN,
};
pub use ipnet::IpNet;
pub use model::{Broadcast, Subscriber, SubscriberType, Token, TokenType, TokenUse};
pub use rest::{RestApi, RestRequest, RestResponse, MAX_LIST, OPENAPI_JSON};
pub use security::{
    StreamSecurity, WallAnchor, WallClock, PURGE_INTERVAL, PURGE_MAX_DELETES, TOTP_FREE_FAILURES,
    TOTP_FREE_FAILURES_PER_STREAM, TOTP_MAX_LOCK, TOTP_MAX_TRACKED, TOTP_RETAIN,
};
pub use settings::{
    is_secret_key, parse_cidr_list, restore_redacted, AppSettings, CidrError, REDACTED,
};
pub use store::{
    set_broadcast_status, set_webrtc_viewer_count, shared, AppData, Data, DurableQueue, MemStore,
    Notify, SharedStore, Store, StoreCounters, StoreError, WriteOp, WriteSeq,
    COMMIT_BUCKETS_MICROS,
};
