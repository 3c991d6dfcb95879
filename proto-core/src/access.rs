//! The data of the access-policy seam ([`crate::AccessPolicy`]): grants (check, then commit),
//! `joinRoom` requests, and the refusal counters signalling keeps.
//!
//! # Check, then commit
//!
//! A check ([`crate::AccessPolicy::check_publish`], [`crate::AccessPolicy::check_play`]) only
//! reads: it answers a [`Grant`] that names what accepting the request will use up (a
//! single-use token, a TOTP time-step). Signalling then runs its own refusals
//! (`no_stream_exist`, `already_playing`, `streamIdInUse`, ...) and calls
//! [`crate::AccessPolicy::commit`] only when the request is accepted. A client refused for any
//! reason keeps its token and its code.

use std::collections::BTreeMap;

use crate::error::SignalError;

/// What a successful check allows; spent by [`crate::AccessPolicy::commit`] once signalling
/// accepted the request. Dropping it spends nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a grant is spent only by AccessPolicy::commit"]
pub struct Grant {
    /// The application the grant is for.
    pub app: String,
    /// A single-use token to delete.
    pub spend_token: Option<String>,
    /// A TOTP code accepted: its time-step becomes the subscriber's last used one (no replay).
    pub totp: Option<TotpUse>,
    /// The play is a cluster edge's relay: it counts as no viewer here (the edge's players
    /// count on the edge, and reach this node through the cluster's viewer counts).
    pub relay: bool,
}

impl Grant {
    /// A grant that spends nothing.
    pub fn free(app: &str) -> Grant {
        Grant {
            app: app.to_string(),
            ..Grant::default()
        }
    }
}

/// A TOTP code that was accepted for a subscriber at a time-step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpUse {
    /// The stream the subscriber was found for (the stream, or the room it belongs to).
    pub stream_id: String,
    /// The subscriber.
    pub subscriber_id: String,
    /// The time-step (unix seconds / period) of the accepted code.
    pub step: u64,
}

/// A legacy `joinRoom`, as the access policy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinRoomRequest<'a> {
    /// The application.
    pub app: &'a str,
    /// The room.
    pub room: &'a str,
    /// The member id asked for (`None`: the server generates one).
    pub stream_id: Option<&'a str>,
}

/// After this many refused publish/play/joinRoom requests on one connection for a credential
/// reason (`unauthorized_access`, `user_blocked`), signalling answers the error and closes the
/// connection: an online guesser gets a handful of answers per WebSocket, not tens of
/// thousands per second.
pub const MAX_AUTH_FAILURES_PER_CONN: u32 = 5;

/// Refusals by error definition, for the runtime to read ([`crate::Signalling::refusals`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalCounters {
    by_definition: BTreeMap<SignalError, u64>,
    /// Connections closed for too many credential failures.
    pub conns_closed: u64,
}

impl RefusalCounters {
    /// Counts one refusal.
    pub fn count(&mut self, e: SignalError) {
        *self.by_definition.entry(e).or_default() += 1;
    }

    /// Refusals with this definition so far.
    pub fn get(&self, e: SignalError) -> u64 {
        self.by_definition.get(&e).copied().unwrap_or(0)
    }

    /// All refusals so far.
    pub fn total(&self) -> u64 {
        self.by_definition.values().sum()
    }

    /// `(definition, count)` of every definition refused at least once.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.by_definition.iter().map(|(e, n)| (e.definition(), *n))
    }
}

/// Does this refusal count as a credential failure (towards
/// [`MAX_AUTH_FAILURES_PER_CONN`])?
pub fn is_credential_failure(e: SignalError) -> bool {
    matches!(
        e,
        SignalError::UnauthorizedAccess | SignalError::UserBlocked
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_per_definition() {
        let mut c = RefusalCounters::default();
        c.count(SignalError::UnauthorizedAccess);
        c.count(SignalError::UnauthorizedAccess);
        c.count(SignalError::UserBlocked);
        assert_eq!(c.get(SignalError::UnauthorizedAccess), 2);
        assert_eq!(c.get(SignalError::NoStreamExist), 0);
        assert_eq!(c.total(), 3);
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            [("unauthorized_access", 2), ("user_blocked", 1)]
        );
        assert!(is_credential_failure(SignalError::UserBlocked));
        assert!(!is_credential_failure(SignalError::NoStreamExist));
    }
}
