//! Signalling adapters: the same publish/play flow over Antenna's AMS protocol or Janus's
//! videoroom plugin (WebSocket transport, `janus-protocol`).
//!
//! An adapter turns server messages into [`SigEvent`]s for the peer, and the peer's SDP into
//! server messages. Both servers give candidates in their SDP or trickle them.

use serde_json::{json, Value};

use crate::ws::WsConn;

/// Which server the clients talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Antenna (or AMS): `ws://HOST/<App>/websocket`, AMS JSON commands.
    Antenna,
    /// Janus videoroom over its WebSocket transport.
    Janus,
}

impl ServerKind {
    /// The WebSocket path and subprotocol for this server.
    pub fn ws_path(self, app: &str) -> (String, Option<&'static str>) {
        match self {
            ServerKind::Antenna => (format!("/{app}/websocket"), None),
            ServerKind::Janus => ("/".to_string(), Some("janus-protocol")),
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Antenna => "antenna",
            ServerKind::Janus => "janus",
        }
    }
}

/// Publisher or player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends media.
    Publish,
    /// Receives media.
    Play,
}

/// What the peer must do after a server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigEvent {
    /// (Publisher) create and send the offer now.
    SendOffer,
    /// (Publisher) the server's answer.
    Answer(String),
    /// (Player) the server's offer; answer with [`Sig::send_answer`].
    Offer(String),
    /// A trickled server candidate line.
    Candidate(String),
    /// The server reports the session up (`publish_started`, `play_started`, `webrtcup`).
    Up,
    /// (Janus publisher) the feed id players must subscribe to.
    FeedId(String),
    /// An error from the server (its definition or reason).
    Error(String),
}

/// One client's signalling state.
#[derive(Debug)]
pub struct Sig {
    kind: ServerKind,
    role: Role,
    /// AMS stream id, or Janus feed id for players.
    stream: String,
    room: u64,
    session_id: Option<u64>,
    handle_id: Option<u64>,
    tx: u64,
}

impl Sig {
    /// A new adapter. `stream` is the AMS stream id, or for a Janus player the feed id.
    pub fn new(kind: ServerKind, role: Role, stream: &str, room: u64) -> Sig {
        Sig {
            kind,
            role,
            stream: stream.to_string(),
            room,
            session_id: None,
            handle_id: None,
            tx: 0,
        }
    }

    fn next_tx(&mut self, tag: &str) -> String {
        self.tx += 1;
        format!("{tag}{}", self.tx)
    }

    /// The first message(s): `publish`/`play`, or Janus `create`.
    pub fn begin(&mut self, ws: &mut WsConn) {
        match self.kind {
            ServerKind::Antenna => {
                let m = match self.role {
                    Role::Publish => json!({
                        "command": "publish", "streamId": self.stream, "token": "",
                        "subscriberId": "", "subscriberCode": "", "streamName": "",
                        "mainTrack": "", "video": true, "audio": true, "metaData": "", "role": ""
                    }),
                    Role::Play => json!({
                        "command": "play", "streamId": self.stream, "token": "", "room": "",
                        "trackList": [], "subscriberId": "", "viewerInfo": "", "role": "",
                        "userPublishId": ""
                    }),
                };
                ws.send(m.to_string());
            }
            ServerKind::Janus => {
                let tx = self.next_tx("create");
                ws.send(json!({"janus": "create", "transaction": tx}).to_string());
            }
        }
    }

    /// Sends the publisher's offer.
    pub fn send_offer(&mut self, ws: &mut WsConn, sdp: &str) {
        match self.kind {
            ServerKind::Antenna => ws.send(
                json!({"command": "takeConfiguration", "streamId": self.stream,
                       "type": "offer", "sdp": sdp})
                .to_string(),
            ),
            ServerKind::Janus => {
                let tx = self.next_tx("publish");
                ws.send(
                    json!({"janus": "message", "session_id": self.session_id,
                           "handle_id": self.handle_id, "transaction": tx,
                           "body": {"request": "publish"},
                           "jsep": {"type": "offer", "sdp": sdp}})
                    .to_string(),
                );
                self.trickle_done(ws);
            }
        }
    }

    /// Sends the player's answer.
    pub fn send_answer(&mut self, ws: &mut WsConn, sdp: &str) {
        match self.kind {
            ServerKind::Antenna => ws.send(
                json!({"command": "takeConfiguration", "streamId": self.stream,
                       "type": "answer", "sdp": sdp})
                .to_string(),
            ),
            ServerKind::Janus => {
                let tx = self.next_tx("start");
                ws.send(
                    json!({"janus": "message", "session_id": self.session_id,
                           "handle_id": self.handle_id, "transaction": tx,
                           "body": {"request": "start", "room": self.room},
                           "jsep": {"type": "answer", "sdp": sdp}})
                    .to_string(),
                );
                self.trickle_done(ws);
            }
        }
    }

    fn trickle_done(&mut self, ws: &mut WsConn) {
        let tx = self.next_tx("trickle");
        ws.send(
            json!({"janus": "trickle", "session_id": self.session_id,
                   "handle_id": self.handle_id, "transaction": tx,
                   "candidate": {"completed": true}})
            .to_string(),
        );
    }

    /// Handles one server message.
    pub fn on_text(&mut self, ws: &mut WsConn, text: &str, out: &mut Vec<SigEvent>) {
        let Ok(m) = serde_json::from_str::<Value>(text) else {
            out.push(SigEvent::Error(format!(
                "unparsable server message: {text:.80}"
            )));
            return;
        };
        match self.kind {
            ServerKind::Antenna => self.on_ams(&m, out),
            ServerKind::Janus => self.on_janus(ws, &m, out),
        }
    }

    fn on_ams(&mut self, m: &Value, out: &mut Vec<SigEvent>) {
        let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
        match s("command") {
            "start" => out.push(SigEvent::SendOffer),
            "takeConfiguration" => match s("type") {
                "answer" => out.push(SigEvent::Answer(s("sdp").to_string())),
                "offer" => out.push(SigEvent::Offer(s("sdp").to_string())),
                _ => {}
            },
            "takeCandidate" => out.push(SigEvent::Candidate(s("candidate").to_string())),
            "notification" => {
                if matches!(s("definition"), "publish_started" | "play_started") {
                    out.push(SigEvent::Up);
                }
            }
            "error" => out.push(SigEvent::Error(s("definition").to_string())),
            _ => {}
        }
    }

    fn on_janus(&mut self, ws: &mut WsConn, m: &Value, out: &mut Vec<SigEvent>) {
        let kind = m.get("janus").and_then(Value::as_str).unwrap_or_default();
        let tx = m
            .get("transaction")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match kind {
            "success" if tx.starts_with("create") => {
                self.session_id = m.pointer("/data/id").and_then(Value::as_u64);
                let tx = self.next_tx("attach");
                ws.send(
                    json!({"janus": "attach", "session_id": self.session_id,
                           "plugin": "janus.plugin.videoroom", "transaction": tx})
                    .to_string(),
                );
            }
            "success" if tx.starts_with("attach") => {
                self.handle_id = m.pointer("/data/id").and_then(Value::as_u64);
                let tx = self.next_tx("join");
                let body = match self.role {
                    Role::Publish => json!({"request": "join", "ptype": "publisher",
                                            "room": self.room, "display": self.stream}),
                    Role::Play => {
                        let feed: Value = self
                            .stream
                            .parse::<u64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::from(self.stream.clone()));
                        json!({"request": "join", "ptype": "subscriber", "room": self.room,
                               "streams": [{"feed": feed}]})
                    }
                };
                ws.send(
                    json!({"janus": "message", "session_id": self.session_id,
                           "handle_id": self.handle_id, "transaction": tx, "body": body})
                    .to_string(),
                );
            }
            "event" | "success" => {
                let data = m.pointer("/plugindata/data");
                if let Some(err) = data.and_then(|d| d.get("error")).and_then(Value::as_str) {
                    out.push(SigEvent::Error(err.to_string()));
                    return;
                }
                if data
                    .and_then(|d| d.get("videoroom"))
                    .and_then(Value::as_str)
                    == Some("joined")
                    && self.role == Role::Publish
                {
                    if let Some(id) = data.and_then(|d| d.get("id")) {
                        let id = match id {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        out.push(SigEvent::FeedId(id));
                    }
                    out.push(SigEvent::SendOffer);
                }
                if let Some(jsep) = m.get("jsep") {
                    let sdp = jsep.get("sdp").and_then(Value::as_str).unwrap_or_default();
                    match jsep.get("type").and_then(Value::as_str) {
                        Some("answer") => out.push(SigEvent::Answer(sdp.to_string())),
                        Some("offer") => out.push(SigEvent::Offer(sdp.to_string())),
                        _ => {}
                    }
                }
            }
            "trickle" => {
                if let Some(c) = m.pointer("/candidate/candidate").and_then(Value::as_str) {
                    out.push(SigEvent::Candidate(c.to_string()));
                }
            }
            "webrtcup" => out.push(SigEvent::Up),
            "error" => out.push(SigEvent::Error(
                m.pointer("/error/reason")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string(),
            )),
            "hangup" => out.push(SigEvent::Error(format!(
                "hangup: {}",
                m.get("reason").and_then(Value::as_str).unwrap_or_default()
            ))),
            _ => {}
        }
    }
}
