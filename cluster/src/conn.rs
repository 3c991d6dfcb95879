//! One Redis connection as a Sans-IO state machine. The runtime owns the TCP socket: it
//! connects when asked ([`ConnOutput::Connect`]), reports [`RedisConn::handle_connected`],
//! feeds what it reads to [`RedisConn::handle_input`], writes [`ConnOutput::Transmit`] bytes
//! and reports a closed or failed socket with [`RedisConn::handle_closed`]. Time comes in as
//! `now`; the connection asks to be woken at [`RedisConn::poll_timeout`].
//!
//! Commands are pipelined and their replies matched in order against a bounded queue of
//! pending commands, each with the caller's tag. While the connection is not up, a command is
//! refused at once with [`Unavailable`] (the caller answers `data_store_not_available`);
//! commands pending when the connection drops fail with [`ConnEvent::Failed`]. After a drop the
//! connection retries with exponential back-off, from [`ConnConfig::backoff_min`] to
//! [`ConnConfig::backoff_max`], reset once a connection is up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::resp::{Command, DecodeError, Decoder, Reply};

/// Tunables of a connection.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Database index selected after connecting (`redis://host:port/DB`).
    pub db: u32,
    /// First retry delay after a failure.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Time a TCP connect may take.
    pub connect_timeout: Duration,
    /// Time the oldest pending command may wait for its reply before the connection is
    /// considered dead (closed and retried).
    pub reply_timeout: Duration,
    /// Commands awaiting their replies at most.
    pub max_pending: usize,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            db: 0,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            reply_timeout: Duration::from_secs(5),
            max_pending: 4096,
        }
    }
}

/// The caller's name for a command, given back with its reply.
pub type Tag = u64;

/// A command refused because the connection is not up or its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// What the connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// The connection is up (connected, database selected): commands are accepted.
    Up,
    /// The connection went down; it retries at the given time.
    Down {
        /// Why.
        reason: String,
        /// The next connect attempt.
        retry_at: Instant,
    },
    /// The reply to the command sent with `tag`.
    Reply {
        /// The command's tag.
        tag: Tag,
        /// The reply (a `Reply::Error` is Redis refusing the command).
        reply: Reply,
    },
    /// The command sent with `tag` got no reply: the connection dropped.
    Failed {
        /// The command's tag.
        tag: Tag,
    },
    /// A message published on a subscribed channel.
    Message {
        /// The channel.
        channel: Vec<u8>,
        /// The payload.
        payload: Vec<u8>,
    },
}

/// What the runtime does for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnOutput {
    /// Open a TCP connection to the server (closing any previous one).
    Connect,
    /// Close the socket (the connection is retried later with a new `Connect`).
    Close,
    /// Write these bytes to the socket, in order.
    Transmit(Vec<u8>),
    /// Something happened.
    Event(ConnEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting to (re)connect at this time.
    Down { retry_at: Instant },
    /// `Connect` was asked for; the socket connects until the deadline.
    Connecting { deadline: Instant },
    /// Connected: the handshake (SELECT) is pending or done.
    Up,
}

/// Counters of one connection (logged by the runtime).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Connections established.
    pub connects: u64,
    /// Connections lost or failed.
    pub failures: u64,
    /// Commands refused while down or with a full queue.
    pub refused: u64,
    /// Replies that could not be read (malformed, too large, too deep, unmatched).
    pub protocol_errors: u64,
    /// Commands sent.
    pub sent: u64,
}

/// The tag of the handshake commands (never given to the caller).
const INTERNAL: Tag = Tag::MAX;

/// One Redis connection. See the module docs.
#[derive(Debug)]
pub struct RedisConn {
    config: ConnConfig,
    state: State,
    backoff: Duration,
    /// Tags of the commands sent, oldest first, with the time each was sent (`None`: sent by
    /// a caller without a clock, timed from the next `handle_timeout`).
    pending: VecDeque<(Tag, Option<Instant>)>,
    decoder: Decoder,
    out: VecDeque<ConnOutput>,
    /// Channels subscribed on this connection: pushed messages are expected.
    subscribed: usize,
    stats: ConnStats,
    /// The latest time given to any call (for callers that have no `now` of their own).
    last_now: Instant,
}

impl RedisConn {
    /// A connection that connects at its first `handle_timeout` (at `now`).
    pub fn new(config: ConnConfig, now: Instant) -> RedisConn {
        RedisConn {
            backoff: config.backoff_min,
            config,
            state: State::Down { retry_at: now },
            pending: VecDeque::new(),
            decoder: Decoder::default(),
            out: VecDeque::new(),
            subscribed: 0,
            stats: ConnStats::default(),
            last_now: now,
        }
    }

    /// Whether commands are accepted.
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// Counters.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    /// The latest `now` any call was given.
    pub fn last_activity(&self) -> Instant {
        self.last_now
    }

    /// Commands awaiting their replies.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Sends `cmd`; its reply comes back as [`ConnEvent::Reply`] with `tag`.
    pub fn send(&mut self, now: Instant, tag: Tag, cmd: &Command) -> Result<(), Unavailable> {
        self.last_now = self.last_now.max(now);
        self.send_at(Some(now), tag, cmd)
    }

    /// [`RedisConn::send`] for a caller that has no `now` (a `Store::write`): the reply's
    /// timeout counts from the next [`RedisConn::handle_timeout`], which
    /// [`RedisConn::poll_timeout`] then asks for at once. (Timing it from the last `now` seen
    /// would fail a healthy connection whose last call was over `reply_timeout` ago.)
    pub fn send_untimed(&mut self, tag: Tag, cmd: &Command) -> Result<(), Unavailable> {
        self.send_at(None, tag, cmd)
    }

    fn send_at(
        &mut self,
        sent: Option<Instant>,
        tag: Tag,
        cmd: &Command,
    ) -> Result<(), Unavailable> {
        if self.state != State::Up || self.pending.len() >= self.config.max_pending {
            self.stats.refused += 1;
            return Err(Unavailable);
        }
        if cmd.name() == "SUBSCRIBE" {
            self.subscribed += cmd.0.len().saturating_sub(1);
        }
        self.pending.push_back((tag, sent));
        self.stats.sent += 1;
        self.out.push_back(ConnOutput::Transmit(cmd.encode()));
        Ok(())
    }

    /// The socket connected.
    pub fn handle_connected(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if !matches!(self.state, State::Connecting { .. }) {
            return;
        }
        self.state = State::Up;
        self.decoder.clear();
        self.subscribed = 0;
        self.stats.connects += 1;
        self.backoff = self.config.backoff_min;
        if self.config.db != 0 {
            let select = Command::new(["SELECT".to_string(), self.config.db.to_string()]);
            self.pending.push_back((INTERNAL, Some(now)));
            self.out.push_back(ConnOutput::Transmit(select.encode()));
        }
        self.out.push_back(ConnOutput::Event(ConnEvent::Up));
    }

    /// Bytes read from the socket.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.last_now = self.last_now.max(now);
        if self.state != State::Up {
            return;
        }
        self.decoder.feed(data);
        loop {
            match self.decoder.next_reply() {
                Ok(Some(reply)) => self.on_reply(now, reply),
                Ok(None) => return,
                Err(e) => {
                    self.stats.protocol_errors += 1;
                    self.fail(now, &e.to_string());
                    return;
                }
            }
            if self.state != State::Up {
                return;
            }
        }
    }

    fn on_reply(&mut self, now: Instant, reply: Reply) {
        if self.subscribed > 0 {
            if let Reply::Array(items) = &reply {
                if let [Reply::Bulk(kind), Reply::Bulk(channel), Reply::Bulk(payload)] =
                    items.as_slice()
                {
                    if kind.as_slice() == b"message" {
                        self.out.push_back(ConnOutput::Event(ConnEvent::Message {
                            channel: channel.clone(),
                            payload: payload.clone(),
                        }));
                        return;
                    }
                }
            }
        }
        let Some((tag, _)) = self.pending.pop_front() else {
            self.stats.protocol_errors += 1;
            self.fail(
                now,
                &DecodeError::Malformed("reply without a command".into()).to_string(),
            );
            return;
        };
        if tag == INTERNAL {
            if let Reply::Error(e) = reply {
                self.fail(now, &format!("handshake refused: {e}"));
            }
            return;
        }
        self.out
            .push_back(ConnOutput::Event(ConnEvent::Reply { tag, reply }));
    }

    /// The socket closed, failed to connect or failed to write.
    pub fn handle_closed(&mut self, now: Instant, reason: &str) {
        self.last_now = self.last_now.max(now);
        if matches!(self.state, State::Down { .. }) {
            return;
        }
        self.down(now, reason);
    }

    /// Closes the socket and schedules a retry.
    fn fail(&mut self, now: Instant, reason: &str) {
        self.out.push_back(ConnOutput::Close);
        self.down(now, reason);
    }

    fn down(&mut self, now: Instant, reason: &str) {
        self.stats.failures += 1;
        let retry_at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
        self.state = State::Down { retry_at };
        self.decoder.clear();
        self.subscribed = 0;
        for (tag, _) in std::mem::take(&mut self.pending) {
            if tag != INTERNAL {
                self.out
                    .push_back(ConnOutput::Event(ConnEvent::Failed { tag }));
            }
        }
        self.out.push_back(ConnOutput::Event(ConnEvent::Down {
            reason: reason.to_string(),
            retry_at,
        }));
    }

    /// Time passed: connect when due, give up a connect or a reply that took too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        match self.state {
            State::Down { retry_at } if now >= retry_at => {
                self.state = State::Connecting {
                    deadline: now + self.config.connect_timeout,
                };
                self.out.push_back(ConnOutput::Connect);
            }
            State::Connecting { deadline } if now >= deadline => {
                self.fail(now, "connect timed out");
            }
            State::Up => match self.pending.front_mut() {
                Some((_, Some(sent))) if now >= *sent + self.config.reply_timeout => {
                    self.fail(now, "reply timed out");
                }
                Some((_, sent @ None)) => *sent = Some(now),
                _ => {}
            },
            _ => {}
        }
    }

    /// When [`RedisConn::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Down { retry_at } => Some(retry_at),
            State::Connecting { deadline } => Some(deadline),
            // An untimed command is stamped at the next call: due at once.
            State::Up => self
                .pending
                .front()
                .map(|&(_, sent)| sent.map_or(self.last_now, |s| s + self.config.reply_timeout)),
        }
    }

    /// The next thing for the runtime to do.
    pub fn poll_output(&mut self) -> Option<ConnOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests {
    use super::*;

    fn up(now: Instant, db: u32) -> RedisConn {
        let mut c = RedisConn::new(
            ConnConfig {
                db,
                ..ConnConfig::default()
            },
            now,
        );
        c.handle_timeout(now);
        assert_eq!(c.poll_output(), Some(ConnOutput::Connect));
        c.handle_connected(now);
        c
    }

    fn drain(c: &mut RedisConn) -> Vec<ConnOutput> {
        std::iter::from_fn(|| c.poll_output()).collect()
    }

    #[test]
    fn replies_are_matched_in_order_across_split_reads() {
        let now = Instant::now();
        let mut c = up(now, 0);
        drain(&mut c);
        for tag in 1..=3 {
            c.send(now, tag, &Command::new(["GET", "k"])).unwrap();
        }
        let bytes = b"$1\r\na\r\n$-1\r\n:7\r\n";
        for b in bytes {
            c.handle_input(now, &[*b]);
        }
        let events: Vec<_> = drain(&mut c)
            .into_iter()
            .filter_map(|o| match o {
                ConnOutput::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ConnEvent::Reply {
                    tag: 1,
                    reply: Reply::Bulk(b"a".to_vec())
                },
                ConnEvent::Reply {
                    tag: 2,
                    reply: Reply::Nil
                },
                ConnEvent::Reply {
                    tag: 3,
                    reply: Reply::Int(7)
                },
            ]
        );
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn select_is_sent_first_and_its_reply_is_not_given_out() {
        let now = Instant::now();
        let mut c = up(now, 2);
        let out = drain(&mut c);
        assert_eq!(
            out[0],
            ConnOutput::Transmit(b"*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n".to_vec())
        );
        c.send(now, 5, &Command::new(["PING"])).unwrap();
        drain(&mut c);
        c.handle_input(now, b"+OK\r\n+PONG\r\n");
        assert_eq!(
            drain(&mut c),
            vec![ConnOutput::Event(ConnEvent::Reply {
                tag: 5,
                reply: Reply::Status("PONG".into())
            })]
        );
    }

    #[test]
    fn down_refuses_and_fails_pending_then_backs_off() {
        let t0 = Instant::now();
        let mut c = up(t0, 0);
        c.send(t0, 1, &Command::new(["GET", "k"])).unwrap();
        drain(&mut c);
        c.handle_closed(t0, "reset");
        let out = drain(&mut c);
        assert_eq!(out[0], ConnOutput::Event(ConnEvent::Failed { tag: 1 }));
        assert_eq!(c.send(t0, 2, &Command::new(["GET", "k"])), Err(Unavailable));
        // Back-off doubles: 100 ms, then 200 ms after a failed connect.
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(100)));
        c.handle_timeout(t0 + Duration::from_millis(99));
        assert!(drain(&mut c).is_empty());
        let t1 = t0 + Duration::from_millis(100);
        c.handle_timeout(t1);
        assert_eq!(drain(&mut c), vec![ConnOutput::Connect]);
        c.handle_closed(t1, "refused");
        drain(&mut c);
        assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_millis(200)));
        // Connected again: the back-off starts over.
        let t2 = t1 + Duration::from_millis(200);
        c.handle_timeout(t2);
        c.handle_connected(t2);
        assert!(c.is_up());
        c.handle_closed(t2, "reset");
        assert_eq!(c.poll_timeout(), Some(t2 + Duration::from_millis(100)));
    }

    #[test]
    fn backoff_is_capped() {
        let mut t = Instant::now();
        let mut c = RedisConn::new(ConnConfig::default(), t);
        for _ in 0..20 {
            t = c.poll_timeout().unwrap();
            c.handle_timeout(t);
            c.handle_closed(t, "refused");
        }
        assert_eq!(
            c.poll_timeout(),
            Some(t + ConnConfig::default().backoff_max)
        );
    }

    #[test]
    fn silent_server_and_slow_connect_time_out() {
        let t0 = Instant::now();
        let mut c = up(t0, 0);
        c.send(t0, 1, &Command::new(["GET", "k"])).unwrap();
        drain(&mut c);
        c.handle_timeout(t0 + Duration::from_secs(5));
        let out = drain(&mut c);
        assert_eq!(out[0], ConnOutput::Close);
        assert!(!c.is_up());
        let t1 = c.poll_timeout().unwrap();
        c.handle_timeout(t1);
        assert_eq!(drain(&mut c), vec![ConnOutput::Connect]);
        c.handle_timeout(t1 + Duration::from_secs(3));
        assert_eq!(drain(&mut c)[0], ConnOutput::Close);
    }

    #[test]
    fn an_untimed_command_is_timed_from_the_next_timeout_call() {
        let t0 = Instant::now();
        let mut c = up(t0, 0);
        drain(&mut c);
        // The connection's last call was long ago; the caller has no clock.
        let t1 = t0 + Duration::from_secs(60);
        c.send_untimed(1, &Command::new(["HSET", "h", "f", "v"]))
            .unwrap();
        drain(&mut c);
        assert_eq!(c.poll_timeout(), Some(t0), "due at once, to be stamped");
        c.handle_timeout(t1);
        assert!(c.is_up(), "not failed for the idle time before it was sent");
        assert!(drain(&mut c).is_empty());
        assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(5)));
        c.handle_input(t1, b":1\r\n");
        assert_eq!(
            drain(&mut c),
            vec![ConnOutput::Event(ConnEvent::Reply {
                tag: 1,
                reply: Reply::Int(1)
            })]
        );
        // Unanswered, it times out like any command, counted from its stamp.
        c.send_untimed(2, &Command::new(["PING"])).unwrap();
        c.handle_timeout(t1);
        c.handle_timeout(t1 + Duration::from_millis(4999));
        assert!(c.is_up());
        c.handle_timeout(t1 + Duration::from_secs(5));
        assert!(!c.is_up());
    }

    #[test]
    fn unsolicited_reply_and_garbage_close_the_connection() {
        let now = Instant::now();
        let mut c = up(now, 0);
        drain(&mut c);
        c.handle_input(now, b"+OK\r\n");
        assert_eq!(drain(&mut c)[0], ConnOutput::Close);
        assert_eq!(c.stats().protocol_errors, 1);
        let mut c = up(now, 0);
        c.send(now, 1, &Command::new(["GET", "k"])).unwrap();
        drain(&mut c);
        c.handle_input(now, b"?what\r\n");
        assert_eq!(drain(&mut c)[0], ConnOutput::Close);
    }

    #[test]
    fn pending_queue_is_bounded() {
        let now = Instant::now();
        let mut c = RedisConn::new(
            ConnConfig {
                max_pending: 2,
                ..ConnConfig::default()
            },
            now,
        );
        c.handle_timeout(now);
        c.handle_connected(now);
        c.send(now, 1, &Command::new(["PING"])).unwrap();
        c.send(now, 2, &Command::new(["PING"])).unwrap();
        assert_eq!(c.send(now, 3, &Command::new(["PING"])), Err(Unavailable));
        assert_eq!(c.stats().refused, 1);
    }

    #[test]
    fn published_messages_are_events() {
        let now = Instant::now();
        let mut c = up(now, 0);
        c.send(now, 1, &Command::new(["SUBSCRIBE", "ch"])).unwrap();
        drain(&mut c);
        c.handle_input(
            now,
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        );
        let out = drain(&mut c);
        assert!(matches!(
            out[0],
            ConnOutput::Event(ConnEvent::Reply { tag: 1, .. })
        ));
        assert_eq!(
            out[1],
            ConnOutput::Event(ConnEvent::Message {
                channel: b"ch".to_vec(),
                payload: b"hi".to_vec()
            })
        );
    }
}
