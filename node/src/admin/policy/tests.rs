use std::time::Duration;

use antenna_store::{
    shared, AppSettings, Data, FailedStore, MemStore, Store, StoreError, WriteOp, WriteSeq,
};

use super::*;

#[test]
#[allow(clippy::disallowed_methods)] // a start for the anchored wall clock
fn live_status_and_viewers_of_stored_broadcasts() {
    let store = shared(MemStore::new());
    store
        .borrow_mut()
        .write(WriteOp::PutBroadcast {
            app: "A".into(),
            broadcast: Box::new(antenna_store::Broadcast {
                stream_id: "s".into(),
                ..antenna_store::Broadcast::default()
            }),
        })
        .unwrap();
    let start = Instant::now();
    let mut p = Policy::with_anchor(store.clone(), start, 40);
    p.on_publish_started(start + Duration::from_millis(2), "A", "s");
    p.on_viewer_count("A", "s", 2);
    p.on_publish_started(start, "A", "unknown");
    let b = store.borrow().data().broadcast("A", "s").cloned().unwrap();
    assert_eq!(
        (b.status.as_str(), b.update_time, b.webrtc_viewer_count),
        ("broadcasting", 42, 2)
    );
    p.on_publish_finished(start, "A", "s");
    assert_eq!(
        store.borrow().data().broadcast("A", "s").unwrap().status,
        "finished"
    );
}

/// A loaded store whose commits fail: it refuses what must be durable, like `WriteBehind`.
#[derive(Debug, Default)]
struct DegradedStore(MemStore);

impl Store for DegradedStore {
    fn data(&self) -> &Data {
        self.0.data()
    }
    fn write(&mut self, op: WriteOp) -> Result<WriteSeq, StoreError> {
        if op.needs_durability() {
            return Err(StoreError::Degraded("disk full".into()));
        }
        self.0.write(op)
    }
    fn durable_seq(&self) -> WriteSeq {
        WriteSeq(0)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        Err(StoreError::Degraded("disk full".into()))
    }
    fn health(&self) -> Result<(), StoreError> {
        Err(StoreError::Degraded("disk full".into()))
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // the policy ignores the Instant; any will do
fn a_degraded_store_refuses_only_token_spending() {
    let mut inner = DegradedStore::default();
    inner
        .0
        .write(WriteOp::PutSettings {
            app: "T".into(),
            settings: Box::new(AppSettings {
                publish_token_control_enabled: true,
                ..AppSettings::default()
            }),
        })
        .unwrap();
    inner
        .0
        .write(WriteOp::PutToken {
            app: "T".into(),
            token: antenna_store::Token {
                token_id: "tok".into(),
                stream_id: "s".into(),
                expire_date: i64::MAX,
                token_type: antenna_store::TokenType::Publish,
                room_id: None,
            },
        })
        .unwrap();
    let store = shared(inner);
    let mut p = Policy::new(store.clone(), || 0);
    let req = |app, token| PublishRequest {
        app,
        stream_id: "s",
        token,
        subscriber_id: None,
        subscriber_code: None,
        main_track: None,
        room_member: false,
    };
    // No token needed: media goes on.
    let now = Instant::now();
    let free = p.check_publish(now, &req("A", None)).expect("allowed");
    assert_eq!(p.commit(now, free), Ok(()));
    // A one-time token must be spent durably: its commit is refused, and the token is kept.
    let grant = p
        .check_publish(now, &req("T", Some("tok")))
        .expect("valid token");
    assert_eq!(
        p.commit(now, grant),
        Err(SignalError::DataStoreNotAvailable)
    );
    assert!(store.borrow().data().token("T", "tok").is_some());
}

#[test]
#[allow(clippy::disallowed_methods)] // the policy ignores the Instant; any will do
fn failed_store_refuses_everything() {
    let store = shared(FailedStore::new("broken".into()));
    let mut p = Policy::new(store, || 0);
    let req = PublishRequest {
        app: "A",
        stream_id: "s",
        token: None,
        subscriber_id: None,
        subscriber_code: None,
        main_track: None,
        room_member: false,
    };
    assert_eq!(
        p.check_publish(Instant::now(), &req),
        Err(SignalError::DataStoreNotAvailable)
    );
}

#[test]
#[allow(clippy::disallowed_methods)] // the policy ignores the Instant; any will do
fn a_relay_with_the_cluster_credential_bypasses_play_tokens_and_viewer_limits() {
    let mut inner = MemStore::new();
    inner
        .write(WriteOp::PutSettings {
            app: "A".into(),
            settings: Box::new(AppSettings {
                play_token_control_enabled: true,
                webrtc_viewer_limit: 1,
                ..AppSettings::default()
            }),
        })
        .unwrap();
    let store = shared(inner);
    let good = antenna_cluster::cluster_token("secret", "A", "s");
    fn req(token: Option<&str>, viewers: usize) -> PlayRequest<'_> {
        PlayRequest {
            app: "A",
            stream_id: "s",
            token,
            subscriber_id: None,
            subscriber_code: None,
            room: None,
            room_member: false,
            viewers,
        }
    }
    let now = Instant::now();
    // Without a secret here, even a well-formed credential is refused.
    let mut p = Policy::new(store.clone(), || 0);
    assert_eq!(
        p.check_play(now, &req(Some(&good), 0)),
        Err(SignalError::UnauthorizedAccess)
    );
    let auth = RelayAuth::new("secret");
    let mut p = Policy::new(store.clone(), || 0).with_relay_auth(auth.clone());
    // A player needs a play token; the relay does not, and the viewer limit is not its.
    assert!(p.check_play(now, &req(None, 0)).is_err());
    let grant = p
        .check_play(now, &req(Some(&good), 5))
        .expect("relay accepted");
    // It spends nothing and is marked: signalling counts it as no viewer.
    assert_eq!(
        grant,
        Grant {
            relay: true,
            ..Grant::free("A")
        }
    );
    // Another stream's credential, or another secret's, is refused.
    let other = antenna_cluster::cluster_token("secret", "A", "t");
    let forged = antenna_cluster::cluster_token("guess", "A", "s");
    for bad in [other.as_str(), forged.as_str(), "antenna-cluster.00"] {
        assert_eq!(
            p.check_play(now, &req(Some(bad), 0)),
            Err(SignalError::UnauthorizedAccess)
        );
    }
    assert_eq!(
        auth.counters(),
        RelayAuthCounters {
            accepted: 1,
            refused: 3
        }
    );
}
