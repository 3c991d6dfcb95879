//! The admin REST API of the real `antenna` binary over real HTTP, what only the binary shows:
//! bodies oversize, chunked and split, `Expect: 100-continue`, the gate on real request heads
//! (cross-site, `Origin`, `Host`, the `--rest-host` and `--rest-trust-loopback` options, the
//! source address of the socket), and a refusal on the head with its body never read. The
//! endpoints, their bad input and the JWT and address rules are `tests/tests/sim_rest_api.rs`.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{http_json, http_raw, Server};
use serde_json::{json, Value};

fn server() -> Server {
    Server::start()
}

const B: &str = "/WebRTCAppEE/rest/v2/broadcasts";

/// The headers of an admin JSON request (credential and content type), for raw requests.
fn admin_headers(s: &Server) -> String {
    format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        s.admin_token.as_deref().expect("admin token")
    )
}

/// A call with the admin token.
fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    s.rest(method, path, body.map(|b| b.to_string()).as_deref())
}

fn ok(r: &(u16, Value)) {
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["success"], true, "{}", r.1);
}

#[test]
fn bodies_oversize_chunked_and_split() {
    let s = server();
    let (st, _) = http_raw(
        s.http,
        format!(
            "POST {B}/create HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            2 * 1024 * 1024
        )
        .as_bytes(),
    );
    assert_eq!(st, 413);
    let (st, _) = http_raw(
        s.http,
        format!("POST {B}/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(st, 411);
    // A body sent in pieces after the head.
    use std::io::{Read, Write};
    let body = json!({"streamId": "split1"}).to_string();
    let mut t = common::tcp(s.http);
    t.write_all(
        format!(
            "POST {B}/create HTTP/1.1\r\nHost: {}\r\n{}Content-Length: {}\r\n\r\n",
            s.http,
            admin_headers(&s),
            body.len()
        )
        .as_bytes(),
    )
    .expect("write");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (a, b) = body.split_at(5);
    t.write_all(a.as_bytes()).expect("write");
    std::thread::sleep(std::time::Duration::from_millis(50));
    t.write_all(b.as_bytes()).expect("write");
    let mut resp = String::new();
    let _ = t.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.contains("\"split1\""), "{resp}");
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    use std::io::{BufRead, BufReader, Read, Write};
    let s = server();
    let body = json!({"streamId": "cont1", "description": "x".repeat(2000)}).to_string();
    let mut t = common::tcp(s.http);
    t.write_all(
        format!(
            "POST {B}/create HTTP/1.1\r\nHost: {}\r\n{}Expect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            s.http,
            admin_headers(&s),
            body.len()
        )
        .as_bytes(),
    )
    .expect("write head");
    let mut reader = BufReader::new(t.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("interim line");
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    line.clear();
    reader.read_line(&mut line).expect("blank line");
    assert_eq!(line, "\r\n");
    t.write_all(body.as_bytes()).expect("write body");
    let mut resp = String::new();
    reader.read_to_string(&mut resp).expect("response");
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.contains("\"cont1\""), "{resp}");
}

// --- Hardening (issue 9, findings 3 and 12) ---------------------------------------------------

const SETTINGS: &str = "/rest/v2/applications/settings/WebRTCAppEE";

/// A raw request; returns the status and the JSON body.
fn raw(s: &Server, request: &str) -> (u16, Value) {
    let (st, text) = http_raw(s.http, request.as_bytes());
    (
        st,
        serde_json::from_str(common::body(&text)).unwrap_or(Value::Null),
    )
}

fn cidr(s: &Server) -> Value {
    let (st, v) = call(s, "GET", SETTINGS, None);
    assert_eq!(st, 200, "{v}");
    v["remoteAllowedCIDR"].clone()
}

/// What a web page can make a browser send to the API: a "simple" cross-site POST
/// (`text/plain`, no credential, the page's `Origin`).
fn cross_site_post(s: &Server, origin: Option<&str>, extra: &str) -> u16 {
    let body = r#"{"remoteAllowedCIDR":"0.0.0.0/0"}"#;
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    raw(
        s,
        &format!(
            "POST {SETTINGS} HTTP/1.1\r\nHost: {}\r\n{origin}{extra}Content-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{body}",
            s.http,
            body.len()
        ),
    )
    .0
}

#[test]
fn a_cross_site_text_plain_post_is_refused_and_changes_nothing() {
    // The default (production) mode, and the trust-loopback mode of a development machine,
    // where a page opened in the local browser is the whole threat.
    for args in [&[][..], &["--rest-trust-loopback"][..]] {
        let s = Server::start_with(args);
        assert_eq!(
            cross_site_post(&s, Some("http://evil.example"), ""),
            403,
            "{args:?}"
        );
        assert_eq!(cross_site_post(&s, Some("null"), ""), 403, "{args:?}");
        // Without Origin (not a browser): still no JSON, so 415 (or 401 without credential).
        let want = if args.is_empty() { 401 } else { 415 };
        assert_eq!(cross_site_post(&s, None, ""), want, "{args:?}");
        // Even with the credential, text/plain is refused.
        assert_eq!(
            cross_site_post(
                &s,
                None,
                &format!(
                    "Authorization: Bearer {}\r\n",
                    s.admin_token.as_deref().unwrap_or("")
                )
            ),
            415
        );
        assert_eq!(cidr(&s), "127.0.0.1", "{args:?}: settings changed");
        assert!(s.wait_log("rest request refused"), "no log line");
    }
}

#[test]
fn a_foreign_origin_is_refused_and_the_same_origin_is_not() {
    let s = server();
    let get = |origin: &str| {
        raw(
            &s,
            &format!(
                "GET {B}/count HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n{}\r\n",
                s.http,
                admin_headers(&s)
            ),
        )
        .0
    };
    assert_eq!(get("http://evil.example"), 403);
    assert_eq!(get(&format!("http://127.0.0.2:{}", s.http.port())), 403);
    assert_eq!(get(&format!("http://{}", s.http)), 200);
    // A cross-site no-cors request (an <img>, a form) has no Origin but Sec-Fetch-Site.
    let (st, _) = raw(
        &s,
        &format!(
            "GET {B}/count HTTP/1.1\r\nHost: {}\r\nSec-Fetch-Site: cross-site\r\n{}\r\n",
            s.http,
            admin_headers(&s)
        ),
    );
    assert_eq!(st, 403);
}

#[test]
fn a_rebinding_host_is_refused() {
    let s = Server::start_with(&["--rest-host", "media.example.org"]);
    let get = |host: &str| {
        raw(
            &s,
            &format!(
                "GET {SETTINGS} HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
                admin_headers(&s)
            ),
        )
    };
    // A page on evil.example whose name now resolves to 127.0.0.1.
    let (st, v) = get(&format!("evil.example:{}", s.http.port()));
    assert_eq!(st, 421, "{v}");
    assert!(!v.to_string().contains("remoteAllowedCIDR"), "{v}");
    assert_eq!(get("evil.example").0, 421);
    assert_eq!(
        raw(
            &s,
            &format!("GET {SETTINGS} HTTP/1.1\r\n{}\r\n", admin_headers(&s))
        )
        .0,
        400
    );
    // IP literals, localhost and configured names are fine.
    for host in [
        s.http.to_string(),
        format!("localhost:{}", s.http.port()),
        "media.example.org".into(),
    ] {
        assert_eq!(get(&host).0, 200, "{host}");
    }
}

#[test]
fn trust_loopback_lets_only_local_callers_in_without_a_credential() {
    // `--rest-trust-loopback` (the development-machine switch), over real sockets: a caller
    // from 127.0.0.1 needs no credential, one from 127.0.0.2 still does.
    let dev = Server::start_with(&["--rest-trust-loopback"]);
    let (st, _) = http_json(dev.http, "GET", SETTINGS, None, None);
    assert_eq!(st, 200);
    ok(&call(
        &dev,
        "PUT",
        SETTINGS,
        Some(json!({"remoteAllowedCIDR": "127.0.0.1, 127.0.0.2"})),
    ));
    let mut t = tcp_from("127.0.0.2", dev.http);
    t.write_all(format!("GET {SETTINGS} HTTP/1.1\r\nHost: {}\r\n\r\n", dev.http).as_bytes())
        .expect("write");
    assert_eq!(status_line(&mut t), 401);
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A TCP connection from `source` (a loopback address) to `addr`.
fn tcp_from(source: &str, addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    let src: std::net::SocketAddrV4 = format!("{source}:0").parse().expect("source");
    bind(fd.as_raw_fd(), &SockaddrIn::from(src)).expect("bind");
    let SocketAddr::V4(dst) = addr else {
        panic!("IPv4 only")
    };
    connect(fd.as_raw_fd(), &SockaddrIn::from(dst)).expect("connect");
    let t = TcpStream::from(fd);
    t.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    t
}

/// Reads until the end of the response head; the status code (0 on timeout or reset).
fn status_line(t: &mut TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match t.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process: (current, peak) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_refused_request_is_answered_on_its_head_and_its_body_never_read() {
    // Finding 12: a 1 MiB body from a refused address (127.0.0.2 is outside the default
    // remoteAllowedCIDR) or without a credential.
    let s = server();
    let head = |host: SocketAddr| {
        format!(
            "POST {B}/create HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            1024 * 1024
        )
    };
    // The refusal arrives before a single body byte was sent.
    for (source, want) in [("127.0.0.2", 403), ("127.0.0.1", 401)] {
        let mut t = tcp_from(source, s.http);
        let sent = Instant::now();
        t.write_all(head(s.http).as_bytes()).expect("head");
        assert_eq!(status_line(&mut t), want, "{source}");
        eprintln!(
            "{source}: {want} after {:.1} ms, with the 1 MiB body not sent",
            sent.elapsed().as_secs_f64() * 1000.0
        );
        // The server closed the connection: the body goes nowhere.
        let _ = t.write_all(&vec![b'x'; 1024 * 1024]);
        let mut rest = Vec::new();
        let _ = t.read_to_end(&mut rest);
    }
    // 64 clients send a 1 MiB body but its last byte, at once, and hold the connection (a slow
    // body): the server's peak memory does not grow by what they send (it grew by 66 MB when
    // it buffered bodies before deciding).
    let (_, peak_before) = rss_kib(s.pid());
    let written = std::sync::Arc::new(std::sync::Barrier::new(65));
    let measured = std::sync::Arc::new(std::sync::Barrier::new(65));
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let addr = s.http;
            let head = head(addr);
            let (written, measured) = (written.clone(), measured.clone());
            std::thread::spawn(move || {
                let mut t = tcp_from("127.0.0.2", addr);
                let mut req = head.into_bytes();
                req.extend(std::iter::repeat_n(b'{', 1024 * 1024 - 1));
                let _ = t.write_all(&req);
                written.wait();
                measured.wait();
                status_line(&mut t)
            })
        })
        .collect();
    written.wait();
    std::thread::sleep(Duration::from_millis(500));
    let (_, peak_after) = rss_kib(s.pid());
    measured.wait();
    let statuses: Vec<u16> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    eprintln!(
        "64 refused slow 1 MiB bodies: server peak RSS {peak_before} KiB -> {peak_after} KiB \
         (+{} KiB); {} answered 403",
        peak_after - peak_before,
        statuses.iter().filter(|&&s| s == 403).count()
    );
    // A client may see a reset instead of the 403 when the server closes while it still
    // writes; none may see anything else.
    assert!(
        statuses.iter().all(|&st| st == 403 || st == 0),
        "{statuses:?}"
    );
    assert!(statuses.contains(&403), "{statuses:?}");
    assert!(
        peak_after - peak_before < 16 * 1024,
        "peak RSS grew by {} KiB",
        peak_after - peak_before
    );
    // Refusals are counted in the log lines.
    assert!(s.wait_log("Not allowed IP"), "{}", s.log().join("\n"));
}
