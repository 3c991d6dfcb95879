use super::*;

#[test]
fn seed_layers_defaults_file_and_table() {
    let mut sig = proto_core::Config::default();
    sig.ice_servers.stun_server_uri = "stun:a:1".into();
    let s = seed_for("A", &sig, None).unwrap();
    assert_eq!(s.stun_server_uri, "stun:a:1");
    assert_eq!(s.webrtc_client_start_timeout_ms, 10_000);
    let mut t = Map::new();
    t.insert("publishTokenControlEnabled".into(), true.into());
    t.insert("stunServerURI".into(), "stun:b:2".into());
    let s = seed_for("A", &sig, Some(&t)).unwrap();
    assert!(s.publish_token_control_enabled);
    assert_eq!(s.stun_server_uri, "stun:b:2");
    t.insert("webRTCViewerLimit".into(), "many".into());
    assert!(seed_for("A", &sig, Some(&t)).is_err());
    let mut t = Map::new();
    t.insert("remoteAllowedCIDR".into(), "nope".into());
    assert!(seed_for("A", &sig, Some(&t)).is_err());
    let mut cfg = proto_core::Config::default();
    apply_to_signalling(&s, &mut cfg);
    assert_eq!(cfg.ice_servers.stun_server_uri, "stun:b:2");
    assert_eq!(cfg.ice_servers.turn_server_username, None);
}

#[test]
fn data_channel_settings_follow_the_application() {
    let sig = proto_core::Config::default();
    let mut data = rtc_core::DataConfig {
        max_message_size: 1000,
        ..rtc_core::DataConfig::default()
    };
    // AMS defaults: enabled, distribution `all`.
    apply_to_data(&seed_for("A", &sig, None).unwrap(), &mut data);
    assert!(data.enabled);
    assert_eq!(data.player_distribution, rtc_core::PlayerDistribution::All);
    let mut t = Map::new();
    t.insert("dataChannelEnabled".into(), false.into());
    t.insert("dataChannelPlayerDistribution".into(), "publisher".into());
    apply_to_data(&seed_for("A", &sig, Some(&t)).unwrap(), &mut data);
    assert!(!data.enabled);
    assert_eq!(
        data.player_distribution,
        rtc_core::PlayerDistribution::Publisher
    );
    assert_eq!(data.max_message_size, 1000, "the size limit is the file's");
    t.insert("dataChannelPlayerDistribution".into(), "bogus".into());
    apply_to_data(&seed_for("A", &sig, Some(&t)).unwrap(), &mut data);
    assert_eq!(data.player_distribution, rtc_core::PlayerDistribution::All);
}

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

#[test]
fn admin_token_is_generated_once_then_read() {
    let dir = std::env::temp_dir().join(format!("antenna-admin-token-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let loc = StoreLocation::Dir(dir.clone());
    let (t1, src) = admin_token(&loc, None, [7; 32]).unwrap();
    assert_eq!(src, TokenSource::Created(dir.join(ADMIN_TOKEN_FILE)));
    assert_eq!(t1.len(), 64);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join(ADMIN_TOKEN_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (t2, src) = admin_token(&loc, None, [8; 32]).unwrap();
    assert_eq!(
        (t2, src),
        (t1, TokenSource::Read(dir.join(ADMIN_TOKEN_FILE)))
    );
    // An explicit file; a too-short token is refused.
    let short = dir.join("short");
    std::fs::write(&short, "abc\n").unwrap();
    assert!(admin_token(&loc, Some(&short), [0; 32]).is_err());
    // A data directory that is a file: a token for this run; an explicit file there: error.
    let not_dir = StoreLocation::Dir(short.clone());
    let (_, src) = admin_token(&not_dir, None, [1; 32]).unwrap();
    assert_eq!(src, TokenSource::Ephemeral);
    assert!(admin_token(&loc, Some(&short.join("t")), [1; 32]).is_err());
    let (t3, src) = admin_token(&StoreLocation::Memory, None, [9; 32]).unwrap();
    assert_eq!((t3.len(), src), (64, TokenSource::Ephemeral));
    let _ = std::fs::remove_dir_all(&dir);
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
