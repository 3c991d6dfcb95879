//! End-to-end media: a str0m publisher and player on real loopback UDP sockets, through the
//! `antenna` binary's single UDP port, signalled over its WebSocket.
// Test code may read the wall clock for its own timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{Client, Server};
use serde_json::{json, Value};

/// Drives the peers and their WebSockets until `done` or the time limit. Every server message
/// seen is passed to `on_message(index of the websocket, message)`.
fn run(
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

#[test]
fn publish_then_play_media_over_udp() {
    let server = Server::start();

    // Publisher: publish -> start -> offer -> answer -> ICE/DTLS over UDP -> media.
    let mut pub_ws = server.client();
    let mut publisher = Browser::new();
    pub_ws.send(&json!({
        "command": "publish", "streamId": "media1", "token": "", "subscriberId": "",
        "subscriberCode": "", "streamName": "", "mainTrack": "", "video": true, "audio": true,
        "metaData": "", "role": ""
    }));
    let start = pub_ws.recv_command("start");
    assert_eq!(start["streamId"], "media1");
    let offer = publisher.publish_offer();
    pub_ws.send(&json!({"command": "takeConfiguration", "streamId": "media1", "type": "offer", "sdp": offer}));
    let mut candidates = Vec::new();
    let answer = pub_ws.recv_collecting_candidates("takeConfiguration", &mut candidates);
    assert_eq!(answer["type"], "answer", "{answer}");
    assert_eq!(answer["streamId"], "media1");
    publisher.accept_answer(answer["sdp"].as_str().expect("sdp"));
    for c in &candidates {
        publisher.add_candidate(c);
    }
    let publish_started = Cell::new(false);
    let ok = run(
        &mut [(&mut publisher, &mut pub_ws, true)],
        Duration::from_secs(15),
        |_, m| {
            if m["command"] == "notification" && m["definition"] == "publish_started" {
                assert_eq!(m["streamId"], "media1");
                publish_started.set(true);
            }
        },
        |_| publish_started.get(),
    );
    assert!(publisher.connected, "publisher ICE/DTLS did not connect");
    assert!(ok && publish_started.get(), "no publish_started");

    // Player: play -> server offer (with idMapping) -> answer -> media from the publisher.
    let mut play_ws = server.client();
    let mut player = Browser::new();
    play_ws.send(&json!({
        "command": "play", "streamId": "media1", "token": "", "room": "", "trackList": [],
        "subscriberId": "", "viewerInfo": "", "role": "", "userPublishId": ""
    }));
    let mut candidates = Vec::new();
    let offer = play_ws.recv_collecting_candidates("takeConfiguration", &mut candidates);
    assert_eq!(offer["type"], "offer", "{offer}");
    assert!(
        offer["idMapping"].is_object(),
        "play offer without idMapping: {offer}"
    );
    let answer = player.accept_offer(offer["sdp"].as_str().expect("sdp"));
    for c in &candidates {
        player.add_candidate(c);
    }
    play_ws.send(&json!({"command": "takeConfiguration", "streamId": "media1", "type": "answer", "sdp": answer}));
    let play_started = Cell::new(false);
    let ok = run(
        &mut [
            (&mut publisher, &mut pub_ws, true),
            (&mut player, &mut play_ws, false),
        ],
        Duration::from_secs(20),
        |i, m| {
            if i == 1 && m["command"] == "notification" && m["definition"] == "play_started" {
                play_started.set(true);
            }
        },
        |peers| {
            let p = &peers[1].0;
            play_started.get() && p.video_frames >= 10 && p.audio_frames >= 10
        },
    );
    assert!(player.connected, "player ICE/DTLS did not connect");
    assert!(
        ok,
        "player got {} video / {} audio frames, play_started {}",
        player.video_frames,
        player.audio_frames,
        play_started.get()
    );

    eprintln!(
        "player received {} video and {} audio frames",
        player.video_frames, player.audio_frames
    );

    // The publisher stops: the player is told.
    pub_ws.send(&json!({"command": "stop", "streamId": "media1"}));
    let play_finished = Cell::new(false);
    run(
        &mut [(&mut player, &mut play_ws, false)],
        Duration::from_secs(5),
        |_, m| {
            if m["command"] == "notification" && m["definition"] == "play_finished" {
                play_finished.set(true);
            }
        },
        |_| play_finished.get(),
    );
    assert!(play_finished.get(), "player not told play_finished");
}
