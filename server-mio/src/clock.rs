//! The wall clock. The cores derive wall time from the `now: Instant` they are given plus one
//! anchor the runtime reads here at start; the runtime also stamps REST requests with it.

/// Unix time in milliseconds (`SystemTime::now()`); 0 before 1970.
#[allow(clippy::disallowed_methods)] // the runtime owns the clock
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
