//! The AMS WebSocket message model: what clients send and what the server answers.
//!
//! Parsing ([`ClientMessage::parse`]) is tolerant where the real SDK is loose: unknown fields are
//! ignored, `""` and `null` mean "absent", and booleans or numbers sent as strings are accepted.
//! It is strict elsewhere: every failure is one [`ParseError`].
//!
//! Serialisation ([`ServerMessage::to_json`]) produces exactly the field names the SDK reads.
//!
//! The client commands are in `message/client.rs` (one table names every command), the server's
//! messages in `message/server.rs`, the lenient field decoders in `message/lenient.rs`.

use std::fmt;

use crate::error::SignalError;

/// The largest text frame accepted, as the real server does (80 KB).
pub const MAX_MESSAGE_LEN: usize = 80 * 1024;

/// Why a text frame is not a valid client message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Longer than [`MAX_MESSAGE_LEN`].
    TooLarge {
        /// Length of the frame in bytes.
        len: usize,
    },
    /// Not JSON at all.
    InvalidJson(String),
    /// JSON, but not an object.
    NotAnObject,
    /// An object with no string `command`.
    MissingCommand,
    /// A `command` Antenna does not know.
    UnknownCommand(String),
    /// A known command with a field of the wrong type (or a required field missing).
    InvalidField {
        /// The command.
        command: &'static str,
        /// serde's description of the problem.
        detail: String,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLarge { len } => {
                write!(f, "message of {len} bytes exceeds {MAX_MESSAGE_LEN}")
            }
            ParseError::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            ParseError::NotAnObject => f.write_str("message is not a JSON object"),
            ParseError::MissingCommand => f.write_str("message has no command"),
            ParseError::UnknownCommand(c) => write!(f, "unknown command {c:?}"),
            ParseError::InvalidField { command, detail } => {
                write!(f, "invalid field in {command}: {detail}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// The error definition sent back to the client for this parse failure.
    pub fn signal_error(&self) -> SignalError {
        match self {
            ParseError::UnknownCommand(_) => SignalError::UnsupportedCommand,
            // serde names a required field that is absent this way ("missing field `type`").
            ParseError::InvalidField { detail, .. } if detail.starts_with("missing field") => {
                SignalError::MissingParameter
            }
            _ => SignalError::InvalidMessage,
        }
    }
}

mod client;
mod lenient;
mod server;

pub use client::*;
pub use server::*;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_command_of_the_table_parses_to_its_name_and_stream_id() {
        assert_eq!(ClientMessage::COMMANDS.len(), 29);
        for name in ClientMessage::COMMANDS {
            let text = json!({"command": name, "streamId": "s1", "type": "offer", "sdp": "v=0"});
            let m = ClientMessage::parse(&text.to_string()).unwrap();
            assert_eq!(m.command(), *name);
            let expected = match m {
                ClientMessage::Ping | ClientMessage::GetIceServerConfig => None,
                _ => Some("s1"),
            };
            assert_eq!(m.stream_id(), expected, "{name}");
        }
        let m = ClientMessage::parse(r#"{"command":"getDebugInfo","streamId":"s2"}"#).unwrap();
        assert_eq!((m.command(), m.stream_id()), ("getDebugInfo", Some("s2")));
    }

    #[test]
    fn parses_recorded_publish() {
        let m = ClientMessage::parse(r#"{"command":"publish","streamId":"h1","token":"tok1","subscriberId":"sub1","subscriberCode":"code1","streamName":"name1","mainTrack":"room1","video":true,"audio":true,"metaData":"{\"m\":1}","role":""}"#).unwrap();
        let ClientMessage::Publish(p) = m else {
            panic!()
        };
        assert_eq!(p.stream_id.as_deref(), Some("h1"));
        assert_eq!(p.main_track.as_deref(), Some("room1"));
        assert_eq!(p.video, Some(true));
        assert_eq!(p.role, None);
    }

    #[test]
    fn lenient_fields() {
        let m = ClientMessage::parse(
            r#"{"command":"takeCandidate","streamId":"a","label":"1","id":"1","candidate":"c","extra":5}"#,
        )
        .unwrap();
        let ClientMessage::TakeCandidate(c) = m else {
            panic!()
        };
        assert_eq!(c.label, Some(1));
        let m =
            ClientMessage::parse(r#"{"command":"toggleVideo","streamId":"a","enabled":"false"}"#)
                .unwrap();
        assert_eq!(
            m,
            ClientMessage::ToggleVideo(TrackToggle {
                stream_id: Some("a".into()),
                track_id: None,
                enabled: Some(false)
            })
        );
    }

    #[test]
    fn strict_errors() {
        assert!(matches!(
            ClientMessage::parse("{"),
            Err(ParseError::InvalidJson(_))
        ));
        assert_eq!(ClientMessage::parse("[1]"), Err(ParseError::NotAnObject));
        assert_eq!(ClientMessage::parse("{}"), Err(ParseError::MissingCommand));
        assert_eq!(
            ClientMessage::parse(r#"{"command":"fly"}"#),
            Err(ParseError::UnknownCommand("fly".into()))
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"command":"publish","streamId":{}}"#),
            Err(ParseError::InvalidField {
                command: "publish",
                ..
            })
        ));
        let big = format!(
            r#"{{"command":"ping","x":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_LEN)
        );
        assert!(matches!(
            ClientMessage::parse(&big),
            Err(ParseError::TooLarge { .. })
        ));
    }

    #[test]
    fn missing_required_field_is_missing_parameter() {
        let e = ClientMessage::parse(r#"{"command":"takeConfiguration","streamId":"a","sdp":"x"}"#)
            .unwrap_err();
        assert_eq!(e.signal_error(), SignalError::MissingParameter, "{e}");
        let e = ClientMessage::parse(
            r#"{"command":"takeConfiguration","streamId":"a","type":"x","sdp":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(e.signal_error(), SignalError::InvalidMessage, "{e}");
    }

    #[test]
    fn serialises_sdk_field_names() {
        let m = ServerMessage::TakeCandidate {
            stream_id: "s".into(),
            label: 0,
            id: "0".into(),
            candidate: "c".into(),
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"command":"takeCandidate","streamId":"s","label":0,"id":"0","candidate":"c"})
        );
        let m = ServerMessage::Notification(Notification::LeavedFromRoom {
            attr_room_name: "r".into(),
            room: "r".into(),
        });
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"command":"notification","definition":"leavedFromRoom","ATTR_ROOM_NAME":"r","room":"r"})
        );
        let m = ServerMessage::error(SignalError::NoStreamExist, Some("x"));
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"command":"error","definition":"no_stream_exist","streamId":"x","error_code":"404"})
        );
        assert_eq!(ServerMessage::Pong.to_json(), r#"{"command":"pong"}"#);
    }
}
