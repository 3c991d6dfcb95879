//! The webhook sender thread: the IO side of [`super::HookQueue`] (see the parent module).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use super::{
    parse_url, AllowList, Hook, HookCounters, HookQueue, IO_TIMEOUT, MAX_QUEUE, MAX_RESPONSE_LEN,
};

/// The event loop's end of the sender: bounded, never blocks.
#[derive(Debug)]
pub struct HookSender {
    tx: SyncSender<Hook>,
    dropped: Arc<AtomicU64>,
    counters: Arc<std::sync::Mutex<HookCounters>>,
}

impl HookSender {
    /// Hands a call to the sender thread; a full channel drops it (counted).
    pub fn send(&self, hook: Hook) {
        match self.tx.try_send(hook) {
            Ok(()) => {}
            Err(TrySendError::Full(h)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(url = %h.url, "webhook queue full: call dropped");
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The sender's counters (as of its last step).
    pub fn counters(&self) -> HookCounters {
        let mut c = self.counters.lock().map(|c| *c).unwrap_or_default();
        c.dropped_full += self.dropped.load(Ordering::Relaxed);
        c
    }
}

/// Starts the sender thread; calls to hosts `allow` does not allow are dropped and counted.
pub fn spawn_sender(allow: AllowList) -> std::io::Result<HookSender> {
    let (tx, rx) = sync_channel(MAX_QUEUE);
    let counters = Arc::new(std::sync::Mutex::new(HookCounters::default()));
    let shared = Arc::clone(&counters);
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || sender_thread(&rx, &shared, allow))?;
    Ok(HookSender {
        tx,
        dropped: Arc::new(AtomicU64::new(0)),
        counters,
    })
}

#[allow(clippy::disallowed_methods)] // the sender thread is IO: it reads the clock
fn sender_thread(rx: &Receiver<Hook>, shared: &std::sync::Mutex<HookCounters>, allow: AllowList) {
    let mut queue = HookQueue::with_allow_list(allow);
    loop {
        let now = Instant::now();
        // Take everything offered, then wait for the next due time or a new call.
        while let Ok(h) = rx.try_recv() {
            queue.push(h);
        }
        if let Some(hook) = queue.poll_request(now) {
            let ok = post(&hook);
            queue.handle_result(Instant::now(), ok);
        } else {
            let wait = match queue.poll_timeout() {
                Some(t) => t.saturating_duration_since(now),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok(h) => {
                    queue.push(h);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) if queue.is_empty() => return,
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(wait.min(Duration::from_secs(1)));
                }
            }
        }
        if let Ok(mut c) = shared.lock() {
            *c = queue.counters();
        }
    }
}

/// One attempt: POST the form, read the status line. `true` for a 2xx answer.
fn post(hook: &Hook) -> bool {
    let Some((host, port, path)) = parse_url(&hook.url) else {
        return false;
    };
    let body = hook.body();
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: antenna\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let result = (|| -> std::io::Result<u16> {
        let addr = (host.as_str(), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.write_all(request.as_bytes())?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        loop {
            let n = s.read(&mut chunk)?;
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => return Ok(resp.code.unwrap_or(0)),
                Ok(httparse::Status::Partial) if n > 0 && buf.len() < MAX_RESPONSE_LEN => {}
                Ok(httparse::Status::Partial) => {
                    return Err(std::io::Error::other("incomplete or oversized response"))
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
    })();
    let action = hook
        .fields
        .iter()
        .find(|(k, _)| *k == "action")
        .map_or("", |(_, v)| v.as_str());
    match result {
        Ok(code) if (200..300).contains(&code) => {
            debug!(url = %hook.url, action, code, "webhook delivered");
            true
        }
        Ok(code) => {
            info!(url = %hook.url, action, code, "webhook answered with an error status");
            false
        }
        Err(e) => {
            info!(url = %hook.url, action, "webhook failed: {e}");
            false
        }
    }
}

/// Unix milliseconds now (for the `timestamp` field).
#[allow(clippy::disallowed_methods)] // runtime side: the wall clock for the timestamp
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
