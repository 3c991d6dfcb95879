//! Fuzzes the whole signalling state machine: `proto_core::fuzzing::run_ops` decodes the bytes
//! into connections, messages, media events, timers, overload and shutdown, and panics on any
//! broken invariant.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| proto_core::fuzzing::run_ops(data));
