//! AMS webhooks (`listenerHookURL`): what to send, in which order, and when to retry. (Over 600
//! lines: about half is the unit tests of the queue.)
//!
//! [`HookQueue`] is pure (no IO, no clock: `now` comes in): calls go in with [`HookQueue::push`]
//! (bounded: a full queue drops the call and counts it), [`HookQueue::poll_request`] hands out
//! the next due call, [`HookQueue::handle_result`] takes the outcome. As AMS does (its
//! `AntMediaApplicationAdapter.sendPOST`), a failed call is tried again `webhookRetryCount` times
//! (application setting, default 0, at most [`MAX_RETRIES`] here) after `webhookRetryDelay`
//! milliseconds each time (default 1000; kept within [`MIN_RETRY_DELAY`]..[`MAX_RETRY_DELAY`]),
//! and the body is JSON unless `webhookContentType` is `application/x-www-form-urlencoded`
//! (AMS 2.10 and later; older ones sent forms only). See [`Delivery`].
//! Calls go out one at a time in the order they were pushed (a retried call holds back the
//! ones behind it, so a receiver sees `liveStreamStarted` before `liveStreamEnded`).
//!
//! The HTTP bytes are moved by [`spawn_sender`] (`hooks/sender.rs`): one thread with a bounded channel. The event
//! loop only `try_send`s (a full channel drops and counts); the thread owns the queue and does
//! blocking HTTP/1.1 with a connect/read/write timeout ([`IO_TIMEOUT`]), so a receiver that is
//! down or slow never delays the loop or the media. At a graceful shutdown the runtime closes
//! the sender ([`HookSender::close`]): the calls still queued go out (retries included) until
//! [`DRAIN_WAIT`] is over; what is left then is dropped and counted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::warn;

mod allow;
mod sender;

pub use allow::{AllowList, MAX_ALLOWED_HOSTS};
pub use sender::{spawn_sender, unix_ms, HookSender};

/// Calls waiting (queued or being retried) at most; more are dropped and counted.
pub const MAX_QUEUE: usize = 1024;
/// Most retries of one call, whatever `webhookRetryCount` says.
pub const MAX_RETRIES: u32 = 10;
/// AMS's default `webhookRetryDelay`.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(1000);
/// Shortest retry delay taken from the settings.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(10);
/// Longest retry delay taken from the settings.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// How long a graceful shutdown waits for queued calls to go out.
pub const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// `webhookContentType` for form bodies (anything else means JSON, AMS's default).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// Longest hook URL.
pub const MAX_URL_LEN: usize = 2048;
/// Connect, write and read timeout of one attempt (AMS uses 2 s too).
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Most response bytes read (status line and headers are all that matter).
pub const MAX_RESPONSE_LEN: usize = 8192;

/// Hook actions, with AMS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A publish went live.
    LiveStreamStarted,
    /// A live publish ended.
    LiveStreamEnded,
    /// A publish never went live in time.
    PublishTimeoutError,
    /// A player started receiving.
    PlayStarted,
    /// A player stopped.
    PlayStopped,
    /// A stream went live as a subtrack of a main track (a conference room).
    SubtrackAdded,
    /// A live subtrack ended.
    SubtrackLeft,
}

impl Action {
    /// AMS's `action` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::LiveStreamStarted => "liveStreamStarted",
            Action::LiveStreamEnded => "liveStreamEnded",
            Action::PublishTimeoutError => "publishTimeoutError",
            Action::PlayStarted => "playStarted",
            Action::PlayStopped => "playStopped",
            Action::SubtrackAdded => "subtrackAddedInTheMainTrack",
            Action::SubtrackLeft => "subtrackLeftTheMainTrack",
        }
    }
}

/// One webhook call: where, and the form fields (AMS's names, in AMS's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `http://host[:port]/path`.
    pub url: String,
    /// Form fields.
    pub fields: Vec<(&'static str, String)>,
    /// Retries and body format, from the application's settings.
    pub delivery: Delivery,
}

/// How a call is delivered: AMS's `webhookRetryCount`, `webhookRetryDelay` and
/// `webhookContentType` application settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Tries after the first failed one.
    pub retries: u32,
    /// Wait before each retry.
    pub retry_delay: Duration,
    /// JSON body (`false`: a form).
    pub json: bool,
}

impl Default for Delivery {
    /// AMS's defaults: no retry, 1 s, JSON.
    fn default() -> Delivery {
        Delivery {
            retries: 0,
            retry_delay: DEFAULT_RETRY_DELAY,
            json: true,
        }
    }
}

impl Delivery {
    /// From an application's settings (AMS's names); values out of bounds are clamped, values
    /// of the wrong type ignored.
    pub fn from_settings(settings: &serde_json::Map<String, serde_json::Value>) -> Delivery {
        let mut d = Delivery::default();
        if let Some(n) = settings
            .get("webhookRetryCount")
            .and_then(serde_json::Value::as_u64)
        {
            d.retries = u32::try_from(n).unwrap_or(u32::MAX).min(MAX_RETRIES);
        }
        if let Some(ms) = settings
            .get("webhookRetryDelay")
            .and_then(serde_json::Value::as_u64)
        {
            d.retry_delay = Duration::from_millis(ms).clamp(MIN_RETRY_DELAY, MAX_RETRY_DELAY);
        }
        if let Some(t) = settings
            .get("webhookContentType")
            .and_then(serde_json::Value::as_str)
        {
            d.json = !t.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE);
        }
        d
    }
}

/// What a hook is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookInfo<'a> {
    /// Application.
    pub app: &'a str,
    /// Stream id.
    pub id: &'a str,
    /// Stream name.
    pub stream_name: Option<&'a str>,
    /// Category (from the broadcast record).
    pub category: Option<&'a str>,
    /// Main track (room) id.
    pub main_track: Option<&'a str>,
    /// Subscriber id.
    pub subscriber_id: Option<&'a str>,
    /// Metadata.
    pub metadata: Option<&'a str>,
}

impl Hook {
    /// The call AMS makes for `action` about `info`, at `unix_ms`. Empty values are left out,
    /// as AMS does; `roomId` repeats `mainTrackId`.
    pub fn new(url: &str, action: Action, info: &HookInfo<'_>, unix_ms: u64) -> Hook {
        let mut fields: Vec<(&'static str, String)> = vec![
            ("id", info.id.to_string()),
            ("action", action.as_str().to_string()),
        ];
        let mut put = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                fields.push((k, v.to_string()));
            }
        };
        put("streamName", info.stream_name);
        put("category", info.category);
        put("mainTrackId", info.main_track);
        put("roomId", info.main_track);
        put("subscriberId", info.subscriber_id);
        put("app", Some(info.app));
        put("metadata", info.metadata);
        put("timestamp", Some(&unix_ms.to_string()));
        Hook {
            url: url.to_string(),
            fields,
            delivery: Delivery::default(),
        }
    }

    /// This call with `delivery`.
    #[must_use]
    pub fn with_delivery(mut self, delivery: Delivery) -> Hook {
        self.delivery = delivery;
        self
    }

    /// The body's content type.
    pub fn content_type(&self) -> &'static str {
        if self.delivery.json {
            "application/json"
        } else {
            FORM_CONTENT_TYPE
        }
    }

    /// The body: a JSON object of strings as AMS sends it (`metadata` embedded as an object
    /// when it is one), or the form.
    pub fn body(&self) -> String {
        if self.delivery.json {
            let mut obj = serde_json::Map::new();
            for (k, v) in &self.fields {
                let value = match serde_json::from_str::<serde_json::Value>(v) {
                    Ok(o @ serde_json::Value::Object(_)) if *k == "metadata" => o,
                    _ => serde_json::Value::String(v.clone()),
                };
                obj.insert((*k).to_string(), value);
            }
            return serde_json::Value::Object(obj).to_string();
        }
        self.form()
    }

    /// The form body (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            form_encode(k, &mut out);
            out.push('=');
            form_encode(v, &mut out);
        }
        out
    }
}

fn form_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// A hook URL split for the client: `(host, port, path)`. Only `http://`, no user info, at most
/// [`MAX_URL_LEN`] bytes; `None` otherwise.
pub fn parse_url(url: &str) -> Option<(String, u16, String)> {
    if url.len() > MAX_URL_LEN || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let rest = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .and_then(|_| url.get(7..))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => 80,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty() || port == 0 {
        return None;
    }
    let path = path.split('#').next().unwrap_or("/").to_string();
    Some((host, port, path))
}

/// Counters of the webhook sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookCounters {
    /// Calls accepted into the queue.
    pub queued: u64,
    /// Calls answered with a 2xx status.
    pub delivered: u64,
    /// Failed attempts followed by a retry.
    pub retried: u64,
    /// Calls dropped because the queue (or the channel to the sender) was full.
    pub dropped_full: u64,
    /// Calls given up after their last retry, or left at the end of a shutdown's drain.
    pub dropped_attempts: u64,
    /// Calls dropped for a URL that is not `http://host[:port]/path` within bounds, or whose
    /// host the [`AllowList`] does not allow.
    pub dropped_url: u64,
}

#[derive(Debug)]
struct Pending {
    hook: Hook,
    attempts: u32,
    not_before: Option<Instant>,
}

/// The pure webhook queue: order, bound, retry schedule.
#[derive(Debug, Default)]
pub struct HookQueue {
    queue: VecDeque<Pending>,
    in_flight: bool,
    counters: HookCounters,
    allow: AllowList,
}

impl HookQueue {
    /// An empty queue.
    pub fn new() -> HookQueue {
        HookQueue::default()
    }

    /// An empty queue that drops calls to hosts `allow` does not allow.
    pub fn with_allow_list(allow: AllowList) -> HookQueue {
        HookQueue {
            allow,
            ..HookQueue::default()
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> HookCounters {
        self.counters
    }

    /// Calls waiting (including the one in flight).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// No call waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues a call. `false`: dropped (full queue or bad URL), and counted.
    pub fn push(&mut self, hook: Hook) -> bool {
        let Some((host, port, _)) = parse_url(&hook.url) else {
            self.counters.dropped_url += 1;
            warn!(url = %hook.url.chars().take(200).collect::<String>(),
                "webhook dropped: not an http://host[:port]/path URL within bounds");
            return false;
        };
        if !self.allow.allows(&host, port) {
            self.counters.dropped_url += 1;
            warn!(url = %hook.url, %host, port,
                "webhook dropped: host not in the webhook allow-list (--webhook-allow-host)");
            return false;
        }
        if self.queue.len() >= MAX_QUEUE {
            self.counters.dropped_full += 1;
            return false;
        }
        self.counters.queued += 1;
        self.queue.push_back(Pending {
            hook,
            attempts: 0,
            not_before: None,
        });
        true
    }

    /// Counts a call dropped before it reached the queue (the channel to the sender was full).
    pub fn count_dropped_full(&mut self, n: u64) {
        self.counters.dropped_full += n;
    }

    /// The next call to make now, if one is due and none is in flight.
    pub fn poll_request(&mut self, now: Instant) -> Option<Hook> {
        if self.in_flight {
            return None;
        }
        let head = self.queue.front_mut()?;
        if head.not_before.is_some_and(|t| now < t) {
            return None;
        }
        head.attempts += 1;
        self.in_flight = true;
        Some(head.hook.clone())
    }

    /// When the head call is due next (`None`: nothing waits, or a call is in flight).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight {
            return None;
        }
        self.queue.front().and_then(|p| p.not_before)
    }

    /// The outcome of the call in flight. `Ok` goes on to the next call; a failure is retried
    /// after the call's delay, or dropped after its last retry.
    pub fn handle_result(&mut self, now: Instant, delivered: bool) {
        if !std::mem::replace(&mut self.in_flight, false) {
            return;
        }
        let Some(head) = self.queue.front_mut() else {
            return;
        };
        if delivered {
            self.counters.delivered += 1;
            self.queue.pop_front();
        } else if head.attempts > head.hook.delivery.retries.min(MAX_RETRIES) {
            self.counters.dropped_attempts += 1;
            self.queue.pop_front();
        } else {
            self.counters.retried += 1;
            head.not_before = Some(now + head.hook.delivery.retry_delay);
        }
    }

    /// Drops every waiting call (the end of a shutdown's drain), counted; how many.
    pub fn abandon(&mut self) -> usize {
        let n = self.queue.len();
        self.counters.dropped_attempts += n as u64;
        self.queue.clear();
        self.in_flight = false;
        n
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests {
    use super::*;

    fn hook(n: usize) -> Hook {
        Hook::new(
            "http://127.0.0.1:9/hook",
            Action::LiveStreamStarted,
            &HookInfo {
                app: "LiveApp",
                id: &format!("s{n}"),
                ..HookInfo::default()
            },
            1,
        )
    }

    fn id(h: &Hook) -> &str {
        &h.fields[0].1
    }

    #[test]
    fn fields_have_ams_names_and_form_encoding() {
        let h = Hook::new(
            "http://h/x",
            Action::PlayStarted,
            &HookInfo {
                app: "LiveApp",
                id: "cam 1",
                stream_name: Some("a&b=c"),
                category: Some(""),
                main_track: Some("room1"),
                subscriber_id: Some("sub"),
                metadata: None,
            },
            42,
        );
        let keys: Vec<&str> = h.fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "id",
                "action",
                "streamName",
                "mainTrackId",
                "roomId",
                "subscriberId",
                "app",
                "timestamp"
            ]
        );
        assert_eq!(
            h.form(),
            "id=cam+1&action=playStarted&streamName=a%26b%3Dc&mainTrackId=room1&roomId=room1\
             &subscriberId=sub&app=LiveApp&timestamp=42"
        );
    }

    #[test]
    fn urls_are_http_only_and_bounded() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/hook?a=1"),
            Some(("127.0.0.1".into(), 8080, "/hook?a=1".into()))
        );
        assert_eq!(
            parse_url("HTTP://example.com"),
            Some(("example.com".into(), 80, "/".into()))
        );
        assert_eq!(
            parse_url("http://[::1]:81/x"),
            Some(("::1".into(), 81, "/x".into()))
        );
        assert_eq!(parse_url("https://example.com/"), None);
        assert_eq!(parse_url("file:///etc/passwd"), None);
        assert_eq!(parse_url("http://user@host/"), None);
        assert_eq!(parse_url("http://host:0/"), None);
        assert_eq!(parse_url("http://host/a b"), None);
        assert_eq!(parse_url("http:///x"), None);
        let long = format!("http://h/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse_url(&long), None);
        let mut q = HookQueue::new();
        assert!(!q.push(Hook {
            url: "https://h/".into(),
            fields: vec![],
            delivery: Delivery::default(),
        }));
        assert_eq!(q.counters().dropped_url, 1);
    }

    #[test]
    fn calls_to_hosts_outside_the_allow_list_are_dropped_and_counted() {
        let allow = AllowList::parse(&["127.0.0.1:9000", "hooks.example"]).unwrap();
        let mut q = HookQueue::with_allow_list(allow);
        let at = |url: &str| Hook {
            url: url.into(),
            fields: vec![],
            delivery: Delivery::default(),
        };
        assert!(q.push(at("http://127.0.0.1:9000/h")));
        assert!(q.push(at("http://Hooks.Example/any")));
        assert!(!q.push(at("http://127.0.0.1:9001/h")));
        assert!(!q.push(at("http://169.254.169.254/latest/meta-data")));
        assert!(!q.push(at("http://hooks.example.attacker/x")));
        let c = q.counters();
        assert_eq!((c.queued, c.dropped_url), (2, 3));
        assert_eq!(q.len(), 2);
        // The queue hands out only the allowed calls, in order.
        let now = Instant::now();
        assert_eq!(q.poll_request(now).unwrap().url, "http://127.0.0.1:9000/h");
        q.handle_result(now, true);
        assert_eq!(q.poll_request(now).unwrap().url, "http://Hooks.Example/any");
    }

    #[test]
    fn calls_go_out_in_order_one_at_a_time() {
        let now = Instant::now();
        let mut q = HookQueue::new();
        for n in 0..3 {
            assert!(q.push(hook(n)));
        }
        let first = q.poll_request(now).expect("due");
        assert_eq!(id(&first), "s0");
        assert_eq!(q.poll_request(now), None, "one in flight at a time");
        q.handle_result(now, true);
        assert_eq!(id(&q.poll_request(now).expect("due")), "s1");
        q.handle_result(now, true);
        assert_eq!(id(&q.poll_request(now).expect("due")), "s2");
        q.handle_result(now, true);
        assert!(q.is_empty());
        assert_eq!(q.counters().delivered, 3);
    }

    #[test]
    fn failures_are_retried_as_the_settings_say_then_given_up() {
        let t0 = Instant::now();
        let mut q = HookQueue::new();
        let settings = serde_json::json!({"webhookRetryCount": 4, "webhookRetryDelay": 250});
        let delivery = Delivery::from_settings(settings.as_object().unwrap());
        q.push(hook(0).with_delivery(delivery));
        q.push(hook(1));
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..5 {
            let h = q.poll_request(now).expect("due");
            assert_eq!(id(&h), "s0", "a retried call holds back the next");
            q.handle_result(now, false);
            if let Some(t) = q.poll_timeout() {
                assert_eq!(
                    q.poll_request(t - Duration::from_millis(1)),
                    None,
                    "not before"
                );
                delays.push(t - now);
                now = t;
            }
        }
        assert_eq!(delays, [Duration::from_millis(250); 4].to_vec());
        assert_eq!(q.counters().dropped_attempts, 1);
        assert_eq!(q.counters().retried, 4);
        // AMS's default: no retry.
        assert_eq!(id(&q.poll_request(now).expect("next")), "s1");
        q.handle_result(now, false);
        assert!(q.is_empty());
        assert_eq!(q.counters().dropped_attempts, 2);
    }

    #[test]
    fn delivery_settings_are_read_with_ams_names_and_bounded() {
        let d = |v: serde_json::Value| Delivery::from_settings(v.as_object().unwrap());
        assert_eq!(d(serde_json::json!({})), Delivery::default());
        let big =
            d(serde_json::json!({"webhookRetryCount": 1000, "webhookRetryDelay": 10_000_000}));
        assert_eq!(
            (big.retries, big.retry_delay),
            (MAX_RETRIES, MAX_RETRY_DELAY)
        );
        let small = d(serde_json::json!({"webhookRetryDelay": 0, "webhookRetryCount": "x"}));
        assert_eq!((small.retries, small.retry_delay), (0, MIN_RETRY_DELAY));
        assert!(
            !d(serde_json::json!({"webhookContentType": "application/x-www-form-urlencoded"})).json
        );
        assert!(d(serde_json::json!({"webhookContentType": "application/json"})).json);
    }

    #[test]
    fn json_bodies_carry_the_same_fields_and_embed_object_metadata() {
        let info = HookInfo {
            app: "LiveApp",
            id: "s1",
            metadata: Some(r#"{"a":1}"#),
            ..HookInfo::default()
        };
        let h = Hook::new("http://h/x", Action::PlayStarted, &info, 7);
        assert_eq!(h.content_type(), "application/json");
        let v: serde_json::Value = serde_json::from_str(&h.body()).unwrap();
        assert_eq!(v["id"], "s1");
        assert_eq!(v["action"], "playStarted");
        assert_eq!(v["timestamp"], "7");
        assert_eq!(v["metadata"]["a"], 1);
        let form = h.with_delivery(Delivery {
            json: false,
            ..Delivery::default()
        });
        assert_eq!(form.content_type(), FORM_CONTENT_TYPE);
        assert!(
            form.body().starts_with("id=s1&action=playStarted"),
            "{}",
            form.body()
        );
    }

    #[test]
    fn abandon_drops_and_counts_what_waits() {
        let now = Instant::now();
        let mut q = HookQueue::new();
        q.push(hook(0));
        q.push(hook(1));
        q.poll_request(now).expect("due");
        assert_eq!(q.abandon(), 2);
        assert!(q.is_empty());
        assert_eq!(q.counters().dropped_attempts, 2);
    }

    #[test]
    fn queue_is_bounded() {
        let mut q = HookQueue::new();
        for n in 0..MAX_QUEUE + 10 {
            q.push(hook(n));
        }
        assert_eq!(q.len(), MAX_QUEUE);
        assert_eq!(q.counters().dropped_full, 10);
        assert_eq!(q.counters().queued, MAX_QUEUE as u64);
    }

    #[test]
    fn a_result_without_a_call_in_flight_changes_nothing() {
        let now = Instant::now();
        let mut q = HookQueue::new();
        q.push(hook(0));
        q.handle_result(now, true);
        assert_eq!(q.len(), 1);
        assert_eq!(q.counters().delivered, 0);
    }
}
