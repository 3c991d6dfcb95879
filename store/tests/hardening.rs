//! Issue 9 (hardening, authorisation): one regression test per finding, against
//! `StreamSecurity` alone. Signalling's side is in `proto-core` (`access_tests`), the whole
//! server in `server-mio/tests/security.rs`.

use std::time::{Duration, Instant};

use antenna_store::crypto::{ams_derived_totp_key, base32_encode, hotp, jwt_sign, totp};
use antenna_store::{
    shared, AppSettings, Broadcast, MemStore, SharedStore, StreamSecurity, Subscriber,
    SubscriberType, Token, TokenType, WriteOp, PURGE_INTERVAL, PURGE_MAX_DELETES,
    TOTP_FREE_FAILURES, TOTP_FREE_FAILURES_PER_STREAM,
};
use proto_core::{AccessPolicy, JoinRoomRequest, PlayRequest, PublishRequest, SignalError};
use serde_json::json;

const APP: &str = "LiveApp";
/// 2026-01-01T00:00:00Z in unix ms.
const NOW: u64 = 1_767_225_600_000;
const NOW_S: i64 = (NOW / 1000) as i64;
const JWT_KEY: &str = "0123456789abcdef0123456789abcdef";

fn store_with(settings: AppSettings) -> SharedStore {
    let store = shared(MemStore::new());
    put(
        &store,
        WriteOp::PutSettings {
            app: APP.into(),
            settings: Box::new(settings),
        },
    );
    store
}

fn put(store: &SharedStore, op: WriteOp) {
    store.borrow_mut().write(op).unwrap();
}

fn token(store: &SharedStore, id: &str, stream: &str, kind: TokenType, exp: i64) {
    put(
        store,
        WriteOp::PutToken {
            app: APP.into(),
            token: Token {
                token_id: id.into(),
                stream_id: stream.into(),
                expire_date: exp,
                token_type: kind,
                room_id: None,
            },
        },
    );
}

fn has_token(store: &SharedStore, id: &str) -> bool {
    store.borrow().data().token(APP, id).is_some()
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
        room_member: false,
        viewers: 0,
    }
}

fn sec(store: &SharedStore) -> StreamSecurity {
    StreamSecurity::new(store.clone(), || NOW)
}

fn jwt(claims: serde_json::Value) -> String {
    jwt_sign(claims.as_object().unwrap(), JWT_KEY).unwrap()
}

/// Finding 1: a credential for `alice` opened `victim` when the client named `alice` as its
/// main track or room (one-time token, JWT, stored TOTP subscriber), and the one-time token
/// was never used up.
#[test]
fn finding1_a_credential_is_bound_to_its_stream() {
    let store = store_with(AppSettings {
        publish_token_control_enabled: true,
        ..AppSettings::default()
    });
    token(&store, "alice-tok", "alice", TokenType::Publish, NOW_S + 60);
    let mut s = sec(&store);
    for victim in ["victim", "victim2", "victim3"] {
        let req = PublishRequest {
            main_track: Some("alice"),
            ..publish(victim, Some("alice-tok"))
        };
        assert_eq!(
            s.check_publish_at(NOW, &req),
            Err(SignalError::UnauthorizedAccess),
            "{victim}"
        );
    }
    assert!(has_token(&store, "alice-tok"), "refusals spend nothing");
    // A datastore subtrack link makes `sub` a stream of `alice`: allowed once, then spent.
    put(
        &store,
        WriteOp::PutBroadcast {
            app: APP.into(),
            broadcast: Box::new(Broadcast {
                stream_id: "sub".into(),
                main_track_stream_id: Some("alice".into()),
                ..Broadcast::default()
            }),
        },
    );
    let sub = PublishRequest {
        main_track: Some("alice"),
        ..publish("sub", Some("alice-tok"))
    };
    assert_eq!(s.check_publish_at(NOW, &sub), Ok(()));
    assert!(
        !has_token(&store, "alice-tok"),
        "single use stays single use"
    );
    assert_eq!(
        s.check_publish_at(NOW, &sub),
        Err(SignalError::UnauthorizedAccess)
    );

    // JWT: a `streamId: alice` token plays `victim` only if it is a stream of alice.
    let store = store_with(AppSettings {
        play_jwt_control_enabled: true,
        jwt_stream_secret_key: JWT_KEY.into(),
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let t = jwt(json!({"streamId":"alice","type":"play","exp":NOW_S + 60}));
    let mut req = PlayRequest {
        room: Some("alice"),
        ..play("victim", Some(&t))
    };
    assert_eq!(
        s.check_play_at(NOW, &req),
        Err(SignalError::UnauthorizedAccess)
    );
    req.room_member = true;
    assert_eq!(s.check_play_at(NOW, &req), Ok(()));

    // TOTP: alice's stored subscriber does not open victim by naming alice as room.
    let store = store_with(AppSettings {
        enable_time_token_for_play: true,
        ..AppSettings::default()
    });
    let key = b"twenty bytes of key!";
    put(
        &store,
        WriteOp::PutSubscriber {
            app: APP.into(),
            subscriber: subscriber("alice", "bob", key),
        },
    );
    let mut s = sec(&store);
    let code = totp(key, NOW, 60, 6);
    let mut req = PlayRequest {
        room: Some("alice"),
        subscriber_id: Some("bob"),
        subscriber_code: Some(&code),
        ..play("victim", None)
    };
    assert_eq!(
        s.check_play_at(NOW, &req),
        Err(SignalError::UnauthorizedAccess)
    );
    req.room_member = true;
    assert_eq!(s.check_play_at(NOW, &req), Ok(()));
}

fn subscriber(stream: &str, id: &str, key: &[u8]) -> Subscriber {
    Subscriber {
        subscriber_id: id.into(),
        subscriber_name: None,
        stream_id: stream.into(),
        b32_secret: Some(base32_encode(key)),
        subscriber_type: SubscriberType::PublishPlay,
        totp_expiry_period_seconds: None,
        concurrent_connections_limit: 1,
        current_concurrent_connections: 0,
        blocked_type: None,
        blocked_until_unit_time_stamp_ms: 0,
    }
}

fn wrong_code(key: &[u8], now_ms: u64, n: u32) -> String {
    let step = now_ms / 60_000;
    let right = [hotp(key, step, 6), hotp(key, step - 1, 6)];
    (0..)
        .map(|i: u32| format!("{:06}", (n * 7919 + i) % 1_000_000))
        .find(|c| !right.contains(c))
        .unwrap()
}

/// Finding 2: TOTP could be guessed online (no attempt limit) and a right code replayed for
/// its whole window. Now a subscriber gets TOTP_FREE_FAILURES answers, then back-off during
/// which even the right code is refused; a used code does not work again.
#[test]
fn finding2_totp_guessing_is_limited_and_codes_are_not_replayed() {
    let store = store_with(AppSettings {
        enable_time_token_for_play: true,
        ..AppSettings::default()
    });
    let key = b"twenty bytes of key!";
    put(
        &store,
        WriteOp::PutSubscriber {
            app: APP.into(),
            subscriber: subscriber("s1", "bob", key),
        },
    );
    let mut s = sec(&store);
    let with = |code: &str| -> PlayRequest<'static> {
        PlayRequest {
            subscriber_id: Some("bob"),
            subscriber_code: Some(Box::leak(code.to_string().into_boxed_str())),
            ..play("s1", None)
        }
    };
    let right = totp(key, NOW, 60, 6);
    for n in 0..TOTP_FREE_FAILURES {
        assert_eq!(
            s.check_play_at(NOW, &with(&wrong_code(key, NOW, n))),
            Err(SignalError::UnauthorizedAccess)
        );
    }
    // Locked out for 1 s: the right code is refused without being looked at.
    assert_eq!(
        s.check_play_at(NOW + 500, &with(&right)),
        Err(SignalError::UnauthorizedAccess)
    );
    // After the lock the right code works, once.
    assert_eq!(s.check_play_at(NOW + 1_000, &with(&right)), Ok(()));
    assert_eq!(
        s.check_play_at(NOW + 2_000, &with(&right)),
        Err(SignalError::UnauthorizedAccess),
        "replay"
    );
    // The next period's code works.
    let next = totp(key, NOW + 60_000, 60, 6);
    assert_eq!(s.check_play_at(NOW + 60_000, &with(&next)), Ok(()));

    // The lock doubles with each further failure.
    let t = NOW + 120_000;
    for n in 0..TOTP_FREE_FAILURES + 3 {
        let at = t + u64::from(n) * 100_000;
        let _ = s.check_play_at(at, &with(&wrong_code(key, t, n)));
    }
    // 3 failures past the free ones: locked 8 s after the last one.
    let last = t + u64::from(TOTP_FREE_FAILURES + 2) * 100_000;
    let right_then = totp(key, last + 7_000, 60, 6);
    assert_eq!(
        s.check_play_at(last + 7_000, &with(&right_then)),
        Err(SignalError::UnauthorizedAccess)
    );
    let right_later = totp(key, last + 8_000, 60, 6);
    assert_eq!(s.check_play_at(last + 8_000, &with(&right_later)), Ok(()));
}

/// Finding 2, derived keys: any subscriber id is accepted, so the stream has its own failure
/// budget (inventing ids does not give unlimited guesses).
#[test]
fn finding2_derived_key_totp_has_a_per_stream_budget() {
    let store = store_with(AppSettings {
        enable_time_token_for_publish: true,
        time_token_secret_for_publish: Some("pubsecret".into()),
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let ids: Vec<String> = (0..TOTP_FREE_FAILURES_PER_STREAM)
        .map(|i| format!("id{i}"))
        .collect();
    for id in &ids {
        let key = ams_derived_totp_key("pubsecret", id, "s1", "publish");
        let wrong = wrong_code(&key, NOW, 1);
        let req = PublishRequest {
            subscriber_id: Some(id),
            subscriber_code: Some(&wrong),
            ..publish("s1", None)
        };
        assert_eq!(
            s.check_publish_at(NOW, &req),
            Err(SignalError::UnauthorizedAccess)
        );
    }
    let key = ams_derived_totp_key("pubsecret", "fresh", "s1", "publish");
    let right = totp(&key, NOW, 60, 6);
    let req = PublishRequest {
        subscriber_id: Some("fresh"),
        subscriber_code: Some(&right),
        ..publish("s1", None)
    };
    assert_eq!(
        s.check_publish_at(NOW + 10, &req),
        Err(SignalError::UnauthorizedAccess),
        "stream locked"
    );
    assert_eq!(s.check_publish_at(NOW + 1_000, &req), Ok(()));
}

/// Finding 4: a token was used up before signalling's own refusals. Now a check only grants;
/// the token goes when the grant is committed.
#[test]
fn finding4_a_grant_spends_its_token_only_when_committed() {
    let store = store_with(AppSettings {
        play_token_control_enabled: true,
        ..AppSettings::default()
    });
    token(&store, "v", "s1", TokenType::Play, NOW_S + 60);
    let mut s = sec(&store);
    // The viewer is early (signalling refuses with no_stream_exist): the grant is dropped.
    let early = s.grant_play_at(NOW, &play("s1", Some("v"))).unwrap();
    assert_eq!(early.spend_token.as_deref(), Some("v"));
    drop(early);
    assert!(has_token(&store, "v"));
    // The stream is live: the same token works, and is spent.
    let g = s.grant_play_at(NOW, &play("s1", Some("v"))).unwrap();
    assert_eq!(s.commit_at(NOW, g.clone()), Ok(()));
    assert!(!has_token(&store, "v"));
    assert_eq!(
        s.commit_at(NOW, g),
        Err(SignalError::UnauthorizedAccess),
        "a grant cannot be spent twice"
    );
}

/// Finding 5: joinRoom ran no access check.
#[test]
fn finding5_join_room_checks_registered_rooms_and_dates() {
    let store = store_with(AppSettings {
        accept_only_rooms_in_data_store: true,
        ..AppSettings::default()
    });
    let mut s = sec(&store);
    let join = |room| JoinRoomRequest {
        app: APP,
        room,
        stream_id: Some("alice"),
    };
    assert_eq!(
        s.check_join_room_at(NOW, &join("r1")),
        Err(SignalError::RoomNotActiveOrExpired)
    );
    put(
        &store,
        WriteOp::PutBroadcast {
            app: APP.into(),
            broadcast: Box::new(Broadcast {
                stream_id: "r1".into(),
                planned_start_date: NOW_S + 100,
                planned_end_date: NOW_S + 200,
                ..Broadcast::default()
            }),
        },
    );
    assert_eq!(
        s.check_join_room_at(NOW, &join("r1")),
        Err(SignalError::RoomNotActiveOrExpired),
        "before the planned start"
    );
    assert_eq!(s.check_join_room_at(NOW + 150_000, &join("r1")), Ok(()));
    assert_eq!(
        s.check_join_room_at(NOW + 201_000, &join("r1")),
        Err(SignalError::RoomNotActiveOrExpired),
        "after the planned end"
    );
    // Without acceptOnlyRoomsInDataStore an unknown room is open.
    let store = store_with(AppSettings::default());
    assert_eq!(sec(&store).check_join_room_at(NOW, &join("any")), Ok(()));
}

/// Finding 6: an unreadable settings record fails closed.
#[test]
fn finding6_unreadable_settings_fail_closed() {
    let store = store_with(AppSettings::unreadable());
    let mut s = sec(&store);
    assert_eq!(
        s.check_publish_at(NOW, &publish("s1", None)),
        Err(SignalError::DataStoreNotAvailable)
    );
    assert_eq!(
        s.check_play_at(NOW, &play("s1", None)),
        Err(SignalError::DataStoreNotAvailable)
    );
    let join = JoinRoomRequest {
        app: APP,
        room: "r1",
        stream_id: None,
    };
    assert_eq!(
        s.check_join_room_at(NOW, &join),
        Err(SignalError::DataStoreNotAvailable)
    );
    // Writing the settings again (REST) recovers.
    put(
        &store,
        WriteOp::PutSettings {
            app: APP.into(),
            settings: Box::new(AppSettings::default()),
        },
    );
    assert_eq!(s.check_publish_at(NOW, &publish("s1", None)), Ok(()));
}

/// Finding 6: expired tokens were never purged. The policy's timer, driven by `now: Instant`
/// alone (wall time from an anchor), deletes them in bounded batches.
#[test]
// One Instant as the anchor; every later one is derived from it.
#[allow(clippy::disallowed_methods)]
fn finding6_expired_tokens_are_purged_on_the_policy_timer() {
    let store = store_with(AppSettings {
        play_token_control_enabled: true,
        ..AppSettings::default()
    });
    let n = PURGE_MAX_DELETES + 10;
    for i in 0..n {
        token(
            &store,
            &format!("old{i}"),
            "s1",
            TokenType::Play,
            NOW_S + 30,
        );
    }
    token(&store, "fresh", "s1", TokenType::Play, NOW_S + 3600);
    let t0 = Instant::now();
    let mut p: Box<dyn AccessPolicy> =
        Box::new(StreamSecurity::with_anchor(store.clone(), t0, NOW));
    assert_eq!(p.poll_timeout(), Some(t0 + PURGE_INTERVAL));
    // The virtual clock says the tokens expired: refused without any wall-clock read.
    assert_eq!(
        p.check_play(t0 + Duration::from_secs(31), &play("s1", Some("old0")))
            .map(|_| ()),
        Err(SignalError::UnauthorizedAccess)
    );
    assert!(p
        .check_play(t0 + Duration::from_secs(29), &play("s1", Some("old0")))
        .is_ok());
    let count = |s: &SharedStore| s.borrow().data().app(APP).unwrap().tokens.len();
    assert_eq!(count(&store), n + 1);
    p.handle_timeout(t0 + PURGE_INTERVAL);
    assert_eq!(count(&store), n + 1 - PURGE_MAX_DELETES, "bounded per tick");
    assert_eq!(p.poll_timeout(), Some(t0 + 2 * PURGE_INTERVAL));
    p.handle_timeout(t0 + 2 * PURGE_INTERVAL);
    assert_eq!(count(&store), 1);
    assert!(has_token(&store, "fresh"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any sequence of right and wrong TOTP codes from a few subscribers, at any times: only
    /// right codes are accepted, and no time-step is ever accepted twice for a subscriber (no
    /// replay), whatever the lock-outs in between. (The lock-out itself is checked by
    /// `finding2_totp_guessing_is_limited_and_codes_are_not_replayed`.)
    #[test]
    fn totp_never_accepts_a_step_twice(
        ops in proptest::collection::vec((0u8..3, proptest::bool::ANY, 0u64..40_000), 1..120)
    ) {
        let store = store_with(AppSettings {
            enable_time_token_for_play: true,
            ..AppSettings::default()
        });
        let key = b"twenty bytes of key!";
        let subs = ["sa", "sb", "sc"];
        for id in subs {
            put(
                &store,
                WriteOp::PutSubscriber {
                    app: APP.into(),
                    subscriber: subscriber("s1", id, key),
                },
            );
        }
        let mut s = sec(&store);
        let mut now = NOW;
        let mut accepted = std::collections::BTreeSet::new();
        for (who, right, dt) in ops {
            now += dt;
            let who = usize::from(who);
            let code = if right {
                totp(key, now, 60, 6)
            } else {
                wrong_code(key, now, u32::try_from(dt % 1000).unwrap())
            };
            let req = PlayRequest {
                subscriber_id: Some(subs[who]),
                subscriber_code: Some(&code),
                ..play("s1", None)
            };
            if s.check_play_at(now, &req).is_ok() {
                proptest::prop_assert!(right);
                proptest::prop_assert!(accepted.insert((who, now / 60_000)), "step accepted twice");
            }
        }
    }
}
