//! The webhook sender thread: the IO side of [`super::HookQueue`] (see the parent module).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use super::{
    parse_url, AllowList, Hook, HookCounters, HookQueue, DRAIN_WAIT, IO_TIMEOUT, MAX_QUEUE,
    MAX_RESPONSE_LEN,
};

/// The event loop's end of the sender: bounded, never blocks (but [`HookSender::close`]).
#[derive(Debug)]
pub struct HookSender {
    tx: Option<SyncSender<Hook>>,
    done: Receiver<()>,
    dropped: Arc<AtomicU64>,
    counters: Arc<std::sync::Mutex<HookCounters>>,
}

impl HookSender {
    /// Hands a call to the sender thread; a full channel drops it (counted).
    pub fn send(&self, hook: Hook) {
        let Some(tx) = &self.tx else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match tx.try_send(hook) {
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

    /// Graceful shutdown: no more calls; waits (at most [`DRAIN_WAIT`] and one attempt's
    /// timeouts) while the thread sends what is queued, retries included. `true`: all sent
    /// or given up in time.
    pub fn close(&mut self) -> bool {
        self.tx = None;
        let waited = self.done.recv_timeout(DRAIN_WAIT + IO_TIMEOUT * 3);
        let c = self.counters();
        info!(
            delivered = c.delivered,
            given_up = c.dropped_attempts,
            drained = waited.is_ok(),
            "webhook sender closed"
        );
        waited.is_ok()
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
    let (done_tx, done) = sync_channel(1);
    let counters = Arc::new(std::sync::Mutex::new(HookCounters::default()));
    let shared = Arc::clone(&counters);
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || {
            sender_thread(&rx, &shared, allow);
            let _ = done_tx.send(());
        })?;
    Ok(HookSender {
        tx: Some(tx),
        done,
        dropped: Arc::new(AtomicU64::new(0)),
        counters,
    })
}

#[allow(clippy::disallowed_methods)] // the sender thread is IO: it reads the clock
fn sender_thread(rx: &Receiver<Hook>, shared: &std::sync::Mutex<HookCounters>, allow: AllowList) {
    let mut queue = HookQueue::with_allow_list(allow);
    // Set once the runtime closed its end: the queue drains until then.
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(end) = drain_until {
            if queue.is_empty() {
                return;
            }
            if now >= end {
                let n = queue.abandon();
                warn!(
                    calls = n,
                    "webhook calls left at the end of the shutdown drain: dropped"
                );
                if let Ok(mut c) = shared.lock() {
                    *c = queue.counters();
                }
                return;
            }
        }
        // Take everything offered, then wait for the next due time or a new call.
        while let Ok(h) = rx.try_recv() {
            queue.push(h);
        }
        if let Some(hook) = queue.poll_request(now) {
            let ok = post(&hook);
            queue.handle_result(Instant::now(), ok);
        } else {
            let mut wait = match queue.poll_timeout() {
                Some(t) => t.saturating_duration_since(now),
                None => Duration::from_secs(3600),
            };
            if let Some(end) = drain_until {
                wait = wait.min(end.saturating_duration_since(now));
                std::thread::sleep(wait);
            } else {
                match rx.recv_timeout(wait) {
                    Ok(h) => {
                        queue.push(h);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        drain_until = Some(Instant::now() + DRAIN_WAIT);
                    }
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
    let content_type = hook.content_type();
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: antenna\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\
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
