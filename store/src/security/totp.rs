//! The online-guessing and replay guard of TOTP codes: failures, lock-outs and spent steps per
//! subscriber (and per stream), bounded in size and age.

use std::collections::HashMap;

use tracing::{debug, warn};

use super::{TOTP_MAX_LOCK, TOTP_MAX_TRACKED, TOTP_RETAIN};

/// Failure and replay record of a TOTP subscriber (or, with no subscriber id, of a stream).
#[derive(Debug, Clone, Default)]
pub(super) struct TotpState {
    failures: u32,
    locked_until_ms: u64,
    last_step: Option<u64>,
    touched_ms: u64,
}

/// `(app, stream, subscriber)`; the subscriber is empty for the per-stream record.
pub(super) type TotpKey = (String, String, String);

/// The online-guessing and replay guard of TOTP.
#[derive(Debug, Default)]
pub(super) struct TotpGuard {
    states: HashMap<TotpKey, TotpState>,
}

impl TotpGuard {
    /// `Err` while `key` is locked out, or when it is untracked and the table is full.
    pub(super) fn admit(&mut self, key: &TotpKey, now_ms: u64) -> Result<(), &'static str> {
        match self.states.get(key) {
            Some(st) if st.locked_until_ms > now_ms => Err("locked out after failures"),
            Some(_) => Ok(()),
            None if self.states.len() >= TOTP_MAX_TRACKED => {
                self.purge(now_ms);
                if self.states.len() >= TOTP_MAX_TRACKED {
                    warn!("TOTP failure table full: refusing untracked subscribers");
                    Err("failure table full")
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    pub(super) fn last_step(&self, key: &TotpKey) -> Option<u64> {
        self.states.get(key).and_then(|s| s.last_step)
    }

    pub(super) fn failure(&mut self, key: &TotpKey, free: u32, now_ms: u64) {
        if !self.states.contains_key(key) && self.states.len() >= TOTP_MAX_TRACKED {
            return;
        }
        let st = self.states.entry(key.clone()).or_default();
        st.failures = st.failures.saturating_add(1);
        st.touched_ms = now_ms;
        if st.failures >= free {
            let max_ms = u64::try_from(TOTP_MAX_LOCK.as_millis()).unwrap_or(u64::MAX);
            let lock_ms = 1000u64
                .checked_shl((st.failures - free).min(32))
                .unwrap_or(max_ms)
                .min(max_ms);
            st.locked_until_ms = now_ms.saturating_add(lock_ms);
            debug!(
                stream = key.1,
                subscriber = key.2,
                failures = st.failures,
                lock_ms,
                "TOTP locked out"
            );
        }
    }

    pub(super) fn success(&mut self, key: &TotpKey, now_ms: u64) {
        if let Some(st) = self.states.get_mut(key) {
            st.failures = 0;
            st.touched_ms = now_ms;
        }
    }

    pub(super) fn spend(&mut self, key: TotpKey, step: u64, now_ms: u64) {
        if !self.states.contains_key(&key) && self.states.len() >= TOTP_MAX_TRACKED {
            self.purge(now_ms);
        }
        let st = self.states.entry(key).or_default();
        st.last_step = Some(st.last_step.map_or(step, |l| l.max(step)));
        st.failures = 0;
        st.touched_ms = now_ms;
    }

    /// Forgets records idle for [`TOTP_RETAIN`] and not locked.
    pub(super) fn purge(&mut self, now_ms: u64) {
        let retain_ms = u64::try_from(TOTP_RETAIN.as_millis()).unwrap_or(u64::MAX);
        self.states.retain(|_, st| {
            st.locked_until_ms > now_ms || st.touched_ms.saturating_add(retain_ms) > now_ms
        });
    }
}
