//! Durability of the real `antenna` binary's datastore: a REST write is acknowledged only once
//! it is on disk, so SIGKILL right after the acknowledgement loses nothing; settings persist; the
//! TOML seeds settings only on the first start; SIGTERM flushes and closes the store.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{config_file, temp_dir, Server};
use serde_json::json;

const B: &str = "/WebRTCAppEE/rest/v2/broadcasts";

fn start(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--data-dir", dir.to_str().expect("utf-8"), "--log", "info"];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

fn sigkill(mut s: Server) {
    s.signal("KILL");
    assert!(s.wait_exit(Duration::from_secs(10)).is_some(), "not killed");
}

#[test]
fn sigkill_right_after_an_acknowledged_create_loses_nothing() {
    let dir = temp_dir("kill-one");
    let s = start(&dir, &[]);
    let (st, b) = s.rest(
        "POST",
        &format!("{B}/create"),
        Some(r#"{"streamId":"k1","name":"kept"}"#),
    );
    assert_eq!(st, 200, "{b}");
    sigkill(s);
    let s = start(&dir, &[]);
    let (st, b) = s.rest("GET", &format!("{B}/k1"), None);
    assert_eq!((st, b["name"].as_str()), (200, Some("kept")), "{b}");
}

#[test]
fn none_of_1000_acknowledged_writes_is_lost_after_sigkill() {
    let dir = temp_dir("kill-1000");
    let s = start(&dir, &[]);
    let started = Instant::now();
    let mut ids = Vec::with_capacity(1000);
    for i in 0..1000 {
        let (st, b) = s.rest(
            "POST",
            &format!("{B}/create"),
            Some(&json!({"name": format!("n{i}")}).to_string()),
        );
        assert_eq!(st, 200, "write {i}: {b}");
        ids.push(b["streamId"].as_str().expect("streamId").to_string());
    }
    let took = started.elapsed();
    sigkill(s);
    eprintln!(
        "1000 sequential acknowledged creates over HTTP took {:.0} ms ({:.2} ms each), then SIGKILL",
        took.as_secs_f64() * 1000.0,
        took.as_secs_f64() * 1000.0 / 1000.0
    );
    let s = start(&dir, &[]);
    let mut lost = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (st, b) = s.rest("GET", &format!("{B}/{id}"), None);
        if st != 200 || b["name"] != format!("n{i}") {
            lost.push(id.clone());
        }
    }
    assert!(lost.is_empty(), "{} of 1000 lost: {lost:?}", lost.len());
    let (_, n) = s.rest("GET", &format!("{B}/count"), None);
    assert_eq!(n["number"].as_u64(), Some(1000), "{n}");
}

#[test]
fn settings_are_seeded_once_then_the_store_wins() {
    let dir = temp_dir("seed");
    let settings = "/rest/v2/applications/settings/WebRTCAppEE";
    let cfg1 = config_file(
        "seed1",
        "[apps.WebRTCAppEE]\nwebRTCViewerLimit = 3\npublishTokenControlEnabled = true\n",
    );
    let s = start(&dir, &["--config", cfg1.to_str().expect("utf-8")]);
    let (_, v) = s.rest("GET", settings, None);
    assert_eq!(v["webRTCViewerLimit"], 3, "{v}");
    assert_eq!(v["publishTokenControlEnabled"], true, "{v}");
    // A REST change, acknowledged, then SIGKILL.
    let (st, r) = s.rest("PUT", settings, Some(r#"{"webRTCViewerLimit": 9}"#));
    assert_eq!(st, 200, "{r}");
    sigkill(s);
    // Restart with a file that says otherwise: the stored settings win.
    let cfg2 = config_file("seed2", "[apps.WebRTCAppEE]\nwebRTCViewerLimit = 4\n");
    let s = start(&dir, &["--config", cfg2.to_str().expect("utf-8")]);
    let (_, v) = s.rest("GET", settings, None);
    assert_eq!(v["webRTCViewerLimit"], 9, "{v}");
    assert_eq!(v["publishTokenControlEnabled"], true, "{v}");
    // The security setting applies after the restart too.
    let mut c = s.client();
    c.send(&json!({"command": "publish", "streamId": "x1", "video": true, "audio": true}));
    c.recv_error("unauthorized_access");
}

#[test]
fn sigterm_flushes_and_closes_the_store() {
    let dir = temp_dir("term");
    let mut s = start(&dir, &[]);
    for i in 0..50 {
        let (st, _) = s.rest(
            "POST",
            &format!("{B}/create"),
            Some(&json!({"streamId": format!("t{i}")}).to_string()),
        );
        assert_eq!(st, 200);
    }
    let mut c = s.client();
    c.ping_pong();
    s.signal("TERM");
    c.recv_notification("server_will_stop");
    let status = s.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(
        s.log()
            .iter()
            .any(|l| l.contains("datastore flushed and closed")),
        "{}",
        s.log().join("\n")
    );
    drop(s);
    let s = start(&dir, &[]);
    let (_, n) = s.rest("GET", &format!("{B}/count"), None);
    assert_eq!(n["number"].as_u64(), Some(50), "{n}");
}

#[test]
fn a_second_server_on_the_same_data_dir_reports_the_store_unavailable() {
    let dir = temp_dir("locked");
    let first = start(&dir, &[]);
    let second = start(&dir, &[]);
    assert!(
        second.wait_log("DATASTORE NOT AVAILABLE"),
        "{}",
        second.log().join("\n")
    );
    let mut c = second.client();
    c.send(&json!({"command": "publish", "streamId": "x", "video": true, "audio": true}));
    c.recv_error("data_store_not_available");
    // The first one is unaffected.
    let (st, _) = first.rest("GET", &format!("{B}/count"), None);
    assert_eq!(st, 200);
}

#[test]
fn concurrent_acknowledged_writes_survive_sigkill_too() {
    // 8 clients x 125 creates at once: the store commits them in groups.
    let dir = temp_dir("kill-concurrent");
    let s = start(&dir, &[]);
    let http = s.http;
    let auth = format!("Bearer {}", s.admin_token.clone().expect("admin token"));
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let auth = auth.clone();
            std::thread::spawn(move || {
                (0..125)
                    .map(|i| {
                        let id = format!("w{w}x{i}");
                        let (st, b) = common::http_json(
                            http,
                            "POST",
                            &format!("{B}/create"),
                            Some(&auth),
                            Some(&json!({"streamId": id}).to_string()),
                        );
                        assert_eq!(st, 200, "{b}");
                        id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let took = started.elapsed();
    sigkill(s);
    eprintln!(
        "1000 acknowledged creates from 8 concurrent clients took {:.0} ms, then SIGKILL",
        took.as_secs_f64() * 1000.0
    );
    let s = start(&dir, &[]);
    let (_, n) = s.rest("GET", &format!("{B}/count"), None);
    assert_eq!(n["number"].as_u64(), Some(1000), "{n}");
    for id in ids.iter().step_by(37) {
        let (st, _) = s.rest("GET", &format!("{B}/{id}"), None);
        assert_eq!(st, 200, "{id} lost");
    }
}

/// Writes a filler file into `dir` until the file system is full; returns its size.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(_) => break,
        }
    }
    let _ = f.sync_all();
    written
}

#[test]
fn a_failing_store_recovers_by_itself_and_media_keeps_going() {
    // Finding 13. The data directory is a 4 MiB tmpfs mounted in a private mount namespace
    // (needs root and unshare(1)); the test reaches it through /proc/<pid>/root, fills it with
    // a file until commits fail with ENOSPC, then deletes the file.
    let dir = temp_dir("full");
    let mount = dir.join("fs");
    std::fs::create_dir_all(&mount).expect("mkdir");
    let script = format!(
        "mount -t tmpfs -o size=4m tmpfs '{}' && exec \"$0\" \"$@\"",
        mount.display()
    );
    let data = mount.join("data");
    let cfg = config_file(
        "full-cfg",
        "[apps.WebRTCAppEE]\n[apps.Tok]\npublishTokenControlEnabled = true\n",
    );
    let s = Server::start_wrapped(
        &["unshare", "-m", "sh", "-c", &script],
        &[
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
            "--log",
            "info",
        ],
    );
    // While healthy: one-time publish tokens for the Tok application.
    let token = |id: &str| {
        let (st, t) = s.rest(
            "GET",
            &format!(
                "/Tok/rest/v2/broadcasts/{id}/token?expireDate={}&type=publish",
                common::unix_s(600)
            ),
            None,
        );
        assert_eq!(st, 200, "{t}");
        t["tokenId"].as_str().expect("tokenId").to_string()
    };
    let (t_down, t_up) = (token("down1"), token("up1"));
    // A publisher whose media flows through the outage.
    let (mut publisher, mut pub_ws) =
        common::media::publish_live(&s, "WebRTCAppEE", "live", json!({}));

    let filler = Path::new(&format!("/proc/{}/root", s.pid()))
        .join(
            data.parent()
                .expect("mount")
                .strip_prefix("/")
                .expect("absolute"),
        )
        .join("filler");
    let filled = fill(&filler);
    // Commits fail now: a write is refused with 503 once the disk says no.
    let big = json!({"description": "x".repeat(100_000)}).to_string();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (st, r) = s.rest("POST", &format!("{B}/create"), Some(&big));
        statuses.push(st);
        if st != 200 {
            assert_eq!(st, 503, "{r}");
            assert!(
                r["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("data_store_not_available"),
                "{r}"
            );
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&503),
        "the store never failed ({filled} bytes filled): {statuses:?}"
    );
    assert!(
        s.wait_log("DATASTORE NOT AVAILABLE"),
        "{}",
        s.log().join("\n")
    );
    let failed_at = Instant::now();

    // Meanwhile: the REST API answers 503 (on the head, reads too) ...
    let (st, _) = s.rest("GET", &format!("{B}/count"), None);
    assert_eq!(st, 503);
    // ... media keeps flowing: a new player gets frames from the live publisher, a new
    // publisher starts ...
    let frames =
        common::media::play_frames(&s, "WebRTCAppEE", "live", (&mut publisher, &mut pub_ws), 10);
    assert!(
        frames >= 10,
        "player got {frames} frames while the store was down"
    );
    let mut c = s.client();
    c.send(&json!({"command": "publish", "streamId": "during", "video": true, "audio": true}));
    c.recv_command("start");
    // ... and only spending a one-time token is refused (it must be durable).
    let mut c = s.ws("/Tok/websocket");
    c.send(&json!({"command": "publish", "streamId": "down1", "token": t_down, "video": true, "audio": true}));
    c.recv_error("data_store_not_available");

    // The disk works again: the store recovers by itself, without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let freed_at = Instant::now();
    assert!(
        s.wait_log_for("DATASTORE RECOVERED", Duration::from_secs(10)),
        "{}",
        s.log().join("\n")
    );
    let recovered_in = freed_at.elapsed();
    let (st, n) = s.rest("GET", &format!("{B}/count"), None);
    assert_eq!(st, 200, "{n}");
    // Every create that was accepted into memory was committed by the retry (the one answered
    // 503 too: it was kept in memory and written once the disk worked again).
    assert_eq!(n["number"].as_u64(), Some(statuses.len() as u64), "{n}");
    let mut c = s.ws("/Tok/websocket");
    c.send(&json!({"command": "publish", "streamId": "up1", "token": t_up, "video": true, "audio": true}));
    c.recv_command("start");
    let (st, _) = s.rest(
        "POST",
        &format!("{B}/create"),
        Some(r#"{"streamId":"after"}"#),
    );
    assert_eq!(st, 200);
    eprintln!(
        "store down for {:.1} s ({filled} filler bytes); {frames} video frames played meanwhile; \
         recovered {:.0} ms after the disk was freed",
        failed_at.elapsed().as_secs_f64(),
        recovered_in.as_secs_f64() * 1000.0
    );
}
