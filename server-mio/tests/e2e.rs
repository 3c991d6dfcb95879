//! End-to-end tests: the real `antenna` binary on loopback, driven by blocking WebSocket and
//! HTTP clients. Signalling behaviour follows PROTOCOL.md.
// Test code may read the wall clock for its own timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::raw::{client_frame, upgrade_request};
use common::{body, http_get, http_raw, tcp, Client, Ended, Server, TIMEOUT};
use serde_json::json;

#[test]
fn ping_gets_pong() {
    let server = Server::start();
    let mut c = server.client();
    c.send(&json!({"command": "ping"}));
    assert_eq!(c.recv(), json!({"command": "pong"}));
}

#[test]
fn websocket_url_with_target_query_works() {
    let server = Server::start();
    for target in ["origin", "edge"] {
        let mut c = server.ws(&format!("/WebRTCAppEE/websocket?target={target}"));
        c.ping_pong();
    }
}

#[test]
fn extra_apps_are_served_and_unknown_apps_are_not() {
    let server = Server::start_with(&["--app", "LiveApp", "--app", "WebRTCAppEE"]);
    server.ws("/LiveApp/websocket").ping_pong();
    server.ws("/WebRTCAppEE/websocket").ping_pong();
    match Client::try_connect(server.http, "/Nope/websocket") {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 404),
        Err(e) => panic!("expected HTTP 404, got {e}"),
        Ok(_) => panic!("unknown app accepted"),
    }
}

#[test]
fn invalid_json_gets_error_and_everything_stays_up() {
    let server = Server::start();
    let mut c = server.client();
    c.send_text("{this is not json");
    let err = c.recv_command("error");
    assert_eq!(err["definition"], "invalid_message", "{err}");
    c.send_text(r#"{"command":"noSuchCommand","streamId":"s"}"#);
    c.recv_command("error");
    // The connection and the server are still up.
    c.ping_pong();
    server.client().ping_pong();
}

#[test]
fn binary_frames_are_ignored() {
    let server = Server::start();
    let mut c = server.client();
    c.ws_send_binary(&[1, 2, 3]);
    c.ping_pong();
}

#[test]
fn oversize_text_gets_error_but_huge_frames_close_the_connection() {
    let server = Server::start();
    let mut c = server.client();
    // Above the 80 KB protocol limit but within the frame limit: the protocol's error.
    let big = format!(
        r#"{{"command":"ping","pad":"{}"}}"#,
        "x".repeat(proto_core::MAX_MESSAGE_LEN + 100)
    );
    c.send_text(&big);
    let err = c.recv_command("error");
    assert_eq!(err["definition"], "invalid_message", "{err}");
    c.ping_pong();
    // Far above: the connection is closed with 1009 (message too big).
    let huge = "y".repeat(server_mio::runtime::MAX_WS_MESSAGE + 1);
    let _ = c.try_send_text(&huge);
    match c.until_end() {
        (msgs, Ended::Closed(code)) => {
            assert!(msgs.is_empty(), "{msgs:?}");
            assert_eq!(code, Some(1009));
        }
        (_, Ended::Error(_)) => {} // reset before the close frame was read: also closed
        (_, Ended::Timeout) => panic!("connection not closed"),
    }
    assert!(server.wait_log("closing websocket"));
    server.client().ping_pong();
}

#[test]
fn unknown_path_is_404_with_a_body() {
    let server = Server::start();
    let (status, resp) = http_get(server.http, "/no/such/page");
    assert_eq!(status, 404, "{resp}");
    assert_eq!(body(&resp), "not found\n");
    assert!(resp.contains("Connection: close\r\n"));
    let (status, _) = http_get(server.http, "/WebRTCAppEE/nothing-here.html");
    assert_eq!(status, 404);
}

#[test]
fn malformed_request_is_400() {
    let server = Server::start();
    let (status, resp) = http_raw(server.http, b"\x01\x02 nonsense\r\n\r\n");
    assert_eq!(status, 400, "{resp}");
    // Still serving.
    server.client().ping_pong();
}

#[test]
fn websocket_path_without_upgrade_is_426() {
    let server = Server::start();
    let (status, _) = http_get(server.http, "/WebRTCAppEE/websocket");
    assert_eq!(status, 426);
}

#[test]
fn demo_pages_are_served() {
    let server = Server::start();
    for f in server_mio::http::STATIC_FILES {
        for path in [format!("/{}", f.name), format!("/WebRTCAppEE/{}", f.name)] {
            let (status, resp) = http_get(server.http, &path);
            assert_eq!(status, 200, "{path}");
            assert!(resp.contains(&format!("Content-Type: {}\r\n", f.content_type)));
            assert_eq!(body(&resp).as_bytes(), f.body, "{path}");
        }
    }
    if server_mio::http::STATIC_FILES
        .iter()
        .any(|f| f.name == "index.html")
    {
        let (status, resp) = http_get(server.http, "/");
        assert_eq!(status, 200);
        assert!(resp.contains("text/html"));
        let (status, _) = http_get(server.http, "/WebRTCAppEE/");
        assert_eq!(status, 200);
    }
}

#[test]
fn half_sent_request_does_not_block_others() {
    let server = Server::start();
    // Half a request, never finished.
    let mut idle = tcp(server.http);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Others are served meanwhile.
    server.client().ping_pong();
    let (status, _) = http_get(server.http, "/nope");
    assert_eq!(status, 404);
}

#[test]
fn p2p_join_start_and_relay() {
    let server = Server::start();
    let mut a = server.client();
    let mut b = server.client();
    a.send(&json!({"command": "join", "streamId": "p2p1", "multiPeer": false, "mode": "both"}));
    let joined = a.recv_notification("joined");
    assert_eq!(joined["streamId"], "p2p1");
    b.send(&json!({"command": "join", "streamId": "p2p1", "multiPeer": false, "mode": "both"}));
    b.recv_notification("joined");
    let start = a.recv_command("start");
    assert_eq!(start["streamId"], "p2p1");

    let offer_sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    a.send(&json!({"command": "takeConfiguration", "streamId": "p2p1", "type": "offer", "sdp": offer_sdp}));
    let offer = b.recv_command("takeConfiguration");
    assert_eq!(offer["type"], "offer");
    assert_eq!(offer["sdp"], offer_sdp);
    assert_eq!(offer["streamId"], "p2p1");

    let cand = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host";
    a.send(&json!({"command": "takeCandidate", "streamId": "p2p1", "label": 0, "id": "0", "candidate": cand}));
    let c = b.recv_command("takeCandidate");
    assert_eq!(c["candidate"], cand);
    assert_eq!(c["label"], 0);

    b.send(&json!({"command": "takeConfiguration", "streamId": "p2p1", "type": "answer", "sdp": "v=0\r\nanswer\r\n"}));
    let answer = a.recv_command("takeConfiguration");
    assert_eq!(answer["type"], "answer");
    assert_eq!(answer["sdp"], "v=0\r\nanswer\r\n");

    // A third peer has no room.
    let mut c3 = server.client();
    c3.send(&json!({"command": "join", "streamId": "p2p1"}));
    c3.recv_error("NoSpaceForNewPeer");

    // A WebSocket close tells the remaining peer to stop.
    drop(b);
    let stop = a.recv_command("stop");
    assert_eq!(stop["streamId"], "p2p1");
}

#[test]
fn conference_rooms() {
    let server = Server::start();
    let mut clients: Vec<Client> = (0..3).map(|_| server.client()).collect();
    clients[0].send(&json!({"command": "joinRoom", "streamId": "p0"}));
    clients[0].recv_error("no_room_specified");
    for (i, c) in clients.iter_mut().enumerate() {
        let id = format!("p{i}");
        c.send(&json!({"command": "joinRoom", "room": "room1", "mainTrack": "room1", "streamId": id, "mode": "legacy"}));
        let n = c.recv_notification("joinedTheRoom");
        assert_eq!(n["streamId"], id, "{n}");
        assert_eq!(n["room"], "room1", "{n}");
        assert_eq!(n["ATTR_ROOM_NAME"], "room1", "{n}");
        assert!(n["streams"].is_array(), "{n}");
    }
    // Nobody publishes media: no active streams.
    clients[1].send(&json!({"command": "getRoomInfo", "room": "room1", "streamId": "p1"}));
    let info = clients[1].recv_error("no_active_streams_in_room");
    assert_eq!(info["room"], "room1", "{info}");
    for c in clients.iter_mut() {
        c.send(&json!({"command": "leaveFromRoom", "room": "room1"}));
        let n = c.recv_notification("leavedFromRoom");
        assert_eq!(n["room"], "room1", "{n}");
    }
}

#[test]
fn publish_without_stream_id_is_an_error() {
    let server = Server::start();
    let mut c = server.client();
    c.send(&json!({"command": "publish", "video": true, "audio": true}));
    c.recv_error("noStreamNameSpecified");
    c.send(&json!({"command": "publish", "streamId": "", "token": ""}));
    c.recv_error("noStreamNameSpecified");
    c.ping_pong();
}

#[test]
fn sigterm_sends_server_will_stop_and_exits_zero() {
    let mut server = Server::start();
    let mut a = server.client();
    let mut b = server.ws("/WebRTCAppEE/websocket?target=edge");
    a.ping_pong();
    b.ping_pong();
    server.signal("TERM");
    for c in [&mut a, &mut b] {
        let (msgs, end) = c.until_end();
        assert_eq!(
            msgs,
            vec![json!({"command": "notification", "definition": "server_will_stop"})]
        );
        assert!(matches!(end, Ended::Closed(_)), "{end:?}");
    }
    let status = server.wait_exit(TIMEOUT).expect("antenna did not exit");
    assert!(status.success(), "{status:?}");
    // Clients closed promptly, so there was no need to wait out the grace period.
    assert!(server.wait_log("shutdown complete"), "{:?}", server.log());
}

#[test]
fn sigint_exits_zero_even_if_a_client_does_not_answer_the_close() {
    let mut server = Server::start();
    let _silent = server.client(); // never reads: the grace period ends the wait
    server.signal("INT");
    let status = server
        .wait_exit(TIMEOUT)
        .expect("antenna did not exit within the grace period");
    assert!(status.success(), "{status:?}");
}

#[test]
fn client_that_does_not_read_is_dropped() {
    let server = Server::start();
    let mut a = server.client();
    let mut slow = server.client();
    a.send(&json!({"command": "join", "streamId": "slow1"}));
    a.recv_notification("joined");
    slow.send(&json!({"command": "join", "streamId": "slow1"}));
    slow.recv_notification("joined");
    a.recv_command("start");
    // `a` sends big offers that are relayed to `slow`, which never reads them: the server's
    // pending output for `slow` passes its limit and it is dropped. Bounded: at most 24 MB.
    let sdp = "a".repeat(60_000);
    let offer =
        json!({"command": "takeConfiguration", "streamId": "slow1", "type": "offer", "sdp": sdp})
            .to_string();
    // 400 x 60 kB = 24 MB: more than the limit plus the kernel's socket buffers.
    const NEEDLE: &str = "client is not reading";
    for _ in 0..400 {
        if server.log().iter().any(|l| l.contains(NEEDLE)) {
            break;
        }
        a.send_text(&offer);
    }
    // The server may still be working through what `a` sent (slow in debug builds).
    assert!(
        server.wait_log_for(NEEDLE, Duration::from_secs(60)),
        "slow client not dropped"
    );
    // The partner learns that its peer is gone, and keeps working. Offers it sent before it
    // saw the drop in the log, still on their way, now have no partner: each gets
    // `no_peer_associated_before`, and nothing else comes before the pong.
    a.recv_command("stop");
    a.send(&json!({"command": "ping"}));
    loop {
        let m = a.recv();
        if m["command"] == "pong" {
            break;
        }
        assert_eq!(m["command"], "error", "unexpected message {m}");
        assert_eq!(m["definition"], "no_peer_associated_before", "{m}");
    }
    server.client().ping_pong();
}

#[test]
fn toml_config_file_is_applied() {
    let dir = std::env::temp_dir().join(format!("antenna-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("antenna.toml");
    std::fs::write(
        &path,
        "apps = [\"ConfApp\"]\n\
         stun_server_uri = \"turn:turn.example.org:3478\"\n\
         turn_server_username = \"user1\"\n\
         turn_server_credential = \"secret1\"\n\
         webRTCClientStartTimeoutMs = 3000\n\
         seed = 42\n",
    )
    .unwrap();
    let server = Server::start_with(&["--config", path.to_str().unwrap()]);
    let mut c = server.ws("/ConfApp/websocket?target=origin");
    c.send(&json!({"command": "getIceServerConfig"}));
    assert_eq!(
        c.recv(),
        json!({
            "command": "iceServerConfig",
            "stunServerUri": "turn:turn.example.org:3478",
            "turnServerUsername": "user1",
            "turnServerCredential": "secret1"
        })
    );
    // The default application is replaced by the file's list.
    assert!(Client::try_connect(server.http, "/WebRTCAppEE/websocket").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_exits_with_status_2() {
    let dir = std::env::temp_dir().join(format!("antenna-e2e-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "listen = 5\n").unwrap();
    for args in [
        vec!["--config", path.to_str().unwrap()],
        vec!["--app", "bad/app"],
        vec!["--listen", "not-an-address"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_antenna"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_documents_the_options() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_antenna"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--listen",
        "--udp",
        "--announce-ip",
        "--app",
        "--config",
        "--log",
        "--seed",
    ] {
        assert!(text.contains(opt), "{opt} missing from --help:\n{text}");
    }
}

#[test]
fn first_frame_in_the_same_packet_as_the_upgrade_is_not_lost() {
    use std::io::Read;
    let server = Server::start();
    let mut s = tcp(server.http);
    let mut req = upgrade_request(server.http, "/WebRTCAppEE/websocket?target=origin").into_bytes();
    req.extend(client_frame(1, br#"{"command":"ping"}"#));
    s.write_all(&req).unwrap();
    let expected_frame = {
        let pong = json!({"command": "pong"}).to_string();
        let mut f = vec![0x81, pong.len() as u8];
        f.extend_from_slice(pong.as_bytes());
        f
    };
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(&expected_frame) {
        let n = s.read(&mut buf).expect("read (timeout means no pong)");
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
}

#[test]
fn request_split_across_writes_is_served() {
    use std::io::Read;
    let server = Server::start();
    let mut s = tcp(server.http);
    for part in ["GE", "T /nope HT", "TP/1.1\r\nHo", "st: x\r\n", "\r\n"] {
        s.write_all(part.as_bytes()).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 404 "), "{resp}");
}

#[test]
fn client_close_frame_is_answered_and_reported_to_signalling() {
    let server = Server::start();
    let mut a = server.client();
    let mut b = server.client();
    a.send(&json!({"command": "join", "streamId": "bye1"}));
    a.recv_notification("joined");
    b.send(&json!({"command": "join", "streamId": "bye1"}));
    b.recv_notification("joined");
    a.recv_command("start");
    b.close();
    // The server answers the close handshake...
    let (msgs, end) = b.until_end();
    assert!(msgs.is_empty(), "{msgs:?}");
    assert!(
        matches!(end, Ended::Closed(_) | Ended::Error(_)),
        "close not answered: {end:?}"
    );
    // ...and signalling learns the peer left.
    let stop = a.recv_command("stop");
    assert_eq!(stop["streamId"], "bye1");
}
