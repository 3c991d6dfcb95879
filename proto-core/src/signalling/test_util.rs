//! Helpers shared by signalling's unit tests: drive a [`Harness`] with JSON and read what it
//! sent back.

use serde_json::{json, Value};

use super::{Config, Output};
use crate::fuzzing::Harness;
use crate::media::{MediaCmd, MediaEvent, SessionId};

pub(super) fn harness() -> Harness {
    Harness::new(Config::default())
}

/// The JSON of every message sent to `conn`.
pub(super) fn sent(outs: &[Output], conn: u64) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(c, m) if c.0 == conn => serde_json::from_str(&m.to_json()).ok(),
            _ => None,
        })
        .collect()
}

pub(super) fn cmds(outs: &[Output]) -> Vec<MediaCmd> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Media(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn send(h: &mut Harness, conn: u64, v: Value) -> Vec<Output> {
    h.text(conn, &v.to_string())
}

/// The one message sent to `conn`.
pub(super) fn one(outs: &[Output], conn: u64) -> Value {
    let s = sent(outs, conn);
    assert_eq!(s.len(), 1, "expected one message to {conn}: {outs:?}");
    s.into_iter().next().unwrap()
}

pub(super) fn error_of(outs: &[Output], conn: u64) -> Value {
    let m = one(outs, conn);
    assert_eq!(m["command"], "error", "{m}");
    m
}

pub(super) fn started(outs: &[Output]) -> SessionId {
    cmds(outs)
        .into_iter()
        .find_map(|c| match c {
            MediaCmd::StartPublish { session, .. } | MediaCmd::StartPlay { session, .. } => {
                Some(session)
            }
            _ => None,
        })
        .expect("a session started")
}

/// Publishes `id` from `conn` until media flows; returns the session.
pub(super) fn live_publisher(h: &mut Harness, conn: u64, id: &str, main_track: &str) -> SessionId {
    let outs = send(
        h,
        conn,
        json!({"command":"publish","streamId":id,"mainTrack":main_track,"video":true,"audio":true}),
    );
    assert_eq!(one(&outs, conn), json!({"command":"start","streamId":id}));
    let outs = send(
        h,
        conn,
        json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"OFFER"}),
    );
    let s = started(&outs);
    h.media_event(MediaEvent::MediaStarted { session: s });
    s
}

pub(super) fn player(h: &mut Harness, conn: u64, id: &str) -> SessionId {
    let outs = send(h, conn, json!({"command":"play","streamId":id}));
    started(&outs)
}
