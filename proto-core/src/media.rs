//! The seam between signalling and the media layer (rtc-core).
//!
//! Signalling emits [`MediaCmd`]s; the runtime hands them to the media layer, and feeds the media
//! layer's [`MediaEvent`]s back into signalling. Neither core calls the other.

use std::fmt;

/// One media session (one peer connection on the server): a publisher or a player.
///
/// Allocated by signalling; the media layer uses it as an opaque key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// Kind of a media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackKind {
    /// Audio (Opus).
    Audio,
    /// Video (VP8, VP9, H.264).
    Video,
}

/// One m-line of a server offer to a player, so signalling can build the SDK's `idMapping`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedTrack {
    /// The m-line's mid.
    pub mid: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// The subtrack this m-line carries when a main track (room) is played, named in the
    /// SDK's `idMapping` (`ARDAMSv<source>`); `None`: the played stream itself.
    pub source: Option<String>,
}

/// One subtrack of a main track (room) that a room player receives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subtrack {
    /// The subtrack's stream id.
    pub id: String,
    /// Its publish session.
    pub publisher: SessionId,
}

/// A local ICE candidate of the server, for one m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCandidate {
    /// sdpMLineIndex.
    pub mline_index: u32,
    /// sdpMid.
    pub mid: String,
    /// The `candidate:...` line (without `a=`).
    pub candidate: String,
}

/// Measurements of one session, reported periodically by the media layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Video width in pixels (from the last keyframe), 0 if unknown.
    pub width: u32,
    /// Video height in pixels, 0 if unknown.
    pub height: u32,
    /// Received (publisher) or sent (player) video bitrate, bits/s.
    pub video_bitrate: u64,
    /// Received or sent audio bitrate, bits/s.
    pub audio_bitrate: u64,
    /// Negotiated video codec name (`VP8`, `H264`, ...), empty if none.
    pub video_codec: String,
    /// Fraction of packets lost in the last interval, in 1/1000.
    pub loss_permille: u32,
    /// The player's estimated available bandwidth, bits/s (0 if unknown).
    pub estimated_bitrate: u64,
}

/// A command from signalling to the media layer. Exhaustive on purpose: its one consumer
/// (`rtc_core::Sfu::handle_command`) matches every variant, so a new command cannot be dropped
/// silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCmd {
    /// Create a publish session from the client's SDP offer; answer with [`MediaEvent::Answer`].
    StartPublish {
        /// New session id.
        session: SessionId,
        /// The stream published.
        stream: String,
        /// The client's SDP offer.
        offer: String,
    },
    /// Create a play session that receives `publisher`'s media; answer with [`MediaEvent::Offer`].
    StartPlay {
        /// New session id.
        session: SessionId,
        /// The stream played.
        stream: String,
        /// The publish session whose media this player receives.
        publisher: SessionId,
    },
    /// Create a play session that receives `publisher`'s media from the client's own SDP
    /// offer (a WHEP player, RFC 9725's sibling: the client offers recvonly m-lines); answer
    /// with [`MediaEvent::Answer`].
    StartPlayAnswer {
        /// New session id.
        session: SessionId,
        /// The stream played.
        stream: String,
        /// The publish session whose media this player receives.
        publisher: SessionId,
        /// The client's SDP offer.
        offer: String,
    },
    /// Create a relay session on an edge node: the media layer is the *client* of a play
    /// session on the stream's origin node. `offer` is the origin's offer (sendonly m-lines,
    /// ICE-lite); the edge answers ([`MediaEvent::Answer`], to send to the origin as a player
    /// would), runs full ICE as the controlling agent towards the origin's candidates (in the
    /// offer or given later with [`MediaCmd::RemoteCandidate`]) from a local address reserved
    /// for this relay, and is the DTLS client. Inside the edge the session is a publisher of
    /// `stream`: local players play it like any publisher, their keyframe requests go
    /// upstream. [`MediaEvent::Failed`] with [`FailReason::RelayCapacity`] when every relay
    /// address is in use.
    StartRelay {
        /// New session id.
        session: SessionId,
        /// The stream relayed.
        stream: String,
        /// The origin's SDP offer.
        offer: String,
    },
    /// Create a play session of a main track (room) that receives each of `subtracks` on its
    /// own audio/video m-lines; answer with [`MediaEvent::Offer`] (each m-line's
    /// [`OfferedTrack::source`] names its subtrack).
    StartRoomPlay {
        /// New session id.
        session: SessionId,
        /// The main track played.
        stream: String,
        /// The subtracks to send, possibly none.
        subtracks: Vec<Subtrack>,
    },
    /// The subtracks a room player should now receive (the whole set, not a difference). The
    /// media layer renegotiates: a new [`MediaEvent::Offer`] activates, reuses or deactivates
    /// m-lines (after the pending offer, if any, is answered).
    SetSubtracks {
        /// The room play session.
        session: SessionId,
        /// The subtracks to send.
        subtracks: Vec<Subtrack>,
    },
    /// Last-N video of a room player: `Some(slots)` gives it `slots.len()` video m-lines
    /// labelled `videoTrack<k>` (instead of one per subtrack), slot `k` carrying `slots[k]`;
    /// `None` goes back to one video m-line per subtrack. A change of the number of slots
    /// renegotiates; a change of what the slots carry does not (the media layer switches the
    /// slot's source from the next keyframe and tells the player on its data channel,
    /// `VIDEO_TRACK_ASSIGNMENT_LIST`). Every slot subtrack is also one of the room player's
    /// [`MediaCmd::SetSubtracks`] set.
    SetVideoSlots {
        /// The room play session.
        session: SessionId,
        /// The slots and what each carries.
        slots: Option<Vec<Option<Subtrack>>>,
    },
    /// Start or stop forwarding one subtrack's video and/or audio to a room player
    /// (`toggleVideo`/`toggleAudio` with a `trackId`).
    SetSubtrackForwarding {
        /// The room play session.
        session: SessionId,
        /// The subtrack's publish session.
        publisher: SessionId,
        /// `Some` to change video forwarding.
        video: Option<bool>,
        /// `Some` to change audio forwarding.
        audio: Option<bool>,
    },
    /// The client's SDP answer to a server offer (play).
    RemoteAnswer {
        /// The session.
        session: SessionId,
        /// The SDP.
        sdp: String,
    },
    /// A trickled client candidate.
    RemoteCandidate {
        /// The session.
        session: SessionId,
        /// The candidate line (with or without the `candidate:` prefix).
        candidate: String,
    },
    /// Ask a publisher for a keyframe.
    RequestKeyframe {
        /// The publish session.
        session: SessionId,
    },
    /// Start or stop forwarding video and/or audio to a player.
    SetForwarding {
        /// The play session.
        session: SessionId,
        /// `Some` to change video forwarding.
        video: Option<bool>,
        /// `Some` to change audio forwarding.
        audio: Option<bool>,
    },
    /// Pin a player to a height (0 = automatic). Without simulcast this is advisory.
    ForceQuality {
        /// The play session.
        session: SessionId,
        /// Requested height.
        height: u32,
    },
    /// A publish session's stream is a subtrack of a main track (`publish` with `mainTrack`):
    /// its data-channel messages also reach the players of the main track. Sent right after
    /// [`MediaCmd::StartPublish`]. Sent to a room player right after
    /// [`MediaCmd::StartRoomPlay`], it registers that player as one of the main track's.
    SetMainTrack {
        /// The publish session.
        session: SessionId,
        /// The main track, as a key unique across applications (`<app>/<mainTrack>`).
        main_track: String,
    },
    /// Tear a session down. No event follows.
    Close {
        /// The session.
        session: SessionId,
    },
}

/// An event from the media layer to signalling. Exhaustive on purpose, as [`MediaCmd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The server's SDP answer to a publisher's offer, or to a WHEP player's offer
    /// ([`MediaCmd::StartPlayAnswer`]).
    Answer {
        /// The session.
        session: SessionId,
        /// The SDP.
        sdp: String,
    },
    /// The server's SDP offer to a player.
    Offer {
        /// The session.
        session: SessionId,
        /// The SDP.
        sdp: String,
        /// The offered m-lines.
        tracks: Vec<OfferedTrack>,
    },
    /// A local candidate to trickle to the client.
    Candidate {
        /// The session.
        session: SessionId,
        /// The candidate.
        candidate: LocalCandidate,
    },
    /// ICE and DTLS are up.
    Connected {
        /// The session.
        session: SessionId,
    },
    /// The first media packet arrived from a publisher.
    MediaStarted {
        /// The session.
        session: SessionId,
    },
    /// A player asked for a keyframe (PLI/FIR); signalling may forward it to the publisher.
    KeyframeRequested {
        /// The play session that asked.
        session: SessionId,
    },
    /// Periodic measurements.
    Stats {
        /// The session.
        session: SessionId,
        /// The figures.
        stats: SessionStats,
    },
    /// The session failed (bad SDP, ICE timeout, DTLS failure). The media layer has dropped it.
    Failed {
        /// The session.
        session: SessionId,
        /// What went wrong.
        reason: FailReason,
    },
    /// The session ended on its own (peer gone). The media layer has dropped it.
    Closed {
        /// The session.
        session: SessionId,
    },
}

impl MediaEvent {
    /// The session the event is about.
    pub fn session(&self) -> SessionId {
        match self {
            MediaEvent::Answer { session, .. }
            | MediaEvent::Offer { session, .. }
            | MediaEvent::Candidate { session, .. }
            | MediaEvent::Connected { session }
            | MediaEvent::MediaStarted { session }
            | MediaEvent::KeyframeRequested { session }
            | MediaEvent::Stats { session, .. }
            | MediaEvent::Failed { session, .. }
            | MediaEvent::Closed { session } => *session,
        }
    }
}

/// Why a media session failed ([`MediaEvent::Failed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// The client's SDP could not be parsed or applied (`notSetRemoteDescription`); the text is
    /// the media library's, for the log.
    RemoteDescription(String),
    /// No server offer could be made for a player.
    NoOffer,
    /// ICE and DTLS did not complete within the connect timeout.
    ConnectTimeout,
    /// ICE failed before the session connected.
    IceFailed,
    /// The media library reported an error; the text is its, for the log.
    Rtc(String),
    /// A relay session could not start: every local address reserved for relays is in use.
    RelayCapacity,
}

impl FailReason {
    /// True if the failure was applying the client's SDP (`notSetRemoteDescription`).
    pub fn is_remote_description(&self) -> bool {
        matches!(self, FailReason::RemoteDescription(_))
    }
}

impl std::fmt::Display for FailReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailReason::RemoteDescription(e) => write!(f, "remote description: {e}"),
            FailReason::NoOffer => f.write_str("no offer"),
            FailReason::ConnectTimeout => f.write_str("ICE/DTLS connect timeout"),
            FailReason::IceFailed => f.write_str("ICE failed"),
            FailReason::Rtc(e) => write!(f, "rtc error: {e}"),
            FailReason::RelayCapacity => f.write_str("no free relay address"),
        }
    }
}
