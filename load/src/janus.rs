//! Blocking Janus helpers for set-up outside the measured time: a session with a videoroom
//! handle, and videoroom rooms created with the plugin's `create` request.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::engine::Target;
use crate::ws::WsConn;

/// Sends `msg` (which must carry `transaction: tx`) and waits for the reply with that
/// transaction that is not an `ack`. Other messages are dropped.
pub fn call(ws: &mut WsConn, msg: Value, tx: &str, timeout: Duration) -> Result<Value, String> {
    ws.send(msg.to_string());
    let deadline = Instant::now() + timeout;
    let mut texts = Vec::new();
    while Instant::now() < deadline {
        texts.clear();
        ws.read_all(&mut texts);
        for t in &texts {
            let Ok(v) = serde_json::from_str::<Value>(t) else {
                continue;
            };
            let kind = v.get("janus").and_then(Value::as_str);
            if v.get("transaction").and_then(Value::as_str) == Some(tx) && kind != Some("ack") {
                return Ok(v);
            }
        }
        if ws.closed {
            return Err("janus closed the websocket".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(format!("no janus reply to {tx}"))
}

/// Creates a Janus session and attaches the videoroom plugin: `(session_id, handle_id)`.
pub fn session_handle(ws: &mut WsConn) -> Result<(u64, u64), String> {
    let t = Duration::from_secs(5);
    let r = call(ws, json!({"janus": "create", "transaction": "c"}), "c", t)?;
    let session = r
        .pointer("/data/id")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("create: {r}"))?;
    let r = call(
        ws,
        json!({"janus": "attach", "session_id": session,
               "plugin": "janus.plugin.videoroom", "transaction": "a"}),
        "a",
        t,
    )?;
    let handle = r
        .pointer("/data/id")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("attach: {r}"))?;
    Ok((session, handle))
}

/// Creates videoroom rooms `ids` (VP8 + Opus, no bitrate cap, no periodic FIR, like the
/// configured bench room) for up to `publishers` publishers each. A room that already exists
/// (error 427) is accepted.
pub fn create_rooms(target: &Target, ids: &[u64], publishers: usize) -> Result<(), String> {
    let (path, proto) = target.kind.ws_path(&target.app);
    let mut ws = WsConn::connect(target.addr, &path, proto).map_err(|e| e.to_string())?;
    let (session, handle) = session_handle(&mut ws)?;
    for (n, &room) in ids.iter().enumerate() {
        let tx = format!("room{n}");
        let r = call(
            &mut ws,
            json!({"janus": "message", "session_id": session, "handle_id": handle,
                   "transaction": tx,
                   "body": {"request": "create", "room": room, "publishers": publishers,
                            "bitrate": 0, "fir_freq": 0, "audiocodec": "opus",
                            "videocodec": "vp8", "record": false, "permanent": false}}),
            &tx,
            Duration::from_secs(5),
        )?;
        let data = r.pointer("/plugindata/data");
        let created = data
            .and_then(|d| d.get("videoroom"))
            .and_then(Value::as_str)
            == Some("created");
        let exists = data
            .and_then(|d| d.get("error_code"))
            .and_then(Value::as_u64)
            == Some(427);
        if !created && !exists {
            return Err(format!("create room {room}: {r}"));
        }
    }
    ws.close();
    Ok(())
}
