//! Blocking helpers for end-to-end tests against the real `antenna` binary.
//!
//! [`Server`] starts the binary on free loopback ports (it binds port 0 and the ports are read
//! from its readiness line) and kills it on drop; [`Client`] is a blocking tungstenite
//! WebSocket client whose reads time out, so a failing test never hangs.
#![allow(clippy::disallowed_methods)] // test timeouts read the clock
#![allow(dead_code)]

pub mod browser;
pub mod media;
pub mod raw;
pub mod redis;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::{Message, WebSocket};

/// How long any single wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

const READY: &str = "antenna listening on http://";

/// A running `antenna` process.
pub struct Server {
    child: Child,
    /// HTTP/WebSocket address.
    pub http: SocketAddr,
    /// UDP media address.
    pub udp: SocketAddr,
    /// The admin REST token (printed at its first start, else read from its file).
    pub admin_token: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
}

fn parse_ready(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.get(line.find(READY)? + READY.len()..)?;
    let http = rest.get(..rest.find(',')?)?.parse().ok()?;
    let udp_part = rest.get(rest.find(", udp ")? + ", udp ".len()..)?;
    let udp = udp_part.split_whitespace().next()?.parse().ok()?;
    Some((http, udp))
}

impl Server {
    /// Starts the binary on 127.0.0.1 with free ports and debug logs (unless `extra` has `--log`).
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Same, with extra arguments.
    pub fn start_with(extra: &[&str]) -> Server {
        Server::start_wrapped(&[], extra)
    }

    /// Same, with `toml` as its configuration file (written to a fresh temp dir named for
    /// `name`).
    pub fn start_with_config(name: &str, toml: &str) -> Server {
        let cfg = config_file(name, toml);
        Server::start_with(&["--config", cfg.to_str().expect("utf-8 path")])
    }

    /// Same, started through `wrapper` (a command that ends by exec'ing its arguments, so the
    /// child's pid is antenna's), e.g. `unshare -m sh -c '…; exec "$0" "$@"'`.
    pub fn start_wrapped(wrapper: &[&str], extra: &[&str]) -> Server {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_antenna"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_antenna")),
        };
        cmd.args(["--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
        if !extra.contains(&"--log") {
            cmd.args(["--log", "debug"]);
        }
        // Tests run in parallel: each server gets an in-memory store unless the test names a
        // data directory (the default ./antenna-data would be shared).
        if !extra.contains(&"--data-dir") && !extra.contains(&"--memory-store") {
            cmd.arg("--memory-store");
        }
        let mut child = cmd
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn antenna");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addrs) = parse_ready(&line) {
                    let _ = tx.send(addrs);
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok((http, udp)) => {
                let admin_token =
                    admin_token(&log.lock().map(|l| l.clone()).unwrap_or_default(), extra);
                Server {
                    child,
                    http,
                    udp,
                    admin_token,
                    log,
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "antenna did not report readiness; stderr:\n{}",
                    log.lock().map(|l| l.join("\n")).unwrap_or_default()
                );
            }
        }
    }

    /// A REST call with the admin token (`Authorization: Bearer`), a JSON body and
    /// `Content-Type: application/json`; returns the status and the JSON body.
    pub fn rest(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let auth = self.admin_token.as_ref().map(|t| format!("Bearer {t}"));
        http_json(self.http, method, path, auth.as_deref(), body)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The stderr lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until a stderr line contains `needle`.
    pub fn wait_log(&self, needle: &str) -> bool {
        self.wait_log_for(needle, TIMEOUT)
    }

    /// Waits up to `timeout` until a stderr line contains `needle`.
    pub fn wait_log_for(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A WebSocket client on `path` (e.g. `/WebRTCAppEE/websocket`).
    pub fn ws(&self, path: &str) -> Client {
        Client::connect(self.http, path)
    }

    /// A WebSocket client on the default application.
    pub fn client(&self) -> Client {
        self.ws("/WebRTCAppEE/websocket")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- antenna stderr ---\n{}", self.log().join("\n"));
        }
    }
}

/// The admin token of a server that just started: from its "admin REST token" line (first
/// start, or a memory store), else from the token file (`--admin-token-file`, or
/// `--data-dir`/admin-token).
fn admin_token(log: &[String], args: &[&str]) -> Option<String> {
    if let Some(t) = log
        .iter()
        .filter(|l| l.contains("admin REST token"))
        .find_map(|l| l.rsplit(": ").next())
    {
        return Some(t.trim().to_string());
    }
    let arg = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .and_then(|i| args.get(i + 1))
            .map(std::path::PathBuf::from)
    };
    let file =
        arg("--admin-token-file").or_else(|| arg("--data-dir").map(|d| d.join("admin-token")))?;
    std::fs::read_to_string(file)
        .ok()
        .map(|t| t.trim().to_string())
}

/// Connects a TCP stream with read and write timeouts.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    stream
}

/// A raw HTTP exchange: sends `request` as is, returns the status and the whole response.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = tcp(addr);
    stream.write_all(request).expect("write request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    (status, text)
}

/// `GET path` over HTTP/1.1.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
}

/// The body of a complete HTTP response.
pub fn body(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
}

/// What a read produced other than a text message.
#[derive(Debug)]
pub enum Ended {
    /// A close frame (code, if any).
    Closed(Option<u16>),
    /// The read timed out.
    Timeout,
    /// Another error (reset, EOF without close).
    Error(String),
}

/// A blocking WebSocket client.
pub struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connects and performs the handshake.
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        match Client::try_connect(addr, path) {
            Ok(c) => c,
            Err(e) => panic!("websocket handshake on {path} failed: {e}"),
        }
    }

    /// Connects, returning the handshake error (e.g. an HTTP 404).
    pub fn try_connect(addr: SocketAddr, path: &str) -> Result<Client, tungstenite::Error> {
        let url = format!("ws://{addr}{path}");
        match tungstenite::client::client(url, tcp(addr)) {
            Ok((ws, _response)) => Ok(Client { ws }),
            Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                panic!("blocking handshake interrupted")
            }
        }
    }

    /// Sends a JSON value as a text frame.
    pub fn send(&mut self, v: &Value) {
        self.send_text(&v.to_string());
    }

    /// Sends a text frame.
    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .expect("send text");
    }

    /// Sends a text frame; returns the error instead of panicking.
    pub fn try_send_text(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::text(text.to_string()))
    }

    /// The next text message as JSON, or why there is none.
    pub fn next(&mut self) -> Result<Value, Ended> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return Ok(serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("server sent invalid JSON {t:?}: {e}")));
                }
                Ok(Message::Close(frame)) => {
                    // Complete the close handshake as a browser does.
                    let _ = self.ws.flush();
                    return Err(Ended::Closed(frame.map(|f| u16::from(f.code))));
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Ended::Timeout);
                }
                Err(e) => return Err(Ended::Error(e.to_string())),
            }
        }
    }

    /// The next text message; panics on timeout or close.
    pub fn recv(&mut self) -> Value {
        match self.next() {
            Ok(v) => v,
            Err(e) => panic!("expected a message, got {e:?}"),
        }
    }

    /// The next message, which must have this `command`.
    pub fn recv_command(&mut self, command: &str) -> Value {
        let v = self.recv();
        assert_eq!(v["command"], command, "unexpected message {v}");
        v
    }

    /// The next message, which must be a notification with this `definition`.
    pub fn recv_notification(&mut self, definition: &str) -> Value {
        let v = self.recv_command("notification");
        assert_eq!(v["definition"], definition, "unexpected notification {v}");
        v
    }

    /// The next message, which must be an error with this `definition`.
    pub fn recv_error(&mut self, definition: &str) -> Value {
        let v = self.recv_command("error");
        assert_eq!(v["definition"], definition, "unexpected error {v}");
        v
    }

    /// Sends a ping and expects the pong as the next message.
    pub fn ping_pong(&mut self) {
        self.send(&serde_json::json!({"command": "ping"}));
        self.recv_command("pong");
    }

    /// Messages until the connection ends (close frame or error), and how it ended.
    pub fn until_end(&mut self) -> (Vec<Value>, Ended) {
        let mut got = Vec::new();
        loop {
            match self.next() {
                Ok(v) => got.push(v),
                Err(e) => return (got, e),
            }
        }
    }

    /// The next message if one is already there (waits at most 1 ms); panics if the
    /// connection ended.
    pub fn poll_message(&mut self) -> Option<Value> {
        self.set_read_timeout(Duration::from_millis(1));
        let r = self.next();
        self.set_read_timeout(TIMEOUT);
        match r {
            Ok(v) => Some(v),
            Err(Ended::Timeout) => None,
            Err(e) => panic!("connection ended: {e:?}"),
        }
    }

    /// Reads until a message with `command` arrives; `takeCandidate` candidates met on the
    /// way are collected into `candidates`, anything else fails the test.
    pub fn recv_collecting_candidates(
        &mut self,
        command: &str,
        candidates: &mut Vec<String>,
    ) -> Value {
        loop {
            let m = self.recv();
            if m["command"] == command {
                return m;
            }
            if m["command"] == "takeCandidate" {
                candidates.push(m["candidate"].as_str().unwrap_or_default().to_string());
                continue;
            }
            panic!("expected {command}, got {m}");
        }
    }

    /// Shortens the read timeout (to check that nothing arrives).
    pub fn set_read_timeout(&mut self, t: Duration) {
        self.ws
            .get_ref()
            .set_read_timeout(Some(t))
            .expect("set timeout");
    }

    /// Sends a close frame.
    pub fn close(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

impl Client {
    /// Sends a binary frame.
    pub fn ws_send_binary(&mut self, data: &[u8]) {
        self.ws
            .send(Message::binary(data.to_vec()))
            .expect("send binary");
    }
}

/// An HTTP/1.1 request with an optional `Authorization` header and a JSON body; returns the
/// status and the body parsed as JSON (`Value::Null` if it is not JSON).
pub fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let (status, text) = http_raw(addr, req.as_bytes());
    let v = serde_json::from_str(self::body(&text)).unwrap_or(Value::Null);
    (status, v)
}

/// Removes the temp dirs of earlier test processes that are gone (`antenna-test-<pid>-…`).
fn remove_stale_temp_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("antenna-test-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A fresh empty directory under the system temp dir, for one test. The directories of
/// earlier test processes are removed on the first call.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    static CLEAN: std::sync::Once = std::sync::Once::new();
    CLEAN.call_once(remove_stale_temp_dirs);
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("antenna-test-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Writes `text` as `antenna.toml` in a fresh temp dir and returns its path.
pub fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = temp_dir(name).join("antenna.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Unix time in seconds, `plus` seconds from now.
pub fn unix_s(plus: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(now).expect("time") + plus
}
