//! Bounds on what one connection may make the server hold: how many publishes, plays, room
//! memberships and p2p groups, and how long the strings it sends may be.
//!
//! A message over a bound is refused before it changes anything: the client gets an `error`
//! (`invalidStreamName` for an over-long id, the Antenna definitions `parameter_too_long` and
//! `connection_limit_reached` otherwise, with `information` naming the bound), the server logs
//! it and counts it in [`LimitCounters`].

use tracing::info;

use super::{ConnId, Signalling};
use crate::error::SignalError;
use crate::message::{ClientMessage, ErrorMessage, ServerMessage};

/// Per-connection bounds of [`Signalling`] (see [`crate::Config::limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Streams one connection may publish at once.
    pub max_publishes_per_conn: usize,
    /// Streams one connection may play at once.
    pub max_plays_per_conn: usize,
    /// Legacy `joinRoom` memberships one connection may hold.
    pub max_rooms_per_conn: usize,
    /// Peer-to-peer groups one connection may be in.
    pub max_p2p_per_conn: usize,
    /// Longest stream, room, track or p2p id, in bytes (AMS has no bound; ids are
    /// `[A-Za-z0-9_.-]`, so bytes are characters).
    pub max_id_len: usize,
    /// Longest stream name, role, subscriber id, mode or similar short text, in bytes.
    pub max_name_len: usize,
    /// Longest token or subscriber code, in bytes (JWTs can be long).
    pub max_token_len: usize,
    /// Longest `metaData`/`metadata`/`viewerInfo`, in bytes.
    pub max_meta_len: usize,
    /// Longest ICE candidate line or mid, in bytes.
    pub max_candidate_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_publishes_per_conn: 16,
            max_plays_per_conn: 64,
            max_rooms_per_conn: 16,
            max_p2p_per_conn: 16,
            max_id_len: 128,
            max_name_len: 256,
            max_token_len: 4096,
            max_meta_len: 4096,
            max_candidate_len: 1024,
        }
    }
}

/// Refusals counted since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCounters {
    /// Messages refused for a field over its length bound.
    pub too_long: u64,
    /// Commands refused for a per-connection count bound.
    pub too_many: u64,
}

/// What a connection holds, for [`Signalling::check_count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    Publishes,
    Plays,
    Rooms,
    P2p,
}

/// Field kinds, each with its bound.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Id,
    Name,
    Token,
    Meta,
    Candidate,
}

impl Limits {
    fn bound(&self, kind: Kind) -> usize {
        match kind {
            Kind::Id => self.max_id_len,
            Kind::Name => self.max_name_len,
            Kind::Token => self.max_token_len,
            Kind::Meta => self.max_meta_len,
            Kind::Candidate => self.max_candidate_len,
        }
    }

    /// The first field of `msg` over its bound: `(field name, kind)`.
    fn first_too_long(&self, msg: &ClientMessage) -> Option<(&'static str, Kind)> {
        use ClientMessage as M;
        let mut fields: Vec<(&'static str, Kind, Option<&str>)> = Vec::new();
        macro_rules! push {
            ($name:expr, $kind:expr, $v:expr) => {
                fields.push(($name, $kind, $v.as_deref()))
            };
        }
        match msg {
            M::Publish(p) => {
                push!("streamId", Kind::Id, &p.stream_id);
                push!("mainTrack", Kind::Id, &p.main_track);
                push!("token", Kind::Token, &p.token);
                push!("subscriberId", Kind::Name, &p.subscriber_id);
                push!("subscriberCode", Kind::Token, &p.subscriber_code);
                push!("streamName", Kind::Name, &p.stream_name);
                push!("role", Kind::Name, &p.role);
                push!("metaData", Kind::Meta, &p.meta_data);
            }
            M::Play(p) => {
                push!("streamId", Kind::Id, &p.stream_id);
                push!("room", Kind::Id, &p.room);
                push!("token", Kind::Token, &p.token);
                push!("subscriberId", Kind::Name, &p.subscriber_id);
                push!("subscriberCode", Kind::Token, &p.subscriber_code);
                push!("viewerInfo", Kind::Meta, &p.viewer_info);
                push!("role", Kind::Name, &p.role);
                push!("userPublishId", Kind::Id, &p.user_publish_id);
                push!("subscriberName", Kind::Name, &p.subscriber_name);
                if p.track_list.len() > self.max_plays_per_conn
                    || p.track_list.iter().any(|t| t.len() > self.max_id_len)
                {
                    return Some(("trackList", Kind::Id));
                }
            }
            M::TakeConfiguration(c) => push!("streamId", Kind::Id, &c.stream_id),
            M::TakeCandidate(c) => {
                push!("streamId", Kind::Id, &c.stream_id);
                push!("id", Kind::Candidate, &c.id);
                if c.candidate.len() > self.max_candidate_len {
                    return Some(("candidate", Kind::Candidate));
                }
            }
            M::Stop(r)
            | M::Leave(r)
            | M::GetStreamInfo(r)
            | M::GetBroadcastObject(r)
            | M::GetSubscriberCount(r) => push!("streamId", Kind::Id, &r.stream_id),
            M::Join(j) => {
                push!("streamId", Kind::Id, &j.stream_id);
                push!("mode", Kind::Name, &j.mode);
            }
            M::JoinRoom(j) => {
                push!("room", Kind::Id, &j.room);
                push!("mainTrack", Kind::Id, &j.main_track);
                push!("streamId", Kind::Id, &j.stream_id);
                push!("mode", Kind::Name, &j.mode);
                push!("streamName", Kind::Name, &j.stream_name);
                push!("role", Kind::Name, &j.role);
                push!("metadata", Kind::Meta, &j.metadata);
            }
            M::LeaveFromRoom(r) | M::GetRoomInfo(r) => {
                push!("room", Kind::Id, &r.room);
                push!("mainTrack", Kind::Id, &r.main_track);
                push!("streamId", Kind::Id, &r.stream_id);
            }
            M::GetTrackList(t) => {
                push!("streamId", Kind::Id, &t.stream_id);
                push!("token", Kind::Token, &t.token);
            }
            M::EnableTrack(t) | M::ToggleVideo(t) | M::ToggleAudio(t) => {
                push!("streamId", Kind::Id, &t.stream_id);
                push!("trackId", Kind::Id, &t.track_id);
            }
            M::ForceStreamQuality(q) => push!("streamId", Kind::Id, &q.stream_id),
            M::GetVideoTrackAssignments(r) => push!("streamId", Kind::Id, &r.stream_id),
            M::AssignVideoTrack(v)
            | M::UpdateVideoTrackAssignments(v)
            | M::SetMaxVideoTrackCount(v) => {
                push!("streamId", Kind::Id, &v.stream_id);
                push!("trackId", Kind::Id, &v.track_id);
                push!("videoTrackId", Kind::Id, &v.video_track_id);
            }
            M::PeerMessageCommand(p) => {
                push!("streamId", Kind::Id, &p.stream_id);
                push!("definition", Kind::Name, &p.definition);
            }
            M::GetSubscribers(g) => push!("streamId", Kind::Id, &g.stream_id),
            M::UpdateStreamMetaData(u) => {
                push!("streamId", Kind::Id, &u.stream_id);
                push!("metaData", Kind::Meta, &u.meta_data);
            }
            M::Unsupported { stream_id, .. } => push!("streamId", Kind::Id, stream_id),
            M::Ping | M::GetIceServerConfig => {}
            #[allow(unreachable_patterns)]
            _ => {}
        }
        fields
            .into_iter()
            .find(|(_, kind, v)| v.is_some_and(|v| v.len() > self.bound(*kind)))
            .map(|(name, kind, _)| (name, kind))
    }
}

impl Signalling {
    /// Refusals counted so far (over-long fields, per-connection count bounds).
    pub fn limit_counters(&self) -> LimitCounters {
        self.limit_counters
    }

    /// Checks every string field of `msg` against its bound. `false`: refused (answered,
    /// logged, counted).
    pub(super) fn check_lengths(&mut self, conn: ConnId, msg: &ClientMessage) -> bool {
        let Some((field, kind)) = self.config.limits.first_too_long(msg) else {
            return true;
        };
        let bound = self.config.limits.bound(kind);
        self.limit_counters.too_long += 1;
        info!(
            ?conn,
            field,
            bound,
            command = msg.command(),
            "refused: field too long"
        );
        // An over-long id is an invalid stream name (AMS's definition) and is not echoed.
        let stream_id =
            super::stream_id_of(msg).filter(|id| id.len() <= self.config.limits.max_id_len);
        let definition = match kind {
            Kind::Id => SignalError::InvalidStreamName,
            _ => SignalError::ParameterTooLong,
        };
        let mut m = ErrorMessage::new(definition, stream_id.map(str::to_string));
        m.information = Some(format!("{field} longer than {bound} bytes"));
        self.send(conn, ServerMessage::Error(m));
        false
    }

    /// May `conn` hold one more of `what`? `false`: refused (answered, logged, counted).
    pub(super) fn check_count(&mut self, conn: ConnId, what: Held, id: &str) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        let l = &self.config.limits;
        let (held, bound, name) = match what {
            Held::Publishes => (c.publishes.len(), l.max_publishes_per_conn, "publishes"),
            Held::Plays => (c.plays.len(), l.max_plays_per_conn, "plays"),
            Held::Rooms => (c.rooms.len(), l.max_rooms_per_conn, "room memberships"),
            Held::P2p => (c.p2p.len(), l.max_p2p_per_conn, "p2p groups"),
        };
        if held < bound {
            return true;
        }
        self.limit_counters.too_many += 1;
        info!(
            ?conn,
            what = name,
            bound,
            "refused: per-connection limit reached"
        );
        let mut m = ErrorMessage::new(SignalError::ConnectionLimitReached, Some(id.to_string()));
        m.information = Some(format!("at most {bound} {name} per connection"));
        self.send(conn, ServerMessage::Error(m));
        false
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
