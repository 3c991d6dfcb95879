//! Antenna's runtime: a single-threaded `mio` loop that owns all IO and wires it into the
//! Sans-IO cores (`proto-core` signalling, `rtc-core` media) through the pure [`node::Node`].

pub mod node;
