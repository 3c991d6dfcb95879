//! Helper for the crash-durability test (`tests/crash.rs`): writes records `r1`..`r1000` to a
//! redb store and prints `ack N` once record N is durable; then waits to be killed.
//!
//! Usage: `store-crash-child <db path> <sync|wb-each|wb-burst>`
//! - `sync`: [`RedbStore`], each write commits before it returns;
//! - `wb-each`: [`WriteBehind`], each write is acknowledged before the next is made;
//! - `wb-burst`: [`WriteBehind`], all writes queued at once, acknowledged as commits land.

use std::sync::mpsc;
use std::time::Duration;

use antenna_persist::{Notify, RedbStore, WriteBehind};
use antenna_store::{Broadcast, Store, WriteOp, WriteSeq};

const RECORDS: u64 = 1000;

fn op(i: u64) -> WriteOp {
    WriteOp::PutBroadcast {
        app: "CrashApp".into(),
        broadcast: Box::new(Broadcast {
            stream_id: format!("r{i}"),
            name: Some(format!("record number {i}")),
            ..Broadcast::default()
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(mode)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: store-crash-child <db path> <sync|wb-each|wb-burst>");
        std::process::exit(2);
    };
    if let Err(e) = run(path, mode) {
        eprintln!("store-crash-child: {e}");
        std::process::exit(1);
    }
    println!("done");
    // Wait to be killed: the parent decides when.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn run(path: &str, mode: &str) -> Result<(), antenna_store::StoreError> {
    match mode {
        "sync" => {
            let mut store = RedbStore::open(path)?;
            for i in 1..=RECORDS {
                store.write(op(i))?;
                println!("ack {i}");
            }
        }
        "wb-each" | "wb-burst" => {
            let (tx, rx) = mpsc::channel();
            let notify: Notify = Box::new(move || {
                let _ = tx.send(());
            });
            let mut store = WriteBehind::open(path, Some(notify))?;
            let mut acked = 0u64;
            let ack_durable = |store: &WriteBehind, acked: &mut u64| {
                let WriteSeq(d) = store.durable_seq();
                while *acked < d {
                    *acked += 1;
                    println!("ack {acked}");
                }
            };
            for i in 1..=RECORDS {
                let seq = store.write(op(i))?;
                if mode == "wb-each" {
                    while store.durable_seq() < seq {
                        store.health()?;
                        let _ = rx.recv_timeout(Duration::from_secs(1));
                    }
                }
                ack_durable(&store, &mut acked);
            }
            while acked < RECORDS {
                store.health()?;
                let _ = rx.recv_timeout(Duration::from_secs(1));
                ack_durable(&store, &mut acked);
            }
        }
        other => {
            return Err(antenna_store::StoreError::Unavailable(format!(
                "unknown mode {other}"
            )))
        }
    }
    Ok(())
}
