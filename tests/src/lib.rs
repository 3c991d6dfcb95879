//! Deterministic simulation harness for Antenna: virtual clients, a virtual clock and an
//! in-memory network driving the same cores as the `antenna` binary.
