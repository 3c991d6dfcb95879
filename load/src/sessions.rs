//! Memory per idle session, memory per idle WebSocket, and signalling round trips.

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

/// `conns` WebSockets each doing ping/pong round trips back to back for `seconds`.
pub fn ping(target: &Target, conns: usize, seconds: f64) -> Result<Value, String> {
    let (path, proto) = target.kind.ws_path(&target.app);
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut ws = Vec::with_capacity(conns);
    for i in 0..conns {
        let c = WsConn::connect(target.addr, &path, proto).map_err(|e| format!("ws {i}: {e}"))?;
        c.register(poll.registry(), Token(i))
            .map_err(|e| e.to_string())?;
        ws.push(c);
    }
    let ping = match target.kind {
        ServerKind::Antenna => json!({"command": "ping"}).to_string(),
        ServerKind::Janus => json!({"janus": "ping", "transaction": "p"}).to_string(),
    };
    let is_pong = |t: &str| t.contains("pong");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut sent_at: Vec<Instant> = vec![start; conns];
    for c in &mut ws {
        c.send(ping.clone());
    }
    let mut hist = Histogram::new();
    let mut events = Events::with_capacity(1024);
    let mut texts = Vec::new();
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.token().0;
            let (Some(c), Some(at)) = (ws.get_mut(i), sent_at.get_mut(i)) else {
                continue;
            };
            texts.clear();
            c.read_all(&mut texts);
            c.flush();
            let pongs = texts.iter().filter(|t| is_pong(t)).count();
            if pongs > 0 {
                let now = Instant::now();
                hist.record_us(now.duration_since(*at).as_micros() as u64);
                *at = now;
                if now < end {
                    c.send(ping.clone());
                }
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let broken = ws.iter().filter(|c| c.closed).count();
    for c in &mut ws {
        c.close();
    }
    Ok(json!({
        "server": target.kind.name(), "connections": conns, "seconds": wall,
        "round_trips": hist.count(),
        "round_trips_per_s": (hist.count() as f64 / wall).round(),
        "rtt_p50_us": hist.percentile_us(50.0), "rtt_p99_us": hist.percentile_us(99.0),
        "broken_connections": broken,
    }))
}
