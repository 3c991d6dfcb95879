//! Crash durability: a child process writes 1000 records, acknowledging each once durable, and
//! is SIGKILLed mid-way; reopening the file finds every acknowledged record.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use antenna_persist::RedbStore;
use antenna_store::Store;

fn crash_after(mode: &str, kill_at: u64) -> (u64, usize) {
    let dir = std::env::temp_dir().join(format!("antenna-crash-{}-{mode}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crash.redb");
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-crash-child"))
        .arg(&path)
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ack ") {
            let n: u64 = n.parse().unwrap();
            assert_eq!(n, acked + 1, "acks are in order");
            acked = n;
            if acked >= kill_at {
                break;
            }
        } else if line == "done" {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "child was SIGKILLed: {status:?}");
    let store = RedbStore::open(&path).unwrap();
    let data = store.data();
    for i in 1..=acked {
        let b = data
            .broadcast("CrashApp", &format!("r{i}"))
            .unwrap_or_else(|| panic!("acknowledged record r{i} lost ({mode}, {acked} acked)"));
        assert_eq!(
            b.name.as_deref(),
            Some(format!("record number {i}").as_str())
        );
    }
    let found = data.broadcasts("CrashApp").count();
    assert!(found as u64 >= acked);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    (acked, found)
}

#[test]
fn crash_durability_sync_commits() {
    let (acked, found) = crash_after("sync", 500);
    assert_eq!(acked, 500, "killed mid-way");
    assert!(found < 1000, "the kill landed before the end ({found})");
}

#[test]
fn crash_durability_write_behind_each_acknowledged() {
    let (acked, found) = crash_after("wb-each", 500);
    assert_eq!(acked, 500, "killed mid-way");
    assert!(found < 1000, "the kill landed before the end ({found})");
}

#[test]
fn crash_durability_write_behind_burst() {
    // Group commit: acknowledgements arrive in batches; kill after the first batch.
    let (acked, found) = crash_after("wb-burst", 1);
    assert!(acked >= 1);
    assert!(found as u64 >= acked);
}
