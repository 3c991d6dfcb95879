//! WHIP and WHEP against the real `antenna` binary over real HTTP and UDP on loopback: a str0m
//! peer publishes with WHIP and an SDK-style WebSocket player receives its frames; an SDK-style
//! publisher is played with WHEP; bad input gets its status; tokens are checked as on the
//! WebSocket; nothing is left after `DELETE`.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::browser::Browser;
use common::media::{play_frames, publish_live, run};
use common::{body, http_raw, Server};
use serde_json::json;

const APP: &str = "WebRTCAppEE";
const HASH_SECRET: &str = "hash-secret";

/// A request with a body; returns the status and the whole response.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        payload.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(payload);
    http_raw(addr, req.as_bytes())
}

fn sdp_post(addr: SocketAddr, path: &str, sdp: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let mut h = vec![("Content-Type", "application/sdp")];
    h.extend_from_slice(extra);
    request(addr, "POST", path, &h, sdp)
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Drives a lone peer (with an idle WebSocket for the harness) until `done` or 15 s.
fn drive(
    server: &Server,
    peer: &mut Browser,
    sends: bool,
    done: impl Fn(&Browser) -> bool,
) -> bool {
    let mut idle = server.ws(&format!("/{APP}/websocket"));
    run(
        &mut [(peer, &mut idle, sends)],
        Duration::from_secs(15),
        |_, _| {},
        |p| p.first().is_some_and(|p| done(p.0)),
    )
}

fn resource_log_count(server: &Server, needle: &str) -> usize {
    server.log().iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn whip_publish_is_played_by_an_sdk_player_and_delete_ends_it() {
    let server = Server::start();
    let mut publisher = Browser::new();
    let offer = publisher.publish_offer();
    let (status, resp) = sdp_post(server.http, &format!("/{APP}/whip/w1"), &offer, &[]);
    assert_eq!(status, 201, "{resp}");
    assert_eq!(header(&resp, "Content-Type"), Some("application/sdp"));
    assert_eq!(header(&resp, "Access-Control-Allow-Origin"), Some("*"));
    assert!(header(&resp, "ETag").is_some_and(|e| e.starts_with('"')));
    let location = header(&resp, "Location").expect("Location").to_string();
    assert!(
        location.starts_with(&format!("/{APP}/whip/w1/")),
        "{location}"
    );
    let answer = body(&resp);
    assert!(
        answer.contains("a=candidate:"),
        "candidates in the answer: {answer}"
    );
    publisher.accept_answer(answer);
    assert!(
        drive(&server, &mut publisher, true, |p| p.connected),
        "WHIP publisher connects"
    );

    // A stream like any other: its broadcast object goes `broadcasting` once media flows,
    // getStreamInfo answers, and an SDK-style player receives it.
    let mut ws = server.ws(&format!("/{APP}/websocket"));
    let mut live = false;
    for _ in 0..50 {
        ws.send(&json!({"command": "getBroadcastObject", "streamId": "w1"}));
        let m = ws.recv_notification("broadcastObject");
        let b: serde_json::Value =
            serde_json::from_str(m["broadcast"].as_str().unwrap_or("{}")).unwrap_or_default();
        if b["status"] == "broadcasting" {
            live = true;
            break;
        }
        let mut idle = server.ws(&format!("/{APP}/websocket"));
        run(
            &mut [(&mut publisher, &mut idle, true)],
            Duration::from_millis(200),
            |_, _| {},
            |_| false,
        );
    }
    assert!(live, "the WHIP stream goes live");
    ws.send(&json!({"command": "getStreamInfo", "streamId": "w1"}));
    ws.recv_command("streamInformation");
    let mut idle = server.ws(&format!("/{APP}/websocket"));
    let frames = play_frames(&server, APP, "w1", (&mut publisher, &mut idle), 10);
    assert!(frames >= 10, "the SDK-style player got {frames} frames");

    // A second WHIP publish of the same id: 409.
    let mut other = Browser::new();
    let (status, resp) = sdp_post(
        server.http,
        &format!("/{APP}/whip/w1"),
        &other.publish_offer(),
        &[],
    );
    assert_eq!(status, 409, "{resp}");

    // Trickle: candidates are taken (204); an ICE restart without If-Match is 428 (the
    // session is untouched; restarts are shown below); a stale ETag 412.
    let patch = |frag: &str, extra: &[(&str, &str)]| {
        let mut h = vec![("Content-Type", "application/trickle-ice-sdpfrag")];
        h.extend_from_slice(extra);
        request(server.http, "PATCH", &location, &h, frag)
    };
    let frag = "a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    assert_eq!(patch(frag, &[]).0, 428);
    let trickle = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n";
    assert_eq!(patch(trickle, &[("If-Match", "\"stale\"")]).0, 412);
    assert_eq!(patch(trickle, &[("If-Match", "*")]).0, 204);
    assert_eq!(
        request(
            server.http,
            "PATCH",
            &location,
            &[("Content-Type", "application/sdp")],
            trickle
        )
        .0,
        415
    );

    // DELETE ends the publish, the resource and its indexes.
    let (status, resp) = request(server.http, "DELETE", &location, &[], "");
    assert_eq!(status, 200, "{resp}");
    ws.send(&json!({"command": "getStreamInfo", "streamId": "w1"}));
    ws.recv_error("no_stream_exist");
    assert_eq!(request(server.http, "DELETE", &location, &[], "").0, 404);
    assert!(server.wait_log("whip/whep resource ended"));
    // The same id can be published again at once.
    let mut again = Browser::new();
    let (status, resp) = sdp_post(
        server.http,
        &format!("/{APP}/whip/w1"),
        &again.publish_offer(),
        &[],
    );
    assert_eq!(status, 201, "{resp}");
}

#[test]
fn whep_plays_an_sdk_publisher_and_ends_with_it() {
    let server = Server::start();
    let (mut publisher, mut pws) = publish_live(&server, APP, "e1", json!({}));
    let mut player = Browser::new();
    let (status, resp) = sdp_post(
        server.http,
        &format!("/{APP}/whep/e1"),
        &player.play_offer(),
        &[],
    );
    assert_eq!(status, 201, "{resp}");
    let location = header(&resp, "Location").expect("Location").to_string();
    assert!(
        location.starts_with(&format!("/{APP}/whep/e1/")),
        "{location}"
    );
    player.accept_answer(body(&resp));
    let ok = run(
        &mut [
            (&mut publisher, &mut pws, true),
            (
                &mut player,
                &mut server.ws(&format!("/{APP}/websocket")),
                false,
            ),
        ],
        Duration::from_secs(20),
        |_, _| {},
        |p| {
            p.get(1)
                .is_some_and(|p| p.0.video_frames >= 10 && p.0.audio_frames >= 10)
        },
    );
    assert!(
        ok,
        "WHEP player frames: video {} audio {}",
        player.video_frames, player.audio_frames
    );
    // The publisher's viewer count includes the WHEP player.
    pws.send(&json!({"command": "getSubscriberCount", "streamId": "e1"}));
    let count = pws.recv_notification("subscriberCount");
    assert_eq!(count["count"], 1, "{count}");
    // The publisher stops: the WHEP resource ends with it.
    pws.send(&json!({"command": "stop", "streamId": "e1"}));
    pws.recv_notification("publish_finished");
    assert!(server.wait_log("whip/whep resource ended by its session"));
    assert_eq!(request(server.http, "DELETE", &location, &[], "").0, 404);
}

#[test]
fn bad_requests_get_their_status() {
    let server = Server::start();
    let a = server.http;
    let offer = Browser::new().publish_offer();
    let whip = format!("/{APP}/whip/b1");
    // Wrong content type, malformed SDP, too many m-lines, too large, chunked.
    assert_eq!(
        request(a, "POST", &whip, &[("Content-Type", "text/plain")], &offer).0,
        415
    );
    assert_eq!(request(a, "POST", &whip, &[], &offer).0, 415);
    assert_eq!(sdp_post(a, &whip, "hello", &[]).0, 400);
    assert_eq!(sdp_post(a, &whip, "v=0\r\nbroken\r\n", &[]).0, 400);
    let many = format!("v=0\r\n{}", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(9));
    assert_eq!(sdp_post(a, &whip, &many, &[]).0, 400);
    let big = format!("v=0\r\n{}", "a=x\r\n".repeat(8000));
    assert_eq!(sdp_post(a, &whip, &big, &[]).0, 413);
    // An SDP that parses but str0m refuses (no ICE credentials): 400.
    let bare = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n";
    assert_eq!(sdp_post(a, &whip, bare, &[]).0, 400);
    // Unknown stream for WHEP, unknown resources, unknown application, bad stream id.
    let play = Browser::new().play_offer();
    assert_eq!(
        sdp_post(a, &format!("/{APP}/whep/nobody"), &play, &[]).0,
        404
    );
    assert_eq!(
        request(a, "DELETE", &format!("{whip}/0123"), &[], "").0,
        404
    );
    assert_eq!(sdp_post(a, "/Other/whip/b1", &offer, &[]).0, 404);
    assert_eq!(
        sdp_post(a, &format!("/{APP}/whip/b%20c"), &offer, &[]).0,
        400
    );
    // Methods: GET on the endpoint, POST on a resource.
    let (status, resp) = request(a, "GET", &whip, &[], "");
    assert_eq!(status, 405);
    assert_eq!(header(&resp, "Allow"), Some("POST, OPTIONS"));
    assert_eq!(sdp_post(a, &format!("{whip}/abc"), &offer, &[]).0, 405);
    // CORS preflight.
    let (status, resp) = request(
        a,
        "OPTIONS",
        &whip,
        &[
            ("Origin", "http://elsewhere.test"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_eq!(status, 204, "{resp}");
    assert_eq!(header(&resp, "Access-Control-Allow-Origin"), Some("*"));
    assert!(
        header(&resp, "Access-Control-Allow-Headers").is_some_and(|h| h.contains("Authorization"))
    );
    assert_eq!(header(&resp, "Accept-Post"), Some("application/sdp"));
    // Refusals are logged and nothing was created.
    assert!(resource_log_count(&server, "whip/whep request refused") >= 3);
    assert_eq!(resource_log_count(&server, "whip/whep resource created"), 0);
}

#[test]
fn bearer_tokens_are_checked_as_on_the_websocket() {
    let server = Server::start_with_config(
        "whip-hash",
        &format!(
            r#"
            [apps.Hash]
            hashControlPublishEnabled = true
            hashControlPlayEnabled = true
            tokenHashSecret = "{HASH_SECRET}"
            "#
        ),
    );
    let a = server.http;
    let path = "/Hash/whip/h1";
    let good = antenna_store::crypto::hash_token("h1", "publish", HASH_SECRET);
    let play = antenna_store::crypto::hash_token("h1", "play", HASH_SECRET);
    let offer = || Browser::new().publish_offer();
    let (status, resp) = sdp_post(a, path, &offer(), &[]);
    assert_eq!(status, 401, "no token: {resp}");
    assert_eq!(header(&resp, "WWW-Authenticate"), Some("Bearer"));
    let wrong = format!("Bearer {play}");
    assert_eq!(
        sdp_post(a, path, &offer(), &[("Authorization", &wrong)]).0,
        403
    );
    let bearer = format!("Bearer {good}");
    let (status, resp) = sdp_post(a, path, &offer(), &[("Authorization", &bearer)]);
    assert_eq!(status, 201, "{resp}");
    // AMS's `?token=` works too (for another stream id, its own token).
    let t2 = antenna_store::crypto::hash_token("h2", "publish", HASH_SECRET);
    assert_eq!(
        sdp_post(a, &format!("/Hash/whip/h2?token={t2}"), &offer(), &[]).0,
        201
    );
    // WHEP with the publish token is refused; with the play token it plays (the stream is not
    // live yet: 404 after the token passed).
    let mut p = Browser::new();
    let (status, _) = sdp_post(
        a,
        "/Hash/whep/h1",
        &p.play_offer(),
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 403);
    let play_bearer = format!("Bearer {play}");
    let (status, _) = sdp_post(
        a,
        "/Hash/whep/h1",
        &Browser::new().play_offer(),
        &[("Authorization", &play_bearer)],
    );
    assert_eq!(status, 404);
}

#[test]
fn repeated_wrong_tokens_lock_the_address_out() {
    let server = Server::start_with_config(
        "whip-lockout",
        &format!(
            r#"
            [apps.Hash]
            hashControlPublishEnabled = true
            tokenHashSecret = "{HASH_SECRET}"
            "#
        ),
    );
    let a = server.http;
    let good = format!(
        "Bearer {}",
        antenna_store::crypto::hash_token("l1", "publish", HASH_SECRET)
    );
    let offer = || Browser::new().publish_offer();
    for i in 0..5 {
        let wrong = format!("Bearer wrong{i}");
        let (status, resp) = sdp_post(a, "/Hash/whip/l1", &offer(), &[("Authorization", &wrong)]);
        assert_eq!(status, 403, "wrong token {i}: {resp}");
    }
    // Locked out now: even the right token is refused, with when to come back.
    let (status, resp) = sdp_post(a, "/Hash/whip/l1", &offer(), &[("Authorization", &good)]);
    assert_eq!(status, 429, "{resp}");
    let after: u64 = header(&resp, "Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("secs");
    assert!((58..=60).contains(&after), "{after}");
    let (status, _) = sdp_post(a, "/Hash/whep/l1", &Browser::new().play_offer(), &[]);
    assert_eq!(status, 429, "WHEP from the address too");
    assert!(server.wait_log("address locked out after repeated wrong tokens"));
}

#[test]
fn resources_per_address_are_bounded_and_freed() {
    let server = Server::start();
    let a = server.http;
    let mut locations = Vec::new();
    for i in 0..16 {
        let (status, resp) = sdp_post(
            a,
            &format!("/{APP}/whip/r{i}"),
            &Browser::new().publish_offer(),
            &[],
        );
        assert_eq!(status, 201, "{resp}");
        locations.push(header(&resp, "Location").expect("Location").to_string());
    }
    let (status, _) = sdp_post(
        a,
        &format!("/{APP}/whip/r16"),
        &Browser::new().publish_offer(),
        &[],
    );
    assert_eq!(status, 429);
    for l in &locations {
        assert_eq!(request(a, "DELETE", l, &[], "").0, 200);
    }
    let (status, _) = sdp_post(
        a,
        &format!("/{APP}/whip/r16"),
        &Browser::new().publish_offer(),
        &[],
    );
    assert_eq!(status, 201);
    // The REST API sees no stream of the deleted resources.
    let (status, list) = server.rest("GET", &format!("/{APP}/rest/v2/broadcasts/list/0/50"), None);
    assert_eq!(status, 200);
    let ids: Vec<String> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["streamId"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(ids.iter().all(|id| id == "r16"), "{ids:?}");
}

/// `PATCH` with an sdpfrag and `If-Match`; returns the status and the whole response.
fn patch_frag(server: &Server, location: &str, frag: &str, if_match: &str) -> (u16, String) {
    request(
        server.http,
        "PATCH",
        location,
        &[
            ("Content-Type", "application/trickle-ice-sdpfrag"),
            ("If-Match", if_match),
        ],
        frag,
    )
}

#[test]
fn ice_restart_by_patch_moves_a_whip_publisher_and_a_whep_player() {
    let server = Server::start();
    // A WHIP publisher connects, moves to a new UDP socket and restarts ICE.
    let mut publisher = Browser::new();
    let (status, resp) = sdp_post(
        server.http,
        &format!("/{APP}/whip/r1"),
        &publisher.publish_offer(),
        &[],
    );
    assert_eq!(status, 201, "{resp}");
    let location = header(&resp, "Location").expect("Location").to_string();
    let etag0 = header(&resp, "ETag").expect("ETag").to_string();
    publisher.accept_answer(body(&resp));
    assert!(drive(&server, &mut publisher, true, |p| p.connected));
    // Live on the old path first (its media started), then the move.
    let mut idle = server.ws(&format!("/{APP}/websocket"));
    run(
        &mut [(&mut publisher, &mut idle, true)],
        Duration::from_secs(1),
        |_, _| {},
        |_| false,
    );
    let frag = publisher.start_ice_restart();
    let (status, resp) = patch_frag(&server, &location, &frag, "*");
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        header(&resp, "Content-Type"),
        Some("application/trickle-ice-sdpfrag")
    );
    let etag1 = header(&resp, "ETag").expect("a new ETag").to_string();
    assert_ne!(etag0, etag1);
    let server_frag = body(&resp).to_string();
    assert!(server_frag.contains("a=ice-pwd:") && server_frag.contains("a=candidate:"));
    publisher.finish_ice_restart(&server_frag);
    // Media flows from the new address to an SDK-style player, over the same DTLS session.
    let mut idle = server.ws(&format!("/{APP}/websocket"));
    let frames = play_frames(&server, APP, "r1", (&mut publisher, &mut idle), 10);
    assert!(frames >= 10, "frames after the restart: {frames}");
    assert_eq!(publisher.connects, 1, "no second DTLS handshake");
    assert!(server.wait_log("whip/whep ICE restart"));
    // The tag from before the restart is stale.
    let trickle = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    assert_eq!(patch_frag(&server, &location, trickle, &etag0).0, 412);

    // A WHEP player of an SDK-style publisher does the same.
    let (mut sdk, mut sws) = publish_live(&server, APP, "r2", json!({}));
    let mut player = Browser::new();
    let (status, resp) = sdp_post(
        server.http,
        &format!("/{APP}/whep/r2"),
        &player.play_offer(),
        &[],
    );
    assert_eq!(status, 201, "{resp}");
    let location = header(&resp, "Location").expect("Location").to_string();
    let etag = header(&resp, "ETag").expect("ETag").to_string();
    player.accept_answer(body(&resp));
    let mut pws = server.ws(&format!("/{APP}/websocket"));
    let mut frames_at = |sdk: &mut Browser, player: &mut Browser, at_least: usize| {
        run(
            &mut [(sdk, &mut sws, true), (player, &mut pws, false)],
            Duration::from_secs(15),
            |_, _| {},
            |p| p.get(1).is_some_and(|p| p.0.video_frames >= at_least),
        )
    };
    assert!(frames_at(&mut sdk, &mut player, 10), "WHEP frames before");
    let before = player.video_frames;
    let frag = player.start_ice_restart();
    // Its own current ETag is as good as `*`.
    let (status, resp) = patch_frag(&server, &location, &frag, &etag);
    assert_eq!(status, 200, "{resp}");
    player.finish_ice_restart(body(&resp));
    assert!(
        frames_at(&mut sdk, &mut player, before + 10),
        "WHEP frames after the restart: {} (before {before})",
        player.video_frames
    );
    assert_eq!(player.connects, 1, "no second DTLS handshake");
}
