use super::*;
use antenna_store::AppSettings;
use antenna_store::{Broadcast, Token, TokenType};

fn tmp(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("antenna-store-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("db.redb")
}

fn sample_ops() -> Vec<WriteOp> {
    vec![
        WriteOp::PutBroadcast {
            app: "LiveApp".into(),
            broadcast: Box::new(Broadcast {
                stream_id: "s1".into(),
                name: Some("one".into()),
                ..Broadcast::default()
            }),
        },
        WriteOp::PutBroadcast {
            app: "LiveApp".into(),
            broadcast: Box::new(Broadcast {
                stream_id: "gone".into(),
                ..Broadcast::default()
            }),
        },
        WriteOp::DeleteBroadcast {
            app: "LiveApp".into(),
            stream_id: "gone".into(),
        },
        WriteOp::PutToken {
            app: "LiveApp".into(),
            token: Token {
                token_id: "tok".into(),
                stream_id: "s1".into(),
                expire_date: 99,
                token_type: TokenType::Publish,
                room_id: Some("r".into()),
            },
        },
        WriteOp::PutSettings {
            app: "LiveApp".into(),
            settings: Box::new(AppSettings {
                time_token_period: 33,
                ..AppSettings::default()
            }),
        },
    ]
}

/// Issue 9, finding 6: an unreadable settings record used to mean "defaults, every check
/// off". It now loads as [`AppSettings::unreadable`] (the policy refuses the app).
#[test]
fn unreadable_settings_record_loads_as_unreadable() {
    let path = tmp("bad-settings");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(SETTINGS).unwrap();
            t.insert(
                "LiveApp",
                br#"{"timeTokenPeriod":"not a number"}"#.as_slice(),
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }
    let s = RedbStore::open(&path).unwrap();
    let settings = s.data().settings("LiveApp");
    assert!(settings.unreadable);
    assert!(!s.data().settings("OtherApp").unreadable);
}

#[test]
fn redb_store_persists_across_reopen() {
    let path = tmp("reopen");
    let expected = {
        let mut s = RedbStore::open(&path).unwrap();
        for op in sample_ops() {
            s.write(op).unwrap();
        }
        s.data().clone()
    };
    let s = RedbStore::open(&path).unwrap();
    assert_eq!(s.data(), &expected);
    assert_eq!(s.data().settings("LiveApp").time_token_period, 33);
    assert!(s.data().broadcast("LiveApp", "gone").is_none());
    assert_eq!(
        s.data().broadcast("LiveApp", "s1").unwrap().name.as_deref(),
        Some("one")
    );
}

#[test]
fn write_behind_persists_after_flush_and_drop() {
    let path = tmp("wb");
    let (ntx, nrx) = mpsc::channel();
    let expected = {
        let notify: Notify = Box::new(move || {
            let _ = ntx.send(());
        });
        let mut s = WriteBehind::open(&path, Some(notify)).unwrap();
        let mut last = WriteSeq(0);
        for op in sample_ops() {
            last = s.write(op).unwrap();
        }
        s.flush().unwrap();
        assert!(s.durable_seq() >= last);
        assert!(nrx.try_recv().is_ok(), "notify hook was called");
        // a write after the flush is committed by drop
        s.write(WriteOp::PutBroadcast {
            app: "Other".into(),
            broadcast: Box::new(Broadcast {
                stream_id: "late".into(),
                ..Broadcast::default()
            }),
        })
        .unwrap();
        s.data().clone()
    };
    let s = WriteBehind::open(&path, None).unwrap();
    assert_eq!(s.data(), &expected);
    assert!(s.data().broadcast("Other", "late").is_some());
}

#[test]
#[allow(clippy::disallowed_methods)] // the test waits for the store thread's retry
fn failed_commits_are_retried_and_the_store_recovers_by_itself() {
    let path = tmp("retry");
    let (ntx, nrx) = mpsc::channel();
    let notify: Notify = Box::new(move || {
        let _ = ntx.send(());
    });
    let mut s = WriteBehind::open(&path, Some(notify)).unwrap();
    let mut ops = sample_ops().into_iter();
    s.write(ops.next().unwrap()).unwrap();
    s.flush().unwrap();
    let durable_before = s.durable_seq();
    s.inject_commit_failures(true);
    // The next write applies to memory; its commit fails; the store is degraded.
    let seq = s.write(ops.next().unwrap()).unwrap();
    assert!(s.flush().is_err());
    let err = s.health().unwrap_err();
    assert!(err.is_degraded(), "{err}");
    assert_eq!(s.durable_seq(), durable_before);
    // Ordinary writes still apply to memory; spending a token is refused.
    let seq2 = s.write(ops.next().unwrap()).unwrap();
    assert!(seq2 > seq);
    let spend = WriteOp::DeleteToken {
        app: "LiveApp".into(),
        token_id: "tok".into(),
    };
    assert_eq!(s.write(spend.clone()).unwrap_err(), err);
    for op in ops {
        s.write(op).unwrap();
    }
    let expected = s.data().clone();
    // The disk works again: a retry (no new write needed) commits everything pending.
    while nrx.try_recv().is_ok() {}
    s.inject_commit_failures(false);
    let deadline = Instant::now() + MAX_RETRY_DELAY * 3;
    while s.health().is_err() {
        assert!(Instant::now() < deadline, "the store did not recover");
        let _ = nrx.recv_timeout(Duration::from_millis(50));
    }
    assert!(s.durable_seq() >= seq2);
    let c = s.counters().unwrap();
    assert!(c.failed_commits >= 1 && c.recoveries == 1, "{c:?}");
    // Every attempt, failed or not, is timed.
    assert_eq!(c.commit_attempts(), c.commits + c.failed_commits, "{c:?}");
    // Security writes are accepted again.
    s.write(spend).unwrap();
    s.flush().unwrap();
    let expected_after = s.data().clone();
    assert_ne!(expected, expected_after);
    drop(s);
    let reopened = WriteBehind::open(&path, None).unwrap();
    assert_eq!(reopened.data(), &expected_after);
}

#[test]
fn commits_and_failed_commits_are_counted_and_timed() {
    let path = tmp("counters");
    let mut s = WriteBehind::open(&path, None).unwrap();
    assert_eq!(s.counters(), Some(StoreCounters::default()));
    let mut ops = sample_ops().into_iter();
    s.write(ops.next().unwrap()).unwrap();
    s.flush().unwrap();
    let c = s.counters().unwrap();
    assert_eq!((c.commits, c.failed_commits, c.recoveries), (1, 0, 0));
    assert_eq!(c.commit_attempts(), 1);
    s.inject_commit_failures(true);
    s.write(ops.next().unwrap()).unwrap();
    assert!(s.flush().is_err());
    let c = s.counters().unwrap();
    assert_eq!(c.commits, 1);
    assert!(c.failed_commits >= 1, "{c:?}");
    assert_eq!(c.commit_attempts(), c.commits + c.failed_commits);
    s.inject_commit_failures(false);
    // The flush tries at once and succeeds: one more commit, one recovery.
    s.flush().unwrap();
    let c = s.counters().unwrap();
    assert_eq!((c.commits, c.recoveries), (2, 1), "{c:?}");
    assert_eq!(c.commit_attempts(), c.commits + c.failed_commits);
    // A memory store has no store thread: no counters.
    assert_eq!(antenna_store::MemStore::new().counters(), None);
}

#[test]
fn a_store_dropped_while_failing_makes_one_last_attempt() {
    let path = tmp("drop-failing");
    let s = WriteBehind::open(&path, None).unwrap();
    let mut s = s;
    s.inject_commit_failures(true);
    s.write(sample_ops().remove(0)).unwrap();
    assert!(s.flush().is_err());
    s.inject_commit_failures(false);
    let expected = s.data().clone();
    drop(s);
    let reopened = WriteBehind::open(&path, None).unwrap();
    assert_eq!(reopened.data(), &expected);
}

#[test]
fn open_failure_is_data_store_not_available() {
    let path = tmp("locked");
    let _held = RedbStore::open(&path).unwrap();
    // The file is locked by the first handle.
    let err = RedbStore::open(&path).unwrap_err();
    assert_eq!(
        proto_core::SignalError::from(err).definition(),
        "data_store_not_available"
    );
    let dir_as_file = std::env::temp_dir();
    assert!(WriteBehind::open(dir_as_file, None).is_err());
}
