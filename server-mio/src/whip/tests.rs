use super::*;
use crate::http::handle_request;
use proto_core::{ConnId, SignalError};
use std::net::IpAddr;

fn apps() -> Vec<String> {
    vec!["LiveApp".to_string()]
}

fn route_of(req: &str) -> Action {
    handle_request(req.as_bytes(), &apps()).expect("complete").1
}

fn status(a: &Action) -> u16 {
    match a {
        Action::Respond { status, .. } => *status,
        Action::Media(_) => 0,
        other => panic!("{other:?}"),
    }
}

#[test]
fn post_head_with_token_main_track_and_bounds() {
    let a = route_of(
        "POST /LiveApp/whip/cam1?mainTrack=room%201&x=y HTTP/1.1\r\nContent-Type: application/sdp; charset=utf-8\r\n\
         Authorization: Bearer abc.def\r\nContent-Length: 10\r\n\r\n",
    );
    let Action::Media(h) = a else { panic!("{a:?}") };
    assert_eq!(h.method, Method::Post);
    assert_eq!(h.kind, Kind::Whip);
    assert_eq!((h.app.as_str(), h.stream.as_str()), ("LiveApp", "cam1"));
    assert_eq!(h.token.as_deref(), Some("abc.def"));
    assert_eq!(h.main_track.as_deref(), Some("room 1"));
    assert_eq!(h.content_length, 10);
    // ?token= when there is no Authorization; WHEP ignores mainTrack.
    let a = route_of(
        "POST /LiveApp/whep/s?token=t%2B1&mainTrack=r HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\n",
    );
    let Action::Media(h) = a else { panic!("{a:?}") };
    assert_eq!(h.token.as_deref(), Some("t+1"));
    assert_eq!(h.main_track, None);
    // Refusals on the head.
    for (req, want) in [
        ("POST /LiveApp/whip/s HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 415),
        ("POST /LiveApp/whip/s HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n", 415),
        ("POST /LiveApp/whip/s HTTP/1.1\r\nContent-Type: application/sdp\r\n\r\n", 400),
        ("POST /LiveApp/whip/s HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: x\r\n\r\n", 400),
        ("POST /LiveApp/whip/s HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: 40000\r\n\r\n", 413),
        ("POST /LiveApp/whip/s HTTP/1.1\r\nContent-Type: application/sdp\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        ("POST /LiveApp/whip/s/r HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\n", 405),
        ("GET /LiveApp/whip/s HTTP/1.1\r\n\r\n", 405),
        ("DELETE /LiveApp/whip/s HTTP/1.1\r\n\r\n", 405),
        ("POST /LiveApp/whip/ HTTP/1.1\r\n\r\n", 404),
        ("POST /LiveApp/whip/a/b/c HTTP/1.1\r\n\r\n", 404),
        ("POST /LiveApp/whip/a$b HTTP/1.1\r\n\r\n", 400),
        ("PATCH /LiveApp/whip/s/r HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\n", 415),
        ("POST /Other/whip/s HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\n", 404),
    ] {
        assert_eq!(status(&route_of(req)), want, "{req}");
    }
    let Action::Media(h) = route_of("DELETE /LiveApp/whep/s/r1 HTTP/1.1\r\n\r\n") else {
        panic!()
    };
    assert_eq!(
        (h.method, h.resource.as_deref()),
        (Method::Delete, Some("r1"))
    );
}

#[test]
fn options_is_a_cors_preflight() {
    let Action::Respond { status, response } =
        route_of("OPTIONS /LiveApp/whip/s HTTP/1.1\r\nOrigin: http://x\r\n\r\n")
    else {
        panic!()
    };
    assert_eq!(status, 204);
    let text = String::from_utf8(response).unwrap();
    assert!(
        text.contains("Access-Control-Allow-Origin: *\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Access-Control-Allow-Methods: POST, OPTIONS\r\n"),
        "{text}"
    );
    assert!(text.contains("Accept-Post: application/sdp\r\n"), "{text}");
    let Action::Respond { response, .. } = route_of("OPTIONS /LiveApp/whep/s/r HTTP/1.1\r\n\r\n")
    else {
        panic!()
    };
    let text = String::from_utf8(response).unwrap();
    assert!(text.contains("PATCH, DELETE, OPTIONS"), "{text}");
}

#[test]
fn offers_and_patches_are_bounded() {
    assert!(check_offer(b"\xff\xfe").is_err());
    assert!(check_offer(b"hello").is_err());
    assert!(check_offer(b"v=0\r\n").is_err(), "no m-line");
    let ok = "v=0\r\na=ice-ufrag:abcd\r\nm=audio 9 X 0\r\nm=video 9 X 96\r\n";
    assert_eq!(
        check_offer(ok.as_bytes()).unwrap().1.as_deref(),
        Some("abcd")
    );
    let many = format!("v=0\r\n{}", "m=audio 9 X 0\r\n".repeat(MAX_M_LINES + 1));
    assert!(check_offer(many.as_bytes()).is_err());
    let cands = format!(
        "v=0\r\nm=audio 9 X 0\r\n{}",
        "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\n".repeat(MAX_CANDIDATES + 1)
    );
    assert!(check_offer(cands.as_bytes()).is_err());
    // Patches (classified in `node`'s own tests).
    let c = "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\na=end-of-candidates\r\n";
    assert_eq!(
        check_patch(c.as_bytes(), Some("abcd")).unwrap(),
        Patch::Trickle(vec!["candidate:1 1 udp 1 1.2.3.4 5 typ host"])
    );
    let same = format!("a=ice-ufrag:abcd\r\n{c}");
    assert!(matches!(
        check_patch(same.as_bytes(), Some("abcd")).unwrap(),
        Patch::Trickle(v) if v.len() == 1
    ));
    let restart = format!("a=ice-ufrag:new1\r\n{c}");
    assert_eq!(
        check_patch(restart.as_bytes(), Some("abcd")).unwrap_err().0,
        400,
        "a restart without a=ice-pwd"
    );
    let flood = "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\n".repeat(MAX_CANDIDATES + 1);
    assert_eq!(check_patch(flood.as_bytes(), None).unwrap_err().0, 400);
}

#[test]
fn refusals_map_to_statuses() {
    assert_eq!(status_for(SignalError::UnauthorizedAccess, false), 401);
    assert_eq!(status_for(SignalError::UnauthorizedAccess, true), 403);
    assert_eq!(status_for(SignalError::NoStreamExist, true), 404);
    assert_eq!(status_for(SignalError::StreamIdInUse, false), 409);
    assert_eq!(status_for(SignalError::NotSetRemoteDescription, false), 400);
    assert_eq!(status_for(SignalError::HighResourceUsage, false), 503);
    assert_eq!(status_for(SignalError::ViewerLimitReached, false), 403);
}

#[test]
fn resource_table_counts_per_address_and_forgets() {
    let mut t = Resources::new([7; 32]);
    t.max_per_ip = 2;
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let other: IpAddr = "10.0.0.2".parse().unwrap();
    let mk = |t: &mut Resources, ip| Resource {
        conn: t.alloc_conn(),
        kind: Kind::Whip,
        app: "A".into(),
        stream: "s".into(),
        ip,
        etag: String::new(),
        ufrag: None,
        restarts: Vec::new(),
    };
    let r1 = mk(&mut t, ip);
    let c1 = r1.conn;
    assert!(Resources::is_resource_conn(c1));
    let id1 = t.insert(r1);
    let r2 = mk(&mut t, ip);
    let id2 = t.insert(r2);
    assert_ne!(id1, id2);
    assert_eq!(id1.len(), 32);
    assert_eq!(t.admit(ip).unwrap_err().0, 429);
    assert!(t.admit(other).is_ok());
    assert!(t.get(Kind::Whip, "A", "s", &id1).is_some());
    assert!(
        t.get(Kind::Whep, "A", "s", &id1).is_none(),
        "kind is part of the URL"
    );
    assert!(t.get(Kind::Whip, "A", "t", &id1).is_none());
    t.check_invariants();
    assert_eq!(t.remove_conn(c1).map(|r| r.ip), Some(ip));
    assert!(t.remove_conn(c1).is_none());
    assert!(t.admit(ip).is_ok());
    t.check_invariants();
    assert_eq!((t.created, t.ended, t.len()), (2, 1, 1));
    assert_eq!(t.live_by_kind(), (1, 0));
    let mut play = mk(&mut t, other);
    play.kind = Kind::Whep;
    t.insert(play);
    assert_eq!(t.live_by_kind(), (1, 1));
}

proptest::proptest! {
    /// Any sequence of creations and removals keeps both indexes and the per-address counts in
    /// step, never admits more than the bound per address, and removing everything leaves an
    /// empty table.
    #[test]
    fn resource_table_stays_consistent(ops in proptest::collection::vec((proptest::bool::ANY, 0u8..4, 0usize..64), 0..200)) {
        let mut t = Resources::new([1; 32]);
        t.max_per_ip = 3;
        let mut live: Vec<ConnId> = Vec::new();
        for (create, ip, pick) in ops {
            let ip = IpAddr::from([10, 0, 0, ip]);
            if create {
                if t.admit(ip).is_ok() {
                    let conn = t.alloc_conn();
                    t.insert(Resource {
                        conn, kind: Kind::Whep, app: "A".into(), stream: "s".into(), ip,
                        etag: String::new(), ufrag: None, restarts: Vec::new(),
                    });
                    live.push(conn);
                }
                proptest::prop_assert!(t.count_for(ip) <= 3);
            } else if !live.is_empty() {
                let conn = live.swap_remove(pick % live.len());
                proptest::prop_assert!(t.remove_conn(conn).is_some());
                proptest::prop_assert!(t.by_conn(conn).is_none());
            }
            t.check_invariants();
            proptest::prop_assert_eq!(t.len(), live.len());
        }
        for conn in live {
            t.remove_conn(conn);
        }
        proptest::prop_assert!(t.is_empty());
        t.check_invariants();
    }
}
