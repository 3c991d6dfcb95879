//! StreamSecurity: every check of the AMS chain and every error definition it can give.
//! (Over 600 lines: one test per check of the AMS chain and per error definition, over the same
//! store fixtures.)

use std::collections::BTreeSet;
use std::time::Instant;

use antenna_store::crypto::{ams_derived_totp_key, base32_encode, hash_token, jwt_sign, totp};
use antenna_store::{
    shared, AppSettings, Broadcast, Data, MemStore, SharedStore, Store, StoreError, StreamSecurity,
    Subscriber, SubscriberType, Token, TokenType, WriteOp, WriteSeq,
};
use proto_core::{AccessPolicy, PlayRequest, PublishRequest, SignalError};
use serde_json::Map;

const APP: &str = "LiveApp";
/// 2026-01-01T00:00:00Z in unix ms.
const NOW: u64 = 1_767_225_600_000;
const NOW_S: i64 = (NOW / 1000) as i64;
const JWT_KEY: &str = "0123456789abcdef0123456789abcdef";

fn store_with(settings: AppSettings) -> SharedStore {
    let store = shared(MemStore::new());
    store
        .borrow_mut()
        .write(WriteOp::PutSettings {
            app: APP.into(),
            settings: Box::new(settings),
        })
        .unwrap();
    store
}

fn put(store: &SharedStore, op: WriteOp) {
    store.borrow_mut().write(op).unwrap();
}

fn broadcast(store: &SharedStore, b: Broadcast) {
    put(
        store,
        WriteOp::PutBroadcast {
            app: APP.into(),
            broadcast: Box::new(b),
        },
    );
}

fn token(
    store: &SharedStore,
    id: &str,
    stream: &str,
    kind: TokenType,
    exp: i64,
    room: Option<&str>,
) {
    put(
        store,
        WriteOp::PutToken {
            app: APP.into(),
            token: Token {
                token_id: id.into(),
                stream_id: stream.into(),
                expire_date: exp,
                token_type: kind,
                room_id: room.map(str::to_string),
            },
        },
    );
}

fn subscriber(stream: &str, id: &str, kind: SubscriberType, b32: Option<&str>) -> Subscriber {
    Subscriber {
        subscriber_id: id.into(),
        subscriber_name: None,
        stream_id: stream.into(),
        b32_secret: b32.map(str::to_string),
        subscriber_type: kind,
        totp_expiry_period_seconds: None,
        concurrent_connections_limit: 1,
        current_concurrent_connections: 0,
        blocked_type: None,
        blocked_until_unit_time_stamp_ms: 0,
    }
}

fn publish<'a>(stream: &'a str, token: Option<&'a str>) -> PublishRequest<'a> {
    PublishRequest {
        app: APP,
        stream_id: stream,
        token,
        subscriber_id: None,
        subscriber_code: None,
        main_track: None,
        room_member: false,
    }
}

fn play<'a>(stream: &'a str, token: Option<&'a str>) -> PlayRequest<'a> {
    PlayRequest {
        app: APP,
        stream_id: stream,
        token,
        subscriber_id: None,
        subscriber_code: None,
        room: None,
        viewers: 0,
        room_member: false,
    }
}

fn sec(store: &SharedStore) -> StreamSecurity {
    StreamSecurity::new(store.clone(), || NOW)
}

#[test]
fn everything_is_allowed_with_default_settings() {
    let store = shared(MemStore::new());
    let mut s = sec(&store);
    assert_eq!(s.check_publish_at(NOW, &publish("s1", None)), Ok(()));
    assert_eq!(s.check_play_at(NOW, &play("s1", None)), Ok(()));
}

#[test]
fn unregistered_stream_refused_when_accept_only_streams_in_data_store() {
    let store = store_with(AppSettings {
        accept_only_streams_in_data_store: true,
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    assert_eq!(
        s.check_publish_at(NOW, &publish("s1", None)),
        Err(SignalError::NotAllowedUnregisteredStreams)
    );
    broadcast(
        &store,
        Broadcast {
            stream_id: "s1".into(),
            ..Broadcast::default()
        },
    );
    assert_eq!(s.check_publish_at(NOW, &publish("s1", None)), Ok(()));
    // Other applications are not affected.
    let other = PublishRequest {
        app: "Other",
        ..publish("s2", None)
    };
    assert_eq!(s.check_publish_at(NOW, &other), Ok(()));
}

#[test]
fn one_time_token_cannot_be_used_twice() {
    let store = store_with(AppSettings {
        publish_token_control_enabled: true,
        play_token_control_enabled: true,
        ..AppSettings::default()
    });
    token(&store, "tok1", "s1", TokenType::Publish, NOW_S + 60, None);
    token(&store, "tok2", "s1", TokenType::Play, NOW_S + 60, None);
    let mut s = sec(&store);
    assert_eq!(
        s.check_publish_at(NOW, &publish("s1", Some("tok1"))),
        Ok(())
    );
    assert!(
        store.borrow().data().token(APP, "tok1").is_none(),
        "consumed"
    );
    assert_eq!(
        s.check_publish_at(NOW, &publish("s1", Some("tok1"))),
        Err(SignalError::UnauthorizedAccess)
    );
    assert_eq!(s.check_play_at(NOW, &play("s1", Some("tok2"))), Ok(()));
    assert_eq!(
        s.check_play_at(NOW, &play("s1", Some("tok2"))),
        Err(SignalError::UnauthorizedAccess)
    );
    // no token at all
    assert_eq!(
        s.check_play_at(NOW, &play("s1", None)),
        Err(SignalError::UnauthorizedAccess)
    );
}

#[test]
fn one_time_token_refused_when_expired_wrong_type_or_wrong_stream() {
    let store = store_with(AppSettings {
        publish_token_control_enabled: true,
        play_token_control_enabled: true,
        ..AppSettings::default()
    });
    token(&store, "old", "s1", TokenType::Publish, NOW_S, None);
    token(&store, "playtok", "s1", TokenType::Play, NOW_S + 60, None);
    token(&store, "other", "s2", TokenType::Publish, NOW_S + 60, None);
    let mut s = sec(&store);
    for t in ["old", "playtok", "other", "unknown"] {
        assert_eq!(
            s.check_publish_at(NOW, &publish("s1", Some(t))),
            Err(SignalError::UnauthorizedAccess),
            "{t}"
        );
    }
    // refused tokens are not consumed
    assert!(store.borrow().data().token(APP, "playtok").is_some());
    assert!(store.borrow().data().token(APP, "other").is_some());
    // one second earlier the "old" token was still valid
    assert_eq!(
        s.check_publish_at(NOW - 1000, &publish("s1", Some("old"))),
        Ok(())
    );
}

#[test]
fn room_token_is_kept_and_bound_to_its_room() {
    let store = store_with(AppSettings {
        publish_token_control_enabled: true,
        ..AppSettings::default()
    });
    token(
        &store,
        "rt",
        "room1",
        TokenType::Publish,
        NOW_S + 60,
        Some("room1"),
    );
    let mut s = sec(&store);
    let in_room = |id: &'static str, room: &'static str| PublishRequest {
        main_track: Some(room),
        room_member: true,
        ..publish(id, Some("rt"))
    };
    assert_eq!(s.check_publish_at(NOW, &in_room("alice", "room1")), Ok(()));
    assert_eq!(s.check_publish_at(NOW, &in_room("bob", "room1")), Ok(()));
    assert!(store.borrow().data().token(APP, "rt").is_some(), "kept");
    assert_eq!(
        s.check_publish_at(NOW, &in_room("eve", "room2")),
        Err(SignalError::UnauthorizedAccess)
    );
    // Naming the room is not enough: the stream must belong to it.
    let stranger = PublishRequest {
        room_member: false,
        ..in_room("mallory", "room1")
    };
    assert_eq!(
        s.check_publish_at(NOW, &stranger),
        Err(SignalError::UnauthorizedAccess)
    );
}

#[test]
fn token_is_not_consumed_when_a_later_check_fails() {
    let store = store_with(AppSettings {
        publish_token_control_enabled: true,
        ..AppSettings::default()
    });
    broadcast(
        &store,
        Broadcast {
            stream_id: "s1".into(),
            date: (NOW - 10_000) as i64,
            expire_duration_ms: 5_000,
            ..Broadcast::default()
        },
    );
    token(&store, "tok", "s1", TokenType::Publish, NOW_S + 60, None);
    let mut s = sec(&store);
    assert_eq!(
        s.check_publish_at(NOW, &publish("s1", Some("tok"))),
        Err(SignalError::StreamNotActiveOrExpired)
    );
    assert!(store.borrow().data().token(APP, "tok").is_some());
}

fn jwt(stream: &str, kind: &str, exp: Option<i64>, key: &str) -> String {
    let mut c = Map::new();
    c.insert("streamId".into(), stream.into());
    c.insert("type".into(), kind.into());
    if let Some(e) = exp {
        c.insert("exp".into(), e.into());
    }
    jwt_sign(&c, key).unwrap()
}

#[test]
fn jwt_checks() {
    let store = store_with(AppSettings {
        publish_jwt_control_enabled: true,
        play_jwt_control_enabled: true,
        jwt_stream_secret_key: JWT_KEY.into(),
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let ok = jwt("s1", "publish", Some(NOW_S + 10), JWT_KEY);
    assert_eq!(s.check_publish_at(NOW, &publish("s1", Some(&ok))), Ok(()));
    // not single-use
    assert_eq!(s.check_publish_at(NOW, &publish("s1", Some(&ok))), Ok(()));
    let ok_exp = jwt("s1", "play", Some(NOW_S + 10), JWT_KEY);
    assert_eq!(s.check_play_at(NOW, &play("s1", Some(&ok_exp))), Ok(()));
    let later = Some(NOW_S + 10);
    let refused = [
        jwt("s1", "publish", later, "wrong secret wrong secret wrong s"),
        jwt("s1", "publish", Some(NOW_S - 1), JWT_KEY),
        jwt("s1", "publish", Some(NOW_S), JWT_KEY),
        jwt("s2", "publish", later, JWT_KEY),
        jwt("s1", "play", later, JWT_KEY),
        // Finding 6 of issue 9: a JWT without `exp` would never expire.
        jwt("s1", "publish", None, JWT_KEY),
        "garbage".to_string(),
    ];
    for t in &refused {
        assert_eq!(
            s.check_publish_at(NOW, &publish("s1", Some(t))),
            Err(SignalError::UnauthorizedAccess),
            "{t}"
        );
    }
    assert_eq!(
        s.check_publish_at(NOW, &publish("s1", None)),
        Err(SignalError::UnauthorizedAccess)
    );
}

#[test]
fn hash_token_checks() {
    let store = store_with(AppSettings {
        hash_control_publish_enabled: true,
        hash_control_play_enabled: true,
        token_hash_secret: "hashsecret".into(),
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let pub_hash = hash_token("s1", "publish", "hashsecret");
    let play_hash = hash_token("s1", "play", "hashsecret");
    assert_eq!(
        s.check_publish_at(NOW, &publish("s1", Some(&pub_hash))),
        Ok(())
    );
    assert_eq!(s.check_play_at(NOW, &play("s1", Some(&play_hash))), Ok(()));
    assert_eq!(
        s.check_publish_at(NOW, &publish("s1", Some(&play_hash))),
        Err(SignalError::UnauthorizedAccess)
    );
    assert_eq!(
        s.check_play_at(NOW, &play("s2", Some(&play_hash))),
        Err(SignalError::UnauthorizedAccess)
    );
    // an empty secret refuses everything
    let store = store_with(AppSettings {
        hash_control_play_enabled: true,
        ..AppSettings::default()
    });
    let empty = hash_token("s1", "play", "");
    assert_eq!(
        sec(&store).check_play_at(NOW, &play("s1", Some(&empty))),
        Err(SignalError::UnauthorizedAccess)
    );
}

fn with_totp<'a>(req: PlayRequest<'a>, sid: &'a str, code: &'a str) -> PlayRequest<'a> {
    PlayRequest {
        subscriber_id: Some(sid),
        subscriber_code: Some(code),
        ..req
    }
}

#[test]
fn totp_with_stored_subscriber_secret() {
    let store = store_with(AppSettings {
        enable_time_token_for_play: true,
        enable_time_token_for_publish: true,
        time_token_period: 60,
        ..AppSettings::default()
    });
    let key = b"some twenty byte key";
    let b32 = base32_encode(key);
    put(
        &store,
        WriteOp::PutSubscriber {
            app: APP.into(),
            subscriber: subscriber("s1", "viewer1", SubscriberType::Play, Some(&b32)),
        },
    );
    let mut s = sec(&store);
    let code = totp(key, NOW, 60, 6);
    // the previous period's code is still accepted (clock skew), two periods back is not
    let prev = totp(key, NOW - 60_000, 60, 6);
    let old = totp(key, NOW - 120_000, 60, 6);
    assert_eq!(
        s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", &prev)),
        Ok(())
    );
    assert_eq!(
        s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", &code)),
        Ok(())
    );
    // a code works once; the previous one is older than the last used (finding 2, replay)
    for c in [&code, &prev] {
        assert_eq!(
            s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", c)),
            Err(SignalError::UnauthorizedAccess)
        );
    }
    if old != code && old != prev {
        assert_eq!(
            s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", &old)),
            Err(SignalError::UnauthorizedAccess)
        );
    }
    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_eq!(
        s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", wrong)),
        Err(SignalError::UnauthorizedAccess)
    );
    // missing code or id
    assert_eq!(
        s.check_play_at(NOW, &play("s1", None)),
        Err(SignalError::UnauthorizedAccess)
    );
    // a play subscriber may not publish
    let p = PublishRequest {
        subscriber_id: Some("viewer1"),
        subscriber_code: Some(&code),
        ..publish("s1", None)
    };
    assert_eq!(
        s.check_publish_at(NOW, &p),
        Err(SignalError::UnauthorizedAccess)
    );
}

#[test]
fn totp_subscriber_period_overrides_app_period() {
    let store = store_with(AppSettings {
        enable_time_token_for_play: true,
        ..AppSettings::default()
    });
    let key = b"0123456789";
    let mut sub = subscriber(
        "s1",
        "viewer1",
        SubscriberType::Publish,
        Some(&base32_encode(key)),
    );
    sub.totp_expiry_period_seconds = Some(30);
    put(
        &store,
        WriteOp::PutSubscriber {
            app: APP.into(),
            subscriber: sub,
        },
    );
    let mut s = sec(&store);
    let code30 = totp(key, NOW, 30, 6);
    assert_eq!(
        s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", &code30)),
        Ok(())
    );
}

#[test]
fn totp_with_ams_derived_secret() {
    let store = store_with(AppSettings {
        enable_time_token_for_publish: true,
        time_token_secret_for_publish: Some("pubsecret".into()),
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let key = ams_derived_totp_key("pubsecret", "anyone", "s1", "publish");
    let code = totp(&key, NOW, 60, 6);
    let p = PublishRequest {
        subscriber_id: Some("anyone"),
        subscriber_code: Some(&code),
        ..publish("s1", None)
    };
    assert_eq!(s.check_publish_at(NOW, &p), Ok(()));
    // the same code for another stream is refused
    let p2 = PublishRequest {
        stream_id: "s2",
        ..p.clone()
    };
    let code_s2 = totp(
        &ams_derived_totp_key("pubsecret", "anyone", "s2", "publish"),
        NOW,
        60,
        6,
    );
    if code_s2 != code {
        assert_eq!(
            s.check_publish_at(NOW, &p2),
            Err(SignalError::UnauthorizedAccess)
        );
    }
    // no secret configured for play: refused
    let store = store_with(AppSettings {
        enable_time_token_for_play: true,
        ..AppSettings::default()
    });
    assert_eq!(
        sec(&store).check_play_at(NOW, &with_totp(play("s1", None), "anyone", &code)),
        Err(SignalError::UnauthorizedAccess)
    );
}

#[test]
fn totp_subscriber_only_requires_a_stored_subscriber() {
    let store = store_with(AppSettings {
        time_token_subscriber_only: true,
        time_token_secret_for_play: Some("playsecret".into()),
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let key = ams_derived_totp_key("playsecret", "viewer1", "s1", "play");
    let code = totp(&key, NOW, 60, 6);
    assert_eq!(
        s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", &code)),
        Err(SignalError::UnauthorizedAccess)
    );
    put(
        &store,
        WriteOp::PutSubscriber {
            app: APP.into(),
            subscriber: subscriber("s1", "viewer1", SubscriberType::Play, None),
        },
    );
    assert_eq!(
        s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", &code)),
        Ok(())
    );
}

#[test]
fn blocked_subscriber_gets_user_blocked() {
    let store = store_with(AppSettings {
        enable_time_token_for_play: true,
        ..AppSettings::default()
    });
    let key = b"abcdefghij";
    let mut sub = subscriber(
        "s1",
        "viewer1",
        SubscriberType::Play,
        Some(&base32_encode(key)),
    );
    sub.blocked_type = Some(SubscriberType::Play);
    sub.blocked_until_unit_time_stamp_ms = (NOW + 5_000) as i64;
    put(
        &store,
        WriteOp::PutSubscriber {
            app: APP.into(),
            subscriber: sub,
        },
    );
    let mut s = sec(&store);
    let code = totp(key, NOW, 60, 6);
    assert_eq!(
        s.check_play_at(NOW, &with_totp(play("s1", None), "viewer1", &code)),
        Err(SignalError::UserBlocked)
    );
    // after the block
    let later = NOW + 6_000;
    let code = totp(key, later, 60, 6);
    assert_eq!(
        s.check_play_at(later, &with_totp(play("s1", None), "viewer1", &code)),
        Ok(())
    );
}

#[test]
fn expiry_and_planned_dates() {
    let store = shared(MemStore::new());
    let mut s = sec(&store);
    let cases = [
        // (expireDurationMS, date, plannedStart, plannedEnd, ok)
        (0, 0, 0, 0, true),
        (10_000, NOW as i64 - 5_000, 0, 0, true),
        (10_000, NOW as i64 - 10_000, 0, 0, false),
        (0, 0, NOW_S - 10, NOW_S + 10, true),
        (0, 0, NOW_S, NOW_S, true),
        (0, 0, NOW_S + 1, NOW_S + 10, false),
        (0, 0, NOW_S - 10, NOW_S - 1, false),
        // only one planned date set: ignored
        (0, 0, NOW_S + 100, 0, true),
        (0, 0, 0, NOW_S - 100, true),
    ];
    for (i, (exp, date, start, end, ok)) in cases.into_iter().enumerate() {
        let id = format!("s{i}");
        broadcast(
            &store,
            Broadcast {
                stream_id: id.clone(),
                date,
                expire_duration_ms: exp,
                planned_start_date: start,
                planned_end_date: end,
                ..Broadcast::default()
            },
        );
        let want = if ok {
            Ok(())
        } else {
            Err(SignalError::StreamNotActiveOrExpired)
        };
        assert_eq!(
            s.check_publish_at(NOW, &publish(&id, None)),
            want,
            "case {i}"
        );
    }
}

#[test]
fn rooms_in_data_store_and_room_dates() {
    let store = store_with(AppSettings {
        accept_only_rooms_in_data_store: true,
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let in_room = PublishRequest {
        main_track: Some("room1"),
        ..publish("alice", None)
    };
    assert_eq!(
        s.check_publish_at(NOW, &in_room),
        Err(SignalError::RoomNotActiveOrExpired)
    );
    let play_room = PlayRequest {
        room: Some("room1"),
        ..play("room1", None)
    };
    assert_eq!(
        s.check_play_at(NOW, &play_room),
        Err(SignalError::RoomNotActiveOrExpired)
    );
    broadcast(
        &store,
        Broadcast {
            stream_id: "room1".into(),
            planned_start_date: NOW_S + 100,
            planned_end_date: NOW_S + 200,
            ..Broadcast::default()
        },
    );
    assert_eq!(
        s.check_publish_at(NOW, &in_room),
        Err(SignalError::RoomNotActiveOrExpired)
    );
    assert_eq!(
        s.check_play_at(NOW, &play_room),
        Err(SignalError::RoomNotActiveOrExpired)
    );
    let during = NOW + 150_000;
    assert_eq!(s.check_publish_at(during, &in_room), Ok(()));
    assert_eq!(s.check_play_at(during, &play_room), Ok(()));
}

#[test]
fn viewer_limits_of_app_and_broadcast() {
    let store = store_with(AppSettings {
        webrtc_viewer_limit: 2,
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let with_viewers = |n: usize| PlayRequest {
        viewers: n,
        ..play("s1", None)
    };
    assert_eq!(s.check_play_at(NOW, &with_viewers(1)), Ok(()));
    assert_eq!(
        s.check_play_at(NOW, &with_viewers(2)),
        Err(SignalError::ViewerLimitReached)
    );
    // The broadcast's own limit wins when set.
    broadcast(
        &store,
        Broadcast {
            stream_id: "s1".into(),
            webrtc_viewer_limit: 5,
            ..Broadcast::default()
        },
    );
    assert_eq!(s.check_play_at(NOW, &with_viewers(4)), Ok(()));
    assert_eq!(
        s.check_play_at(NOW, &with_viewers(5)),
        Err(SignalError::ViewerLimitReached)
    );
    // -1 on both: unlimited
    let store = shared(MemStore::new());
    assert_eq!(
        sec(&store).check_play_at(
            NOW,
            &PlayRequest {
                viewers: 1_000_000,
                ..play("s1", None)
            }
        ),
        Ok(())
    );
}

#[test]
fn every_enabled_check_must_pass() {
    let store = store_with(AppSettings {
        play_token_control_enabled: true,
        play_jwt_control_enabled: true,
        jwt_stream_secret_key: JWT_KEY.into(),
        ..AppSettings::default()
    });
    token(&store, "tok", "s1", TokenType::Play, NOW_S + 60, None);
    let mut s = sec(&store);
    // The one-time token passes but is not a JWT: refused, and the token survives.
    assert_eq!(
        s.check_play_at(NOW, &play("s1", Some("tok"))),
        Err(SignalError::UnauthorizedAccess)
    );
    assert!(store.borrow().data().token(APP, "tok").is_some());
    // A JWT whose text is also a stored one-time token passes both.
    let j = jwt("s1", "play", Some(NOW_S + 60), JWT_KEY);
    token(&store, &j, "s1", TokenType::Play, NOW_S + 60, None);
    assert_eq!(s.check_play_at(NOW, &play("s1", Some(&j))), Ok(()));
    assert!(store.borrow().data().token(APP, &j).is_none());
}

#[test]
// The AccessPolicy signature needs some Instant; its value is irrelevant here.
#[allow(clippy::disallowed_methods)]
fn access_policy_trait_uses_the_wall_clock() {
    let store = store_with(AppSettings {
        play_token_control_enabled: true,
        ..AppSettings::default()
    });
    token(&store, "tok", "s1", TokenType::Play, NOW_S + 60, None);
    // A clock after expiry refuses; the Instant argument is not used for tokens.
    let mut late: Box<dyn AccessPolicy> =
        Box::new(StreamSecurity::new(store.clone(), || NOW + 61_000));
    assert_eq!(
        late.check_play(Instant::now(), &play("s1", Some("tok"))),
        Err(SignalError::UnauthorizedAccess)
    );
    let mut now: Box<dyn AccessPolicy> = Box::new(StreamSecurity::new(store.clone(), || NOW));
    assert!(now
        .check_play(Instant::now(), &play("s1", Some("tok")))
        .is_ok());
}

/// A store whose writes fail (a failed store thread).
#[derive(Debug, Default)]
struct FailingStore(MemStore);

impl Store for FailingStore {
    fn data(&self) -> &Data {
        self.0.data()
    }
    fn write(&mut self, _: WriteOp) -> Result<WriteSeq, StoreError> {
        Err(StoreError::Unavailable("disk gone".into()))
    }
    fn durable_seq(&self) -> WriteSeq {
        WriteSeq(0)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("disk gone".into()))
    }
}

#[test]
fn failed_store_gives_data_store_not_available_when_a_token_must_be_consumed() {
    let mut inner = MemStore::new();
    inner
        .write(WriteOp::PutSettings {
            app: APP.into(),
            settings: Box::new(AppSettings {
                publish_token_control_enabled: true,
                ..AppSettings::default()
            }),
        })
        .unwrap();
    inner
        .write(WriteOp::PutToken {
            app: APP.into(),
            token: Token {
                token_id: "tok".into(),
                stream_id: "s1".into(),
                expire_date: NOW_S + 60,
                token_type: TokenType::Publish,
                room_id: None,
            },
        })
        .unwrap();
    let store = shared(FailingStore(inner));
    assert_eq!(
        sec(&store).check_publish_at(NOW, &publish("s1", Some("tok"))),
        Err(SignalError::DataStoreNotAvailable)
    );
}

/// Every error definition the policy can produce is reachable, and nothing else is produced.
#[test]
fn every_access_policy_error_definition() {
    let store = store_with(AppSettings {
        accept_only_streams_in_data_store: true,
        accept_only_rooms_in_data_store: true,
        enable_time_token_for_play: true,
        webrtc_viewer_limit: 1,
        ..AppSettings::default()
    });
    let key = b"abcdefghij";
    let mut blocked = subscriber(
        "s1",
        "blocked",
        SubscriberType::Play,
        Some(&base32_encode(key)),
    );
    blocked.blocked_type = Some(SubscriberType::PublishPlay);
    blocked.blocked_until_unit_time_stamp_ms = (NOW + 1000) as i64;
    put(
        &store,
        WriteOp::PutSubscriber {
            app: APP.into(),
            subscriber: blocked,
        },
    );
    put(
        &store,
        WriteOp::PutSubscriber {
            app: APP.into(),
            subscriber: subscriber(
                "s1",
                "viewer",
                SubscriberType::Play,
                Some(&base32_encode(key)),
            ),
        },
    );
    broadcast(
        &store,
        Broadcast {
            stream_id: "expired".into(),
            expire_duration_ms: 1,
            ..Broadcast::default()
        },
    );
    let mut s = sec(&store);
    let code = totp(key, NOW, 60, 6);
    let mut seen = BTreeSet::new();
    let mut record = |r: Result<(), SignalError>| {
        if let Err(e) = r {
            seen.insert(e);
        }
    };
    record(s.check_publish_at(NOW, &publish("unregistered", None)));
    record(s.check_publish_at(NOW, &publish("expired", None)));
    record(s.check_publish_at(
        NOW,
        &PublishRequest {
            main_track: Some("noroom"),
            ..publish("expired", None)
        },
    ));
    record(s.check_play_at(NOW, &with_totp(play("s1", None), "viewer", "xxxxxx")));
    record(s.check_play_at(NOW, &with_totp(play("s1", None), "blocked", &code)));
    record(s.check_play_at(
        NOW,
        &PlayRequest {
            viewers: 1,
            ..with_totp(play("s1", None), "viewer", &code)
        },
    ));
    let expected: BTreeSet<SignalError> = [
        SignalError::NotAllowedUnregisteredStreams,
        SignalError::StreamNotActiveOrExpired,
        SignalError::RoomNotActiveOrExpired,
        SignalError::UnauthorizedAccess,
        SignalError::UserBlocked,
        SignalError::ViewerLimitReached,
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected);
    // and data_store_not_available: see failed_store_gives_data_store_not_available_…
    assert_eq!(
        s.check_play_at(NOW, &with_totp(play("s1", None), "viewer", &code)),
        Ok(())
    );
}

#[test]
fn plain_token_for_own_stream_works_inside_a_room_and_is_used_up() {
    let store = store_with(AppSettings {
        publish_token_control_enabled: true,
        play_token_control_enabled: true,
        ..AppSettings::default()
    });
    token(&store, "own", "alice", TokenType::Publish, NOW_S + 60, None);
    token(
        &store,
        "roomplay",
        "room1",
        TokenType::Play,
        NOW_S + 60,
        Some("room1"),
    );
    let mut s = sec(&store);
    let req = PublishRequest {
        main_track: Some("room1"),
        ..publish("alice", Some("own"))
    };
    assert_eq!(s.check_publish_at(NOW, &req), Ok(()));
    assert!(store.borrow().data().token(APP, "own").is_none());
    assert_eq!(
        s.check_publish_at(NOW, &req),
        Err(SignalError::UnauthorizedAccess)
    );
    // A room token plays the room id itself, repeatedly.
    for _ in 0..2 {
        assert_eq!(
            s.check_play_at(NOW, &play("room1", Some("roomplay"))),
            Ok(())
        );
    }
    assert!(store.borrow().data().token(APP, "roomplay").is_some());
    // but not another stream
    assert_eq!(
        s.check_play_at(NOW, &play("other", Some("roomplay"))),
        Err(SignalError::UnauthorizedAccess)
    );
}
