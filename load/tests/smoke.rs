//! Smoke runs against the real `antenna` binary on loopback: 1 publisher and 2 players for
//! 5 s; one conference room of 3 (everyone publishing and playing the other two) for 4 s.
// A load test measures wall time.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use antenna_load::engine::Target;
use antenna_load::fanout::{self, FanoutConfig, RampConfig};
use antenna_load::media::MediaProfile;
use antenna_load::rooms::{self, RoomsConfig};
use antenna_load::sig::ServerKind;

/// One load run at a time: two servers and two one-thread load engines at once would compete
/// for the cores (a debug build on a busy 2-core machine then misses its send times and the
/// runs measure each other).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

struct Server {
    child: Child,
    ws: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the `antenna` binary in this test's profile and starts it on loopback ports.
fn start_antenna() -> Server {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = !cfg!(debug_assertions);
    let mut build = Command::new(env!("CARGO"));
    // The whole workspace's binaries, not `-p server-mio` alone: with every member selected,
    // dependency features unify as in `cargo test --workspace`, so under the test suite this
    // build finds everything already compiled (alone, str0m and aws-lc were built again).
    build
        .current_dir(&root)
        .args(["build", "-q", "--workspace", "--bins"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("cargo build antenna");
    assert!(status.success(), "building antenna failed");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target_dir
        .join(if release { "release" } else { "debug" })
        .join("antenna");
    let mut child = Command::new(bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--log",
            "warn",
            // Tests run in parallel: no shared on-disk datastore.
            "--memory-store",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start antenna");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    // The listening line comes after any start-up notices (e.g. the admin token of a
    // memory store).
    let line = lines
        .by_ref()
        .take(20)
        .map(|l| l.expect("readable stderr"))
        .find(|l| l.contains("http://"))
        .unwrap_or_default();
    // "antenna listening on http://ADDR, udp ..."
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        // Never leave a server behind.
        let _ = child.kill();
        let _ = child.wait();
        panic!("no address in {line:?}");
    };
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server { child, ws: addr }
}

#[test]
fn one_publisher_two_players_against_antenna() {
    let _one = exclusive();
    let server = start_antenna();
    let cfg = FanoutConfig {
        ramp: RampConfig {
            target: Target {
                kind: ServerKind::Antenna,
                addr: server.ws,
                app: "WebRTCAppEE".into(),
                room: 0,
                peer_ip: None,
                play_addr: None,
            },
            steps: vec![2],
            hold: Duration::from_secs(5),
            settle: Duration::from_millis(500),
            join_rate: 10.0,
            max_inflight: 2,
            join_timeout: Duration::from_secs(20),
            probes_per_step: 1,
            probes_last: false,
            profile: MediaProfile::default(),
            server_pid: Some(server.child.id()),
            loss_limit_pct: 100.0,
            min_delivery_pct: 0.0,
            remeasure_failed_step: false,
            stop_on_failed_joins: false,
            pause_for_joins: None,
        },
        stream: "smoke".into(),
    };
    let reports = fanout::run(&cfg, |r| eprintln!("{}", r.human("antenna"))).expect("run");
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.players_up, 2, "{r:?}");
    assert_eq!(r.failed_joins, 0, "{r:?}");
    assert!(r.counts.received > 0, "{r:?}");
    // Sane accounting: every distinct packet was expected; two players get about the
    // publisher's rate each (generous bounds: this is a smoke test, not a benchmark).
    assert!(r.counts.received <= r.counts.expected, "{r:?}");
    let per_player = r.received_pps / 2.0;
    assert!(
        per_player > 0.5 * r.published_pps && per_player < 1.5 * r.published_pps,
        "{r:?}"
    );
    assert!(r.loss_pct < 5.0, "{r:?}");
    assert!(r.delivery_pct > 50.0 && r.delivery_pct < 110.0, "{r:?}");
    assert_eq!(r.counts.duplicates, 0, "{r:?}");
    // The probe decrypted packets and read their send stamps.
    assert!(r.latency_us.is_some_and(|l| l.3 > 100), "{r:?}");
    assert!(r.server_cpu_pct.is_some() && r.server_rss_kib.is_some());
}

#[test]
fn one_room_of_three_against_antenna() {
    let _one = exclusive();
    let server = start_antenna();
    let cfg = RoomsConfig {
        ramp: RampConfig {
            target: Target {
                kind: ServerKind::Antenna,
                addr: server.ws,
                app: "WebRTCAppEE".into(),
                room: 0,
                peer_ip: None,
                play_addr: None,
            },
            steps: vec![1],
            hold: Duration::from_secs(4),
            settle: Duration::from_millis(500),
            join_rate: 20.0,
            max_inflight: 9,
            join_timeout: Duration::from_secs(20),
            probes_per_step: 1,
            probes_last: false,
            profile: MediaProfile {
                video_bps: 500_000,
                ..MediaProfile::default()
            },
            server_pid: Some(server.child.id()),
            loss_limit_pct: 100.0,
            min_delivery_pct: 0.0,
            remeasure_failed_step: false,
            stop_on_failed_joins: false,
            pause_for_joins: None,
        },
        size: 3,
        first_room: 1,
    };
    let reports = rooms::run(&cfg, |r| eprintln!("{}", r.human("antenna"))).expect("run");
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    let s = &r.step;
    // Every participant publishes and plays the other two.
    assert_eq!(
        (r.rooms, r.participants, r.participants_up),
        (1, 3, 3),
        "{r:?}"
    );
    assert_eq!(r.failed_publishers, 0, "{r:?}");
    assert_eq!((s.target_players, s.players_up), (6, 6), "{r:?}");
    assert_eq!((s.failed_joins, s.silent_players), (0, 0), "{r:?}");
    // Each of the six players got about one publisher's rate.
    assert!(s.counts.received <= s.counts.expected, "{r:?}");
    let per_player = s.received_pps / 6.0;
    assert!(
        per_player > 0.5 * s.published_pps && per_player < 1.5 * s.published_pps,
        "{r:?}"
    );
    assert!(s.loss_pct < 5.0, "{r:?}");
    assert!(s.delivery_pct > 50.0 && s.delivery_pct < 110.0, "{r:?}");
    assert_eq!(s.counts.duplicates, 0, "{r:?}");
    // The probe decrypted the others' packets and read their send stamps.
    assert!(s.latency_us.is_some_and(|l| l.3 > 50), "{r:?}");
}
