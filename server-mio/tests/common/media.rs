//! Media flows for tests that need live streams: a publisher until `publish_started`, a player
//! until it received frames (str0m peers from [`super::browser`]).

use std::cell::Cell;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::browser::Browser;
use super::{Client, Server};

/// Drives the peers and their WebSockets until `done` or the time limit; every server message
/// is passed to `on_message(index, message)`. `true` if `done` was reached.
pub fn run(
    peers: &mut [(&mut Browser, &mut Client, bool)],
    limit: Duration,
    mut on_message: impl FnMut(usize, &Value),
    mut done: impl FnMut(&[(&mut Browser, &mut Client, bool)]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        for (i, (browser, ws, sends)) in peers.iter_mut().enumerate() {
            browser.poll();
            if *sends {
                browser.send_media();
            }
            while let Some(m) = ws.poll_message() {
                if m["command"] == "takeCandidate" {
                    browser.add_candidate(m["candidate"].as_str().unwrap_or_default());
                }
                on_message(i, &m);
            }
        }
        if done(peers) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Publishes `id` on `app` with `extra` fields until `publish_started`.
pub fn publish_live(server: &Server, app: &str, id: &str, extra: Value) -> (Browser, Client) {
    let mut ws = server.ws(&format!("/{app}/websocket"));
    let mut publisher = Browser::new();
    let mut m = json!({"command": "publish", "streamId": id, "video": true, "audio": true});
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    ws.send(&m);
    ws.recv_command("start");
    let offer = publisher.publish_offer();
    ws.send(
        &json!({"command": "takeConfiguration", "streamId": id, "type": "offer", "sdp": offer}),
    );
    let mut candidates = Vec::new();
    let answer = ws.recv_collecting_candidates("takeConfiguration", &mut candidates);
    publisher.accept_answer(answer["sdp"].as_str().expect("sdp"));
    for c in &candidates {
        publisher.add_candidate(c);
    }
    let started = Cell::new(false);
    let ok = run(
        &mut [(&mut publisher, &mut ws, true)],
        Duration::from_secs(15),
        |_, m| started.set(started.get() || m["definition"] == "publish_started"),
        |_| started.get(),
    );
    assert!(ok, "no publish_started");
    (publisher, ws)
}

/// Plays `id` on `app` while `publisher` sends, until the player received `frames` video
/// frames; returns how many it got.
pub fn play_frames(
    server: &Server,
    app: &str,
    id: &str,
    publisher: (&mut Browser, &mut Client),
    frames: usize,
) -> usize {
    let mut ws = server.ws(&format!("/{app}/websocket"));
    let mut player = Browser::new();
    ws.send(&json!({"command": "play", "streamId": id}));
    let mut candidates = Vec::new();
    let offer = ws.recv_collecting_candidates("takeConfiguration", &mut candidates);
    let answer = player.accept_offer(offer["sdp"].as_str().expect("sdp"));
    for c in &candidates {
        player.add_candidate(c);
    }
    ws.send(
        &json!({"command": "takeConfiguration", "streamId": id, "type": "answer", "sdp": answer}),
    );
    let (pb, pws) = publisher;
    run(
        &mut [(pb, pws, true), (&mut player, &mut ws, false)],
        Duration::from_secs(20),
        |_, _| {},
        |peers| peers.get(1).is_some_and(|p| p.0.video_frames >= frames),
    );
    player.video_frames
}
