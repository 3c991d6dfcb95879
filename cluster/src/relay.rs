//! The signalling of one relay, on the edge: a pure AMS WebSocket *client* that plays a
//! stream from its origin node as a player would, and the cluster credential the origin
//! accepts in place of the stream's play token.
//!
//! The runtime owns the WebSocket (its client handshake and socket); this state machine
//! only turns AMS text frames into what the edge's media layer needs, and back:
//!
//! ```text
//! client = RelayClient::new(config, now)        // queues `play`
//! client.handle_text(now, frame)                // takeConfiguration offer, takeCandidate,
//!                                               // notifications, errors from the origin
//! client.handle_answer(sdp)                     // the relay session's answer (media layer)
//! client.handle_timeout(now)                    // offer deadline, pings
//! while let Some(out) = client.poll_output() { .. }  // Send, StartMedia, RemoteCandidate, Ended
//! ```
//!
//! Everything from the origin is bounded (frame size, candidates, one offer); anything else
//! ends the relay with a [`RelayEnd`] the edge reports to its players.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// How long the origin has to send its offer after `play`.
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest text frame taken from the origin (an offer with candidates is a few KiB).
pub const MAX_FRAME: usize = 64 * 1024;
/// Most remote candidates taken from the origin.
pub const MAX_CANDIDATES: usize = 16;
/// A ping every this long keeps the origin's idle timeout away.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);

/// The prefix of a cluster credential, so the origin tells it from a user's token.
pub const TOKEN_PREFIX: &str = "antenna-cluster.";

/// The cluster credential for playing `app`/`stream`: `antenna-cluster.` and the hex
/// HMAC-SHA256 of the stream under the cluster's shared secret. A credential seen on the
/// wire opens that one stream only, never the secret.
pub fn cluster_token(secret: &str, app: &str, stream: &str) -> String {
    let mut out = String::from(TOKEN_PREFIX);
    // Without a MAC the bare prefix goes out, which no origin verifies.
    if let Some(m) = mac(secret, app, stream) {
        for b in m.finalize().into_bytes() {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// Whether `token` is the cluster credential of `app`/`stream` under `secret`, compared in
/// constant time (the MAC crate's `verify_slice`). An empty secret accepts nothing.
pub fn verify_cluster_token(secret: &str, app: &str, stream: &str, token: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(hex) = token.strip_prefix(TOKEN_PREFIX) else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        let Some(pair) = hex.get(2 * i..2 * i + 2) else {
            return false;
        };
        let Ok(v) = u8::from_str_radix(pair, 16) else {
            return false;
        };
        *b = v;
    }
    mac(secret, app, stream).is_some_and(|m| m.verify_slice(&bytes).is_ok())
}

/// The MAC of `app`/`stream` under `secret`; `None` only if the MAC crate refused the key
/// (HMAC takes keys of any length, so never in practice).
fn mac(secret: &str, app: &str, stream: &str) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    m.update(b"antenna-relay\n");
    m.update(app.as_bytes());
    m.update(b"/");
    m.update(stream.as_bytes());
    Some(m)
}

/// Settings of one relay's signalling.
#[derive(Debug, Clone)]
pub struct RelayClientConfig {
    /// The application on the origin.
    pub app: String,
    /// The stream played.
    pub stream: String,
    /// The cluster's shared secret.
    pub secret: String,
}

/// Why a relay's signalling ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// The origin has no such stream (`no_stream_exist`).
    NoStream,
    /// The origin refused the play with this error definition.
    Refused(String),
    /// The origin's stream ended (`play_finished`).
    Finished,
    /// No offer came within [`OFFER_TIMEOUT`].
    OfferTimeout,
    /// The origin broke the protocol (an oversized frame, too many candidates, bad JSON).
    Protocol(String),
    /// The edge stopped the relay (its last player left).
    Stopped,
    /// The WebSocket closed.
    Closed,
}

/// What the relay's signalling asks of the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayOutput {
    /// Send this text frame to the origin.
    Send(String),
    /// Start the relay media session from the origin's offer (`MediaCmd::StartRelay`).
    StartMedia {
        /// The origin's SDP offer.
        offer: String,
    },
    /// A candidate of the origin (`MediaCmd::RemoteCandidate`).
    RemoteCandidate(String),
    /// The origin's stream is playing (`play_started`).
    Playing,
    /// The relay is over; close the WebSocket and the media session.
    Ended(RelayEnd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitOffer { deadline: Instant },
    AwaitAnswer,
    Answered,
    Ended,
}

/// One relay's AMS client signalling (see the module docs).
#[derive(Debug)]
pub struct RelayClient {
    config: RelayClientConfig,
    state: State,
    candidates: usize,
    next_ping: Instant,
    outputs: VecDeque<RelayOutput>,
}

impl RelayClient {
    /// A relay client that has queued its `play` with the cluster credential.
    pub fn new(config: RelayClientConfig, now: Instant) -> RelayClient {
        let token = cluster_token(&config.secret, &config.app, &config.stream);
        let play = json!({"command": "play", "streamId": config.stream, "token": token});
        let mut c = RelayClient {
            config,
            state: State::AwaitOffer {
                deadline: now + OFFER_TIMEOUT,
            },
            candidates: 0,
            next_ping: now + PING_INTERVAL,
            outputs: VecDeque::new(),
        };
        c.outputs.push_back(RelayOutput::Send(play.to_string()));
        c
    }

    /// The stream relayed.
    pub fn stream(&self) -> &str {
        &self.config.stream
    }

    /// Whether the relay is over.
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// A text frame from the origin.
    pub fn handle_text(&mut self, _now: Instant, text: &str) {
        if self.state == State::Ended {
            return;
        }
        if text.len() > MAX_FRAME {
            return self.end(RelayEnd::Protocol(format!("frame of {} bytes", text.len())));
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return self.end(RelayEnd::Protocol("frame is not JSON".into()));
        };
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        match field("command") {
            "takeConfiguration" if field("type") == "offer" => {
                if !matches!(self.state, State::AwaitOffer { .. }) {
                    // A stream play is never renegotiated; a second offer is not followed.
                    return self.end(RelayEnd::Protocol("a second offer".into()));
                }
                self.state = State::AwaitAnswer;
                self.outputs.push_back(RelayOutput::StartMedia {
                    offer: field("sdp").to_string(),
                });
            }
            "takeCandidate" => {
                self.candidates += 1;
                if self.candidates > MAX_CANDIDATES {
                    return self.end(RelayEnd::Protocol("too many candidates".into()));
                }
                self.outputs
                    .push_back(RelayOutput::RemoteCandidate(field("candidate").to_string()));
            }
            "notification" => match field("definition") {
                "play_started" => self.outputs.push_back(RelayOutput::Playing),
                "play_finished" => self.end(RelayEnd::Finished),
                _ => {}
            },
            "error" => match field("definition") {
                "no_stream_exist" => self.end(RelayEnd::NoStream),
                d => self.end(RelayEnd::Refused(d.to_string())),
            },
            // pong, streamInformation and whatever else a player may be sent.
            _ => {}
        }
    }

    /// The relay session's answer to the origin's offer.
    pub fn handle_answer(&mut self, sdp: &str) {
        if self.state != State::AwaitAnswer {
            return;
        }
        self.state = State::Answered;
        let m = json!({"command": "takeConfiguration", "streamId": self.config.stream,
            "type": "answer", "sdp": sdp});
        self.outputs.push_back(RelayOutput::Send(m.to_string()));
    }

    /// The edge stops the relay: `stop` goes to the origin, then the relay ends.
    pub fn stop(&mut self) {
        if self.state == State::Ended {
            return;
        }
        let m = json!({"command": "stop", "streamId": self.config.stream});
        self.outputs.push_back(RelayOutput::Send(m.to_string()));
        self.end(RelayEnd::Stopped);
    }

    /// The WebSocket closed (or could not be opened).
    pub fn handle_closed(&mut self) {
        self.end(RelayEnd::Closed);
    }

    /// Time passed: the offer deadline and the pings.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::AwaitOffer { deadline } = self.state {
            if now >= deadline {
                return self.end(RelayEnd::OfferTimeout);
            }
        }
        if self.state != State::Ended && now >= self.next_ping {
            self.next_ping = now + PING_INTERVAL;
            self.outputs
                .push_back(RelayOutput::Send(json!({"command": "ping"}).to_string()));
        }
    }

    /// When [`RelayClient::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Ended => None,
            State::AwaitOffer { deadline } => Some(deadline.min(self.next_ping)),
            _ => Some(self.next_ping),
        }
    }

    /// The next output.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<RelayOutput> {
        self.outputs.pop_front()
    }

    fn end(&mut self, why: RelayEnd) {
        if self.state == State::Ended {
            return;
        }
        self.state = State::Ended;
        self.outputs.push_back(RelayOutput::Ended(why));
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests {
    use super::*;

    fn client(now: Instant) -> RelayClient {
        RelayClient::new(
            RelayClientConfig {
                app: "live".into(),
                stream: "cam".into(),
                secret: "s3cret".into(),
            },
            now,
        )
    }

    fn drain(c: &mut RelayClient) -> Vec<RelayOutput> {
        std::iter::from_fn(|| c.poll_output()).collect()
    }

    #[test]
    fn token_verifies_for_its_stream_only() {
        let t = cluster_token("s3cret", "live", "cam");
        assert!(t.starts_with(TOKEN_PREFIX) && t.len() == TOKEN_PREFIX.len() + 64);
        assert!(verify_cluster_token("s3cret", "live", "cam", &t));
        assert!(!verify_cluster_token("s3cret", "live", "cam2", &t));
        assert!(!verify_cluster_token("s3cret", "other", "cam", &t));
        assert!(!verify_cluster_token("other", "live", "cam", &t));
        assert!(!verify_cluster_token(
            "",
            "live",
            "cam",
            &cluster_token("", "live", "cam")
        ));
        assert!(!verify_cluster_token(
            "s3cret",
            "live",
            "cam",
            "antenna-cluster.zz"
        ));
        assert!(!verify_cluster_token(
            "s3cret",
            "live",
            "cam",
            &t[..t.len() - 1]
        ));
        let mut flipped = t.clone();
        flipped.replace_range(t.len() - 1.., if t.ends_with('0') { "1" } else { "0" });
        assert!(!verify_cluster_token("s3cret", "live", "cam", &flipped));
        assert!(!verify_cluster_token(
            "s3cret",
            "live",
            "cam",
            "é".repeat(32).as_str()
        ));
    }

    #[test]
    fn play_offer_answer_candidates_started_finished() {
        let now = Instant::now();
        let mut c = client(now);
        let out = drain(&mut c);
        let RelayOutput::Send(play) = &out[0] else {
            panic!("{out:?}")
        };
        let v: Value = serde_json::from_str(play).unwrap();
        assert_eq!(v["command"], "play");
        assert_eq!(v["streamId"], "cam");
        assert!(verify_cluster_token(
            "s3cret",
            "live",
            "cam",
            v["token"].as_str().unwrap()
        ));
        c.handle_text(now, r#"{"command":"takeConfiguration","streamId":"cam","type":"offer","sdp":"v=0","idMapping":{}}"#);
        c.handle_text(now, r#"{"command":"takeCandidate","streamId":"cam","label":0,"id":"0","candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host"}"#);
        assert_eq!(
            drain(&mut c),
            vec![
                RelayOutput::StartMedia {
                    offer: "v=0".into()
                },
                RelayOutput::RemoteCandidate("candidate:1 1 udp 1 10.0.0.1 5000 typ host".into())
            ]
        );
        c.handle_answer("v=0 answer");
        let out = drain(&mut c);
        let RelayOutput::Send(a) = &out[0] else {
            panic!("{out:?}")
        };
        let v: Value = serde_json::from_str(a).unwrap();
        assert_eq!(
            (v["command"].as_str(), v["type"].as_str()),
            (Some("takeConfiguration"), Some("answer"))
        );
        c.handle_text(
            now,
            r#"{"command":"notification","definition":"play_started","streamId":"cam"}"#,
        );
        c.handle_text(
            now,
            r#"{"command":"notification","definition":"play_finished","streamId":"cam"}"#,
        );
        assert_eq!(
            drain(&mut c),
            vec![RelayOutput::Playing, RelayOutput::Ended(RelayEnd::Finished)]
        );
        assert!(c.is_ended() && c.poll_timeout().is_none());
        c.handle_text(
            now,
            r#"{"command":"notification","definition":"play_started"}"#,
        );
        assert!(drain(&mut c).is_empty(), "nothing after the end");
    }

    #[test]
    fn refusals_timeouts_and_bounds_end_the_relay() {
        let now = Instant::now();
        let mut c = client(now);
        drain(&mut c);
        c.handle_text(
            now,
            r#"{"command":"error","definition":"no_stream_exist","streamId":"cam"}"#,
        );
        assert_eq!(drain(&mut c), vec![RelayOutput::Ended(RelayEnd::NoStream)]);

        let mut c = client(now);
        drain(&mut c);
        c.handle_text(
            now,
            r#"{"command":"error","definition":"unauthorized_access"}"#,
        );
        assert_eq!(
            drain(&mut c),
            vec![RelayOutput::Ended(RelayEnd::Refused(
                "unauthorized_access".into()
            ))]
        );

        let mut c = client(now);
        drain(&mut c);
        assert_eq!(c.poll_timeout(), Some(now + PING_INTERVAL));
        c.handle_timeout(now + PING_INTERVAL);
        assert!(matches!(&drain(&mut c)[..], [RelayOutput::Send(p)] if p.contains("ping")));
        c.handle_timeout(now + OFFER_TIMEOUT);
        assert_eq!(
            drain(&mut c),
            vec![RelayOutput::Ended(RelayEnd::OfferTimeout)]
        );

        let mut c = client(now);
        drain(&mut c);
        c.handle_text(now, &"x".repeat(MAX_FRAME + 1));
        assert!(matches!(
            &drain(&mut c)[..],
            [RelayOutput::Ended(RelayEnd::Protocol(_))]
        ));

        let mut c = client(now);
        drain(&mut c);
        let cand = r#"{"command":"takeCandidate","candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host"}"#;
        for _ in 0..=MAX_CANDIDATES {
            c.handle_text(now, cand);
        }
        let out = drain(&mut c);
        assert_eq!(out.len(), MAX_CANDIDATES + 1);
        assert!(matches!(
            out.last(),
            Some(RelayOutput::Ended(RelayEnd::Protocol(_)))
        ));

        let mut c = client(now);
        drain(&mut c);
        let offer = r#"{"command":"takeConfiguration","type":"offer","sdp":"v=0"}"#;
        c.handle_text(now, offer);
        c.handle_text(now, offer);
        assert!(matches!(
            drain(&mut c).last(),
            Some(RelayOutput::Ended(RelayEnd::Protocol(_)))
        ));

        let mut c = client(now);
        drain(&mut c);
        c.stop();
        let out = drain(&mut c);
        assert!(
            matches!(&out[..], [RelayOutput::Send(s), RelayOutput::Ended(RelayEnd::Stopped)] if s.contains("\"stop\""))
        );
    }
}
