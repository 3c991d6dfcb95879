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
