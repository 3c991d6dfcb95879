//! `GET /metrics`: the server's counters in the Prometheus/OpenMetrics text format, encoded by
//! the `prometheus-client` crate (nothing here formats the exposition by hand).
//!
//! (About 700 lines: a fifth of them the test that reads every metric back from the text.)
//!
//! The cores keep plain counters and sizes (pure, no registry); the runtime copies them into
//! a [`Snapshot`] at scrape time and [`encode`] maps the snapshot into a fresh registry. Only
//! the loop-iteration histogram lives across scrapes ([`LoopTimes`]): it is observed once per
//! loop turn. Every name carries the `antenna_` prefix; README lists them with their meaning.

use prometheus_client::encoding::{text, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The loop iteration times: how long one turn of the event loop spent handling events (from
/// the return of `poll` to the next call), in seconds, and the longest turn since start (a
/// stall shows there even when the histogram's top bucket hides how long it was).
#[derive(Debug, Clone)]
pub struct LoopTimes {
    hist: Histogram,
    worst: std::cell::Cell<f64>,
}

impl Default for LoopTimes {
    fn default() -> Self {
        LoopTimes {
            // 10 µs .. ~1.3 s, doubling.
            hist: Histogram::new(exponential_buckets(1e-5, 2.0, 18)),
            worst: std::cell::Cell::new(0.0),
        }
    }
}

impl LoopTimes {
    /// Records one iteration.
    pub fn observe(&self, seconds: f64) {
        self.hist.observe(seconds);
        if seconds > self.worst.get() {
            self.worst.set(seconds);
        }
    }
}

/// Datagrams and bytes through the media port, counted by the runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams received.
    pub packets_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams sent.
    pub packets_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// Everything `/metrics` reports, copied from the cores and the runtime at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Open TCP connections (HTTP and WebSocket).
    pub connections: u64,
    /// Open WebSockets.
    pub websockets: u64,
    /// Media sessions by role.
    pub roles: proto_core::SessionRoles,
    /// Streams being published.
    pub streams: u64,
    /// Conference rooms with members.
    pub rooms: u64,
    /// Sessions the media core holds.
    pub media_sessions: u64,
    /// Media port traffic.
    pub traffic: Traffic,
    /// The media core's counters (drops, forwarded packets, keyframe requests).
    pub sfu: rtc_core::SfuCounters,
    /// The runtime's refusal and drop counters.
    pub runtime: crate::limits::Counters,
    /// Signalling refusals: `(error definition, count)`.
    pub signalling_refusals: Vec<(String, u64)>,
    /// Signalling field-length and per-connection-count refusals.
    pub limit_refusals: proto_core::LimitCounters,
    /// Connections closed for repeated credential failures.
    pub auth_closed: u64,
    /// Admin gate refusals: `(reason, count)`.
    pub rest_refusals: Vec<(&'static str, u64)>,
    /// The datastore is healthy (writes become durable).
    pub store_healthy: bool,
    /// CPU admission: refusing new publish/play now.
    pub cpu_overloaded: bool,
    /// CPU admission threshold in percent of a core (0: off).
    pub cpu_limit_percent: u64,
    /// Webhook counters.
    pub hooks: crate::hooks::HookCounters,
    /// Not ready: a graceful shutdown began.
    pub shutting_down: bool,
    /// The datastore's commit counters and latency (`None`: no store thread, memory store).
    pub store: Option<antenna_store::StoreCounters>,
    /// Live WHIP and WHEP resources.
    pub whip: Whip,
    /// Cluster mode's relays.
    pub relays: Relays,
}

/// Cluster mode's relay figures: the edge's relays and waiting plays, the origin's checks.
#[derive(Debug, Clone, Default)]
pub struct Relays {
    /// Relays running on this edge.
    pub running: u64,
    /// Relays started.
    pub started: u64,
    /// Relays ended: `(why, count)`.
    pub ended: [(&'static str, u64); 3],
    /// Plays for streams of other nodes: `(outcome, count)`.
    pub plays: [(&'static str, u64); 4],
    /// Members of rooms played here that publish on other nodes: `(outcome, count)`.
    pub room_members: [(&'static str, u64); 2],
    /// Relay plays on this origin: `(result, count)`.
    pub auth: [(&'static str, u64); 2],
    /// Datagrams to an origin dropped because the relay socket would block.
    pub udp_dropped: u64,
}

/// The WHIP/WHEP resource table's figures.
#[derive(Debug, Clone, Default)]
pub struct Whip {
    /// Live WHIP (ingest) resources.
    pub live_whip: u64,
    /// Live WHEP (playback) resources.
    pub live_whep: u64,
    /// Resources created so far.
    pub created: u64,
    /// Resources ended so far.
    pub ended: u64,
    /// Refused requests: `(HTTP status, count)`.
    pub refused: Vec<(u16, u64)>,
    /// Addresses locked out after repeated wrong tokens.
    pub token_lockouts: u64,
    /// ICE restarts made (`PATCH`).
    pub ice_restarts: u64,
}

/// The store's commit-latency histogram, from the fixed buckets the store thread fills.
#[derive(Debug)]
struct CommitSeconds(antenna_store::StoreCounters);

impl TypedMetric for CommitSeconds {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for CommitSeconds {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.0;
        // Upper bounds in seconds; the last bucket is +Inf (the encoder accumulates counts).
        let bounds = antenna_store::COMMIT_BUCKETS_MICROS
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain(std::iter::once(f64::MAX));
        let buckets: Vec<(f64, u64)> = bounds.zip(c.commit_buckets.iter().copied()).collect();
        let sum = c.commit_micros_sum as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, c.commit_attempts(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Registers each `(name, help, value)` as a gauge.
fn gauges(reg: &mut Registry, items: &[(&str, &str, u64)]) {
    for &(name, help, v) in items {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        reg.register(name, help, g);
    }
}

/// Registers each `(name, help, value)` as a counter.
fn counters(reg: &mut Registry, items: &[(&str, &str, u64)]) {
    for &(name, help, v) in items {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        reg.register(name, help, c);
    }
}

/// Registers one gauge family with a value per `label` value.
fn gauge_family<'a>(
    reg: &mut Registry,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let f = Family::<Vec<(String, String)>, Gauge>::default();
    for (value, n) in values {
        f.get_or_create(&vec![(label.to_string(), value.to_string())])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    reg.register(name, help, f);
}

type Labelled = Family<Vec<(String, String)>, Counter>;

/// Registers one counter family with a count per `label` value.
fn labelled<'a>(
    reg: &mut Registry,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let f = Labelled::default();
    for (value, n) in values {
        f.get_or_create(&vec![(label.to_string(), value.to_string())])
            .inc_by(n);
    }
    reg.register(name, help, f);
}

/// The exposition of `s` and the loop times, in the OpenMetrics text format.
pub fn encode(s: &Snapshot, loop_times: &LoopTimes) -> String {
    let mut reg = Registry::with_prefix("antenna");
    let r = &mut reg;
    gauges(
        r,
        &[
            ("connections", "Open TCP connections", s.connections),
            ("websockets", "Open WebSockets", s.websockets),
        ],
    );
    gauge_family(
        r,
        "sessions",
        "Media sessions by role",
        "role",
        [
            ("publish", s.roles.publish),
            ("play", s.roles.play),
            ("room_play", s.roles.room_play),
        ],
    );
    gauges(
        r,
        &[
            ("streams", "Streams being published", s.streams),
            (
                "streams_live",
                "Published streams whose media started",
                s.roles.live,
            ),
            ("rooms", "Conference rooms with members", s.rooms),
            (
                "media_sessions",
                "Peer connections in the media core",
                s.media_sessions,
            ),
        ],
    );
    let t = s.traffic;
    counters(
        r,
        &[
            (
                "udp_packets_received",
                "Datagrams received on the media port",
                t.packets_in,
            ),
            (
                "udp_bytes_received",
                "Bytes received on the media port",
                t.bytes_in,
            ),
            (
                "udp_packets_sent",
                "Datagrams sent on the media port",
                t.packets_out,
            ),
            (
                "udp_bytes_sent",
                "Bytes sent on the media port",
                t.bytes_out,
            ),
            (
                "forwarded_packets",
                "RTP packets written to players (one per player)",
                s.sfu.forwarded_packets,
            ),
            (
                "keyframe_requests",
                "Keyframe requests (PLI) sent to publishers",
                s.sfu.keyframe_requests,
            ),
            (
                "sfu_timer_wakeups",
                "Media sessions woken by their own timers (grows with sessions)",
                s.sfu.timer_wakeups,
            ),
            (
                "sfu_flush_wakeups",
                "Players woken to send what was forwarded to them (grows with packets)",
                s.sfu.flush_wakeups,
            ),
            (
                "sfu_fast_path_players",
                "Players whose RTP took the fast path (AES-GCM SRTP sealed by Antenna)",
                s.sfu.fast_path_players,
            ),
            (
                "sfu_retransmitted_packets",
                "Video packets sent again to players on their NACKs (fast path)",
                s.sfu.retransmitted_packets,
            ),
            (
                "sfu_rtcp_unreadable",
                "SRTCP packets the fast path could not open",
                s.sfu.rtcp_unreadable,
            ),
            (
                "sfu_sender_reports_rewritten",
                "Sender reports given the fast path's RTP time and counts",
                s.sfu.sender_reports_rewritten,
            ),
        ],
    );
    labelled(
        r,
        "udp_dropped",
        "Datagrams dropped, by reason",
        "reason",
        [
            ("send_queue_full", s.runtime.udp_dropped),
            ("unknown_source", s.sfu.unknown_source_dropped),
            ("unparsable", s.sfu.unparsable_dropped),
        ],
    );
    counters(
        r,
        &[
            (
                "candidates_dropped",
                "Remote ICE candidates dropped (duplicate or over the bound)",
                s.sfu.candidates_dropped,
            ),
            (
                "relays_refused",
                "Relay sessions refused because every relay address was in use",
                s.sfu.relays_refused,
            ),
        ],
    );
    r.register(
        "loop_iteration_seconds",
        "Time one event-loop turn spent handling events",
        loop_times.hist.clone(),
    );
    let worst = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    worst.set(loop_times.worst.get());
    r.register(
        "loop_worst_iteration_seconds",
        "Longest event-loop turn since start",
        worst,
    );
    let mut refusals: Vec<(&str, u64)> = s
        .signalling_refusals
        .iter()
        .map(|(d, n)| (d.as_str(), *n))
        .collect();
    refusals.push(("parameter_too_long", s.limit_refusals.too_long));
    refusals.push(("connection_limit_reached", s.limit_refusals.too_many));
    labelled(
        r,
        "signalling_refusals",
        "Signalling requests refused, by AMS error definition",
        "definition",
        refusals,
    );
    counters(
        r,
        &[(
            "auth_failure_closes",
            "WebSockets closed for repeated credential failures",
            s.auth_closed,
        )],
    );
    let c = s.runtime;
    labelled(
        r,
        "connection_refusals",
        "Connections refused or dropped by a bound, by reason",
        "reason",
        [
            ("total_cap", c.refused_total),
            ("per_ip_cap", c.refused_per_ip),
            ("http_head_timeout", c.http_timeouts),
            ("slow_client", c.slow_clients_dropped),
            ("ws_idle", c.ws_idle_closed),
        ],
    );
    counters(
        r,
        &[(
            "accept_paused",
            "Times accepting paused for lack of file descriptors",
            c.accept_paused,
        )],
    );
    labelled(
        r,
        "rest_refusals",
        "Admin REST (and metrics) requests refused, by reason",
        "reason",
        s.rest_refusals.iter().copied(),
    );
    gauges(
        r,
        &[(
            "store_healthy",
            "1 while the datastore makes writes durable",
            u64::from(s.store_healthy),
        )],
    );
    if let Some(c) = s.store {
        counters(
            r,
            &[
                (
                    "store_commits",
                    "Datastore commits that succeeded",
                    c.commits,
                ),
                (
                    "store_failed_commits",
                    "Datastore commit attempts that failed (each retry counts)",
                    c.failed_commits,
                ),
                (
                    "store_recoveries",
                    "Times the datastore recovered (a commit succeeded after failures)",
                    c.recoveries,
                ),
            ],
        );
        r.register(
            "store_commit_seconds",
            "Time of each datastore commit attempt (fsync included) on the store thread",
            CommitSeconds(c),
        );
    }
    let w = &s.whip;
    gauge_family(
        r,
        "whip_resources",
        "Live WHIP and WHEP resources, by kind",
        "kind",
        [("whip", w.live_whip), ("whep", w.live_whep)],
    );
    counters(
        r,
        &[
            (
                "whip_resources_created",
                "WHIP and WHEP resources created",
                w.created,
            ),
            (
                "whip_resources_ended",
                "WHIP and WHEP resources ended",
                w.ended,
            ),
            (
                "whip_token_lockouts",
                "Client addresses locked out of WHIP and WHEP after repeated wrong tokens",
                w.token_lockouts,
            ),
            (
                "whip_ice_restarts",
                "ICE restarts of WHIP and WHEP resources (PATCH)",
                w.ice_restarts,
            ),
        ],
    );
    let statuses: Vec<(String, u64)> = w.refused.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    labelled(
        r,
        "whip_refusals",
        "WHIP and WHEP requests refused, by HTTP status",
        "status",
        statuses.iter().map(|(s, n)| (s.as_str(), *n)),
    );
    let rl = &s.relays;
    gauges(
        r,
        &[(
            "relays",
            "Relays of other nodes' streams running here",
            rl.running,
        )],
    );
    counters(
        r,
        &[
            (
                "relays_started",
                "Relays of other nodes' streams started",
                rl.started,
            ),
            (
                "relay_udp_dropped",
                "Datagrams to an origin dropped because the relay socket would block",
                rl.udp_dropped,
            ),
        ],
    );
    labelled(
        r,
        "relays_ended",
        "Relays ended, by why",
        "why",
        rl.ended.iter().copied(),
    );
    labelled(
        r,
        "relay_plays",
        "Plays of streams published on other nodes, by outcome",
        "outcome",
        rl.plays.iter().copied(),
    );
    labelled(
        r,
        "relay_room_members",
        "Members of rooms played here that publish on other nodes, by outcome",
        "outcome",
        rl.room_members.iter().copied(),
    );
    labelled(
        r,
        "relay_auth",
        "Plays with a cluster credential (edges' relays) on this node, by result",
        "result",
        rl.auth.iter().copied(),
    );
    gauges(
        r,
        &[
            (
                "cpu_overloaded",
                "1 while CPU admission refuses new publish and play",
                u64::from(s.cpu_overloaded),
            ),
            (
                "cpu_limit_percent",
                "CPU admission threshold, percent of a core (0: off)",
                s.cpu_limit_percent,
            ),
        ],
    );
    let h = s.hooks;
    counters(
        r,
        &[
            ("webhooks_queued", "Webhook calls queued", h.queued),
            (
                "webhooks_delivered",
                "Webhook calls answered 2xx",
                h.delivered,
            ),
            (
                "webhooks_retried",
                "Webhook attempts that failed and were retried",
                h.retried,
            ),
        ],
    );
    labelled(
        r,
        "webhooks_dropped",
        "Webhook calls given up, by reason",
        "reason",
        [
            ("queue_full", h.dropped_full),
            ("attempts", h.dropped_attempts),
            ("bad_url", h.dropped_url),
        ],
    );
    gauges(
        r,
        &[(
            "shutting_down",
            "1 once a graceful shutdown began (readyz is 503)",
            u64::from(s.shutting_down),
        )],
    );
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = text::encode(&mut out, &reg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"))
    }

    #[test]
    fn snapshot_values_reach_the_exposition() {
        let mut s = Snapshot {
            connections: 3,
            websockets: 2,
            streams: 1,
            ..Snapshot::default()
        };
        s.roles.publish = 1;
        s.roles.play = 4;
        s.traffic.bytes_in = 1234;
        s.sfu.forwarded_packets = 99;
        s.signalling_refusals = vec![("no_stream_exist".into(), 7)];
        s.limit_refusals.too_long = 2;
        s.rest_refusals = vec![("credential", 5)];
        s.hooks.dropped_full = 6;
        let mut store = antenna_store::StoreCounters {
            commits: 3,
            failed_commits: 1,
            commit_micros_sum: 2_500,
            ..Default::default()
        };
        store.commit_buckets[0] = 2; // <= 0.5 ms
        store.commit_buckets[2] = 1; // <= 2 ms
        store.commit_buckets[antenna_store::COMMIT_BUCKETS_MICROS.len()] = 1; // slower than all
        s.store = Some(store);
        s.relays.ended = [("finished", 3), ("stopped", 0), ("failed", 1)];
        s.relays.auth = [("accepted", 2), ("refused", 5)];
        s.whip = Whip {
            live_whip: 2,
            live_whep: 5,
            created: 9,
            ended: 2,
            refused: vec![(404, 3), (429, 1)],
            token_lockouts: 1,
            ice_restarts: 4,
        };
        s.sfu.timer_wakeups = 12;
        s.sfu.flush_wakeups = 34;
        let times = LoopTimes::default();
        times.observe(0.001);
        times.observe(0.003);
        times.observe(0.002);
        let text = encode(&s, &times);
        assert_eq!(
            line(&text, "antenna_loop_worst_iteration_seconds"),
            "antenna_loop_worst_iteration_seconds 0.003"
        );
        assert_eq!(
            line(&text, "antenna_sfu_timer_wakeups_total"),
            "antenna_sfu_timer_wakeups_total 12"
        );
        assert_eq!(
            line(&text, "antenna_sfu_flush_wakeups_total"),
            "antenna_sfu_flush_wakeups_total 34"
        );
        assert_eq!(line(&text, "antenna_connections "), "antenna_connections 3");
        assert_eq!(line(&text, "antenna_websockets "), "antenna_websockets 2");
        assert_eq!(
            line(&text, "antenna_sessions{role=\"play\"}"),
            "antenna_sessions{role=\"play\"} 4"
        );
        assert_eq!(
            line(&text, "antenna_udp_bytes_received_total"),
            "antenna_udp_bytes_received_total 1234"
        );
        assert_eq!(
            line(&text, "antenna_forwarded_packets_total"),
            "antenna_forwarded_packets_total 99"
        );
        assert!(
            text.contains("antenna_signalling_refusals_total{definition=\"no_stream_exist\"} 7")
        );
        assert!(
            text.contains("antenna_signalling_refusals_total{definition=\"parameter_too_long\"} 2")
        );
        assert!(text.contains("antenna_rest_refusals_total{reason=\"credential\"} 5"));
        assert!(text.contains("antenna_webhooks_dropped_total{reason=\"queue_full\"} 6"));
        assert_eq!(
            line(&text, "antenna_loop_iteration_seconds_count"),
            "antenna_loop_iteration_seconds_count 3"
        );
        assert!(text.contains("# TYPE antenna_loop_iteration_seconds histogram"));
        assert!(text.contains("antenna_store_commits_total 3"));
        assert!(text.contains("antenna_store_failed_commits_total 1"));
        assert!(text.contains("antenna_store_recoveries_total 0"));
        assert!(text.contains("# TYPE antenna_store_commit_seconds histogram"));
        assert_eq!(
            line(&text, "antenna_store_commit_seconds_count"),
            "antenna_store_commit_seconds_count 4"
        );
        assert_eq!(
            line(&text, "antenna_store_commit_seconds_sum"),
            "antenna_store_commit_seconds_sum 0.0025"
        );
        // Cumulative buckets.
        assert!(text.contains("antenna_store_commit_seconds_bucket{le=\"0.0005\"} 2"));
        assert!(text.contains("antenna_store_commit_seconds_bucket{le=\"0.001\"} 2"));
        assert!(text.contains("antenna_store_commit_seconds_bucket{le=\"0.002\"} 3"));
        assert!(text.contains("antenna_store_commit_seconds_bucket{le=\"+Inf\"} 4"));
        assert!(text.contains("antenna_whip_resources{kind=\"whep\"} 5"));
        assert!(text.contains("antenna_whip_resources_created_total 9"));
        assert!(text.contains("antenna_whip_refusals_total{status=\"404\"} 3"));
        assert!(text.contains("antenna_whip_token_lockouts_total 1"));
        assert!(text.contains("antenna_whip_ice_restarts_total 4"));
        assert!(text.contains("antenna_relays_ended_total{why=\"finished\"} 3"));
        assert!(text.contains("antenna_relay_auth_total{result=\"refused\"} 5"));
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn without_a_store_thread_no_store_metrics() {
        let text = encode(&Snapshot::default(), &LoopTimes::default());
        assert!(!text.contains("antenna_store_commit"));
        assert!(text.contains("antenna_whip_resources{kind=\"whip\"} 0"));
    }
}
