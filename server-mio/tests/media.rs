//! End-to-end media: a str0m publisher and player on real loopback UDP sockets, through the
//! `antenna` binary's single UDP port, signalled over its WebSocket.
// Test code may read the wall clock for its own timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use std::cell::Cell;
use std::time::Duration;

use common::browser::Browser;
use common::media::{publish_live, run};
use common::Server;
use serde_json::json;
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
#[test]
fn tokens_media_and_live_status_in_the_rest_api() {
    let server = Server::start_with_config(
        "media-tokens",
        "[apps.WebRTCAppEE]\npublishTokenControlEnabled = true\nplayTokenControlEnabled = true\n",
    );
    let b = "/WebRTCAppEE/rest/v2/broadcasts";
    let rest = |method: &str, path: &str, body: Option<&str>| server.rest(method, path, body);
    let (st, _) = rest(
        "POST",
        &format!("{b}/create"),
        Some(r#"{"streamId":"live1"}"#),
    );
    assert_eq!(st, 200);
    let token = |kind: &str| {
        let (st, t) = rest(
            "GET",
            &format!(
                "{b}/live1/token?expireDate={}&type={kind}",
                common::unix_s(600)
            ),
            None,
        );
        assert_eq!(st, 200, "{t}");
        t["tokenId"].as_str().expect("tokenId").to_string()
    };
    let (mut publisher, mut pub_ws) = publish_live(
        &server,
        "WebRTCAppEE",
        "live1",
        json!({"token": token("publish")}),
    );
    let (_, got) = rest("GET", &format!("{b}/live1"), None);
    assert_eq!(got["status"], "broadcasting", "{got}");
    let (_, n) = rest("GET", &format!("{b}/active-live-stream-count"), None);
    assert_eq!(n["number"], 1, "{n}");

    // A player with the play token gets media; the viewer count shows it.
    let mut play_ws = server.client();
    let mut player = Browser::new();
    play_ws.send(&json!({"command": "play", "streamId": "live1", "token": token("play")}));
    let mut candidates = Vec::new();
    let offer = play_ws.recv_collecting_candidates("takeConfiguration", &mut candidates);
    let answer = player.accept_offer(offer["sdp"].as_str().expect("sdp"));
    for c in &candidates {
        player.add_candidate(c);
    }
    play_ws.send(&json!({"command": "takeConfiguration", "streamId": "live1", "type": "answer", "sdp": answer}));
    let ok = run(
        &mut [
            (&mut publisher, &mut pub_ws, true),
            (&mut player, &mut play_ws, false),
        ],
        Duration::from_secs(20),
        |_, _| {},
        |peers| peers[1].0.video_frames >= 10,
    );
    assert!(ok, "player got {} video frames", player.video_frames);
    let (_, stats) = rest("GET", &format!("{b}/live1/broadcast-statistics"), None);
    assert_eq!(stats["totalWebRTCWatchersCount"], 1, "{stats}");
    // A player with a wrong token is refused.
    let mut bad = server.client();
    bad.send(&json!({"command": "play", "streamId": "live1", "token": "wrong"}));
    bad.recv_error("unauthorized_access");

    // The publisher stops: finished, no viewers.
    pub_ws.send(&json!({"command": "stop", "streamId": "live1"}));
    pub_ws.recv_notification("publish_finished");
    let (_, got) = rest("GET", &format!("{b}/live1"), None);
    assert_eq!(got["status"], "finished", "{got}");
    assert_eq!(got["webRTCViewerCount"], 0, "{got}");
}
