//! Metrics, health and webhooks of the real `antenna` binary: `/metrics` parsed by Python's
//! OpenMetrics parser (`prometheus_client`, installed by `test.sh`) with values that move when a
//! stream starts and stops; `/readyz` answering 503 from a SIGTERM until the process exits; a
//! webhook receiver recording AMS's calls for a publish/play/stop sequence, in order; and a
//! receiver that never answers changing nothing for the media or the loop; the store's commit
//! histogram and WHIP refusals in `/metrics`; a hook host outside `--webhook-allow-host` never
//! called; webhook retries as AMS's `webhookRetryCount`/`webhookRetryDelay` say, against a
//! receiver that fails the first calls, and calls still queued at a graceful shutdown sent
//! before the process exits. (Over 600 lines: every webhook test shares the receiver here.)
#![allow(clippy::disallowed_methods)] // test timeouts read the clock

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::media::{play_frames, publish_live};
use common::{http_get, http_raw, temp_dir, Server};
use serde_json::json;

const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value, family.type])
print(json.dumps(out))
"#;

/// `(name, labels)` -> value, as the parser read them.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn python() -> &'static str {
    // Debian's python3-prometheus-client lives in the system interpreter's path.
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// `GET /metrics` with the admin token, parsed by the Python OpenMetrics parser.
fn scrape(s: &Server) -> Samples {
    let token = s.admin_token.clone().expect("admin token");
    let (status, text) = http_raw(
        s.http,
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
            s.http
        )
        .as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("Content-Type: application/openmetrics-text"),
        "{text}"
    );
    let body = common::body(&text);
    let mut child = Command::new(python())
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<(String, BTreeMap<String, String>, f64, String)> =
        serde_json::from_slice(&out.stdout).expect("parser output");
    parsed
        .into_iter()
        .map(|(name, labels, value, _)| ((name, labels), value))
        .collect()
}

fn get(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    *m.get(&(name.to_string(), labels))
        .unwrap_or_else(|| panic!("no sample {name} in {:?}", m.keys().collect::<Vec<_>>()))
}

/// Scrapes until `ok` holds (the loop updates counters as events arrive) or 10 s pass.
fn scrape_until(s: &Server, ok: impl Fn(&Samples) -> bool) -> Samples {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(s);
        if ok(&m) || Instant::now() > end {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_are_gated_parse_and_move_with_a_stream() {
    let s = Server::start();
    // Like REST: a credential is needed, even on loopback.
    let (status, _) = http_get(s.http, "/metrics");
    assert_eq!(status, 401);
    let m = scrape(&s);
    assert_eq!(get(&m, "antenna_streams", &[]), 0.0);
    assert_eq!(get(&m, "antenna_sessions", &[("role", "publish")]), 0.0);
    assert_eq!(get(&m, "antenna_cpu_limit_percent", &[]), 75.0);
    assert_eq!(get(&m, "antenna_store_healthy", &[]), 1.0);
    assert_eq!(get(&m, "antenna_shutting_down", &[]), 0.0);
    assert_eq!(
        get(
            &m,
            "antenna_rest_refusals_total",
            &[("reason", "credential")]
        ),
        1.0,
        "the refused scrape is counted"
    );
    assert!(get(&m, "antenna_loop_iteration_seconds_count", &[]) > 0.0);

    let (mut pb, mut pws) = publish_live(&s, "WebRTCAppEE", "m1", json!({}));
    let frames = play_frames(&s, "WebRTCAppEE", "m1", (&mut pb, &mut pws), 10);
    assert!(frames >= 10, "{frames} frames");
    let m = scrape(&s);
    assert_eq!(get(&m, "antenna_streams", &[]), 1.0);
    assert_eq!(get(&m, "antenna_streams_live", &[]), 1.0);
    assert_eq!(get(&m, "antenna_sessions", &[("role", "publish")]), 1.0);
    // (play_frames has dropped its player by now.)
    assert!(get(&m, "antenna_media_sessions", &[]) >= 1.0);
    assert!(get(&m, "antenna_websockets", &[]) >= 1.0);
    assert!(get(&m, "antenna_forwarded_packets_total", &[]) > 0.0);
    assert!(get(&m, "antenna_udp_bytes_received_total", &[]) > 0.0);
    assert!(get(&m, "antenna_udp_packets_sent_total", &[]) > 0.0);
    assert!(get(&m, "antenna_keyframe_requests_total", &[]) >= 1.0);

    // A play session counts from its `play` command on.
    let mut viewer = s.client();
    viewer.send(&json!({"command": "play", "streamId": "m1"}));
    viewer.recv_command("takeConfiguration");
    let m = scrape(&s);
    assert_eq!(get(&m, "antenna_sessions", &[("role", "play")]), 1.0);
    drop(viewer);
    // A refusal by error definition: play of a stream that does not exist.
    let mut c = s.client();
    c.send(&json!({"command": "play", "streamId": "nothing-here"}));
    c.recv_error("no_stream_exist");
    // The publisher stops: the gauges fall back.
    pws.send(&json!({"command": "stop", "streamId": "m1"}));
    let m = scrape_until(&s, |m| get(m, "antenna_streams", &[]) == 0.0);
    assert_eq!(get(&m, "antenna_streams", &[]), 0.0);
    assert_eq!(get(&m, "antenna_sessions", &[("role", "publish")]), 0.0);
    assert_eq!(
        get(
            &m,
            "antenna_signalling_refusals_total",
            &[("definition", "no_stream_exist")]
        ),
        1.0
    );
}

#[test]
fn store_commits_show_in_metrics_with_a_database_file() {
    let dir = temp_dir("obs-store");
    let s = Server::start_with(&["--data-dir", dir.to_str().expect("utf-8")]);
    let before = scrape(&s);
    let commits = get(&before, "antenna_store_commit_seconds_count", &[]);
    assert_eq!(get(&before, "antenna_store_failed_commits_total", &[]), 0.0);
    // A REST create is acknowledged once durable: its commit is timed before the answer.
    let (status, body) = s.rest(
        "POST",
        "/WebRTCAppEE/rest/v2/broadcasts/create",
        Some(r#"{"streamId":"counted"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let after = scrape(&s);
    assert!(
        get(&after, "antenna_store_commit_seconds_count", &[]) > commits,
        "the commit histogram did not move"
    );
    assert!(get(&after, "antenna_store_commits_total", &[]) >= 1.0);
    assert!(
        get(
            &after,
            "antenna_store_commit_seconds_bucket",
            &[("le", "+Inf")]
        ) >= 1.0
    );
    assert!(get(&after, "antenna_store_commit_seconds_sum", &[]) > 0.0);
    assert_eq!(
        get(&after, "antenna_whip_resources", &[("kind", "whip")]),
        0.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readyz_turns_503_at_sigterm_before_the_process_exits() {
    let mut s = Server::start_with(&["--shutdown-drain-ms", "3000"]);
    let (status, body) = http_get(s.http, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(s.http, "/readyz");
    assert_eq!(status, 200, "{body}");
    // Health needs no credential (load balancers), metrics do.
    let mut ws = s.client();
    s.signal("TERM");
    let end = Instant::now() + Duration::from_secs(2);
    let mut saw = None;
    while Instant::now() < end {
        let (status, body) = http_get(s.http, "/readyz");
        if status == 503 {
            saw = Some(body);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = saw.expect("readyz never answered 503 after SIGTERM");
    assert!(body.contains("shutting down"), "{body}");
    assert!(s.is_running(), "still running while draining");
    assert_eq!(http_get(s.http, "/healthz").0, 200, "alive while draining");
    ws.ping_pong();
    assert!(s.wait_log("readyz answers 503"));
    // Then the graceful shutdown: the WebSocket is told, the process exits.
    ws.recv_notification("server_will_stop");
    let exit = s.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(exit.success(), "{exit:?}");
}

/// One recorded webhook call: method, path, content type, the decoded form or JSON fields,
/// and when it arrived.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    content_type: String,
    fields: Vec<(String, String)>,
    at: Instant,
}

/// The fields of a form or JSON body (JSON strings as they are, other values as JSON text).
fn decode_fields(content_type: &str, body: &str) -> Vec<(String, String)> {
    if content_type == "application/json" {
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON hook body");
        return v
            .as_object()
            .expect("a JSON object")
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), v)
            })
            .collect();
    }
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (form_decode(k), form_decode(v)))
        .collect()
}

impl Call {
    fn get(&self, k: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

/// A webhook receiver: records each call; `answer` decides the response (`None`: never answer).
fn receiver(answer: Option<&'static str>) -> (SocketAddr, Arc<Mutex<Vec<Call>>>) {
    receiver_with(move |_| answer)
}

/// A webhook receiver whose answer to the n-th call (from 0) is `answer(n)`.
fn receiver_with(
    answer: impl Fn(usize) -> Option<&'static str> + Send + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<Call>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&calls);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let call = loop {
                let Ok(n) = conn.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() < len {
                    continue;
                }
                let mut first = head.lines().next().unwrap_or("").split(' ');
                let content_type = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-type")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                break Some(Call {
                    method: first.next().unwrap_or("").to_string(),
                    path: first.next().unwrap_or("").to_string(),
                    fields: decode_fields(&content_type, body),
                    content_type,
                    at: Instant::now(),
                });
            };
            if let Some(call) = call {
                sink.lock().expect("lock").push(call);
            }
            match answer(n) {
                Some(a) => {
                    let _ = conn.write_all(a.as_bytes());
                }
                // Never answers: keeps the connection open.
                None => held.push(conn),
            }
        }
    });
    (addr, calls)
}

fn wait_calls(calls: &Arc<Mutex<Vec<Call>>>, n: usize) -> Vec<Call> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let c = calls.lock().expect("lock").clone();
        if c.len() >= n || Instant::now() > end {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[test]
fn webhooks_record_a_publish_play_stop_sequence_in_order() {
    let (addr, calls) = receiver(Some(OK));
    let s = Server::start();
    let settings = "/rest/v2/applications/settings/WebRTCAppEE";
    let url = format!("http://{addr}/hook?x=1");
    // Forms, as AMS before 2.10 sent them (JSON is the default now: the other tests).
    let (st, r) = s.rest(
        "PUT",
        settings,
        Some(
            &json!({"listenerHookURL": url,
                    "webhookContentType": "application/x-www-form-urlencoded"})
            .to_string(),
        ),
    );
    assert_eq!(st, 200, "{r}");
    let (mut pb, mut pws) = publish_live(
        &s,
        "WebRTCAppEE",
        "h1",
        json!({"streamName": "my cam", "subscriberId": "pub1"}),
    );
    let frames = play_frames(&s, "WebRTCAppEE", "h1", (&mut pb, &mut pws), 5);
    assert!(frames >= 5);
    // play_frames drops its player: playStopped. Then the publisher stops.
    wait_calls(&calls, 3);
    pws.send(&json!({"command": "stop", "streamId": "h1"}));
    let got = wait_calls(&calls, 4);
    let actions: Vec<&str> = got.iter().filter_map(|c| c.get("action")).collect();
    assert_eq!(
        actions,
        [
            "liveStreamStarted",
            "playStarted",
            "playStopped",
            "liveStreamEnded"
        ],
        "{got:#?}"
    );
    for c in &got {
        assert_eq!(c.method, "POST");
        assert_eq!(c.path, "/hook?x=1");
        assert_eq!(c.content_type, "application/x-www-form-urlencoded");
        assert_eq!(c.get("id"), Some("h1"), "{c:?}");
        assert_eq!(c.get("app"), Some("WebRTCAppEE"), "{c:?}");
        assert!(
            c.get("timestamp").is_some_and(|t| t.parse::<u64>().is_ok()),
            "{c:?}"
        );
    }
    assert_eq!(got[0].get("streamName"), Some("my cam"));
    assert_eq!(got[0].get("subscriberId"), Some("pub1"));
    assert_eq!(got[3].get("streamName"), Some("my cam"));
    let m = scrape(&s);
    assert_eq!(get(&m, "antenna_webhooks_delivered_total", &[]), 4.0);
}

#[test]
fn a_broadcast_hook_wins_and_subtracks_of_a_room_are_reported() {
    let (app_addr, app_calls) = receiver(Some(OK));
    let (b_addr, b_calls) = receiver(Some(OK));
    let s = Server::start();
    let settings = "/rest/v2/applications/settings/WebRTCAppEE";
    let (st, _) = s.rest(
        "PUT",
        settings,
        Some(&json!({"listenerHookURL": format!("http://{app_addr}/app")}).to_string()),
    );
    assert_eq!(st, 200);
    let (st, r) = s.rest(
        "POST",
        "/WebRTCAppEE/rest/v2/broadcasts/create",
        Some(
            &json!({"streamId": "b1", "name": "stored name",
                "listenerHookURL": format!("http://{b_addr}/mine")})
            .to_string(),
        ),
    );
    assert_eq!(st, 200, "{r}");
    let (_pb, mut pws) = publish_live(&s, "WebRTCAppEE", "b1", json!({"mainTrack": "room7"}));
    pws.send(&json!({"command": "stop", "streamId": "b1"}));
    let got = wait_calls(&b_calls, 4);
    let actions: Vec<&str> = got.iter().filter_map(|c| c.get("action")).collect();
    assert_eq!(
        actions,
        [
            "liveStreamStarted",
            "subtrackAddedInTheMainTrack",
            "liveStreamEnded",
            "subtrackLeftTheMainTrack"
        ],
        "{got:#?}"
    );
    assert_eq!(got[0].path, "/mine");
    assert_eq!(got[0].get("streamName"), Some("stored name"));
    assert_eq!(got[0].get("mainTrackId"), Some("room7"));
    assert_eq!(got[0].get("roomId"), Some("room7"));
    assert!(
        app_calls.lock().expect("lock").is_empty(),
        "the broadcast's hook replaces the application's"
    );
}

#[test]
fn a_receiver_that_never_answers_changes_nothing_for_media() {
    let (addr, calls) = receiver(None);
    let s = Server::start();
    let settings = "/rest/v2/applications/settings/WebRTCAppEE";
    let (st, _) = s.rest(
        "PUT",
        settings,
        Some(&json!({"listenerHookURL": format!("http://{addr}/slow")}).to_string()),
    );
    assert_eq!(st, 200);
    // Several streams start and stop while the receiver holds every call.
    for i in 0..3 {
        let id = format!("slow{i}");
        let (mut pb, mut pws) = publish_live(&s, "WebRTCAppEE", &id, json!({}));
        let frames = play_frames(&s, "WebRTCAppEE", &id, (&mut pb, &mut pws), 10);
        assert!(frames >= 10, "{id}: {frames} frames");
        let mut c = s.client();
        let t = Instant::now();
        c.ping_pong();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    assert!(!wait_calls(&calls, 1).is_empty(), "the receiver was called");
    let m = scrape(&s);
    // A call made on the loop would hold it for the whole 2 s timeout of the silent receiver:
    // no loop turn took even 1.3 s (every observation is in the buckets up to 1.31 s).
    let count = get(&m, "antenna_loop_iteration_seconds_count", &[]);
    let under = m
        .iter()
        .filter(|((n, l), _)| {
            n == "antenna_loop_iteration_seconds_bucket"
                && l.get("le")
                    .is_some_and(|le| le.parse::<f64>().is_ok_and(|v| v > 1.3 && v < 1.4))
        })
        .map(|(_, v)| *v)
        .next()
        .expect("a bucket at 1.31 s");
    assert_eq!(under, count, "a loop turn took 1.3 s or more");
    assert!(get(&m, "antenna_webhooks_queued_total", &[]) >= 1.0);
    assert_eq!(get(&m, "antenna_webhooks_delivered_total", &[]), 0.0);
}

#[test]
fn hooks_to_hosts_outside_the_allow_list_are_dropped_and_counted() {
    let (ok_addr, ok_calls) = receiver(Some(OK));
    let (other_addr, other_calls) = receiver(Some(OK));
    let allowed = ok_addr.to_string();
    let s = Server::start_with(&["--webhook-allow-host", &allowed]);
    let (st, _) = s.rest(
        "PUT",
        "/rest/v2/applications/settings/WebRTCAppEE",
        Some(&json!({"listenerHookURL": format!("http://{ok_addr}/app")}).to_string()),
    );
    assert_eq!(st, 200);
    // A broadcast whose hook (set through REST) points elsewhere: its calls are refused.
    let (st, r) = s.rest(
        "POST",
        "/WebRTCAppEE/rest/v2/broadcasts/create",
        Some(
            &json!({"streamId": "elsewhere", "listenerHookURL": format!("http://{other_addr}/x")})
                .to_string(),
        ),
    );
    assert_eq!(st, 200, "{r}");
    let (_pb, mut pws) = publish_live(&s, "WebRTCAppEE", "elsewhere", json!({}));
    pws.send(&json!({"command": "stop", "streamId": "elsewhere"}));
    // Then a stream without a record: the application's (allowed) hook is called. Calls pass
    // the sender in order, so once this one arrived the refused ones were counted.
    let (_pb2, _pws2) = publish_live(&s, "WebRTCAppEE", "here", json!({}));
    let got = wait_calls(&ok_calls, 1);
    assert_eq!(got[0].get("id"), Some("here"), "{got:#?}");
    assert_eq!(got[0].get("action"), Some("liveStreamStarted"));
    let m = scrape(&s);
    assert!(
        get(
            &m,
            "antenna_webhooks_dropped_total",
            &[("reason", "bad_url")]
        ) >= 1.0
    );
    assert!(
        other_calls.lock().expect("lock").is_empty(),
        "a host outside the allow-list was called"
    );
    assert!(s.wait_log("host not in the webhook allow-list"));
}

const FAIL: &str =
    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[test]
fn webhooks_are_retried_as_the_ams_settings_say() {
    // Fails the first two calls: AMS's webhookRetryCount 2 gets the third one through.
    let (addr, calls) = receiver_with(|n| Some(if n < 2 { FAIL } else { OK }));
    let s = Server::start();
    let settings = "/rest/v2/applications/settings/WebRTCAppEE";
    let body = json!({"listenerHookURL": format!("http://{addr}/retry"),
                      "webhookRetryCount": 2, "webhookRetryDelay": 300});
    assert_eq!(s.rest("PUT", settings, Some(&body.to_string())).0, 200);
    let (_pb, _pws) = publish_live(&s, "WebRTCAppEE", "r1", json!({}));
    let got = wait_calls(&calls, 3);
    assert_eq!(got.len(), 3, "{got:#?}");
    for c in &got {
        assert_eq!(c.get("action"), Some("liveStreamStarted"));
        assert_eq!(c.get("id"), Some("r1"));
        assert_eq!(c.content_type, "application/json", "AMS's default");
    }
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(280),
            "retry after the delay: {gap:?}"
        );
    }
    let m = scrape(&s);
    assert_eq!(get(&m, "antenna_webhooks_delivered_total", &[]), 1.0);

    // With AMS's default (no retry) a failed call is not tried again.
    let (addr2, calls2) = receiver_with(|_| Some(FAIL));
    let body = json!({"listenerHookURL": format!("http://{addr2}/once"),
                      "webhookRetryCount": 0});
    assert_eq!(s.rest("PUT", settings, Some(&body.to_string())).0, 200);
    let (_pb2, _pws2) = publish_live(&s, "WebRTCAppEE", "r2", json!({}));
    assert_eq!(wait_calls(&calls2, 1).len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(calls2.lock().expect("lock").len(), 1, "not retried");
}

#[test]
fn queued_webhooks_are_sent_at_graceful_shutdown() {
    // The first call fails and is retried 2 s later; the server is stopped before that.
    let (addr, calls) = receiver_with(|n| Some(if n == 0 { FAIL } else { OK }));
    let mut s = Server::start();
    let settings = "/rest/v2/applications/settings/WebRTCAppEE";
    let body = json!({"listenerHookURL": format!("http://{addr}/drain"),
                      "webhookRetryCount": 3, "webhookRetryDelay": 2000});
    assert_eq!(s.rest("PUT", settings, Some(&body.to_string())).0, 200);
    let (_pb, _pws) = publish_live(&s, "WebRTCAppEE", "d1", json!({}));
    assert_eq!(wait_calls(&calls, 1).len(), 1);
    s.signal("TERM");
    let exit = s.wait_exit(Duration::from_secs(20)).expect("exited");
    assert!(exit.success(), "{exit:?}");
    // Before exiting, the retry went out at its time (within the drain's bound) and was
    // answered 200.
    let got = calls.lock().expect("lock").clone();
    let actions: Vec<&str> = got.iter().filter_map(|c| c.get("action")).collect();
    assert_eq!(
        actions,
        ["liveStreamStarted", "liveStreamStarted"],
        "{got:#?}"
    );
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(1900),
        "{got:#?}"
    );
    assert!(s.log().iter().any(|l| l.contains("webhook sender closed")));
}
