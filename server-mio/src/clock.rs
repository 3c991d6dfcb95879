//! The wall clock and the OS random source: the runtime's only reads of either. The cores derive
//! wall time from the `now: Instant` they are given plus one anchor the runtime reads here at
//! start (the runtime also stamps REST requests with it), and take their randomness as seeds
//! read here.

/// Unix time in milliseconds (`SystemTime::now()`); 0 before 1970.
#[allow(clippy::disallowed_methods)] // the runtime owns the clock
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// 32 bytes from the OS random source (`/dev/urandom`): the seeds the runtime injects into the
/// cores (REST ids, WHIP resources, the admin token).
pub fn os_random_seed() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn os_random_seeds_differ() {
        let a = super::os_random_seed().unwrap();
        let b = super::os_random_seed().unwrap();
        assert_ne!(a, b);
    }
}
