use std::time::{Duration, Instant};

use antenna_store::{shared, FailedStore, MemStore, Refused, WriteSeq};

use super::*;

const TOKEN: &str = "admin-token-0123456789";
const NOW: u64 = 1_767_225_600_000;

#[allow(clippy::disallowed_methods)] // a start instant for the anchor; only differences count
fn admin_over(store: SharedStore) -> (Admin, Instant) {
    let at = Instant::now();
    let admin = Admin::new(AdminConfig {
        store,
        access: AdminAccess {
            admin_token: Some(TOKEN.into()),
            ..AdminAccess::default()
        },
        rest_seed: [3; 32],
        wall: WallAnchor { at, unix_ms: NOW },
        primary_app: Some("A".into()),
    });
    (admin, at)
}

fn head(method: &str, path: &str, auth: Option<&str>) -> RestHead {
    RestHead {
        method: method.into(),
        path: path.into(),
        app: "A".into(),
        host: Some("127.0.0.1:5080".into()),
        authorization: auth.map(|t| format!("Bearer {t}")),
        content_type: Some("application/json".into()),
        ..RestHead::default()
    }
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

fn status_line(resp: &[u8]) -> String {
    String::from_utf8_lossy(resp)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_gate_refuses_without_a_credential_and_counts_it() {
    let (mut admin, at) = admin_over(shared(MemStore::new()));
    let h = head("GET", "/A/rest/v2/broadcasts/count", None);
    let refused = admin
        .check_head(at, peer(), &h, HeadKind::Rest)
        .unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(String::from_utf8_lossy(&refused.response).contains("WWW-Authenticate: Bearer"));
    assert_eq!(admin.counters().get(Refused::Credential), 1);
    let h = head("GET", "/A/rest/v2/broadcasts/count", Some(TOKEN));
    assert_eq!(admin.check_head(at, peer(), &h, HeadKind::Rest), Ok(()));
    assert_eq!(admin.counters().total(), 1);
}

#[test]
fn a_write_is_held_and_its_time_is_the_anchor_plus_now() {
    let store = shared(MemStore::new());
    let (mut admin, at) = admin_over(store.clone());
    let h = head("POST", "/A/rest/v2/broadcasts/create", Some(TOKEN));
    let later = at + Duration::from_secs(5);
    let (reply, followed) = admin.serve(later, peer(), &h, br#"{"streamId":"s1"}"#);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.response)
    );
    assert_eq!(status_line(&reply.response), "HTTP/1.1 200 OK");
    assert!(reply.durable_after.is_some());
    assert_eq!(followed, None);
    let b = store.borrow().data().broadcast("A", "s1").cloned().unwrap();
    assert_eq!(b.date, i64::try_from(NOW + 5_000).unwrap());
}

#[test]
fn a_settings_change_of_the_first_app_is_followed_and_of_another_is_not() {
    let (mut admin, at) = admin_over(shared(MemStore::new()));
    let body = br#"{"stunServerURI":"stun:example.org:3478"}"#;
    for (app, followed) in [("A", true), ("B", false)] {
        let path = format!("/rest/v2/applications/settings/{app}");
        let mut h = head("PUT", &path, Some(TOKEN));
        h.app = app.into();
        let (reply, got) = admin.serve(at, peer(), &h, body);
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.response)
        );
        assert_eq!(
            got.map(|s| s.stun_server_uri),
            followed.then(|| "stun:example.org:3478".to_string())
        );
    }
}

#[test]
fn held_answers_of_a_failed_store_become_one_503() {
    let (admin, _) = admin_over(shared(MemStore::new()));
    let ok = admin.held_release();
    assert_eq!(ok.failed, None);
    assert_eq!(ok.durable, admin.durable_seq());
    let (admin, at) = admin_over(shared(FailedStore::new("disk gone".into())));
    let failed = admin.held_release();
    assert_eq!(failed.durable, WriteSeq(u64::MAX));
    let resp = String::from_utf8(failed.failed.unwrap()).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{resp}"
    );
    assert!(resp.ends_with(
        r#"{"dataId":null,"errorId":0,"message":"data_store_not_available: data store not available: disk gone","success":false}"#
    ), "{resp}");
    // And the gate answers the same 503 to a new request.
    let mut admin = admin;
    let h = head("GET", "/A/rest/v2/broadcasts/count", Some(TOKEN));
    let refused = admin
        .check_head(at, peer(), &h, HeadKind::Rest)
        .unwrap_err();
    assert_eq!(refused.status, 503);
}

#[test]
fn hook_target_is_the_broadcast_url_else_the_applications() {
    let (mut admin, at) = admin_over(shared(MemStore::new()));
    assert_eq!(
        admin.hook_target("A", "s1"),
        None,
        "no URL anywhere: no call"
    );
    let put = |admin: &mut Admin, path: &str, body: &str| {
        let (reply, _) = admin.serve(at, peer(), &head("PUT", path, Some(TOKEN)), body.as_bytes());
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.response)
        );
    };
    put(
        &mut admin,
        "/rest/v2/applications/settings/A",
        r#"{"listenerHookURL":"http://app/hook","webhookRetryCount":2}"#,
    );
    let app_only = admin.hook_target("A", "s1").expect("the application's URL");
    assert_eq!(app_only.url, "http://app/hook");
    assert_eq!(app_only.settings.get("webhookRetryCount"), Some(&2.into()));
    assert_eq!(app_only.name, None);
    let (created, _) = admin.serve(
        at,
        peer(),
        &head("POST", "/A/rest/v2/broadcasts/create", Some(TOKEN)),
        br#"{"streamId":"s1","name":"n1","category":"c1","metaData":"m1","listenerHookURL":"http://own/hook"}"#,
    );
    assert_eq!(created.status, 200);
    let own = admin.hook_target("A", "s1").expect("the broadcast's URL");
    assert_eq!(own.url, "http://own/hook", "the broadcast's URL wins");
    assert_eq!(own.name.as_deref(), Some("n1"));
    assert_eq!(own.category.as_deref(), Some("c1"));
    assert_eq!(own.metadata.as_deref(), Some("m1"));
    assert_eq!(
        admin.hook_target("A", "s2").map(|t| t.url).as_deref(),
        Some("http://app/hook"),
        "another stream still gets the application's"
    );
    assert_eq!(
        admin.hook_target("B", "s1"),
        None,
        "another application has none"
    );
}

#[test]
fn store_health_follows_the_store() {
    let (admin, _) = admin_over(shared(MemStore::new()));
    assert!(admin.store_health().is_ok());
    let (failed, _) = admin_over(shared(FailedStore::new("disk gone".into())));
    assert!(failed.store_health().is_err());
}
