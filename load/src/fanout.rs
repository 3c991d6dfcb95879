//! Fan-out benchmark: one publisher, players added in steps; each step is held and measured.
//!
//! Per step the report gives the players that are up, the packets they received during the
//! hold, loss, duplicates and reordering from RTP sequence numbers, the probes' one-way latency
//! and time to the first keyframe, and the server's CPU and RSS (from `/proc/<pid>`).
//!
//! Loss never hides a silent player: a player that received nothing for the last 500 ms of the
//! hold (or at all) is charged the publisher's packets of that time as lost, on top of the gaps
//! in its sequence numbers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::engine::{Engine, Target};
use crate::media::MediaProfile;
use crate::peer::PeerMode;
use crate::procfs;
use crate::sig::Role;
use crate::stats::{Histogram, SeqCounts};

/// The settings a stepped run shares (fan-out and rooms): steps of cumulative counts, each
/// joined at a rate, settled, held and measured, and when to stop.
#[derive(Debug, Clone)]
pub struct RampConfig {
    /// Server.
    pub target: Target,
    /// Cumulative counts (players, rooms), one per step.
    pub steps: Vec<usize>,
    /// Measured time per step.
    pub hold: Duration,
    /// Wait after the joins of a step before measuring.
    pub settle: Duration,
    /// New peer connections per second.
    pub join_rate: f64,
    /// Peer connections joining at once.
    pub max_inflight: usize,
    /// A peer not up (connected and receiving) within this is counted failed.
    pub join_timeout: Duration,
    /// Probe players (decrypting, latency) added in each step.
    pub probes_per_step: usize,
    /// The probes are the step's last players, not its first.
    pub probes_last: bool,
    /// Media of every publisher.
    pub profile: MediaProfile,
    /// Server process for CPU/RSS.
    pub server_pid: Option<u32>,
    /// Stop after a step whose loss exceeds this (percent).
    pub loss_limit_pct: f64,
    /// Stop after a step with a lower delivery than this (percent).
    pub min_delivery_pct: f64,
    /// A step failing on loss or delivery (not on joins) is held and measured once more; the
    /// second measurement counts.
    pub remeasure_failed_step: bool,
    /// Stop after a step where joins failed.
    pub stop_on_failed_joins: bool,
    /// Before the joins of a step that follows a busy one (server CPU above 60 %), publishers
    /// pause (a trickle of audio) for this long, and stay paused while the step joins: a
    /// server with CPU admission control (Antenna refuses `play` above 75 % of a core,
    /// measured over 5 s) then admits sessions up to its forwarding limit. Time to first
    /// keyframe is only measured without a pause.
    pub pause_for_joins: Option<Duration>,
}

/// Fan-out run settings: one publisher, players added in steps.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Steps (cumulative player counts), rates, limits.
    pub ramp: RampConfig,
    /// Stream id to publish.
    pub stream: String,
}

/// Result of one step.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Players asked for.
    pub target_players: usize,
    /// Players up during the hold.
    pub players_up: usize,
    /// Joins that failed (refused, timed out, errors), cumulative.
    pub failed_joins: usize,
    /// The first failure reason seen.
    pub failure: Option<String>,
    /// Players that received nothing in the last 500 ms of the hold.
    pub silent_players: usize,
    /// Hold length (s).
    pub hold_s: f64,
    /// Packets published per second, per publisher (the stream each player plays).
    pub published_pps: f64,
    /// Packets received per second over all players (distinct).
    pub received_pps: f64,
    /// Sequence counters over the hold (video + audio, all healthy players).
    pub counts: SeqCounts,
    /// Packets charged to silent players.
    pub silent_lost: u64,
    /// Loss percentage (sequence gaps + silent players).
    pub loss_pct: f64,
    /// Distinct packets received over packets published times players up (percent). Below
    /// 100 by more than the hold-boundary noise (a keyframe burst, about 1.3 % of an 8 s hold)
    /// means packets are queued somewhere and arrive late: the server is not keeping up even
    /// if nothing is lost yet.
    pub delivery_pct: f64,
    /// Server CPU over the hold (% of one core).
    pub server_cpu_pct: Option<f64>,
    /// Time the server's loop thread waited for a CPU while runnable, over the hold (% of the
    /// hold): another process had its core (see [`procfs::run_queue_wait`]).
    pub server_runq_wait_pct: Option<f64>,
    /// Server RSS at the end of the hold (KiB).
    pub server_rss_kib: Option<u64>,
    /// Load generator CPU over the hold (% of one core).
    pub load_cpu_pct: Option<f64>,
    /// Probe one-way latency of video packets (µs): p50, p99, max, samples.
    pub latency_us: Option<(u64, u64, u64, u64)>,
    /// The same for audio packets.
    pub audio_latency_us: Option<(u64, u64, u64, u64)>,
    /// Time from play to first keyframe for the clients that joined in this step (ms): p50,
    /// p99, max.
    pub first_keyframe_ms: Option<(f64, f64, f64)>,
    /// The same from DTLS up (the player's `Event::Connected`) to its first keyframe: the part
    /// the server's keyframe request decides.
    pub first_keyframe_after_dtls_ms: Option<(f64, f64, f64)>,
    /// Publisher sends more than 20 ms late during the hold.
    pub late_sends: u64,
    /// Media packets every player received since it joined (including duplicates).
    pub received_since_join: u64,
    /// Media packets the publisher wrote since it started.
    pub published_since_start: u64,
    /// Datagrams dropped during the hold because a UDP receive buffer was full (this network
    /// namespace): in the server's sockets, and in all others (the load generator's).
    pub udp_drops: Option<(u64, u64)>,
}

impl StepReport {
    /// JSON object.
    pub fn to_json(&self, server: &str) -> Value {
        json!({
            "server": server,
            "players": self.target_players,
            "players_up": self.players_up,
            "failed_joins": self.failed_joins,
            "failure": self.failure,
            "silent_players": self.silent_players,
            "hold_s": self.hold_s,
            "published_pps": self.published_pps.round(),
            "received_pps": self.received_pps.round(),
            "received": self.counts.received,
            "expected": self.counts.expected,
            "lost": self.counts.lost() + self.silent_lost,
            "duplicates": self.counts.duplicates,
            "reordered": self.counts.reordered,
            "too_old": self.counts.too_old,
            "loss_pct": self.loss_pct,
            "delivery_pct": self.delivery_pct,
            "server_cpu_pct": self.server_cpu_pct,
            "server_runq_wait_pct": self.server_runq_wait_pct,
            "server_rss_kib": self.server_rss_kib,
            "load_cpu_pct": self.load_cpu_pct,
            "latency_p50_us": self.latency_us.map(|l| l.0),
            "latency_p99_us": self.latency_us.map(|l| l.1),
            "latency_max_us": self.latency_us.map(|l| l.2),
            "latency_samples": self.latency_us.map(|l| l.3),
            "audio_latency_p50_us": self.audio_latency_us.map(|l| l.0),
            "audio_latency_p99_us": self.audio_latency_us.map(|l| l.1),
            "audio_latency_max_us": self.audio_latency_us.map(|l| l.2),
            "first_keyframe_p50_ms": self.first_keyframe_ms.map(|k| k.0),
            "first_keyframe_p99_ms": self.first_keyframe_ms.map(|k| k.1),
            "first_keyframe_max_ms": self.first_keyframe_ms.map(|k| k.2),
            "first_keyframe_after_dtls_p50_ms": self.first_keyframe_after_dtls_ms.map(|k| k.0),
            "first_keyframe_after_dtls_p99_ms": self.first_keyframe_after_dtls_ms.map(|k| k.1),
            "first_keyframe_after_dtls_max_ms": self.first_keyframe_after_dtls_ms.map(|k| k.2),
            "late_sends": self.late_sends,
            "received_since_join": self.received_since_join,
            "published_since_start": self.published_since_start,
            "server_udp_drops": self.udp_drops.map(|d| d.0),
            "client_udp_drops": self.udp_drops.map(|d| d.1),
        })
    }

    /// One human-readable line.
    pub fn human(&self, server: &str) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.0}"));
        format!(
            "[{server}] {} players ({} up, {} failed, {} silent): {:.0} pkt/s received, delivery {:.1}%, loss {:.3}% \
             (dup {}, reord {}, udp drops server/client {}), server cpu {}% (waited for a cpu {}%) rss {} KiB, load cpu {}%, latency p50/p99 video {} audio {} us, \
             first keyframe p50 {} ms",
            self.target_players,
            self.players_up,
            self.failed_joins,
            self.silent_players,
            self.received_pps,
            self.delivery_pct,
            self.loss_pct,
            self.counts.duplicates,
            self.counts.reordered,
            self.udp_drops
                .map_or("-".into(), |d| format!("{}/{}", d.0, d.1)),
            opt(self.server_cpu_pct),
            opt(self.server_runq_wait_pct),
            self.server_rss_kib.map_or("-".into(), |r| r.to_string()),
            opt(self.load_cpu_pct),
            self.latency_us
                .map_or("-".into(), |l| format!("{}/{}", l.0, l.1)),
            self.audio_latency_us
                .map_or("-".into(), |l| format!("{}/{}", l.0, l.1)),
            self.first_keyframe_ms
                .map_or("-".into(), |k| format!("{:.0}", k.0)),
        )
    }
}

/// Starts the publisher and waits until it is up (and, for Janus, its feed id known).
pub fn start_publisher(engine: &mut Engine, stream: &str) -> Result<usize, String> {
    let i = engine
        .add(Role::Publish, PeerMode::Publisher, stream)
        .map_err(|e| format!("publisher connect: {e}"))?;
    let until = Instant::now() + Duration::from_secs(15);
    engine.run(until, |e| {
        e.clients
            .get(i)
            .is_some_and(|c| (c.peer.connected && c.up) || c.broken())
    });
    let c = engine.clients.get(i).ok_or("no publisher")?;
    if !(c.peer.connected && c.up) {
        return Err(format!(
            "publisher not up: connected {}, up {}, error {:?}, failed {:?}",
            c.peer.connected, c.up, c.error, c.peer.failed
        ));
    }
    Ok(i)
}

/// Runs the fan-out steps, calling `report` after each.
pub fn run(
    cfg: &FanoutConfig,
    mut report: impl FnMut(&StepReport),
) -> Result<Vec<StepReport>, String> {
    let mut engine =
        Engine::new(cfg.ramp.target.clone(), cfg.ramp.profile).map_err(|e| e.to_string())?;
    start_publisher(&mut engine, &cfg.stream)?;
    let play = engine
        .play_target(&cfg.stream)
        .ok_or("no feed id from the server")?;
    let mut reports = Vec::new();
    let mut first_failure: Option<String> = None;
    let mut joining: Vec<usize> = Vec::new();
    let mut keyframe_from = 0usize;
    for (step, &target) in cfg.ramp.steps.iter().enumerate() {
        // Only needed when the last hold kept the server busy (above 60 % of a core).
        let busy = reports
            .last()
            .is_some_and(|r: &StepReport| r.server_cpu_pct.is_none_or(|c| c > 60.0));
        let pause = cfg.ramp.pause_for_joins.filter(|_| step > 0 && busy);
        if let Some(cooldown) = pause {
            engine.paused = true;
            engine.run(Instant::now() + cooldown, |_| false);
        }
        // Join.
        let step_start = Instant::now();
        let mut players = engine.player_states().2;
        let mut probes_left = cfg.ramp.probes_per_step;
        let interval = Duration::from_secs_f64(1.0 / cfg.ramp.join_rate.max(0.1));
        let mut next_join = Instant::now();
        let deadline = step_start
            + cfg.ramp.join_timeout
            + Duration::from_secs_f64(
                target.saturating_sub(players) as f64 / cfg.ramp.join_rate.max(0.1),
            );
        while Instant::now() < deadline {
            let now = Instant::now();
            joining.retain(|&i| {
                engine.clients.get(i).is_some_and(|c| {
                    let up = c.healthy() && c.peer.received_packets > 0;
                    !up && !c.broken()
                        && now.saturating_duration_since(c.started) < cfg.ramp.join_timeout
                })
            });
            if players < target && joining.len() < cfg.ramp.max_inflight && now >= next_join {
                let probe_turn = if cfg.ramp.probes_last {
                    target - players <= probes_left
                } else {
                    true
                };
                let mode = if probes_left > 0 && probe_turn {
                    probes_left -= 1;
                    PeerMode::Probe
                } else {
                    PeerMode::Counter
                };
                match engine.add(Role::Play, mode, &play) {
                    Ok(i) => joining.push(i),
                    Err(e) => {
                        first_failure.get_or_insert(format!("connect: {e}"));
                        break;
                    }
                }
                players += 1;
                next_join = now + interval;
            }
            if players >= target && joining.is_empty() {
                break;
            }
            engine.turn(Duration::from_millis(2));
        }
        // Players still joining at the deadline are failures.
        let now = Instant::now();
        for &i in &joining {
            if let Some(c) = engine.clients.get_mut(i) {
                if c.error.is_none() {
                    c.error = Some(format!(
                        "not up after {:.1} s",
                        now.saturating_duration_since(c.started).as_secs_f64()
                    ));
                }
            }
        }
        joining.clear();
        for c in &engine.clients {
            if let Some(e) = &c.error {
                first_failure.get_or_insert(e.clone());
            }
        }
        // Full media again before the measurement.
        let kf_from = engine.resume_and_settle(cfg.ramp.settle, pause.is_some(), keyframe_from);
        let mut r = measure(
            &mut engine,
            cfg.ramp.hold,
            cfg.ramp.server_pid,
            target,
            kf_from,
            first_failure.clone(),
        );
        if cfg.ramp.remeasure_failed_step
            && r.failed_joins == 0
            && (r.loss_pct > cfg.ramp.loss_limit_pct || r.delivery_pct < cfg.ramp.min_delivery_pct)
        {
            // One noisy hold must not end the ramp: measure the same players once more and keep
            // the second result.
            r = measure(
                &mut engine,
                cfg.ramp.hold,
                cfg.ramp.server_pid,
                target,
                usize::MAX,
                first_failure.clone(),
            );
        }
        keyframe_from = engine.clients.len();
        report(&r);
        let stop = r.loss_pct > cfg.ramp.loss_limit_pct
            || r.delivery_pct < cfg.ramp.min_delivery_pct
            || (cfg.ramp.stop_on_failed_joins && r.failed_joins > 0)
            || r.players_up == 0;
        reports.push(r);
        if stop {
            break;
        }
    }
    for i in 0..engine.clients.len() {
        engine.close(i);
    }
    engine.run(Instant::now() + Duration::from_millis(200), |_| false);
    Ok(reports)
}

/// Holds for `hold` and measures every player that is healthy at the start (shared by the
/// fan-out and rooms benchmarks). `target` is the number of players asked for; clients from
/// index `keyframe_from` on contribute their time to the first keyframe.
///
/// Every healthy publisher sends the same media on the same clock, so the packets one stream
/// carried during the hold are the packets written divided by the publishers; each player
/// plays one stream and is expected to receive them all.
pub(crate) fn measure(
    engine: &mut Engine,
    hold: Duration,
    server_pid: Option<u32>,
    target: usize,
    keyframe_from: usize,
    failure: Option<String>,
) -> StepReport {
    let publishers = engine
        .clients
        .iter()
        .filter(|c| c.role == Role::Publish && c.healthy())
        .count()
        .max(1);
    let per_player_start: Vec<Option<SeqCounts>> = engine
        .clients
        .iter()
        .map(|c| {
            (c.role == Role::Play && c.healthy()).then(|| {
                let (mut v, a) = c.peer.counts();
                v.add(&a);
                v
            })
        })
        .collect();
    let s0 = engine.snapshot();
    let late0 = engine.late_sends;
    let cpu0 = procfs::cpu_time(server_pid);
    let own0 = procfs::cpu_time(None);
    let drops0 = server_pid.and_then(procfs::udp_drops);
    let wait0 = server_pid.and_then(procfs::run_queue_wait);
    engine.latency.clear();
    let t0 = Instant::now();
    engine.run(t0 + hold, |_| false);
    let t1 = Instant::now();
    let wall = t1.duration_since(t0).as_secs_f64();
    let cpu1 = procfs::cpu_time(server_pid);
    let own1 = procfs::cpu_time(None);
    let drops1 = server_pid.and_then(procfs::udp_drops);
    let wait1 = server_pid.and_then(procfs::run_queue_wait);
    // Per stream.
    let published = (engine.published - s0.published) / publishers as u64;
    let pub_pps = published as f64 / wall;
    let mut counts = SeqCounts::default();
    let mut silent = 0;
    let mut silent_lost = 0u64;
    let mut up = 0;
    for (i, c) in engine.clients.iter().enumerate() {
        let Some(Some(start)) = per_player_start.get(i) else {
            continue;
        };
        if c.role != Role::Play {
            continue;
        }
        up += 1;
        let (mut now, a) = c.peer.counts();
        now.add(&a);
        let d = now.since(start);
        counts.add(&d);
        let quiet_since = c.last_media.map_or(t0, |m| m.max(t0));
        let quiet = t1.saturating_duration_since(quiet_since);
        if quiet > Duration::from_millis(500) || c.broken() {
            silent += 1;
            silent_lost += (pub_pps * quiet.as_secs_f64()).round() as u64;
        }
    }
    let (_, failed, _) = engine.player_states();
    let expected = counts.expected + silent_lost;
    let lost = counts.lost() + silent_lost;
    let loss_pct = if expected == 0 {
        100.0
    } else {
        lost as f64 * 100.0 / expected as f64
    };
    let summary = |h: &Histogram| {
        (h.count() > 0).then(|| {
            (
                h.percentile_us(50.0).unwrap_or(0),
                h.percentile_us(99.0).unwrap_or(0),
                h.max_us(),
                h.count(),
            )
        })
    };
    let latency = summary(&engine.latency.video);
    let audio_latency = summary(&engine.latency.audio);
    let mut kf = Histogram::new();
    let mut kf_dtls = Histogram::new();
    for c in engine.clients.iter().skip(keyframe_from) {
        if let Some(k) = c.peer.first_keyframe {
            kf.record_us(k.saturating_duration_since(c.started).as_micros() as u64);
            if let Some(up) = c.peer.connected_at {
                kf_dtls.record_us(k.saturating_duration_since(up).as_micros() as u64);
            }
        }
    }
    let ms = |h: &Histogram| {
        (h.count() > 0).then(|| {
            (
                h.percentile_us(50.0).unwrap_or(0) as f64 / 1000.0,
                h.percentile_us(99.0).unwrap_or(0) as f64 / 1000.0,
                h.max_us() as f64 / 1000.0,
            )
        })
    };
    let first_keyframe_ms = ms(&kf);
    let first_keyframe_after_dtls_ms = ms(&kf_dtls);
    let pct = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)).as_secs_f64() * 100.0 / wall),
        _ => None,
    };
    StepReport {
        target_players: target,
        players_up: up,
        failed_joins: failed,
        failure,
        silent_players: silent,
        hold_s: wall,
        published_pps: pub_pps,
        received_pps: counts.received as f64 / wall,
        counts,
        silent_lost,
        loss_pct,
        delivery_pct: if published == 0 || up == 0 {
            0.0
        } else {
            counts.received as f64 * 100.0 / (published as f64 * up as f64)
        },
        server_cpu_pct: server_pid.and(pct(cpu0, cpu1)),
        server_runq_wait_pct: pct(wait0, wait1),
        server_rss_kib: server_pid.and_then(|p| procfs::rss_kib(Some(p))),
        load_cpu_pct: pct(own0, own1),
        latency_us: latency,
        audio_latency_us: audio_latency,
        first_keyframe_ms,
        first_keyframe_after_dtls_ms,
        late_sends: engine.late_sends - late0,
        received_since_join: engine
            .clients
            .iter()
            .filter(|c| c.role == Role::Play)
            .map(|c| c.peer.received_packets)
            .sum(),
        published_since_start: engine.published,
        udp_drops: drops0
            .zip(drops1)
            .map(|(a, b)| (b.0.saturating_sub(a.0), b.1.saturating_sub(a.1))),
    }
}
