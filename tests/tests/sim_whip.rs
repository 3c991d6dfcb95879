//! WHIP/WHEP resources in the simulated server: whatever ends a resource's session ends the
//! resource, and nothing of it is left in the cores (signalling, media sessions, resource
//! table) afterwards.

use std::net::IpAddr;
use std::time::Duration;

use antenna_tests::media::MediaSim;
use antenna_tests::Sim;
use node::whip::{Kind, MediaHead, Method};
use rtc_core::testing::Client;
use serde_json::json;
use str0m::media::MediaKind;

const APP: &str = "WebRTCAppEE";

fn head(method: Method, kind: Kind, stream: &str, resource: Option<&str>) -> MediaHead {
    MediaHead {
        method,
        kind,
        app: APP.into(),
        stream: stream.into(),
        resource: resource.map(str::to_string),
        token: None,
        main_track: None,
        if_match: None,
        content_length: 0,
    }
}

fn ip() -> IpAddr {
    IpAddr::from([10, 9, 0, 1])
}

/// The resource id from a `201`'s `Location`.
fn resource_id(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    let loc = text
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .expect("Location");
    loc.rsplit('/').next().expect("id").to_string()
}

fn assert_nothing_left(sim: &Sim) {
    assert!(sim.node.resources.is_empty(), "resources left");
    sim.node.resources.check_invariants();
    assert!(sim.node.sig.is_idle(), "signalling state left");
    assert_eq!(sim.node.sfu.session_count(), 0, "media sessions left");
}

#[test]
fn an_abandoned_whip_resource_ends_with_the_publish_timeout() {
    let mut sim = Sim::new(7);
    let mut client = Client::new(sim.now(), "10.9.0.1:4000".parse().expect("addr"));
    let offer = client.publish_offer(true, true);
    let reply = sim.http_media(
        ip(),
        &head(Method::Post, Kind::Whip, "idle", None),
        offer.as_bytes(),
    );
    assert_eq!(reply.status, 201);
    assert_eq!(sim.node.resources.len(), 1);
    assert_eq!(sim.node.sig.publisher_count(), 1);
    // No ICE ever: the publish start timeout (10 s) ends it, and the resource with it.
    sim.advance(Duration::from_secs(9));
    assert_eq!(sim.node.resources.len(), 1, "still waiting at 9 s");
    sim.advance(Duration::from_secs(2));
    assert_nothing_left(&sim);
    let id = resource_id(&reply.response);
    let reply = sim.http_media(
        ip(),
        &head(Method::Delete, Kind::Whip, "idle", Some(&id)),
        b"",
    );
    assert_eq!(reply.status, 404, "an ended resource is gone");
}

#[test]
fn delete_leaves_nothing_and_a_refused_post_creates_nothing() {
    let mut sim = Sim::new(8);
    let mut client = Client::new(sim.now(), "10.9.0.1:4000".parse().expect("addr"));
    let offer = client.publish_offer(true, true);
    let reply = sim.http_media(
        ip(),
        &head(Method::Post, Kind::Whip, "d1", None),
        offer.as_bytes(),
    );
    assert_eq!(reply.status, 201);
    // Refused: same id (409), malformed offer (400, after signalling accepted the publish:
    // the media layer refuses the SDP), unknown WHEP stream (404).
    let mut other = Client::new(sim.now(), "10.9.0.2:4000".parse().expect("addr"));
    let o2 = other.publish_offer(true, false);
    let r = sim.http_media(
        ip(),
        &head(Method::Post, Kind::Whip, "d1", None),
        o2.as_bytes(),
    );
    assert_eq!(r.status, 409);
    let r = sim.http_media(
        ip(),
        &head(Method::Post, Kind::Whip, "d2", None),
        b"v=0\r\nm=x\r\n",
    );
    assert_eq!(r.status, 400);
    let r = sim.http_media(
        ip(),
        &head(Method::Post, Kind::Whep, "zz", None),
        o2.as_bytes(),
    );
    assert_eq!(r.status, 404);
    assert_eq!(sim.node.resources.len(), 1);
    assert_eq!(
        sim.node.sig.connection_count(),
        1,
        "refused requests leave no connection"
    );
    assert_eq!(sim.node.sfu.session_count(), 1);
    let id = resource_id(&reply.response);
    // The wrong kind or stream in the URL does not reach it.
    let r = sim.http_media(
        ip(),
        &head(Method::Delete, Kind::Whep, "d1", Some(&id)),
        b"",
    );
    assert_eq!(r.status, 404);
    let r = sim.http_media(
        ip(),
        &head(Method::Delete, Kind::Whip, "d1", Some(&id)),
        b"",
    );
    assert_eq!(r.status, 200);
    assert_nothing_left(&sim);
}

#[test]
fn a_whep_resource_ends_with_its_publisher_and_an_unconnected_one_times_out() {
    let mut m = MediaSim::new(9);
    let p = m.publisher("live");
    m.run(Duration::from_secs(2));
    // Two WHEP players that never do ICE.
    for n in 0..2 {
        let mut c = Client::new(
            m.sim.now(),
            format!("10.9.1.{n}:4000").parse().expect("addr"),
        );
        let offer = c.whep_offer(true, true);
        let r = m.sim.http_media(
            ip(),
            &head(Method::Post, Kind::Whep, "live", None),
            offer.as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.response));
    }
    assert_eq!(m.sim.node.resources.len(), 2);
    // The media layer's connect timeout (30 s) ends them; the publisher stays.
    m.run(Duration::from_secs(31));
    assert!(
        m.sim.node.resources.is_empty(),
        "unconnected WHEP resources ended"
    );
    assert_eq!(m.sim.node.sig.publisher_count(), 1);
    // A new one, then the publisher stops: the WHEP resource ends with it.
    let mut c = Client::new(m.sim.now(), "10.9.2.1:4000".parse().expect("addr"));
    let offer = c.whep_offer(true, true);
    let r = m.sim.http_media(
        ip(),
        &head(Method::Post, Kind::Whep, "live", None),
        offer.as_bytes(),
    );
    assert_eq!(r.status, 201);
    m.send(p, json!({"command":"stop","streamId":"live"}));
    m.run(Duration::from_millis(100));
    assert!(
        m.sim.node.resources.is_empty(),
        "the WHEP resource ended with its publisher"
    );
    m.close(p);
    m.run(Duration::from_millis(100));
    assert_nothing_left(&m.sim);
}

/// The body of an HTTP response.
fn body(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A header of an HTTP response.
fn header(response: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(response);
    let head = text.split_once("\r\n\r\n").map_or(&*text, |(h, _)| h);
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::to_string)
}

fn patch(stream: &str, kind: Kind, id: &str, if_match: Option<&str>) -> MediaHead {
    MediaHead {
        if_match: if_match.map(str::to_string),
        ..head(Method::Patch, kind, stream, Some(id))
    }
}

/// A WHIP publisher moves to a new address and restarts ICE with a `PATCH`; an SDK player
/// keeps playing. Returns what must replay from the seed: the masked transcript and the
/// statuses and bodies of the `PATCH` answers.
fn whip_publisher_restarts(seed: u64) -> (String, Vec<(u16, String)>) {
    let mut m = MediaSim::new(seed);
    let old_addr = "10.9.5.1:4000".parse().expect("addr");
    let new_addr = "10.9.6.1:4100".parse().expect("addr");
    let mut client = Client::new(m.sim.now(), old_addr);
    let offer = client.publish_offer(true, true);
    let created = m.sim.http_media(
        ip(),
        &head(Method::Post, Kind::Whip, "moving", None),
        offer.as_bytes(),
    );
    assert_eq!(created.status, 201);
    client
        .accept_answer(&body(&created.response))
        .expect("client accepts the answer");
    let id = resource_id(&created.response);
    let etag0 = header(&created.response, "ETag").expect("ETag on the 201");
    let publisher = m.http_browser(client, antenna_tests::media::Role::Publisher, "moving");
    m.run(Duration::from_secs(1));
    assert!(
        m.browsers[publisher].client.is_connected(),
        "the WHIP publisher connected"
    );
    let player = m.player("moving");
    m.run(Duration::from_secs(3));
    let video = |m: &MediaSim| m.browsers[player].client.media_count(MediaKind::Video);
    let before = video(&m);
    assert!(before > 30, "the player receives before the move: {before}");
    let session = m.sim.node.sfu.routed_session(old_addr).expect("routed");

    // The publisher moves: its old path is gone, nothing reaches the player.
    let now = m.sim.now();
    let frag = m.browsers[publisher].client.start_ice_restart(new_addr);
    m.run(Duration::from_secs(1));
    let stalled = video(&m);
    assert!(stalled - before < 5, "no media while the path is gone");
    let mut answers = Vec::new();
    // A restart without If-Match is 428, with a stale tag 412; neither touches the session.
    for (tag, status) in [(None, 428), (Some("\"stale\""), 412)] {
        let r = m.sim.http_media(
            ip(),
            &patch("moving", Kind::Whip, &id, tag),
            frag.as_bytes(),
        );
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.response));
        answers.push((r.status, body(&r.response)));
    }
    let r = m.sim.http_media(
        ip(),
        &patch("moving", Kind::Whip, &id, Some("*")),
        frag.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.response));
    assert_eq!(
        header(&r.response, "Content-Type").as_deref(),
        Some("application/trickle-ice-sdpfrag")
    );
    let etag1 = header(&r.response, "ETag").expect("a new ETag");
    assert_ne!(etag0, etag1, "the restart changes the entity tag");
    let server_frag = body(&r.response);
    assert!(server_frag.contains("a=ice-ufrag:") && server_frag.contains("a=ice-pwd:"));
    assert!(server_frag.contains("a=candidate:"), "{server_frag}");
    answers.push((r.status, server_frag.clone()));
    m.browsers[publisher]
        .client
        .finish_ice_restart(m.sim.now(), &server_frag)
        .expect("client takes the server's fragment");

    // Media flows again, from the new address, in the same session (no new DTLS handshake).
    m.run(Duration::from_secs(3));
    let after = video(&m);
    assert!(after - stalled > 30, "media resumed: {stalled} -> {after}");
    assert_eq!(m.sim.node.sfu.routed_session(new_addr), Some(session));
    let connects = m.browsers[publisher]
        .client
        .events
        .iter()
        .filter(|(_, e)| matches!(e, str0m::Event::Connected))
        .count();
    assert_eq!(connects, 1, "DTLS stayed up: connected once");
    assert_eq!(m.sim.node.sig.publisher_count(), 1);
    assert!(m.sim.now() > now);

    // The old tag is stale now; a trickle with the new one is 204.
    let trickle = format!("a={}\r\n", m.browsers[publisher].client.candidate_line());
    let r = m.sim.http_media(
        ip(),
        &patch("moving", Kind::Whip, &id, Some(&etag0)),
        trickle.as_bytes(),
    );
    assert_eq!(r.status, 412);
    answers.push((r.status, body(&r.response)));
    let r = m.sim.http_media(
        ip(),
        &patch("moving", Kind::Whip, &id, Some(&etag1)),
        trickle.as_bytes(),
    );
    assert_eq!(r.status, 204);
    answers.push((r.status, body(&r.response)));
    assert_eq!(m.sim.node.resources.restarts, 1);
    let r = m.sim.http_media(
        ip(),
        &head(Method::Delete, Kind::Whip, "moving", Some(&id)),
        b"",
    );
    assert_eq!(r.status, 200);
    m.run(Duration::from_millis(200));
    (m.sim.masked_transcript(), answers)
}

#[test]
fn a_whip_publisher_that_moves_restarts_ice_by_patch_and_media_resumes() {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(21);
    let first = whip_publisher_restarts(seed);
    let again = whip_publisher_restarts(seed);
    assert_eq!(
        first, again,
        "same seed, same transcript and same PATCH answers"
    );
    println!(
        "sim_whip restart: seed {seed}, {} transcript lines, PATCH answers {:?}",
        first.0.lines().count(),
        first.1.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );
}

#[test]
fn a_whep_player_that_moves_restarts_ice_by_patch_and_keeps_playing() {
    let mut m = MediaSim::new(22);
    let _p = m.publisher("live");
    m.run(Duration::from_secs(1));
    let old_addr = "10.9.7.1:4000".parse().expect("addr");
    let new_addr = "10.9.8.1:4000".parse().expect("addr");
    let mut client = Client::new(m.sim.now(), old_addr);
    let offer = client.whep_offer(true, true);
    let created = m.sim.http_media(
        ip(),
        &head(Method::Post, Kind::Whep, "live", None),
        offer.as_bytes(),
    );
    assert_eq!(created.status, 201);
    client
        .accept_answer(&body(&created.response))
        .expect("answer");
    let id = resource_id(&created.response);
    let etag0 = header(&created.response, "ETag").expect("ETag");
    let w = m.http_browser(client, antenna_tests::media::Role::Player, "live");
    m.run(Duration::from_secs(3));
    let video = |m: &MediaSim| m.browsers[w].client.media_count(MediaKind::Video);
    let before = video(&m);
    assert!(before > 30, "the WHEP player receives: {before}");
    let frag = m.browsers[w].client.start_ice_restart(new_addr);
    m.run(Duration::from_secs(1));
    let stalled = video(&m);
    // The resource's own ETag is as good as `*`.
    let r = m.sim.http_media(
        ip(),
        &patch("live", Kind::Whep, &id, Some(&etag0)),
        frag.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.response));
    m.browsers[w]
        .client
        .finish_ice_restart(m.sim.now(), &body(&r.response))
        .expect("fragment");
    m.run(Duration::from_secs(3));
    let after = video(&m);
    assert!(after - stalled > 30, "media resumed: {stalled} -> {after}");
    assert_eq!(m.sim.node.resources.len(), 1);
    // A restart that never completes: the client vanishes; the session ends within the
    // connect timeout and the resource with it.
    let frag = m.browsers[w]
        .client
        .start_ice_restart("10.9.9.1:4000".parse().expect("addr"));
    let r = m.sim.http_media(
        ip(),
        &patch("live", Kind::Whep, &id, Some("*")),
        frag.as_bytes(),
    );
    assert_eq!(r.status, 200);
    m.browsers[w].gone = true;
    m.browsers[w].client.rtc.disconnect();
    m.run(Duration::from_secs(31));
    assert!(
        m.sim.node.resources.is_empty(),
        "the unfinished restart ended the resource"
    );
    assert_eq!(m.sim.node.sig.publisher_count(), 1, "the publisher stays");
}

#[test]
fn whep_of_a_main_track_is_refused_with_422_and_its_subtrack_plays() {
    let mut m = MediaSim::new(23);
    let _s = m.subtrack_publisher("sub1", "room1");
    m.run(Duration::from_secs(1));
    let post = |m: &mut MediaSim, stream: &str, n: u8| {
        let mut c = Client::new(
            m.sim.now(),
            format!("10.9.10.{n}:4000").parse().expect("addr"),
        );
        let offer = c.whep_offer(true, true);
        m.sim.http_media(
            ip(),
            &head(Method::Post, Kind::Whep, stream, None),
            offer.as_bytes(),
        )
    };
    // The room: AMS has no WHEP endpoint to follow, and WHEP cannot renegotiate as subtracks
    // come and go: a clear 422, nothing created.
    let r = post(&mut m, "room1", 1);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.response));
    assert!(body(&r.response).contains("main track"));
    assert!(m.sim.node.resources.is_empty());
    assert_eq!(
        m.sim.node.sfu.session_count(),
        1,
        "only the subtrack's publisher"
    );
    // A room with no live subtrack is no stream at all: 404.
    assert_eq!(post(&mut m, "room2", 2).status, 404);
    // The subtrack itself is a stream like any other.
    assert_eq!(post(&mut m, "sub1", 3).status, 201);
    assert_eq!(m.sim.node.resources.len(), 1);
    assert_eq!(
        m.sim.node.resources.refused.get(&422).copied(),
        Some(1),
        "counted by status"
    );
}
