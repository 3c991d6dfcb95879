//! What signalling holds: connections ([`Conn`]), media sessions ([`Session`] and its
//! [`Role`]), legacy rooms, and how a session ends ([`End`]). The indexes over them live in
//! [`Signalling`](super::Signalling).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::maintrack;
use crate::error::SignalError;
use crate::media::{SessionId, SessionStats};
use crate::signalling::ConnId;

/// One open WebSocket connection and what it owns.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) app: String,
    /// stream id -> publish session.
    pub(super) publishes: BTreeMap<String, SessionId>,
    /// stream id -> play session.
    pub(super) plays: BTreeMap<String, SessionId>,
    /// p2p ids joined.
    pub(super) p2p: BTreeSet<String>,
    /// `(room, member stream id)` of legacy `joinRoom` memberships.
    pub(super) rooms: BTreeSet<(String, String)>,
    /// Credential refusals so far (see [`crate::MAX_AUTH_FAILURES_PER_CONN`]).
    pub(super) auth_failures: u32,
    /// What the WebSocket URL asked for with `?target=` (`role.rs`).
    pub(super) target: Option<super::Target>,
}

/// One media session: a publisher or a player.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) conn: ConnId,
    pub(super) app: String,
    pub(super) stream: String,
    pub(super) subscriber_id: Option<String>,
    /// The media layer knows this session (StartPublish/StartPlay was sent).
    pub(super) media_known: bool,
    /// Last measurements.
    pub(super) stats: Option<SessionStats>,
    /// Publish start timeout (publisher) or next `bitrateMeasurement` (player).
    pub(super) deadline: Option<Instant>,
    pub(super) role: Role,
}

impl Session {
    /// A new session with no measurements and no deadline yet.
    pub(super) fn new(
        conn: ConnId,
        app: &str,
        stream: String,
        subscriber_id: Option<String>,
        media_known: bool,
        role: Role,
    ) -> Self {
        Session {
            conn,
            app: app.to_string(),
            stream,
            subscriber_id,
            media_known,
            stats: None,
            deadline: None,
            role,
        }
    }
}

#[derive(Debug)]
pub(super) enum Role {
    Publish(PublishState),
    Play(PlayState),
    /// Play of a main track (room): its subtracks in one peer connection.
    RoomPlay(maintrack::RoomPlayState),
}

#[derive(Debug, Default)]
pub(super) struct PublishState {
    /// Media started.
    pub(super) live: bool,
    pub(super) main_track: Option<String>,
    pub(super) name: Option<String>,
    pub(super) meta: Option<String>,
    pub(super) role: Option<String>,
    pub(super) players: BTreeSet<SessionId>,
    /// Held after its connection dropped: ends at this instant unless published again.
    pub(super) held_until: Option<Instant>,
    /// Resumed by a new publish: `session_restored` goes out when its new media starts.
    pub(super) restoring: bool,
    /// The last statistics that showed media arriving (none yet: never checked for silence).
    pub(super) media_seen: Option<Instant>,
    /// A cluster edge's relay of another node's stream (`remote.rs`), not a client's publish.
    pub(super) relay: bool,
}

#[derive(Debug)]
pub(super) struct PlayState {
    pub(super) publisher: SessionId,
    pub(super) connected: bool,
    /// Height asked for with `forceStreamQuality` (0 = automatic).
    pub(super) forced_height: u32,
    /// A cluster edge's relay ([`crate::Grant::relay`]): not a viewer of this node.
    pub(super) relay: bool,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) conn: ConnId,
    pub(super) name: Option<String>,
    pub(super) meta: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Room {
    /// member stream id -> member.
    pub(super) members: BTreeMap<String, Member>,
}

/// How a session ends.
#[derive(Debug, Clone, Copy)]
pub(super) struct End {
    /// Tell the media layer to close the session.
    pub(super) close_media: bool,
    /// Error sent to the owner first.
    pub(super) error: Option<SignalError>,
    /// Send the owner `publish_finished` / `play_finished`.
    pub(super) finished: bool,
}

impl End {
    pub(super) const STOP: End = End {
        close_media: true,
        error: None,
        finished: true,
    };
    pub(super) const CONN_CLOSED: End = End {
        close_media: true,
        error: None,
        finished: false,
    };
    pub(super) const REPLACED: End = End::CONN_CLOSED;
    pub(super) const MEDIA_CLOSED: End = End {
        close_media: false,
        error: None,
        finished: true,
    };
    pub(super) const TIMEOUT: End = End {
        close_media: true,
        error: Some(SignalError::PublishTimeoutError),
        finished: false,
    };
    pub(super) fn failed(remote_description: bool) -> End {
        End {
            close_media: false,
            error: Some(if remote_description {
                SignalError::NotSetRemoteDescription
            } else {
                SignalError::ServerErrorCheckLogs
            }),
            finished: true,
        }
    }
}
