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
    /// (Conference publisher) streams of the other participants that are publishing now: AMS
    /// stream ids (`joinedTheRoom`, `roomInformation`) or Janus feed ids (`publishers`).
    RoomStreams(Vec<String>),
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
    /// Conference mode: the publisher joins room `room` first (AMS `joinRoom`, legacy mode),
    /// players name the room in `play`.
    conference: bool,
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
            conference: false,
            session_id: None,
            handle_id: None,
            tx: 0,
        }
    }

    /// The same adapter in conference mode: an Antenna publisher sends `joinRoom` (legacy mode,
    /// room [`ams_room_name`]) and publishes its stream id after `joinedTheRoom`; an Antenna
    /// player names the room in `play`. Janus is unchanged (the room id is `room` already).
    pub fn in_conference(mut self) -> Sig {
        self.conference = true;
        self
    }

    /// The AMS stream id (publishers: as named by the server once joined), or the Janus feed
    /// id a player subscribes to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Asks for the room's publishing streams (AMS `getRoomInfo`, answered by
    /// `roomInformation`). Janus pushes `publishers` events instead: nothing to send.
    pub fn request_room_info(&mut self, ws: &mut WsConn) {
        if self.kind == ServerKind::Antenna && self.conference {
            ws.send(
                json!({"command": "getRoomInfo", "room": ams_room_name(self.room),
                       "streamId": self.stream})
                .to_string(),
            );
        }
    }

    fn ams_publish(&self) -> Value {
        json!({
            "command": "publish", "streamId": self.stream, "token": "",
            "subscriberId": "", "subscriberCode": "", "streamName": "",
            "mainTrack": "", "video": true, "audio": true, "metaData": "", "role": ""
        })
    }

    fn next_tx(&mut self, tag: &str) -> String {
        self.tx += 1;
        format!("{tag}{}", self.tx)
    }

    /// The first message(s): `publish`/`play`, or Janus `create`.
    pub fn begin(&mut self, ws: &mut WsConn) {
        match self.kind {
            ServerKind::Antenna => {
                let room = if self.conference {
                    ams_room_name(self.room)
                } else {
                    String::new()
                };
                let m = match self.role {
                    // The legacy conference page: joinRoom, then publish the id from
                    // joinedTheRoom.
                    Role::Publish if self.conference => json!({
                        "command": "joinRoom", "room": room, "mainTrack": room,
                        "streamId": self.stream, "mode": "legacy", "streamName": "",
                        "role": "", "metadata": ""
                    }),
                    Role::Publish => self.ams_publish(),
                    Role::Play => json!({
                        "command": "play", "streamId": self.stream, "token": "", "room": room,
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
            ServerKind::Antenna => self.on_ams(ws, &m, out),
            ServerKind::Janus => self.on_janus(ws, &m, out),
        }
    }

    fn on_ams(&mut self, ws: &mut WsConn, m: &Value, out: &mut Vec<SigEvent>) {
        let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
        if let Some(streams) = room_streams(ServerKind::Antenna, m) {
            out.push(SigEvent::RoomStreams(streams));
        }
        match s("command") {
            "start" => out.push(SigEvent::SendOffer),
            "takeConfiguration" => match s("type") {
                "answer" => out.push(SigEvent::Answer(s("sdp").to_string())),
                "offer" => out.push(SigEvent::Offer(s("sdp").to_string())),
                _ => {}
            },
            "takeCandidate" => out.push(SigEvent::Candidate(s("candidate").to_string())),
            "notification" => {
                match s("definition") {
                    "publish_started" | "play_started" => out.push(SigEvent::Up),
                    "joinedTheRoom" if self.role == Role::Publish => {
                        // The server may assign the id; publish the one it names.
                        if !s("streamId").is_empty() {
                            self.stream = s("streamId").to_string();
                        }
                        ws.send(self.ams_publish().to_string());
                    }
                    _ => {}
                }
            }
            // A poll of an empty room, not a failure.
            "error" if s("definition") == "no_active_streams_in_room" => {}
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
                if self.role == Role::Publish {
                    if let Some(feeds) = room_streams(ServerKind::Janus, m) {
                        out.push(SigEvent::RoomStreams(feeds));
                    }
                }
                if data
                    .and_then(|d| d.get("videoroom"))
                    .and_then(Value::as_str)
                    == Some("joined")
                    && self.role == Role::Publish
                {
                    if let Some(id) = data.and_then(|d| d.get("id")) {
                        out.push(SigEvent::FeedId(id_string(id)));
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

/// The AMS room name of conference room `room`.
pub fn ams_room_name(room: u64) -> String {
    format!("room{room}")
}

/// A JSON id (number or string) as a string.
fn id_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The other participants' publishing streams a server message announces, if it announces
/// any: AMS `joinedTheRoom` notifications and `roomInformation` (`streams`, the caller
/// excluded by the server), or Janus videoroom `joined`/`event` messages with a `publishers`
/// list (feed ids; Janus never lists the caller's own feed).
pub fn room_streams(kind: ServerKind, m: &Value) -> Option<Vec<String>> {
    let list = match kind {
        ServerKind::Antenna => {
            let command = m.get("command").and_then(Value::as_str)?;
            let definition = m.get("definition").and_then(Value::as_str);
            let announces = command == "roomInformation"
                || (command == "notification" && definition == Some("joinedTheRoom"));
            if !announces {
                return None;
            }
            m.get("streams")?.as_array()?
        }
        ServerKind::Janus => m.pointer("/plugindata/data/publishers")?.as_array()?,
    };
    Some(
        list.iter()
            .filter_map(|e| match kind {
                ServerKind::Antenna => e.as_str().map(str::to_string),
                ServerKind::Janus => e.get("id").map(id_string),
            })
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ams_room_announcements() {
        let joined = json!({"command": "notification", "definition": "joinedTheRoom",
            "streamId": "me", "streams": ["a", "b"], "streamList": [], "room": "room1"});
        assert_eq!(
            room_streams(ServerKind::Antenna, &joined),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        let info = json!({"command": "roomInformation", "streams": ["c"], "room": "room1"});
        assert_eq!(
            room_streams(ServerKind::Antenna, &info),
            Some(vec!["c".to_string()])
        );
        let empty = json!({"command": "notification", "definition": "joinedTheRoom",
            "streamId": "me", "streams": []});
        assert_eq!(room_streams(ServerKind::Antenna, &empty), Some(vec![]));
        // Other messages announce nothing, even with a `streams` field.
        let other = json!({"command": "notification", "definition": "publish_started",
            "streams": ["x"]});
        assert_eq!(room_streams(ServerKind::Antenna, &other), None);
        let malformed = json!({"command": "roomInformation", "streams": "a"});
        assert_eq!(room_streams(ServerKind::Antenna, &malformed), None);
    }

    #[test]
    fn janus_publisher_lists() {
        let joined = json!({"janus": "event", "plugindata": {"plugin": "janus.plugin.videoroom",
            "data": {"videoroom": "joined", "room": 7, "id": 11,
                     "publishers": [{"id": 12, "display": "a"}, {"id": "x13"}, {"display": "no id"}]}}});
        assert_eq!(
            room_streams(ServerKind::Janus, &joined),
            Some(vec!["12".to_string(), "x13".to_string()])
        );
        let event = json!({"janus": "event", "plugindata": {"data": {"videoroom": "event",
            "publishers": [{"id": 99}]}}});
        assert_eq!(
            room_streams(ServerKind::Janus, &event),
            Some(vec!["99".to_string()])
        );
        let leaving = json!({"janus": "event", "plugindata": {"data": {"videoroom": "event",
            "leaving": 12}}});
        assert_eq!(room_streams(ServerKind::Janus, &leaving), None);
    }
}
