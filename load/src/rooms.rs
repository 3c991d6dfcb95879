//! Rooms benchmark: K conference rooms of `size` participants each; every participant
//! publishes one stream and plays each of the others (one peer connection per stream, like the
//! AMS legacy conference page and a Janus videoroom page with one subscriber handle per feed).
//! Rooms are added in steps; each step is held and measured with the fan-out's accounting
//! ([`crate::fanout`]'s measurement: sequence-number loss, delivery, silent players).
//!
//! Antenna (AMS legacy conference): a participant's publisher sends `joinRoom` (mode
//! `legacy`), publishes the id named in `joinedTheRoom`, learns the others' ids from
//! `joinedTheRoom` and `getRoomInfo` polls (`roomInformation`), and plays each with
//! `play {streamId, room}`. Janus: the rooms are created with the videoroom `create` request;
//! a participant joins as publisher and publishes, learns the others' feeds from the
//! `publishers` lists Janus pushes, and subscribes to each feed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::engine::Engine;
use crate::fanout::RampConfig;
use crate::fanout::{measure, StepReport};
use crate::janus;
use crate::media::MediaProfile;
use crate::peer::PeerMode;
use crate::sig::{Role, ServerKind};

/// Rooms run settings: conference rooms added in steps.
#[derive(Debug, Clone)]
pub struct RoomsConfig {
    /// Steps (cumulative room counts), rates, limits.
    pub ramp: RampConfig,
    /// Participants per room.
    pub size: usize,
    /// Room ids start here (Janus room ids; Antenna rooms are named `room<id>`).
    pub first_room: u64,
}

/// One participant: its publisher and the players of the others' streams.
#[derive(Debug, Clone)]
struct Participant {
    room: u64,
    publisher: usize,
    /// (stream played, client index).
    players: Vec<(String, usize)>,
    last_info: Option<Instant>,
}

/// Result of one rooms step.
#[derive(Debug, Clone)]
pub struct RoomsReport {
    /// Rooms asked for.
    pub rooms: usize,
    /// Participants asked for (`rooms x size`).
    pub participants: usize,
    /// Participants whose publisher and every player were up at the start of the hold.
    pub participants_up: usize,
    /// Publishers that failed (refused, timed out, errors), cumulative.
    pub failed_publishers: usize,
    /// The measurement over all players (`players` = rooms x size x (size - 1)).
    pub step: StepReport,
}

impl RoomsReport {
    /// JSON object: the step's fields plus the rooms fields.
    pub fn to_json(&self, server: &str, profile: &MediaProfile) -> Value {
        let mut v = self.step.to_json(server);
        if let Some(o) = v.as_object_mut() {
            o.insert("rooms".into(), json!(self.rooms));
            o.insert("participants".into(), json!(self.participants));
            o.insert("participants_up".into(), json!(self.participants_up));
            o.insert("failed_publishers".into(), json!(self.failed_publishers));
            o.insert("video_kbps".into(), json!(profile.video_bps / 1000));
            o.insert("audio_pps".into(), json!(profile.audio_pps));
        }
        v
    }

    /// One human-readable line.
    pub fn human(&self, server: &str) -> String {
        format!(
            "[{server}] {} rooms, {}/{} participants up, {} failed publishers: {}",
            self.rooms,
            self.participants_up,
            self.participants,
            self.failed_publishers,
            self.step.human(server)
        )
    }

    /// Meets the capacity criteria: loss < `loss_limit`, delivery >= `min_delivery`, every
    /// participant and player up, nobody silent or failed, server CPU <= one core.
    pub fn passes(&self, loss_limit: f64, min_delivery: f64) -> bool {
        let s = &self.step;
        s.loss_pct < loss_limit
            && s.delivery_pct >= min_delivery
            && self.participants_up == self.participants
            && s.players_up == s.target_players
            && s.failed_joins == 0
            && self.failed_publishers == 0
            && s.silent_players == 0
            && s.server_cpu_pct.is_none_or(|c| c <= 100.5)
    }
}

/// The stream id of participant `j` of room `room` (Antenna) or its display name (Janus).
pub fn stream_id(room: u64, j: usize) -> String {
    format!("r{room}p{j}")
}

fn publisher_up(e: &Engine, i: usize) -> bool {
    e.clients.get(i).is_some_and(|c| c.healthy() && c.up)
}

fn player_up(e: &Engine, i: usize) -> bool {
    e.clients
        .get(i)
        .is_some_and(|c| c.healthy() && c.peer.received_packets > 0)
}

fn broken(e: &Engine, i: usize) -> bool {
    e.clients.get(i).is_none_or(|c| c.broken())
}

/// Runs the rooms steps, calling `report` after each.
pub fn run(
    cfg: &RoomsConfig,
    mut report: impl FnMut(&RoomsReport),
) -> Result<Vec<RoomsReport>, String> {
    let size = cfg.size.max(2);
    if cfg.ramp.target.kind == ServerKind::Janus {
        let last = cfg.ramp.steps.iter().copied().max().unwrap_or(0) as u64;
        let ids: Vec<u64> = (cfg.first_room..cfg.first_room + last).collect();
        janus::create_rooms(&cfg.ramp.target, &ids, size + 2)?;
    }
    let mut engine =
        Engine::new(cfg.ramp.target.clone(), cfg.ramp.profile).map_err(|e| e.to_string())?;
    let mut parts: Vec<Participant> = Vec::new();
    let mut reports: Vec<RoomsReport> = Vec::new();
    let mut first_failure: Option<String> = None;
    let mut rooms = 0usize;
    let mut keyframe_from = 0usize;
    let interval = Duration::from_secs_f64(1.0 / cfg.ramp.join_rate.max(0.1));
    for (step, &target) in cfg.ramp.steps.iter().enumerate() {
        if target <= rooms {
            continue;
        }
        let busy = reports
            .last()
            .is_some_and(|r| r.step.server_cpu_pct.is_none_or(|c| c > 60.0));
        let pause = cfg.ramp.pause_for_joins.filter(|_| step > 0 && busy);
        if let Some(cooldown) = pause {
            engine.paused = true;
            engine.run(Instant::now() + cooldown, |_| false);
        }
        let step_start = Instant::now();
        let first_new = parts.len();
        let first_client = engine.clients.len();
        let mut to_add: Vec<(u64, usize)> = (rooms..target)
            .flat_map(|k| (0..size).map(move |j| (cfg.first_room + k as u64, j)))
            .rev()
            .collect();
        let new_peers = (target - rooms) * size * size;
        let deadline = step_start
            + cfg.ramp.join_timeout
            + Duration::from_secs_f64(new_peers as f64 / cfg.ramp.join_rate.max(0.1));
        let mut next_join = step_start;
        let mut probes_left = cfg.ramp.probes_per_step;
        while Instant::now() < deadline {
            let now = Instant::now();
            let joining = (first_client..engine.clients.len())
                .filter(|&i| {
                    let c = engine.clients.get(i);
                    let up = match c.map(|c| c.role) {
                        Some(Role::Publish) => publisher_up(&engine, i),
                        _ => player_up(&engine, i),
                    };
                    !up && !broken(&engine, i)
                        && c.is_some_and(|c| {
                            now.saturating_duration_since(c.started) < cfg.ramp.join_timeout
                        })
                })
                .count();
            let mut slots = if now >= next_join && joining < cfg.ramp.max_inflight {
                1
            } else {
                0
            };
            // Players first: they complete rooms whose publishers are up.
            for p in parts.iter_mut().skip(first_new) {
                if !publisher_up(&engine, p.publisher) {
                    continue;
                }
                let (own_stream, own_feed) = match engine.clients.get(p.publisher) {
                    Some(c) => (c.sig_stream().to_string(), c.feed_id.clone()),
                    None => continue,
                };
                let announced = engine
                    .clients
                    .get(p.publisher)
                    .map(|c| c.room_streams.clone())
                    .unwrap_or_default();
                for s in announced {
                    if slots == 0 {
                        break;
                    }
                    if s == own_stream
                        || own_feed.as_deref() == Some(s.as_str())
                        || p.players.iter().any(|(x, _)| *x == s)
                    {
                        continue;
                    }
                    let mode = if probes_left > 0 {
                        probes_left -= 1;
                        PeerMode::Probe
                    } else {
                        PeerMode::Counter
                    };
                    match engine.add_in(Role::Play, mode, &s, Some(p.room)) {
                        Ok(i) => p.players.push((s, i)),
                        Err(e) => {
                            first_failure.get_or_insert(format!("connect: {e}"));
                        }
                    }
                    slots -= 1;
                    next_join = now + interval;
                }
                // AMS: poll for streams not announced yet (Janus pushes them).
                if p.players.len() + 1 < size
                    && p.last_info
                        .is_none_or(|t| now >= t + Duration::from_millis(300))
                {
                    p.last_info = Some(now);
                    engine.request_room_info(p.publisher);
                }
            }
            if slots > 0 {
                if let Some((room, j)) = to_add.pop() {
                    match engine.add_in(
                        Role::Publish,
                        PeerMode::Publisher,
                        &stream_id(room, j),
                        Some(room),
                    ) {
                        Ok(i) => parts.push(Participant {
                            room,
                            publisher: i,
                            players: Vec::new(),
                            last_info: None,
                        }),
                        Err(e) => {
                            first_failure.get_or_insert(format!("connect: {e}"));
                        }
                    }
                    next_join = now + interval;
                }
            }
            let complete = to_add.is_empty()
                && parts.iter().skip(first_new).all(|p| {
                    broken(&engine, p.publisher)
                        || (p.players.len() + 1 >= size
                            && p.players
                                .iter()
                                .all(|&(_, i)| player_up(&engine, i) || broken(&engine, i)))
                });
            if complete {
                break;
            }
            engine.turn(Duration::from_millis(2));
        }
        rooms = target;
        // Failures the server or the peers reported come first: they cause the ones below.
        for c in &engine.clients {
            if let Some(e) = c.error.as_ref().or(c.peer.failed.as_ref()) {
                first_failure.get_or_insert(e.clone());
            }
        }
        // Whatever is not up at the deadline failed.
        let now = Instant::now();
        for p in parts.iter().skip(first_new) {
            let missing = size - 1 - p.players.len().min(size - 1);
            let pub_ok = publisher_up(&engine, p.publisher);
            if let Some(c) = engine.clients.get_mut(p.publisher) {
                if c.error.is_none() && (!pub_ok || missing > 0) {
                    c.error = Some(if pub_ok {
                        format!("{missing} streams of the room never announced")
                    } else {
                        format!(
                            "publisher not up after {:.1} s",
                            now.saturating_duration_since(c.started).as_secs_f64()
                        )
                    });
                }
            }
            for &(_, i) in &p.players {
                let up = player_up(&engine, i);
                if let Some(c) = engine.clients.get_mut(i) {
                    if !up && c.error.is_none() {
                        c.error = Some(format!(
                            "player not up after {:.1} s",
                            now.saturating_duration_since(c.started).as_secs_f64()
                        ));
                    }
                }
            }
        }
        for c in &engine.clients {
            if let Some(e) = c.error.as_ref().or(c.peer.failed.as_ref()) {
                first_failure.get_or_insert(e.clone());
            }
        }
        let kf_from = engine.resume_and_settle(cfg.ramp.settle, pause.is_some(), keyframe_from);
        let players = rooms * size * (size - 1);
        let mut r = measure_rooms(&mut engine, cfg, &parts, size, rooms, players, kf_from);
        r.step.failure = first_failure.clone();
        if cfg.ramp.remeasure_failed_step
            && r.step.failed_joins == 0
            && r.failed_publishers == 0
            && (r.step.loss_pct > cfg.ramp.loss_limit_pct
                || r.step.delivery_pct < cfg.ramp.min_delivery_pct)
        {
            r = measure_rooms(&mut engine, cfg, &parts, size, rooms, players, usize::MAX);
            r.step.failure = first_failure.clone();
        }
        keyframe_from = engine.clients.len();
        report(&r);
        let stop = r.step.loss_pct > cfg.ramp.loss_limit_pct
            || r.step.delivery_pct < cfg.ramp.min_delivery_pct
            || (cfg.ramp.stop_on_failed_joins
                && (r.step.failed_joins > 0 || r.failed_publishers > 0))
            || r.participants_up == 0;
        reports.push(r);
        if stop {
            break;
        }
    }
    for i in 0..engine.clients.len() {
        engine.close(i);
    }
    engine.run(Instant::now() + Duration::from_millis(300), |_| false);
    Ok(reports)
}

fn measure_rooms(
    engine: &mut Engine,
    cfg: &RoomsConfig,
    parts: &[Participant],
    size: usize,
    rooms: usize,
    players: usize,
    keyframe_from: usize,
) -> RoomsReport {
    let participants_up = parts
        .iter()
        .filter(|p| {
            publisher_up(engine, p.publisher)
                && p.players.len() + 1 >= size
                && p.players.iter().all(|&(_, i)| player_up(engine, i))
        })
        .count();
    let failed_publishers = parts.iter().filter(|p| broken(engine, p.publisher)).count();
    let step = measure(
        engine,
        cfg.ramp.hold,
        cfg.ramp.server_pid,
        players,
        keyframe_from,
        None,
    );
    RoomsReport {
        rooms,
        participants: rooms * size,
        participants_up,
        failed_publishers,
        step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SeqCounts;

    fn step(players: usize, up: usize, loss: f64, delivery: f64, cpu: f64) -> StepReport {
        StepReport {
            target_players: players,
            players_up: up,
            failed_joins: 0,
            failure: None,
            silent_players: 0,
            hold_s: 5.0,
            published_pps: 100.0,
            received_pps: 100.0 * up as f64,
            counts: SeqCounts::default(),
            silent_lost: 0,
            loss_pct: loss,
            delivery_pct: delivery,
            server_cpu_pct: Some(cpu),
            server_runq_wait_pct: None,
            server_rss_kib: Some(1000),
            load_cpu_pct: Some(10.0),
            latency_us: None,
            audio_latency_us: None,
            first_keyframe_ms: None,
            first_keyframe_after_dtls_ms: None,
            late_sends: 0,
            received_since_join: 0,
            published_since_start: 0,
            udp_drops: None,
        }
    }

    fn report(participants_up: usize, s: StepReport) -> RoomsReport {
        RoomsReport {
            rooms: 2,
            participants: 8,
            participants_up,
            failed_publishers: 0,
            step: s,
        }
    }

    #[test]
    fn capacity_criteria() {
        assert!(report(8, step(24, 24, 0.1, 99.0, 80.0)).passes(0.5, 98.5));
        // Each criterion alone fails the step.
        assert!(!report(7, step(24, 24, 0.1, 99.0, 80.0)).passes(0.5, 98.5));
        assert!(!report(8, step(24, 23, 0.1, 99.0, 80.0)).passes(0.5, 98.5));
        assert!(!report(8, step(24, 24, 0.6, 99.0, 80.0)).passes(0.5, 98.5));
        assert!(!report(8, step(24, 24, 0.1, 98.0, 80.0)).passes(0.5, 98.5));
        assert!(!report(8, step(24, 24, 0.1, 99.0, 101.0)).passes(0.5, 98.5));
        let mut silent = step(24, 24, 0.1, 99.0, 80.0);
        silent.silent_players = 1;
        assert!(!report(8, silent).passes(0.5, 98.5));
        let mut failed = report(8, step(24, 24, 0.1, 99.0, 80.0));
        failed.failed_publishers = 1;
        assert!(!failed.passes(0.5, 98.5));
    }

    #[test]
    fn json_carries_rooms_fields_and_profile() {
        let p = MediaProfile {
            video_bps: 500_000,
            ..MediaProfile::default()
        };
        let v = report(7, step(24, 24, 0.0, 100.0, 50.0)).to_json("antenna", &p);
        assert_eq!(v["rooms"], 2);
        assert_eq!(v["participants"], 8);
        assert_eq!(v["participants_up"], 7);
        assert_eq!(v["players"], 24);
        assert_eq!(v["video_kbps"], 500);
        assert_eq!(v["audio_pps"], 50);
        assert_eq!(v["server"], "antenna");
    }

    #[test]
    fn stream_ids_are_distinct_and_valid() {
        let ids: Vec<String> = (0..3)
            .flat_map(|r| (0..4).map(move |j| stream_id(r, j)))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert!(ids
            .iter()
            .all(|s| s.chars().all(|c| c.is_ascii_alphanumeric())));
    }
}
