//! Data channel relay: who receives a data-channel message, the settings that decide it, and
//! the counters of what was relayed or dropped.
//!
//! # Model (AMS `dataChannelEnabled`, `dataChannelPlayerDistribution`)
//!
//! - A publisher's browser opens one ordered channel labelled with the stream id (the SDK's
//!   `publish`). Every message on it (text or binary, each SCTP message on its own: the SDK
//!   sends binary data as an 8-byte header message then chunks of at most 16004 bytes) goes to
//!   the [`DataRouter::publisher_targets`]: the players of that stream, and, when the stream
//!   is a subtrack (`mainTrack = M`), the players of the main track M (conference chat).
//! - The server offers every player one ordered channel labelled with the stream id
//!   (the SDK's play mode takes it in `ondatachannel`). A player's messages go where
//!   [`PlayerDistribution`] says: nowhere, to the publisher, or to the publisher and the
//!   stream's other players (AMS's default `all`).
//! - A data-only publish (an offer with only `m=application`) is live when its channel opens;
//!   its players get an offer with only `m=application`.
//!
//! # Bounds
//!
//! - A message longer than [`DataConfig::max_message_size`] is dropped (counted in
//!   [`DataStats::dropped_oversize`]). str0m's SCTP already refuses to reassemble more than
//!   its advertised `a=max-message-size` (256 KiB), so memory is bounded before this check.
//! - Writes never wait: str0m buffers at most 128 KiB per peer connection for sending; when a
//!   receiver does not keep up, `Channel::write` refuses and that receiver's copy is dropped
//!   ([`DataStats::dropped_congested`]). Other receivers and the event loop are not affected.
//! - Each sender may send at most [`DataConfig::max_messages_per_second`] messages per second
//!   (a token bucket holding one second's worth); beyond that its messages are dropped
//!   ([`DataStats::dropped_rate`]). One tiny message is relayed to every player, so without
//!   this bound a single publisher could make the loop write thousands of copies per datagram.

use std::collections::HashMap;
use std::time::Instant;

use proto_core::SessionId;

/// Default [`DataConfig::max_message_size`]: 64 KiB.
pub const DEFAULT_MAX_DATA_MESSAGE: usize = 64 * 1024;

/// Default [`DataConfig::max_messages_per_second`]. The SDK sends a 1 MB binary as 64
/// messages; chat and conference events are a few per second.
pub const DEFAULT_MAX_DATA_RATE: u32 = 1000;

/// Where a player's data-channel messages go (AMS `dataChannelPlayerDistribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlayerDistribution {
    /// Dropped (`none`).
    None,
    /// To the publisher of the stream only (`publisher`).
    Publisher,
    /// To the publisher and every other player of the stream (`all`, AMS's default).
    #[default]
    All,
}

impl PlayerDistribution {
    /// Parses the AMS setting value (`none`, `publisher`, `all`; case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Some(PlayerDistribution::None),
            "publisher" => Some(PlayerDistribution::Publisher),
            "all" => Some(PlayerDistribution::All),
            _ => None,
        }
    }

    /// The AMS setting value.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerDistribution::None => "none",
            PlayerDistribution::Publisher => "publisher",
            PlayerDistribution::All => "all",
        }
    }
}

/// Data channel settings of the media layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataConfig {
    /// AMS `dataChannelEnabled` (default true): players are offered a channel and messages
    /// are relayed. When off, players get no channel, publishers' messages are dropped, and a
    /// data-only publish never goes live.
    pub enabled: bool,
    /// AMS `dataChannelPlayerDistribution` (default `all`).
    pub player_distribution: PlayerDistribution,
    /// Longest message relayed, in bytes (default [`DEFAULT_MAX_DATA_MESSAGE`]).
    pub max_message_size: usize,
    /// Messages relayed per second and sender, with a burst of one second's worth (default
    /// [`DEFAULT_MAX_DATA_RATE`]; 0 = unlimited).
    pub max_messages_per_second: u32,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            enabled: true,
            player_distribution: PlayerDistribution::All,
            max_message_size: DEFAULT_MAX_DATA_MESSAGE,
            max_messages_per_second: DEFAULT_MAX_DATA_RATE,
        }
    }
}

/// Counters of the data channel relay, since the [`crate::Sfu`] started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataStats {
    /// Messages received from clients.
    pub received: u64,
    /// Bytes received from clients.
    pub received_bytes: u64,
    /// Copies written to receivers' channels.
    pub delivered: u64,
    /// Messages dropped because they exceed [`DataConfig::max_message_size`].
    pub dropped_oversize: u64,
    /// Messages dropped because the data channel is disabled or the player distribution is
    /// `none`.
    pub dropped_not_relayed: u64,
    /// Copies dropped because the receiver's send buffer was full (slow receiver).
    pub dropped_congested: u64,
    /// Copies dropped because the receiver's channel is not open (yet, or any more).
    pub dropped_not_open: u64,
    /// Messages dropped because their sender exceeded
    /// [`DataConfig::max_messages_per_second`].
    pub dropped_rate: u64,
}

/// A sender's token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Who sent a message, as far as routing needs to know.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sender<'a> {
    /// A publisher, with its players.
    Publisher {
        /// The publish session.
        id: SessionId,
        /// Players of its stream.
        players: &'a [SessionId],
    },
    /// A player of `publisher`, whose players are `siblings` (the sender among them).
    Player {
        /// The play session.
        id: SessionId,
        /// The publisher it plays.
        publisher: SessionId,
        /// The publisher's players.
        siblings: &'a [SessionId],
    },
}

/// Routing state of the relay: settings, main-track membership and counters.
#[derive(Debug, Default)]
pub(crate) struct DataRouter {
    pub config: DataConfig,
    pub stats: DataStats,
    /// Publish session → main track key (the stream is a subtrack of that main track).
    main_track_of: HashMap<SessionId, String>,
    /// Main track key → sessions that play the main track (all its subtracks).
    main_track_players: HashMap<String, Vec<SessionId>>,
    /// Rate limit state per sending session.
    buckets: HashMap<SessionId, Bucket>,
}

impl DataRouter {
    /// Records that publish session `publisher` is a subtrack of `main_track`.
    pub fn set_main_track(&mut self, publisher: SessionId, main_track: String) {
        self.main_track_of.insert(publisher, main_track);
    }

    /// The main track of a publish session, if it is a subtrack.
    pub fn main_track_of(&self, publisher: SessionId) -> Option<&str> {
        self.main_track_of.get(&publisher).map(String::as_str)
    }

    /// Registers `player` as a player of main track `main_track`.
    pub fn add_main_track_player(&mut self, main_track: &str, player: SessionId) {
        let list = self
            .main_track_players
            .entry(main_track.to_string())
            .or_default();
        if !list.contains(&player) {
            list.push(player);
        }
    }

    /// Sessions playing main track `main_track`.
    pub fn players_of_main_track(&self, main_track: &str) -> &[SessionId] {
        self.main_track_players
            .get(main_track)
            .map_or(&[], Vec::as_slice)
    }

    /// Forgets a session that ended (as a subtrack publisher and as a main-track player).
    pub fn forget(&mut self, session: SessionId) {
        self.main_track_of.remove(&session);
        self.buckets.remove(&session);
        self.main_track_players.retain(|_, players| {
            players.retain(|p| *p != session);
            !players.is_empty()
        });
    }

    /// Whether `sender` may send one more message at `now` (and takes a token if so).
    pub fn allow(&mut self, now: Instant, sender: SessionId) -> bool {
        let rate = self.config.max_messages_per_second;
        if rate == 0 {
            return true;
        }
        let burst = f64::from(rate);
        let b = self.buckets.entry(sender).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * burst).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Receivers of a publisher's message: the players of its stream, then the players of its
    /// main track (if it is a subtrack), each once, never the sender.
    pub fn publisher_targets(&self, id: SessionId, players: &[SessionId]) -> Vec<SessionId> {
        let mut out: Vec<SessionId> = Vec::with_capacity(players.len());
        let main = self
            .main_track_of(id)
            .map_or(&[][..], |m| self.players_of_main_track(m));
        for p in players.iter().chain(main) {
            if *p != id && !out.contains(p) {
                out.push(*p);
            }
        }
        out
    }

    /// Receivers of a player's message under [`DataConfig::player_distribution`].
    pub fn player_targets(
        &self,
        id: SessionId,
        publisher: SessionId,
        siblings: &[SessionId],
    ) -> Vec<SessionId> {
        match self.config.player_distribution {
            PlayerDistribution::None => Vec::new(),
            PlayerDistribution::Publisher => vec![publisher],
            PlayerDistribution::All => std::iter::once(publisher)
                .chain(siblings.iter().copied().filter(|p| *p != id))
                .collect(),
        }
    }

    /// Receivers of a message from `sender`.
    pub fn targets(&self, sender: Sender<'_>) -> Vec<SessionId> {
        match sender {
            Sender::Publisher { id, players } => self.publisher_targets(id, players),
            Sender::Player {
                id,
                publisher,
                siblings,
            } => self.player_targets(id, publisher, siblings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: SessionId = SessionId(1);
    const A: SessionId = SessionId(2);
    const B: SessionId = SessionId(3);
    const ROOM_PLAYER: SessionId = SessionId(9);

    #[test]
    fn distribution_values() {
        for d in [
            PlayerDistribution::None,
            PlayerDistribution::Publisher,
            PlayerDistribution::All,
        ] {
            assert_eq!(PlayerDistribution::parse(d.as_str()), Some(d));
        }
        assert_eq!(
            PlayerDistribution::parse(" ALL "),
            Some(PlayerDistribution::All)
        );
        assert_eq!(PlayerDistribution::parse("everyone"), None);
        assert_eq!(
            DataConfig::default().player_distribution,
            PlayerDistribution::All
        );
    }

    #[test]
    fn publisher_reaches_players_and_main_track_players_once() {
        let mut r = DataRouter::default();
        assert_eq!(r.publisher_targets(P, &[A, B]), vec![A, B]);
        r.set_main_track(P, "app/room".into());
        r.add_main_track_player("app/room", ROOM_PLAYER);
        r.add_main_track_player("app/room", A);
        r.add_main_track_player("app/room", A);
        assert_eq!(r.players_of_main_track("app/room"), &[ROOM_PLAYER, A]);
        assert_eq!(r.publisher_targets(P, &[A, B]), vec![A, B, ROOM_PLAYER]);
        r.forget(ROOM_PLAYER);
        r.forget(A);
        assert!(r.players_of_main_track("app/room").is_empty());
        r.forget(P);
        assert_eq!(r.main_track_of(P), None);
    }

    #[test]
    fn rate_limit_allows_one_second_of_burst_then_the_rate() {
        let mut r = DataRouter::default();
        r.config.max_messages_per_second = 10;
        #[allow(clippy::disallowed_methods)] // starts the test's virtual clock
        let t0 = Instant::now();
        let allowed = (0..25).filter(|_| r.allow(t0, P)).count();
        assert_eq!(allowed, 10, "burst of one second's worth");
        assert!(r.allow(t0, A), "per sender");
        let t1 = t0 + std::time::Duration::from_millis(500);
        let allowed = (0..25).filter(|_| r.allow(t1, P)).count();
        assert_eq!(allowed, 5, "refilled at 10/s");
        r.forget(P);
        assert!(r.allow(t1, P));
        r.config.max_messages_per_second = 0;
        assert!((0..10_000).all(|_| r.allow(t1, P)), "0 = unlimited");
    }

    proptest::proptest! {
        /// Whatever sessions come, register and go: a publisher's receivers are its players
        /// plus its main track's live players, each once, never the sender, never a forgotten
        /// session.
        #[test]
        fn publisher_targets_are_exact(ops in proptest::collection::vec((0u8..4, 0u64..6, 0u8..2), 0..60)) {
            let mut r = DataRouter::default();
            let mut gone = std::collections::BTreeSet::new();
            for (op, s, m) in ops {
                let id = SessionId(s);
                let main = format!("app/room{m}");
                match op {
                    0 => { r.set_main_track(id, main); gone.remove(&s); }
                    1 => { r.add_main_track_player(&main, id); gone.remove(&s); }
                    2 => { r.forget(id); gone.insert(s); }
                    _ => {
                        let players: Vec<SessionId> = (0..6).filter(|p| p % 2 == s % 2).map(SessionId).collect();
                        let t = r.publisher_targets(id, &players);
                        let mut expect: Vec<SessionId> = players.clone();
                        if let Some(mt) = r.main_track_of(id) {
                            expect.extend(r.players_of_main_track(mt).iter().copied());
                        }
                        expect.retain(|x| *x != id);
                        let mut dedup = Vec::new();
                        for x in expect { if !dedup.contains(&x) { dedup.push(x); } }
                        proptest::prop_assert_eq!(&t, &dedup);
                        for x in &t {
                            let from_main = r.main_track_of(id).is_some_and(|mt| r.players_of_main_track(mt).contains(x));
                            proptest::prop_assert!(players.contains(x) || (from_main && !gone.contains(&x.0)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn player_distribution_modes() {
        let mut r = DataRouter::default();
        let sender = Sender::Player {
            id: A,
            publisher: P,
            siblings: &[A, B],
        };
        assert_eq!(r.targets(sender), vec![P, B]);
        r.config.player_distribution = PlayerDistribution::Publisher;
        assert_eq!(r.targets(sender), vec![P]);
        r.config.player_distribution = PlayerDistribution::None;
        assert!(r.targets(sender).is_empty());
    }
}
