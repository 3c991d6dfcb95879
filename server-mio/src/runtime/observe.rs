//! The runtime's observability glue: `/metrics` (a [`Snapshot`] of the cores' counters, encoded
//! by [`crate::metrics`]), `/healthz` and `/readyz`, the drain period at shutdown, and the
//! webhook calls made from the signalling core's stream events ([`crate::hooks`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::{EventKind, StreamEvent};
use tracing::{debug, info, warn};

use super::{Runtime, State};
use crate::hooks::{self, Action as HookAction, Hook, HookInfo, HookSender};
use crate::http::{self, RestHead};
use crate::metrics::{self, LoopTimes, Snapshot, Traffic};

/// Observability state of the runtime.
#[derive(Debug, Default)]
pub(super) struct Obs {
    pub(super) loop_times: LoopTimes,
    pub(super) traffic: Traffic,
    hooks: Option<HookSender>,
    /// How long `/readyz` answers 503 before the graceful shutdown begins.
    drain: Duration,
    /// A stop signal came: the shutdown begins at this time.
    pub(super) draining_until: Option<Instant>,
}

impl Runtime {
    /// Logs the sizes of the connection and signalling state when they change (at most once
    /// per housekeeping pass), so that what ghosts and idle timeouts leave behind is visible.
    pub(super) fn log_state(&mut self) {
        let sizes = StateSizes {
            connections: self.conns.len(),
            websockets: self.conns.values().filter(|c| c.is_open_ws()).count(),
            signalling_connections: self.node.sig.connection_count(),
            sessions: self.node.sig.session_count(),
            publishers: self.node.sig.publisher_count(),
            media_sessions: self.node.sfu.session_count(),
            signalling_idle: self.node.sig.is_idle(),
        };
        if self.logged_state == Some(sizes) {
            return;
        }
        debug!(
            connections = sizes.connections,
            websockets = sizes.websockets,
            signalling_connections = sizes.signalling_connections,
            sessions = sizes.sessions,
            publishers = sizes.publishers,
            media_sessions = sizes.media_sessions,
            signalling_idle = sizes.signalling_idle,
            "state sizes"
        );
        self.logged_state = Some(sizes);
    }

    /// Logs the refusal and drop counters, and the data channel drops, when they changed
    /// (once per housekeeping pass).
    pub(super) fn log_counters(&mut self) {
        if self.counters != self.logged {
            let c = self.counters;
            let refusals = |c: &crate::limits::Counters| {
                (
                    c.udp_dropped,
                    c.slow_clients_dropped,
                    c.refused_total,
                    c.refused_per_ip,
                    c.accept_paused,
                    c.http_timeouts,
                    c.ws_idle_closed,
                )
            };
            if refusals(&c) != refusals(&self.logged) {
                warn!(
                    udp_dropped = c.udp_dropped,
                    slow_clients_dropped = c.slow_clients_dropped,
                    refused_total = c.refused_total,
                    refused_per_ip = c.refused_per_ip,
                    accept_paused = c.accept_paused,
                    http_timeouts = c.http_timeouts,
                    ws_idle_closed = c.ws_idle_closed,
                    connections = self.per_ip.total(),
                    "refusals and drops so far"
                );
            } else {
                debug!(
                    ws_pings_sent = c.ws_pings_sent,
                    read_budget_yields = c.read_budget_yields,
                    "websocket liveness and fairness"
                );
            }
            self.logged = c;
        }
        // Data-channel messages the relay dropped (oversize, over rate, slow receivers):
        // logged once per housekeeping pass when they change.
        let data = self.node.sfu.data_stats();
        let drops = |d: &rtc_core::DataStats| {
            (
                d.dropped_oversize,
                d.dropped_rate,
                d.dropped_congested,
                d.dropped_not_relayed,
            )
        };
        if drops(&data) != drops(&self.logged_data) {
            info!(
                received = data.received,
                delivered = data.delivered,
                dropped_oversize = data.dropped_oversize,
                dropped_rate = data.dropped_rate,
                dropped_congested = data.dropped_congested,
                dropped_not_relayed = data.dropped_not_relayed,
                "data channel messages dropped"
            );
            self.logged_data = data;
        }
    }

    /// After a stop signal, `/readyz` answers 503 for `drain` while everything else keeps
    /// working (load balancers stop sending new clients), then the graceful shutdown begins.
    /// A second signal begins it at once.
    pub fn with_shutdown_drain(mut self, drain: Duration) -> Runtime {
        self.obs.drain = drain;
        self
    }

    /// Sends AMS webhooks (`listenerHookURL` of the broadcast, else of the application) from a
    /// sender thread with a bounded queue, to the hosts `allow` allows (empty: any).
    pub fn with_webhooks(mut self, allow: hooks::AllowList) -> std::io::Result<Runtime> {
        self.obs.hooks = Some(hooks::spawn_sender(allow)?);
        self.node.sig.set_record_events(true);
        Ok(self)
    }

    /// A stop signal: start draining, or (no drain period, or a second signal) shut down.
    /// `true`: exit now.
    pub(super) fn stop_signal(&mut self, now: Instant) -> bool {
        if self.shutdown_deadline.is_some() {
            info!("second stop signal; exiting now");
            return true;
        }
        if self.obs.drain.is_zero() || self.obs.draining_until.is_some() {
            self.obs.draining_until = None;
            self.begin_shutdown(now);
        } else {
            info!(
                drain_ms = self.obs.drain.as_millis() as u64,
                "stop signal: readyz answers 503; shutting down after the drain period"
            );
            self.obs.draining_until = Some(now + self.obs.drain);
        }
        false
    }

    /// Begins the shutdown when the drain period is over.
    pub(super) fn check_drain(&mut self, now: Instant) {
        if self.obs.draining_until.is_some_and(|t| now >= t) {
            self.obs.draining_until = None;
            self.begin_shutdown(now);
        }
    }

    fn shutting_down(&self) -> bool {
        self.obs.draining_until.is_some() || self.shutdown_deadline.is_some()
    }

    /// Ready: listening, the store takes durable writes, no shutdown under way.
    fn ready(&self) -> Result<(), &'static str> {
        if self.shutting_down() {
            return Err("shutting down");
        }
        if self.listener.is_none() {
            return Err("not accepting connections");
        }
        if self.node.store_health().is_err() {
            return Err("datastore not writable");
        }
        Ok(())
    }

    /// The `/healthz` or `/readyz` answer.
    pub(super) fn health_response(&self, ready: bool, head: bool) -> Vec<u8> {
        let result = if ready { self.ready() } else { Ok(()) };
        let (status, body) = match result {
            Ok(()) => (200, "ok\n".to_string()),
            Err(why) => (503, format!("{why}\n")),
        };
        http::response(
            status,
            http::reason(status),
            "text/plain; charset=utf-8",
            body.as_bytes(),
            head,
            &[("Cache-Control", "no-store")],
        )
    }

    /// The `/metrics` answer, after the admin gate (with the store's health left out: metrics
    /// matter most when the store fails).
    pub(super) fn metrics_response(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        head: &RestHead,
    ) -> Vec<u8> {
        if let Err(refused) =
            self.node
                .check_rest_head(now, peer, head, node::admin::HeadKind::Metrics)
        {
            return refused.response;
        }
        let text = metrics::encode(&self.snapshot(), &self.obs.loop_times);
        http::response(
            200,
            "OK",
            metrics::CONTENT_TYPE,
            text.as_bytes(),
            head.method == "HEAD",
            &[("Cache-Control", "no-store")],
        )
    }

    fn snapshot(&self) -> Snapshot {
        let sig = &self.node.sig;
        let refusals = sig.refusals();
        let gate = self
            .node
            .admin()
            .map(node::admin::Admin::counters)
            .unwrap_or_default();
        Snapshot {
            connections: self.conns.len() as u64,
            websockets: self
                .conns
                .values()
                .filter(|c| matches!(c.state, State::Ws { .. }))
                .count() as u64,
            roles: sig.session_roles(),
            streams: sig.publisher_count() as u64,
            rooms: sig.room_count() as u64,
            media_sessions: self.node.sfu.session_count() as u64,
            traffic: self.obs.traffic,
            sfu: self.node.sfu.counters(),
            runtime: self.counters,
            signalling_refusals: refusals.iter().map(|(d, n)| (d.to_string(), n)).collect(),
            limit_refusals: sig.limit_counters(),
            auth_closed: refusals.conns_closed,
            rest_refusals: antenna_store::Refused::ALL
                .iter()
                .map(|r| (r.as_str(), gate.get(*r)))
                .collect(),
            store_healthy: self.node.store_health().is_ok(),
            cpu_overloaded: self.cpu.is_overloaded(),
            cpu_limit_percent: self.cpu.limit().percent().map_or(0, u64::from),
            hooks: self
                .obs
                .hooks
                .as_ref()
                .map(HookSender::counters)
                .unwrap_or_default(),
            shutting_down: self.shutting_down(),
            store: self.datastore.store.borrow().counters(),
            whip: {
                let t = &self.node.resources;
                let (live_whip, live_whep) = t.live_by_kind();
                metrics::Whip {
                    live_whip: live_whip as u64,
                    live_whep: live_whep as u64,
                    created: t.created,
                    ended: t.ended,
                    refused: t.refused.iter().map(|(s, n)| (*s, *n)).collect(),
                    token_lockouts: t.bad_tokens.lockouts,
                    ice_restarts: t.restarts,
                }
            },
            relays: {
                let (c, running) = self.node.relay_counters();
                let w = sig.remote_counters();
                let a = self
                    .node
                    .admin()
                    .map(node::admin::Admin::relay_auth_counters)
                    .unwrap_or_default();
                metrics::Relays {
                    running: running as u64,
                    started: c.started,
                    ended: [
                        ("finished", c.finished),
                        ("stopped", c.stopped),
                        ("failed", c.failed),
                    ],
                    plays: [
                        ("waited", w.waited),
                        ("released", w.released),
                        ("refused", w.failed),
                        ("overflow", w.overflow),
                    ],
                    room_members: [
                        ("looked_up", w.room_members),
                        ("over_bound", w.room_overflow),
                    ],
                    auth: [("accepted", a.accepted), ("refused", a.refused)],
                    udp_dropped: self.relay.udp_dropped,
                }
            },
        }
    }

    /// Graceful shutdown: the webhook calls still queued go out within a bounded wait.
    pub(super) fn close_hooks(&mut self) {
        if let Some(sender) = &mut self.obs.hooks {
            sender.close();
        }
    }

    /// Turns the signalling core's stream events into webhook calls.
    pub(super) fn pump_hooks(&mut self, now: Instant) {
        while let Some(ev) = self.node.sig.poll_event() {
            self.cluster_stream_event(now, &ev);
            if let Some(sender) = &self.obs.hooks {
                for hook in hooks_for(&self.node, &ev) {
                    debug!(url = %hook.url, stream = %ev.stream, "webhook queued");
                    sender.send(hook);
                }
            }
        }
    }
}

/// The calls AMS makes for `ev`, to the receiver the admin core names.
fn hooks_for(node: &node::Node, ev: &StreamEvent) -> Vec<Hook> {
    let Some(target) = node.hook_target(&ev.app, &ev.stream) else {
        return Vec::new();
    };
    let url = target.url.as_str();
    let delivery = hooks::Delivery::from_settings(&target.settings);
    let name = ev.name.as_deref().or(target.name.as_deref());
    let info = HookInfo {
        app: &ev.app,
        id: &ev.stream,
        stream_name: name,
        category: target.category.as_deref(),
        main_track: ev.main_track.as_deref(),
        subscriber_id: ev.subscriber_id.as_deref(),
        metadata: target.metadata.as_deref(),
    };
    let now = hooks::unix_ms();
    let mut out = Vec::new();
    let action = match ev.kind {
        EventKind::PublishStarted => HookAction::LiveStreamStarted,
        EventKind::PublishEnded => HookAction::LiveStreamEnded,
        EventKind::PublishTimeout => HookAction::PublishTimeoutError,
        EventKind::PlayStarted => HookAction::PlayStarted,
        EventKind::PlayStopped => HookAction::PlayStopped,
    };
    out.push(Hook::new(url, action, &info, now));
    if ev.main_track.is_some() {
        match ev.kind {
            EventKind::PublishStarted => {
                out.push(Hook::new(url, HookAction::SubtrackAdded, &info, now));
            }
            EventKind::PublishEnded => {
                out.push(Hook::new(url, HookAction::SubtrackLeft, &info, now));
            }
            _ => {}
        }
    }
    out.into_iter().map(|h| h.with_delivery(delivery)).collect()
}

/// Sizes of the runtime's and the cores' state, for the `state sizes` log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StateSizes {
    connections: usize,
    websockets: usize,
    signalling_connections: usize,
    sessions: usize,
    publishers: usize,
    media_sessions: usize,
    signalling_idle: bool,
}
