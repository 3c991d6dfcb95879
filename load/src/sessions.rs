//! Memory per idle session, memory per idle WebSocket, and room join/leave churn (the
//! ping round trips are in `ping.rs`).

use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use serde_json::{json, Value};

use crate::engine::{Engine, Target};
use crate::fanout::start_publisher;
use crate::media::MediaProfile;
use crate::peer::PeerMode;
use crate::procfs;
use crate::sig::{Role, ServerKind};
use crate::stats::Histogram;
use crate::ws::WsConn;

/// What to open for a memory measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleKind {
    /// Publishers each sending a trickle of audio (2 packets/s, to stay alive).
    Publishers,
    /// Players of one publisher that sends a trickle of audio.
    Players,
    /// Plain WebSocket connections, nothing sent.
    WebSockets,
}

/// A trickle of audio: enough to keep a publish session alive, near zero media work.
fn trickle() -> MediaProfile {
    MediaProfile {
        video_bps: 0,
        audio_pps: 2,
        ..MediaProfile::default()
    }
}

/// Opens `n` idle sessions of `kind` and reports the server's RSS growth per session.
pub fn idle(target: &Target, kind: IdleKind, n: usize, server_pid: u32) -> Result<Value, String> {
    let rss = || procfs::rss_kib(Some(server_pid)).ok_or("cannot read server RSS");
    if kind == IdleKind::WebSockets {
        let before = rss()?;
        let (path, proto) = target.kind.ws_path(&target.app);
        let mut conns = Vec::with_capacity(n);
        let t = Instant::now();
        for i in 0..n {
            match WsConn::connect(target.addr, &path, proto) {
                Ok(c) => conns.push(c),
                Err(e) => return Err(format!("websocket {i}: {e}")),
            }
        }
        let open_s = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(2));
        let after = rss()?;
        let open = conns.iter().filter(|c| !c.closed).count();
        for c in &mut conns {
            c.close();
        }
        return Ok(json!({
            "server": target.kind.name(), "kind": "websocket", "sessions": open,
            "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_session": (after as f64 - before as f64) / open.max(1) as f64,
            "open_seconds": open_s,
        }));
    }
    let mut engine = Engine::new(target.clone(), trickle()).map_err(|e| e.to_string())?;
    let play = if kind == IdleKind::Players {
        start_publisher(&mut engine, "idle-src")?;
        engine.play_target("idle-src")
    } else {
        None
    };
    // Let the server settle, then the baseline.
    engine.run(Instant::now() + Duration::from_secs(1), |_| false);
    let before = rss()?;
    let first = engine.clients.len();
    let mut opened = 0;
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_millis(40 * n as u64);
    let up = |e: &Engine, i: usize| {
        e.clients
            .get(i)
            .is_some_and(|c| c.healthy() && (c.up || c.role == Role::Play))
    };
    while Instant::now() < deadline {
        let pending = (first..engine.clients.len())
            .filter(|&i| !up(&engine, i) && !engine.clients.get(i).is_some_and(|c| c.broken()))
            .count();
        if opened < n && pending < 50 {
            let r = match kind {
                IdleKind::Publishers => engine.add(
                    Role::Publish,
                    PeerMode::Publisher,
                    &format!("idle-pub-{opened}"),
                ),
                _ => engine.add(Role::Play, PeerMode::Counter, play.as_deref().unwrap_or("")),
            };
            r.map_err(|e| format!("session {opened}: {e}"))?;
            opened += 1;
        } else if opened == n && pending == 0 {
            break;
        }
        engine.turn(Duration::from_millis(1));
    }
    engine.run(Instant::now() + Duration::from_secs(3), |_| false);
    let after = rss()?;
    let ok = (first..engine.clients.len())
        .filter(|&i| up(&engine, i))
        .count();
    let failure = engine
        .clients
        .iter()
        .find_map(|c| c.error.clone().or(c.peer.failed.clone()));
    for i in 0..engine.clients.len() {
        engine.close(i);
    }
    engine.run(Instant::now() + Duration::from_millis(300), |_| false);
    Ok(json!({
        "server": target.kind.name(),
        "kind": if kind == IdleKind::Publishers { "publisher" } else { "player" },
        "sessions": ok, "asked": n, "failure": failure,
        "rss_before_kib": before, "rss_after_kib": after,
        "kib_per_session": (after as f64 - before as f64) / ok.max(1) as f64,
    }))
}

/// Reads every reply until `end`: each readable connection of `conns` (`Token(i)` is
/// `conns[i]`, its WebSocket `ws(&mut conns[i])`) is read and flushed, and `on_replies(i,
/// conn, texts)` gets what came (the churn's round-trip loop).
fn read_replies<T>(
    poll: &mut Poll,
    conns: &mut [T],
    end: Instant,
    ws: fn(&mut T) -> &mut WsConn,
    mut on_replies: impl FnMut(usize, &mut T, &[String]),
) -> Result<(), String> {
    let mut events = Events::with_capacity(1024);
    let mut texts = Vec::new();
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(c) = conns.get_mut(i) else {
                continue;
            };
            texts.clear();
            ws(c).read_all(&mut texts);
            ws(c).flush();
            on_replies(i, c, &texts);
        }
    }
    Ok(())
}

/// A server reply the churn waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChurnReply {
    /// The join was answered (AMS `joinedTheRoom`, Janus videoroom `joined`).
    Joined,
    /// The leave was answered (AMS `leavedFromRoom`, Janus videoroom `leaving: ok` / `left`).
    Left,
    /// (Janus) a plugin handle was attached: its id.
    Attached(u64),
    /// (Janus) a request without data succeeded (`detach`).
    Success,
    /// An error answered the request (its definition or reason).
    Error(String),
}

/// Classifies one server message of the churn; `None` for anything else (acks, other
/// notifications).
pub fn churn_reply(kind: ServerKind, text: &str) -> Option<ChurnReply> {
    let m: Value = serde_json::from_str(text).ok()?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match kind {
        ServerKind::Antenna => match s(m.get("command"))?.as_str() {
            "notification" => match s(m.get("definition"))?.as_str() {
                "joinedTheRoom" => Some(ChurnReply::Joined),
                "leavedFromRoom" => Some(ChurnReply::Left),
                _ => None,
            },
            "error" => Some(ChurnReply::Error(
                s(m.get("definition")).unwrap_or_else(|| "error".into()),
            )),
            _ => None,
        },
        ServerKind::Janus => {
            match s(m.get("janus")).as_deref() {
                Some("error") => {
                    return Some(ChurnReply::Error(
                        s(m.pointer("/error/reason")).unwrap_or_else(|| "error".into()),
                    ))
                }
                Some("success") if m.get("plugindata").is_none() => {
                    return Some(match m.pointer("/data/id").and_then(Value::as_u64) {
                        Some(id) => ChurnReply::Attached(id),
                        None => ChurnReply::Success,
                    });
                }
                _ => {}
            }
            let data = m.pointer("/plugindata/data")?;
            if let Some(e) = s(data.get("error")) {
                return Some(ChurnReply::Error(e));
            }
            match s(data.get("videoroom")).as_deref() {
                Some("joined") => Some(ChurnReply::Joined),
                Some("left") => Some(ChurnReply::Left),
                Some("event") if s(data.get("leaving")).as_deref() == Some("ok") => {
                    Some(ChurnReply::Left)
                }
                _ => None,
            }
        }
    }
}

/// The churn's requests, in cycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChurnOp {
    /// (Janus) attach a videoroom handle.
    Attach,
    Join,
    Leave,
    /// (Janus) detach the handle: a videoroom handle cannot join again after `leave`
    /// ("Not in a room (create a new handle)"), so a Janus page leaving a room detaches.
    Detach,
}

/// Where one churn connection is in its cycle.
#[derive(Debug, Clone, Copy)]
struct ChurnState {
    next: ChurnOp,
    /// (Janus) the attached videoroom handle.
    handle: Option<u64>,
}

/// One connection of the churn.
struct ChurnConn {
    ws: WsConn,
    room: u64,
    state: ChurnState,
    sent_at: Instant,
    session: u64,
}

impl ChurnConn {
    fn send_next(&mut self, kind: ServerKind, i: usize, n: u64) {
        let room = format!("churn{}", self.room);
        let tx = format!("t{n}");
        let (session, handle) = (self.session, self.state.handle.unwrap_or_default());
        let msg = match (kind, self.state.next) {
            (ServerKind::Antenna, ChurnOp::Join | ChurnOp::Attach) => json!({
                "command": "joinRoom", "room": room, "mainTrack": room,
                "streamId": format!("c{i}"), "mode": "legacy", "streamName": "", "role": "",
                "metadata": ""
            }),
            (ServerKind::Antenna, ChurnOp::Leave | ChurnOp::Detach) => json!({
                "command": "leaveFromRoom", "room": room, "mainTrack": room,
                "streamId": format!("c{i}")
            }),
            (ServerKind::Janus, ChurnOp::Attach) => json!({
                "janus": "attach", "session_id": session, "plugin": "janus.plugin.videoroom",
                "transaction": tx
            }),
            (ServerKind::Janus, ChurnOp::Join) => json!({
                "janus": "message", "session_id": session, "handle_id": handle,
                "transaction": tx,
                "body": {"request": "join", "ptype": "publisher", "room": self.room,
                         "display": format!("c{i}")}
            }),
            (ServerKind::Janus, ChurnOp::Leave) => json!({
                "janus": "message", "session_id": session, "handle_id": handle,
                "transaction": tx, "body": {"request": "leave"}
            }),
            (ServerKind::Janus, ChurnOp::Detach) => json!({
                "janus": "detach", "session_id": session, "handle_id": handle,
                "transaction": tx
            }),
        };
        self.sent_at = Instant::now();
        self.ws.send(msg.to_string());
    }
}

impl ChurnState {
    /// The request after `reply` to the current one (errors move on too, so a refused
    /// request never stalls the connection).
    fn advance(&mut self, kind: ServerKind, reply: &ChurnReply) {
        if let ChurnReply::Attached(id) = reply {
            self.handle = Some(*id);
        }
        self.next = match (kind, self.next) {
            (ServerKind::Antenna, ChurnOp::Join | ChurnOp::Attach) => ChurnOp::Leave,
            (ServerKind::Antenna, _) => ChurnOp::Join,
            (ServerKind::Janus, ChurnOp::Attach) if self.handle.is_some() => ChurnOp::Join,
            (ServerKind::Janus, ChurnOp::Attach) => ChurnOp::Attach,
            (ServerKind::Janus, ChurnOp::Join) => ChurnOp::Leave,
            (ServerKind::Janus, ChurnOp::Leave) => ChurnOp::Detach,
            (ServerKind::Janus, ChurnOp::Detach) => {
                self.handle = None;
                ChurnOp::Attach
            }
        };
    }
}

/// `conns` WebSockets each cycling through a room join and leave back to back for `seconds`.
/// Antenna: AMS `joinRoom` (legacy mode) and `leaveFromRoom`, two round trips per cycle.
/// Janus: videoroom `attach`, `join` (publisher), `leave`, `detach`, four round trips per
/// cycle (a videoroom handle cannot rejoin after `leave`). Four connections share each room.
/// Reports completed cycles per second, all answered requests per second, and the round-trip
/// times of the join and leave requests.
pub fn churn(target: &Target, conns: usize, seconds: f64) -> Result<Value, String> {
    const FIRST_ROOM: u64 = 9000;
    let (path, proto) = target.kind.ws_path(&target.app);
    let rooms: Vec<u64> = (0..conns.div_ceil(4) as u64)
        .map(|r| FIRST_ROOM + r)
        .collect();
    if target.kind == ServerKind::Janus {
        crate::janus::create_rooms(target, &rooms, 8)?;
    }
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut cs = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut ws =
            WsConn::connect(target.addr, &path, proto).map_err(|e| format!("ws {i}: {e}"))?;
        let (session, handle) = match target.kind {
            ServerKind::Janus => {
                let (s, h) = crate::janus::session_handle(&mut ws)?;
                (s, Some(h))
            }
            ServerKind::Antenna => (0, None),
        };
        ws.register(poll.registry(), Token(i))
            .map_err(|e| e.to_string())?;
        cs.push(ChurnConn {
            ws,
            room: FIRST_ROOM + (i / 4) as u64,
            state: ChurnState {
                next: ChurnOp::Join,
                handle,
            },
            sent_at: Instant::now(),
            session,
        });
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut n = 0u64;
    for (i, c) in cs.iter_mut().enumerate() {
        n += 1;
        c.send_next(target.kind, i, n);
    }
    let (mut ops, mut joins, mut leaves, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut first_error: Option<String> = None;
    let mut hist = Histogram::new();
    read_replies(
        &mut poll,
        &mut cs,
        end,
        |c| &mut c.ws,
        |i, c, texts| {
            for t in texts {
                let Some(reply) = churn_reply(target.kind, t) else {
                    continue;
                };
                let now = Instant::now();
                ops += 1;
                let rtt = now.duration_since(c.sent_at).as_micros() as u64;
                match (&reply, c.state.next) {
                    (ChurnReply::Joined, ChurnOp::Join) => {
                        joins += 1;
                        hist.record_us(rtt);
                    }
                    (ChurnReply::Left, ChurnOp::Leave) => {
                        leaves += 1;
                        hist.record_us(rtt);
                    }
                    (ChurnReply::Attached(_), ChurnOp::Attach)
                    | (ChurnReply::Success, ChurnOp::Detach) => {}
                    (ChurnReply::Error(e), _) => {
                        errors += 1;
                        first_error.get_or_insert(e.clone());
                    }
                    (other, op) => {
                        errors += 1;
                        first_error.get_or_insert(format!("{other:?} answering {op:?}"));
                    }
                }
                c.state.advance(target.kind, &reply);
                if now < end {
                    n += 1;
                    c.send_next(target.kind, i, n);
                }
            }
        },
    )?;
    let wall = start.elapsed().as_secs_f64();
    let broken = cs.iter().filter(|c| c.ws.closed).count();
    for c in &mut cs {
        c.ws.close();
    }
    Ok(json!({
        "server": target.kind.name(), "connections": conns, "seconds": wall,
        "joins": joins, "leaves": leaves, "errors": errors, "first_error": first_error,
        "ops": ops,
        "ops_per_s": (ops as f64 / wall).round(),
        "join_leave_cycles_per_s": (leaves as f64 / wall).round(),
        "round_trips_per_cycle": if target.kind == ServerKind::Janus { 4 } else { 2 },
        "rtt_p50_us": hist.percentile_us(50.0), "rtt_p99_us": hist.percentile_us(99.0),
        "broken_connections": broken,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ams_churn_replies() {
        let k = ServerKind::Antenna;
        assert_eq!(
            churn_reply(
                k,
                r#"{"command":"notification","definition":"joinedTheRoom","streamId":"c1","streams":[]}"#
            ),
            Some(ChurnReply::Joined)
        );
        assert_eq!(
            churn_reply(
                k,
                r#"{"command":"notification","definition":"leavedFromRoom","room":"r"}"#
            ),
            Some(ChurnReply::Left)
        );
        assert_eq!(
            churn_reply(k, r#"{"command":"error","definition":"no_room_specified"}"#),
            Some(ChurnReply::Error("no_room_specified".into()))
        );
        assert_eq!(churn_reply(k, r#"{"command":"pong"}"#), None);
        assert_eq!(churn_reply(k, "not json"), None);
    }

    #[test]
    fn janus_churn_replies() {
        let k = ServerKind::Janus;
        assert_eq!(
            churn_reply(k, r#"{"janus":"ack","transaction":"t1"}"#),
            None
        );
        assert_eq!(
            churn_reply(
                k,
                r#"{"janus":"success","transaction":"t2","data":{"id":77}}"#
            ),
            Some(ChurnReply::Attached(77))
        );
        assert_eq!(
            churn_reply(
                k,
                r#"{"janus":"success","transaction":"t3","session_id":1}"#
            ),
            Some(ChurnReply::Success)
        );
        assert_eq!(
            churn_reply(
                k,
                r#"{"janus":"event","plugindata":{"data":{"videoroom":"joined","room":9000,"id":5}}}"#
            ),
            Some(ChurnReply::Joined)
        );
        assert_eq!(
            churn_reply(
                k,
                r#"{"janus":"event","plugindata":{"data":{"videoroom":"event","room":9000,"leaving":"ok"}}}"#
            ),
            Some(ChurnReply::Left)
        );
        // Another participant leaving (a feed id, not "ok") is not our answer.
        assert_eq!(
            churn_reply(
                k,
                r#"{"janus":"event","plugindata":{"data":{"videoroom":"event","leaving":1234}}}"#
            ),
            None
        );
        assert_eq!(
            churn_reply(
                k,
                r#"{"janus":"event","plugindata":{"data":{"videoroom":"event","error_code":426,"error":"No such room"}}}"#
            ),
            Some(ChurnReply::Error("No such room".into()))
        );
        assert_eq!(
            churn_reply(
                k,
                r#"{"janus":"error","error":{"code":458,"reason":"No such session"}}"#
            ),
            Some(ChurnReply::Error("No such session".into()))
        );
    }

    #[test]
    fn churn_cycles() {
        fn conn_ops(kind: ServerKind, replies: &[ChurnReply]) -> Vec<ChurnOp> {
            // Only the state machine; the WebSocket is not used.
            let mut next = ChurnOp::Join;
            let mut handle = Some(1);
            let mut out = vec![next];
            for r in replies {
                let mut c = ChurnState { next, handle };
                c.advance(kind, r);
                next = c.next;
                handle = c.handle;
                out.push(next);
            }
            out
        }
        use ChurnOp::*;
        use ChurnReply as R;
        assert_eq!(
            conn_ops(
                ServerKind::Antenna,
                &[R::Joined, R::Left, R::Error("x".into())]
            ),
            vec![Join, Leave, Join, Leave]
        );
        assert_eq!(
            conn_ops(
                ServerKind::Janus,
                &[R::Joined, R::Left, R::Success, R::Attached(5), R::Joined]
            ),
            vec![Join, Leave, Detach, Attach, Join, Leave]
        );
        // A failed attach is retried.
        assert_eq!(
            conn_ops(
                ServerKind::Janus,
                &[
                    R::Joined,
                    R::Left,
                    R::Success,
                    R::Error("x".into()),
                    R::Attached(6)
                ]
            ),
            vec![Join, Leave, Detach, Attach, Attach, Join]
        );
    }
}
