//! Fuzzes `ClientMessage::parse`: any text frame a peer can send.
//!
//! Besides "never panics", it checks what a parsed message promises:
//! - parsing is deterministic and agrees with `from_value` on the decoded JSON;
//! - an `Ok` message came from a JSON object whose `command` string is exactly
//!   `command()`, and that name is one the protocol knows (PROTOCOL.md §2);
//! - an `Err` maps to one of Antenna's two parse definitions, and its reason is the right one
//!   (too large / not JSON / not an object / no command / unknown command / bad field);
//! - the server messages built from peer strings (error replies, echoes of the stream id)
//!   serialise to JSON that reads back to the same strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_core::{
    ClientMessage, ErrorMessage, ParseError, ServerMessage, SignalError, MAX_MESSAGE_LEN,
    UNSUPPORTED_COMMANDS,
};
use serde_json::Value;

/// Commands Antenna serves (PROTOCOL.md §2); the rest of §2 is in `UNSUPPORTED_COMMANDS`.
const SERVED: &[&str] = &[
    "ping",
    "getIceServerConfig",
    "publish",
    "play",
    "takeConfiguration",
    "takeCandidate",
    "stop",
    "join",
    "leave",
    "joinRoom",
    "leaveFromRoom",
    "getRoomInfo",
    "getStreamInfo",
    "getTrackList",
    "enableTrack",
    "toggleVideo",
    "toggleAudio",
    "forceStreamQuality",
    "peerMessageCommand",
    "getBroadcastObject",
    "getSubscriberCount",
    "updateStreamMetaData",
    "getSubtracks",
    "getSubtracksCount",
    "getSubscribers",
];

fn known(name: &str) -> bool {
    SERVED.contains(&name) || UNSUPPORTED_COMMANDS.contains(&name)
}

/// The stream id a parsed message carries, if any.
fn stream_id(m: &ClientMessage) -> Option<&str> {
    use ClientMessage as M;
    match m {
        M::Publish(p) => p.stream_id.as_deref(),
        M::Play(p) => p.stream_id.as_deref(),
        M::TakeConfiguration(c) => c.stream_id.as_deref(),
        M::TakeCandidate(c) => c.stream_id.as_deref(),
        M::Stop(r)
        | M::Leave(r)
        | M::GetStreamInfo(r)
        | M::GetBroadcastObject(r)
        | M::GetSubscriberCount(r) => r.stream_id.as_deref(),
        M::Join(j) => j.stream_id.as_deref(),
        M::JoinRoom(j) => j.stream_id.as_deref(),
        M::LeaveFromRoom(r) | M::GetRoomInfo(r) => r.stream_id.as_deref(),
        M::GetTrackList(t) => t.stream_id.as_deref(),
        M::EnableTrack(t) | M::ToggleVideo(t) | M::ToggleAudio(t) => t.stream_id.as_deref(),
        M::ForceStreamQuality(f) => f.stream_id.as_deref(),
        M::PeerMessageCommand(p) => p.stream_id.as_deref(),
        M::UpdateStreamMetaData(u) => u.stream_id.as_deref(),
        M::GetSubtracks(g) => g.stream_id.as_deref(),
        M::GetSubtracksCount(g) => g.stream_id.as_deref(),
        M::GetSubscribers(g) => g.stream_id.as_deref(),
        M::Unsupported { stream_id, .. } => stream_id.as_deref(),
        _ => None,
    }
}

/// Serialises `msg` and checks it is a JSON object with `command` = `command`.
fn serialised(msg: &ServerMessage, command: &str) -> serde_json::Map<String, Value> {
    let json = msg.to_json();
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(&json) else {
        panic!("server message is not a JSON object: {json}");
    };
    assert_eq!(
        obj.get("command").and_then(Value::as_str),
        Some(command),
        "{json}"
    );
    obj
}

fuzz_target!(|data: &[u8]| {
    // The runtime only hands over text frames (valid UTF-8); lossy conversion keeps every
    // input useful to the fuzzer.
    let text = String::from_utf8_lossy(data);
    let parsed = ClientMessage::parse(&text);
    assert_eq!(
        parsed,
        ClientMessage::parse(&text),
        "parse is not deterministic"
    );

    let json: Option<Value> = if text.len() > MAX_MESSAGE_LEN {
        None
    } else {
        serde_json::from_str(&text).ok()
    };

    match &parsed {
        Ok(msg) => {
            assert!(text.len() <= MAX_MESSAGE_LEN);
            let name = msg.command();
            assert!(known(name), "parsed an unknown command {name:?}");
            let Some(Value::Object(obj)) = &json else {
                panic!("Ok from a text that is not a JSON object: {text:?}");
            };
            assert_eq!(obj.get("command").and_then(Value::as_str), Some(name));
            let again = ClientMessage::from_value(Value::Object(obj.clone()));
            assert_eq!(again.as_ref(), Ok(msg), "from_value disagrees with parse");

            if let Some(id) = stream_id(msg) {
                // Lenient fields turn "" into None.
                assert!(!id.is_empty(), "empty stream id kept as Some");
                let _ = proto_core::is_valid_stream_id(id);
                let obj = serialised(
                    &ServerMessage::Stop {
                        stream_id: id.to_string(),
                    },
                    "stop",
                );
                assert_eq!(obj.get("streamId").and_then(Value::as_str), Some(id));
                let obj = serialised(
                    &ServerMessage::error(SignalError::InvalidStreamName, Some(id)),
                    "error",
                );
                assert_eq!(obj.get("streamId").and_then(Value::as_str), Some(id));
                assert_eq!(
                    obj.get("definition").and_then(Value::as_str),
                    Some("invalidStreamName")
                );
            }
        }
        Err(e) => {
            let def = e.signal_error();
            assert!(
                matches!(
                    def,
                    SignalError::InvalidMessage
                        | SignalError::UnsupportedCommand
                        | SignalError::MissingParameter
                ),
                "parse error maps to {def}"
            );
            match e {
                ParseError::TooLarge { len } => {
                    assert_eq!(*len, text.len());
                    assert!(*len > MAX_MESSAGE_LEN);
                }
                ParseError::InvalidJson(_) => assert!(json.is_none(), "valid JSON rejected"),
                ParseError::NotAnObject => {
                    assert!(matches!(json, Some(ref v) if !v.is_object()));
                }
                ParseError::MissingCommand => {
                    let Some(Value::Object(obj)) = &json else {
                        panic!("MissingCommand for a non-object");
                    };
                    assert!(!matches!(obj.get("command"), Some(Value::String(c)) if !c.is_empty()));
                }
                ParseError::UnknownCommand(c) => {
                    assert_eq!(def, SignalError::UnsupportedCommand);
                    assert!(
                        c.chars().count() <= 64,
                        "unknown command echoed untruncated"
                    );
                    assert!(!known(c), "known command {c:?} reported unknown");
                }
                ParseError::InvalidField { command, .. } => {
                    assert!(
                        known(command),
                        "InvalidField for unknown command {command:?}"
                    );
                }
                _ if def == SignalError::MissingParameter => {
                    panic!("only a field error can be missingParameter: {e:?}")
                }
                _ => {}
            }
            // The reply the server sends must be well-formed whatever the input was.
            let mut reply = ErrorMessage::new(def, None);
            reply.information = Some(e.to_string());
            let obj = serialised(&ServerMessage::Error(reply), "error");
            assert_eq!(
                obj.get("definition").and_then(Value::as_str),
                Some(def.definition())
            );
            assert_eq!(
                obj.get("information").and_then(Value::as_str),
                Some(e.to_string().as_str())
            );
        }
    }
});
