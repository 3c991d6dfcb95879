//! Cluster mode against a real Redis (Debian's `redis-server`, started here on 127.0.0.1):
//! two nodes register, a stream published on node 1 is registered with node 1 as its origin,
//! stopping Redis keeps local media flowing and the node registers again when Redis returns,
//! and `kill -9` of node 1 makes its entries expire within the TTL; the shared data; the origin
//! → edge relay (two edge players through one relay and their viewer count in Redis, the
//! publisher's stop, `kill -9` of the origin); a conference whose two members publish on two
//! nodes, each member's room player getting the other's frames. About 650 lines: the tests
//! share the node start-up (the Redis helper is `common/redis.rs`).
#![allow(clippy::disallowed_methods)] // test timeouts read the clock

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use antenna_cluster::registry::TTL;
use antenna_cluster::resp::Reply;
use common::media::{play_frames, publish_live};
use common::redis::{free_port, redis_installed, Redis};
use common::Server;
use serde_json::{json, Value};

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

#[test]
fn nodes_and_streams_register_survive_a_redis_outage_and_expire_after_kill_9() {
    if !redis_installed() {
        return;
    }
    let port = free_port();
    let mut redis = Redis::start_on(port).expect("redis-server starts");
    let url = redis.url();
    let mut n1 = Server::start_with(&["--cluster", &url, "--node-id", "n1"]);
    let n2 = Server::start_with(&["--cluster", &url, "--node-id", "n2"]);

    wait_for("both nodes registered", Duration::from_secs(10), || {
        redis.get("antenna:node:n1").is_some() && redis.get("antenna:node:n2").is_some()
    });
    let info = redis.get("antenna:node:n1").unwrap();
    assert_eq!(info["http"], json!(n1.http.to_string()));
    assert_eq!(info["udp"], json!(n1.udp.to_string()));
    let pttl = redis.call(&["PTTL", "antenna:node:n1"]).as_int().unwrap();
    assert!(
        pttl > 0 && pttl <= TTL.as_millis() as i64,
        "TTL set: {pttl}"
    );

    let (mut publisher, mut pub_ws) = publish_live(&n1, "WebRTCAppEE", "s1", json!({}));
    let key = "antenna:stream:WebRTCAppEE/s1";
    wait_for("stream registered", Duration::from_secs(5), || {
        redis.get(key).is_some()
    });
    let entry = redis.get(key).unwrap();
    assert_eq!(entry["origin"], "n1");
    assert_eq!(entry["http"], json!(n1.http.to_string()));

    // Redis goes away: local media keeps flowing on node 1.
    redis.stop();
    assert!(n1.wait_log_for("CLUSTER: Redis not available", Duration::from_secs(10)));
    let frames = play_frames(&n1, "WebRTCAppEE", "s1", (&mut publisher, &mut pub_ws), 10);
    assert!(
        frames >= 10,
        "local play while Redis is down got {frames} frames"
    );

    // Redis returns empty: the nodes connect again and register themselves and the stream.
    let redis = Redis::start_on(port).expect("redis-server restarts");
    let back = wait_for("registered again", Duration::from_secs(10), || {
        redis.get(key).is_some() && redis.get("antenna:node:n2").is_some()
    });
    eprintln!("registry restored {back:?} after Redis came back");

    // kill -9 of node 1: its node and stream entries expire within the TTL; node 2 stays.
    let killed = Instant::now();
    n1.signal("KILL");
    n1.wait_exit(Duration::from_secs(5));
    let gone = wait_for(
        "node 1's entries expired",
        TTL + Duration::from_secs(1),
        || redis.get("antenna:node:n1").is_none() && redis.get(key).is_none(),
    );
    eprintln!(
        "node 1's entries gone {:?} after kill -9 (TTL {TTL:?})",
        killed.elapsed()
    );
    assert!(gone <= TTL + Duration::from_secs(1));
    assert!(redis.get("antenna:node:n2").is_some());
    drop(n2);
}

const APP: &str = "WebRTCAppEE";

/// What a `play` came to: `accepted` (the offer arrived) or the error definition.
fn outcome(c: &mut common::Client) -> String {
    loop {
        let v = c.recv();
        match v["command"].as_str() {
            Some("takeConfiguration") => return "accepted".into(),
            Some("error") => return v["definition"].as_str().unwrap_or("?").to_string(),
            _ => {}
        }
    }
}

#[test]
fn shared_data_is_read_on_every_node_and_a_one_time_token_is_spent_once() {
    if !redis_installed() {
        return;
    }
    let port = free_port();
    let mut redis = Redis::start_on(port).expect("redis-server starts");
    let url = redis.url();
    let n: Vec<Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| Server::start_with(&["--cluster", &url, "--node-id", id]))
        .collect();
    let count = format!("/{APP}/rest/v2/broadcasts/count");
    wait_for(
        "every node loaded the shared data",
        Duration::from_secs(10),
        || n.iter().all(|s| s.rest("GET", &count, None).0 == 200),
    );

    // A REST create on node 1 is in Redis when answered, and read on node 3.
    let (st, v) = n[0].rest(
        "POST",
        &format!("/{APP}/rest/v2/broadcasts/create"),
        Some(r#"{"streamId":"b1","name":"made on n1"}"#),
    );
    assert_eq!(st, 200, "{v}");
    assert!(matches!(
        redis.call(&["HGET", "antenna:data:WebRTCAppEE:broadcasts", "b1"]),
        Reply::Bulk(_)
    ));
    let b1 = format!("/{APP}/rest/v2/broadcasts/b1");
    let seen = wait_for("node 3 reads b1", Duration::from_secs(5), || {
        n[2].rest("GET", &b1, None).0 == 200
    });
    assert_eq!(n[2].rest("GET", &b1, None).1["name"], "made on n1");
    eprintln!("REST create on node 1 read on node 3 after {seen:?}");

    // A settings change on node 2 reaches every node without a restart.
    let settings = format!("/rest/v2/applications/settings/{APP}");
    let (st, v) = n[1].rest(
        "PUT",
        &settings,
        Some(r#"{"playTokenControlEnabled": true}"#),
    );
    assert_eq!(st, 200, "{v}");
    wait_for("settings on every node", Duration::from_secs(5), || {
        n.iter()
            .all(|s| s.rest("GET", &settings, None).1["playTokenControlEnabled"] == true)
    });

    // One stream id published on nodes 2 and 3; one single-use token made on node 1.
    let (_pb2, _pws2) = publish_live(&n[1], APP, "s1", json!({}));
    let (_pb3, _pws3) = publish_live(&n[2], APP, "s1", json!({}));
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let (st, t) = n[0].rest(
        "GET",
        &format!("/{APP}/rest/v2/broadcasts/s1/token?expireDate={exp}&type=play"),
        None,
    );
    assert_eq!(st, 200, "{t}");
    let token = t["tokenId"].as_str().expect("tokenId").to_string();
    let list = format!("/{APP}/rest/v2/broadcasts/s1/tokens/list/0/10");
    wait_for("every node knows the token", Duration::from_secs(5), || {
        n.iter().all(|s| {
            s.rest("GET", &list, None)
                .1
                .as_array()
                .is_some_and(|a| a.len() == 1)
        })
    });

    // Nodes 2 and 3 race on it: exactly one accepts.
    let play = json!({"command": "play", "streamId": "s1", "token": token});
    let mut c2 = n[1].ws(&format!("/{APP}/websocket"));
    let mut c3 = n[2].ws(&format!("/{APP}/websocket"));
    c2.send(&play);
    c3.send(&play);
    let (o2, o3) = (outcome(&mut c2), outcome(&mut c3));
    eprintln!("token race: node 2 {o2}, node 3 {o3}");
    assert!(
        (o2 == "accepted") ^ (o3 == "accepted"),
        "exactly one node accepts: {o2} / {o3}"
    );
    assert!(o2 == "unauthorized_access" || o3 == "unauthorized_access");
    // Then it is refused on every node, and gone from every node's memory and from Redis.
    for s in &n[1..] {
        let mut c = s.ws(&format!("/{APP}/websocket"));
        c.send(&play);
        assert_eq!(outcome(&mut c), "unauthorized_access");
    }
    wait_for(
        "the token is gone everywhere",
        Duration::from_secs(5),
        || {
            n.iter().all(|s| {
                s.rest("GET", &list, None)
                    .1
                    .as_array()
                    .is_some_and(|a| a.is_empty())
            })
        },
    );
    assert_eq!(
        redis.call(&["HGET", "antenna:data:WebRTCAppEE:tokens", &token]),
        Reply::Nil
    );

    // Redis away: REST answers 503 and a token spend data_store_not_available.
    let (st, t) = n[0].rest(
        "GET",
        &format!("/{APP}/rest/v2/broadcasts/s1/token?expireDate={exp}&type=play"),
        None,
    );
    assert_eq!(st, 200, "{t}");
    let token2 = t["tokenId"].as_str().expect("tokenId").to_string();
    wait_for("node 2 knows token 2", Duration::from_secs(5), || {
        n[1].rest("GET", &list, None)
            .1
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    redis.stop();
    assert!(n[1].wait_log_for("shared data: Redis not available", Duration::from_secs(10)));
    assert_eq!(n[0].rest("GET", &b1, None).0, 503);
    let mut c = n[1].ws(&format!("/{APP}/websocket"));
    c.send(&json!({"command": "play", "streamId": "s1", "token": token2}));
    assert_eq!(outcome(&mut c), "data_store_not_available");

    // Redis returns empty (no persistence here): the nodes reconnect and refill it.
    let redis = Redis::start_on(port).expect("redis-server restarts");
    let back = wait_for("REST again on node 3", Duration::from_secs(15), || {
        n[2].rest("GET", &b1, None).0 == 200
    });
    eprintln!("shared data back {back:?} after Redis returned");
    wait_for("b1 refilled into Redis", Duration::from_secs(5), || {
        matches!(
            redis.call(&["HGET", "antenna:data:WebRTCAppEE:broadcasts", "b1"]),
            Reply::Bulk(_)
        )
    });
    // Single-use tokens are not refilled (which were spent meanwhile is lost with Redis):
    // token 2 is gone everywhere; a new one works.
    let mut c = n[1].ws(&format!("/{APP}/websocket"));
    c.send(&json!({"command": "play", "streamId": "s1", "token": token2}));
    assert_eq!(outcome(&mut c), "unauthorized_access");
    let (st, t) = n[0].rest(
        "GET",
        &format!("/{APP}/rest/v2/broadcasts/s1/token?expireDate={exp}&type=play"),
        None,
    );
    assert_eq!(st, 200, "{t}");
    let token3 = t["tokenId"].as_str().expect("tokenId").to_string();
    wait_for("node 2 knows token 3", Duration::from_secs(5), || {
        n[1].rest("GET", &list, None)
            .1
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let mut c = n[1].ws(&format!("/{APP}/websocket"));
    c.send(&json!({"command": "play", "streamId": "s1", "token": token3}));
    assert_eq!(outcome(&mut c), "accepted");
}

#[test]
fn without_cluster_no_redis_is_needed_and_a_bad_url_is_refused() {
    let _single = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_antenna"))
        .args(["--cluster", "http://127.0.0.1:6379", "--memory-store"])
        .output()
        .expect("run antenna");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis://"));
}

/// A player of a stream on a node: its WebSocket, its peer connection, what it was sent.
struct Player {
    ws: common::Client,
    peer: common::browser::Browser,
    received: Vec<Value>,
}

impl Player {
    fn play(server: &Server, id: &str) -> Player {
        let mut ws = server.ws(&format!("/{APP}/websocket"));
        ws.send(&json!({"command": "play", "streamId": id}));
        Player {
            ws,
            peer: common::browser::Browser::new(),
            received: Vec::new(),
        }
    }

    /// Drives the peer connection and answers the server's offer; `true` once it got `definition`.
    fn step(&mut self, id: &str) {
        self.peer.poll();
        while let Some(m) = self.ws.poll_message() {
            match m["command"].as_str() {
                Some("takeConfiguration") if m["type"] == "offer" => {
                    let answer = self
                        .peer
                        .accept_offer(m["sdp"].as_str().unwrap_or_default());
                    self.ws
                        .send(&json!({"command": "takeConfiguration", "streamId": id,
                        "type": "answer", "sdp": answer}));
                }
                Some("takeCandidate") => {
                    self.peer
                        .add_candidate(m["candidate"].as_str().unwrap_or_default());
                }
                _ => {}
            }
            self.received.push(m);
        }
    }

    fn got(&self, definition: &str) -> bool {
        self.received.iter().any(|m| m["definition"] == definition)
    }
}

/// Runs the publisher (if any) and the players until `done` or `limit`; true if done.
fn drive(
    publisher: Option<(&mut common::browser::Browser, &mut common::Client)>,
    players: &mut [&mut Player],
    id: &str,
    limit: Duration,
    done: impl Fn(&[&mut Player]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    let mut publisher = publisher;
    while Instant::now() < end {
        if let Some((b, ws)) = publisher.as_mut() {
            b.poll();
            b.send_media();
            while let Some(m) = ws.poll_message() {
                if m["command"] == "takeCandidate" {
                    b.add_candidate(m["candidate"].as_str().unwrap_or_default());
                }
            }
        }
        for p in players.iter_mut() {
            p.step(id);
        }
        if done(players) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// The `/metrics` text (with the admin token).
fn metrics(s: &Server) -> String {
    let token = s.admin_token.clone().expect("admin token");
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        s.http
    );
    let (status, text) = common::http_raw(s.http, request.as_bytes());
    assert_eq!(status, 200, "{text}");
    text
}

fn count_log(server: &Server, needle: &str) -> usize {
    server.log().iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn an_edge_relays_the_origins_stream_to_its_players_until_the_origin_ends_or_dies() {
    if !redis_installed() {
        return;
    }
    let redis = Redis::start_on(free_port()).expect("redis-server starts");
    let url = redis.url();
    let node = |id: &str| {
        Server::start_with(&[
            "--cluster",
            &url,
            "--node-id",
            id,
            "--cluster-secret",
            "relay-test-secret",
        ])
    };
    let mut n1 = node("n1");
    let n2 = node("n2");
    wait_for("both nodes ready", Duration::from_secs(10), || {
        [&n1, &n2]
            .iter()
            .all(|n| common::http_get(n.http, "/readyz").0 == 200)
    });

    // The origin refuses a forged cluster credential (and counts it).
    let mut forged = n1.ws(&format!("/{APP}/websocket"));
    forged.send(&json!({"command": "play", "streamId": "s1",
        "token": format!("antenna-cluster.{}", "0".repeat(64))}));
    assert_eq!(outcome(&mut forged), "unauthorized_access");
    // A stream no node has: the edge answers as a single node does.
    let mut nowhere = n2.ws(&format!("/{APP}/websocket"));
    nowhere.send(&json!({"command": "play", "streamId": "nowhere"}));
    assert_eq!(outcome(&mut nowhere), "no_stream_exist");

    let (mut publisher, mut pub_ws) = publish_live(&n1, APP, "s1", json!({}));
    wait_for("stream registered", Duration::from_secs(5), || {
        redis.get("antenna:stream:WebRTCAppEE/s1").is_some()
    });
    // Two players on node 2: one relay carries the stream to both.
    let started = Instant::now();
    let (mut a, mut b) = (Player::play(&n2, "s1"), Player::play(&n2, "s1"));
    let ok = drive(
        Some((&mut publisher, &mut pub_ws)),
        &mut [&mut a, &mut b],
        "s1",
        Duration::from_secs(30),
        |p| p.iter().all(|p| p.peer.video_frames >= 30),
    );
    assert!(
        ok,
        "edge players got {} and {} frames; edge log:\n{}",
        a.peer.video_frames,
        b.peer.video_frames,
        n2.log().join("\n")
    );
    eprintln!(
        "two edge players: 30 frames each {:?} after their play",
        started.elapsed()
    );
    assert!(a.got("play_started") && b.got("play_started"));
    assert_eq!(
        count_log(&n2, "relay: playing the stream from its origin"),
        1
    );
    assert_eq!(count_log(&n1, "play accepted as an edge's relay"), 1);
    let (origin, edge) = (metrics(&n1), metrics(&n2));
    for line in [
        "antenna_relay_auth_total{result=\"accepted\"} 1",
        "antenna_relay_auth_total{result=\"refused\"} 1",
    ] {
        assert!(origin.contains(line), "{line} in {origin}");
    }
    for line in [
        "antenna_relays 1",
        "antenna_relays_started_total 1",
        "antenna_relay_plays_total{outcome=\"released\"} 2",
        "antenna_relay_plays_total{outcome=\"refused\"} 1",
    ] {
        assert!(edge.contains(line), "{line} in {edge}");
    }

    // The edge's two players are its viewers in Redis; the origin has none (its one play is
    // the relay, no viewer).
    let viewers = || match redis.call(&["HGETALL", "antenna:viewers:WebRTCAppEE/s1"]) {
        Reply::Array(a) => a
            .iter()
            .map(|r| match r {
                Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        other => vec![format!("{other:?}")],
    };
    let polls = std::cell::Cell::new(0u32);
    let counted = Instant::now();
    let ok = drive(
        Some((&mut publisher, &mut pub_ws)),
        &mut [&mut a, &mut b],
        "s1",
        Duration::from_secs(10),
        |_| {
            polls.set(polls.get() + 1);
            polls.get().is_multiple_of(50) && viewers() == ["n2", "2"]
        },
    );
    assert!(ok, "viewers in Redis: {:?}", viewers());
    eprintln!(
        "the edge's viewers in Redis {:?} after the check began",
        counted.elapsed()
    );

    // The publisher stops: the origin ends the relay's play, the edge's players finish.
    pub_ws.send(&json!({"command": "stop", "streamId": "s1"}));
    let stopped = Instant::now();
    let ok = drive(
        None,
        &mut [&mut a, &mut b],
        "s1",
        Duration::from_secs(10),
        |p| p.iter().all(|p| p.got("play_finished")),
    );
    assert!(ok, "edge players not finished: {:?}", a.received);
    eprintln!(
        "edge players finished {:?} after the publisher's stop",
        stopped.elapsed()
    );
    drop((a, b, publisher, pub_ws));

    // kill -9 of the origin ends the edge's plays of its stream within 10 s.
    let (mut publisher, mut pub_ws) = publish_live(&n1, APP, "s2", json!({}));
    wait_for("stream registered", Duration::from_secs(5), || {
        redis.get("antenna:stream:WebRTCAppEE/s2").is_some()
    });
    let mut c = Player::play(&n2, "s2");
    assert!(drive(
        Some((&mut publisher, &mut pub_ws)),
        &mut [&mut c],
        "s2",
        Duration::from_secs(30),
        |p| p[0].peer.video_frames >= 10,
    ));
    let killed = Instant::now();
    n1.signal("KILL");
    n1.wait_exit(Duration::from_secs(5));
    let ok = drive(None, &mut [&mut c], "s2", Duration::from_secs(10), |p| {
        p[0].got("play_finished")
    });
    assert!(ok, "the edge's play did not end: {:?}", c.received);
    eprintln!(
        "edge play finished {:?} after kill -9 of the origin",
        killed.elapsed()
    );
}

#[test]
fn a_conference_spanning_two_nodes_each_room_player_gets_the_other_nodes_member() {
    if !redis_installed() {
        return;
    }
    let redis = Redis::start_on(free_port()).expect("redis-server starts");
    let url = redis.url();
    let node = |id: &str| {
        Server::start_with(&[
            "--cluster",
            &url,
            "--node-id",
            id,
            "--cluster-secret",
            "room-test-secret",
        ])
    };
    let (n1, n2) = (node("n1"), node("n2"));
    wait_for("both nodes ready", Duration::from_secs(10), || {
        [&n1, &n2]
            .iter()
            .all(|n| common::http_get(n.http, "/readyz").0 == 200)
    });
    // A member on each node, published as the SDK's conference page does.
    let (mut pa, mut wa) = publish_live(&n1, APP, "alice", json!({"mainTrack": "room1"}));
    let (mut pb, mut wb) = publish_live(&n2, APP, "bob", json!({"mainTrack": "room1"}));
    wait_for(
        "both members registered",
        Duration::from_secs(5),
        || match redis.call(&["HGETALL", "antenna:room:WebRTCAppEE/room1"]) {
            Reply::Array(a) => a.len() == 4,
            _ => false,
        },
    );
    let room_play = |server: &Server, me: &str| {
        let mut ws = server.ws(&format!("/{APP}/websocket"));
        ws.send(
            &json!({"command": "play", "streamId": "room1", "room": "room1",
            "trackList": [format!("!{me}")], "userPublishId": me}),
        );
        Player {
            ws,
            peer: common::browser::Browser::new(),
            received: Vec::new(),
        }
    };
    let started = Instant::now();
    let (mut ra, mut rb) = (room_play(&n1, "alice"), room_play(&n2, "bob"));
    let end = started + Duration::from_secs(30);
    while Instant::now() < end && (ra.peer.video_frames < 30 || rb.peer.video_frames < 30) {
        for (b, ws) in [(&mut pa, &mut wa), (&mut pb, &mut wb)] {
            b.poll();
            b.send_media();
            while let Some(m) = ws.poll_message() {
                if m["command"] == "takeCandidate" {
                    b.add_candidate(m["candidate"].as_str().unwrap_or_default());
                }
            }
        }
        ra.step("room1");
        rb.step("room1");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        ra.peer.video_frames >= 30 && rb.peer.video_frames >= 30,
        "room players got {} and {} frames; node 1 log:\n{}\nnode 2 log:\n{}",
        ra.peer.video_frames,
        rb.peer.video_frames,
        n1.log().join("\n"),
        n2.log().join("\n")
    );
    eprintln!(
        "room players on two nodes: 30 frames of the other node's member each {:?} after their play",
        started.elapsed()
    );
    for (p, other) in [(&ra, "bob"), (&rb, "alice")] {
        assert!(
            p.received
                .iter()
                .any(|m| m["definition"] == "subtrackAdded" && m["trackId"] == other),
            "told {other} joined: {:?}",
            p.received
        );
    }
    for n in [&n1, &n2] {
        assert_eq!(
            count_log(n, "relay: playing the stream from its origin"),
            1,
            "one relay per node"
        );
    }
    let m = metrics(&n1);
    let line = "antenna_relay_room_members_total{outcome=\"looked_up\"} 1";
    assert!(m.contains(line), "{line} in {m}");
    // Bob leaves: node 1's relay of him ends and alice's room player is told.
    wb.send(&json!({"command": "stop", "streamId": "bob"}));
    let end = Instant::now() + Duration::from_secs(10);
    let left = |p: &Player| {
        p.received
            .iter()
            .any(|m| m["definition"] == "subtrackRemoved" && m["trackId"] == "bob")
    };
    while Instant::now() < end && !left(&ra) {
        ra.step("room1");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(left(&ra), "not told bob left: {:?}", ra.received);
}
