//! Measures datastore write latency and prints the figures quoted in the crate docs.
//!
//! Usage: `store-bench [dir]` (default: the system temp dir). Run with `--release`.
//! - `RedbStore` synchronous commit: latency of one `write` (one durable redb transaction).
//! - `WriteBehind`: cost of `write` on the caller (event-loop) thread, the latency from `write`
//!   to durable for isolated writes, and the throughput of a burst (group commit).
// A benchmark reads the clock; the library never does.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use antenna_persist::{Notify, RedbStore, WriteBehind};
use antenna_store::{Broadcast, Store, WriteOp};

fn op(i: usize) -> WriteOp {
    WriteOp::PutBroadcast {
        app: "BenchApp".into(),
        broadcast: Box::new(Broadcast {
            stream_id: format!("stream{i}"),
            name: Some(format!("bench stream {i}")),
            ..Broadcast::default()
        }),
    }
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pct = |p: f64| {
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or_default()
    };
    let mean = v.iter().sum::<Duration>() / u32::try_from(v.len().max(1)).unwrap_or(1);
    println!(
        "{name:<44} n={:<6} mean={:>9.1?} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        v.len(),
        mean,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!(
        "antenna-store-bench-{}-{name}.redb",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!("store-bench in {}", dir.display());

    // 1. Synchronous durable commit per write.
    let path = fresh(&dir, "sync");
    let mut s = RedbStore::open(&path)?;
    let mut lat = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        s.write(op(i))?;
        lat.push(t.elapsed());
    }
    summary("RedbStore::write (sync durable commit)", lat);
    drop(s);
    let _ = std::fs::remove_file(&path);

    // 2. WriteBehind: isolated writes, write -> durable.
    let path = fresh(&dir, "wb");
    let (tx, rx) = mpsc::channel();
    let notify: Notify = Box::new(move || {
        let _ = tx.send(());
    });
    let mut s = WriteBehind::open(&path, Some(notify))?;
    let mut call = Vec::new();
    let mut to_durable = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        let seq = s.write(op(i))?;
        call.push(t.elapsed());
        while s.durable_seq() < seq {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
        to_durable.push(t.elapsed());
    }
    summary("WriteBehind::write (event-loop cost)", call);
    summary("WriteBehind write -> durable (isolated)", to_durable);

    // 3. WriteBehind burst: group commit.
    let n = 10_000;
    let mut call = Vec::with_capacity(n);
    let t0 = Instant::now();
    let mut last = None;
    for i in 0..n {
        let t = Instant::now();
        last = Some(s.write(op(1000 + i))?);
        call.push(t.elapsed());
    }
    let enqueued = t0.elapsed();
    let mut commits = 0;
    while let Some(seq) = last {
        if s.durable_seq() >= seq {
            break;
        }
        if rx.recv_timeout(Duration::from_secs(5)).is_ok() {
            commits += 1;
        }
    }
    let total = t0.elapsed();
    summary("WriteBehind::write during a 10k burst", call);
    println!(
        "WriteBehind burst of {n}: enqueued in {enqueued:.1?}, all durable after {total:.1?} \
         ({:.0} writes/s, ~{commits} commits)",
        n as f64 / total.as_secs_f64()
    );
    drop(s);
    let _ = std::fs::remove_file(&path);
    Ok(())
}
