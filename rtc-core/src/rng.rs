//! The one seam to str0m's randomness.
//!
//! str0m draws ICE credentials, SSRCs, msids and mids from fastrand's thread-local generator
//! (through `str0m_proto`'s `rng` module, used by `str0m::media::Mid::new` and
//! `str0m::IceCreds::new`) and offers no way to inject a generator per `Rtc`. Everything in this
//! crate that touches that generator goes through this module, and nothing else does:
//!
//! - [`seed_thread`]: an [`crate::Sfu`] given [`crate::SfuConfig::seed`] seeds the generator
//!   of its thread once, at construction, so a simulation is a function of its seed;
//! - [`StableMids`]: while a player's m-lines are added, the generator runs from a seed that
//!   depends only on the `Sfu`'s seed and the stream name, then goes on from where it was.
//!
//! Two `Sfu`s on one thread share the thread's generator (str0m's choice); their stable mids
//! still do not depend on each other, because each offer reseeds from its own `Sfu`'s seed.

/// Seeds str0m's generator on this thread.
pub(crate) fn seed_thread(seed: u64) {
    fastrand::seed(seed);
}

/// While alive, str0m's generator runs from a fixed seed; dropping it resumes the generator
/// with a value drawn before, so nothing else becomes predictable.
#[must_use = "the generator resumes when this is dropped"]
pub(crate) struct StableMids {
    resume: u64,
}

impl StableMids {
    /// Reseeds str0m's generator from `sfu_seed` and `stream` (FNV-1a of the name, so it is
    /// the same in every process).
    pub(crate) fn enter(sfu_seed: u64, stream: &str) -> Self {
        let resume = fastrand::u64(..);
        fastrand::seed(sfu_seed ^ stable_seed(stream));
        StableMids { resume }
    }
}

impl Drop for StableMids {
    fn drop(&mut self) {
        fastrand::seed(self.resume);
    }
}

/// A hash of a stream name that is the same in every process (FNV-1a).
fn stable_seed(stream: &str) -> u64 {
    stream.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_mids_repeat_and_resume() {
        seed_thread(7);
        let first = {
            let _m = StableMids::enter(0, "s");
            fastrand::u64(..)
        };
        let after_first = fastrand::u64(..);
        let second = {
            let _m = StableMids::enter(0, "s");
            fastrand::u64(..)
        };
        let other_seed = {
            let _m = StableMids::enter(1, "s");
            fastrand::u64(..)
        };
        assert_eq!(first, second);
        assert_ne!(first, other_seed);
        assert_ne!(after_first, first);
    }
}
