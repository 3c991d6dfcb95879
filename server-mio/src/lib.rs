//! Antenna's runtime: a single-threaded `mio` loop that owns all IO and wires it into the
//! Sans-IO cores (`proto-core` signalling, `rtc-core` media) through the pure [`node::Node`] (the `node` crate).
//!
//! - [`clock`]: the wall clock and the OS random source, read by the runtime only;
//! - [`config`]: command line and TOML settings of the `antenna` binary;
//! - [`datastore`]: the datastore, the access policy and the settings rule;
//! - [`hooks`]: AMS webhooks: the pure queue (order, bound, AMS's retries) and its sender thread;
//! - [`http`]: request parsing and routing (WebSocket upgrade, demo pages, errors), no IO;
//! - [`metrics`]: `/metrics` in the Prometheus text format (`prometheus-client`);
//! - [`limits`]: connection caps, WebSocket liveness, output cap and their counters;
//! - [`overload`]: process CPU sampling for `highResourceUsage`;
//! - [`runtime`]: the event loop, the only code that reads the clock or touches sockets
//!   (through [`udp`] for batched UDP output);
//! - [`udp`]: many datagrams per `sendmmsg(2)`;
//! - [`whip`]: WHIP/WHEP request heads, bounds, resources and responses, no IO (the node
//!   answers them with the cores, `node/whip.rs`).

pub mod clock;
pub mod config;
pub mod datastore;
pub mod hooks;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod overload;
pub mod runtime;
pub mod udp;
pub mod whip;
