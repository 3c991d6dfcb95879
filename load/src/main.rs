//! `antenna-load`: see the library documentation and `antenna-load --help`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use antenna_load::ceiling;
use antenna_load::engine::Target;
use antenna_load::fanout::{self, FanoutConfig, RampConfig};
use antenna_load::media::MediaProfile;
use antenna_load::ping;
use antenna_load::rooms::{self, RoomsConfig};
use antenna_load::sessions::{self, IdleKind};
use antenna_load::sig::ServerKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

/// Load generator for Antenna and Janus (loopback only).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Server {
    Antenna,
    Janus,
}

#[derive(Args, Debug, Clone)]
struct TargetArgs {
    /// Server kind.
    #[arg(long, value_enum, default_value = "antenna")]
    server: Server,
    /// WebSocket address (loopback only). Default: 127.0.0.1:5080 (Antenna), :8188 (Janus).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// WebSocket address of the players, if not --addr (loopback only): e.g. an edge node of
    /// a cluster while the publisher is on the origin (--addr).
    #[arg(long)]
    play_addr: Option<SocketAddr>,
    /// AMS application.
    #[arg(long, default_value = "WebRTCAppEE")]
    app: String,
    /// Janus videoroom room.
    #[arg(long, default_value_t = 1234)]
    room: u64,
    /// Local IP for the peers' UDP sockets (default: the --addr IP). Only loopback or an
    /// address of a private network namespace.
    #[arg(long)]
    peer_ip: Option<std::net::Ipv4Addr>,
    /// Server process id, for CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        let kind = match self.server {
            Server::Antenna => ServerKind::Antenna,
            Server::Janus => ServerKind::Janus,
        };
        let port = if matches!(kind, ServerKind::Janus) {
            8188
        } else {
            5080
        };
        Target {
            kind,
            addr: self
                .addr
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port))),
            play_addr: self.play_addr,
            app: self.app.clone(),
            room: self.room,
            peer_ip: self.peer_ip,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct MediaArgs {
    /// Video bitrate (kbit/s), 0 = none [default: 2000 for fanout, 500 for rooms].
    #[arg(long)]
    video_kbps: Option<u64>,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds between keyframes.
    #[arg(long, default_value_t = 2.0)]
    keyframe_s: f64,
    /// Opus packets per second, 0 = none.
    #[arg(long, default_value_t = 50)]
    audio_pps: u32,
}

impl MediaArgs {
    fn profile(&self, default_kbps: u64) -> MediaProfile {
        MediaProfile {
            video_bps: self.video_kbps.unwrap_or(default_kbps) * 1000,
            fps: self.fps,
            keyframe_interval: Duration::from_secs_f64(self.keyframe_s.max(0.1)),
            audio_pps: self.audio_pps,
            ..MediaProfile::default()
        }
    }
}

/// The steps of a fan-out or rooms run; unset values take the command's defaults.
#[derive(Args, Debug)]
struct RampArgs {
    /// Cumulative counts per step (players for fanout, rooms for rooms), e.g. 50,100,200
    /// [default: fanout 10,50,100; rooms 5,10,20,40].
    #[arg(long, value_delimiter = ',')]
    steps: Option<Vec<usize>>,
    /// Measured seconds per step [default: fanout 10; rooms 6].
    #[arg(long)]
    hold: Option<f64>,
    /// Seconds between the last join of a step and the measurement.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// New peer connections per second [default: fanout 100; rooms 200].
    #[arg(long)]
    join_rate: Option<f64>,
    /// Peer connections joining at once [default: fanout 50; rooms 100].
    #[arg(long)]
    inflight: Option<usize>,
    /// Seconds a peer connection may take to be up.
    #[arg(long, default_value_t = 20.0)]
    join_timeout: f64,
    /// Probe players (decrypting: latency, keyframes) per step.
    #[arg(long, default_value_t = 2)]
    probes: usize,
    /// The probes join last in each step instead of first (a server sends in join order or
    /// not: where the probes sit in it is part of what they measure).
    #[arg(long)]
    probes_last: bool,
    /// Stop after a step with more loss than this (%).
    #[arg(long, default_value_t = 0.5)]
    loss_limit: f64,
    /// Stop after a step with a lower delivery than this (%): received / expected.
    #[arg(long, default_value_t = 98.5)]
    min_delivery: f64,
    /// Keep going after failed joins.
    #[arg(long)]
    ignore_failed_joins: bool,
    /// Pause media (audio trickle) this many seconds before and during the joins of a step
    /// that follows a busy one, so CPU admission control admits them (0 = never pause).
    #[arg(long, default_value_t = 0.0)]
    pause_for_joins: f64,
}

/// A command's defaults for the [`RampArgs`] left unset.
struct RampDefaults {
    steps: &'static [usize],
    hold: f64,
    join_rate: f64,
    inflight: usize,
}

const FANOUT_DEFAULTS: RampDefaults = RampDefaults {
    steps: &[10, 50, 100],
    hold: 10.0,
    join_rate: 100.0,
    inflight: 50,
};

const ROOMS_DEFAULTS: RampDefaults = RampDefaults {
    steps: &[5, 10, 20, 40],
    hold: 6.0,
    join_rate: 200.0,
    inflight: 100,
};

impl RampArgs {
    fn config(self, target: &TargetArgs, profile: MediaProfile, d: RampDefaults) -> RampConfig {
        RampConfig {
            target: target.target(),
            steps: self.steps.unwrap_or_else(|| d.steps.to_vec()),
            hold: Duration::from_secs_f64(self.hold.unwrap_or(d.hold)),
            settle: Duration::from_secs_f64(self.settle),
            join_rate: self.join_rate.unwrap_or(d.join_rate),
            max_inflight: self.inflight.unwrap_or(d.inflight).max(1),
            join_timeout: Duration::from_secs_f64(self.join_timeout),
            probes_per_step: self.probes,
            probes_last: self.probes_last,
            profile,
            server_pid: target.server_pid,
            loss_limit_pct: self.loss_limit,
            min_delivery_pct: self.min_delivery,
            remeasure_failed_step: true,
            stop_on_failed_joins: !self.ignore_failed_joins,
            pause_for_joins: (self.pause_for_joins > 0.0)
                .then(|| Duration::from_secs_f64(self.pause_for_joins)),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One publisher, players added in steps; each step held and measured (JSON lines on
    /// stdout, a human line per step on stderr).
    Fanout {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        media: MediaArgs,
        #[command(flatten)]
        ramp: RampArgs,
        /// Stream id.
        #[arg(long, default_value = "load")]
        stream: String,
    },
    /// Conference rooms of `--size` participants, everyone publishing and playing the others;
    /// rooms added in steps, each held and measured (JSON lines on stdout, a human line per
    /// step on stderr). Default media per publisher: 500 kbit/s VP8 at 30 fps + Opus 50 pps.
    Rooms {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        media: MediaArgs,
        #[command(flatten)]
        ramp: RampArgs,
        /// Participants per room.
        #[arg(long, default_value_t = 4)]
        size: usize,
        /// First room id (Janus room ids; Antenna rooms are named room<id>).
        #[arg(long, default_value_t = 5000)]
        first_room: u64,
    },
    /// Room join/leave churn over many WebSockets (AMS joinRoom/leaveFromRoom, Janus
    /// videoroom join/leave).
    Churn {
        #[command(flatten)]
        target: TargetArgs,
        /// Connections.
        #[arg(long, default_value_t = 50)]
        conns: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// CI smoke run of the fan-out (about 20 s: 1, 2 and 4 players, 5 s each); fails only if
    /// nothing arrives or the loss accounting is inconsistent, never on speed.
    Smoke {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Server RSS growth per idle session (publishers, players) or idle WebSocket.
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        /// What to open.
        #[arg(long, value_enum)]
        kind: IdleArg,
        /// How many.
        #[arg(long, default_value_t = 500)]
        count: usize,
    },
    /// Signalling round trips (ping/pong) over many WebSockets.
    Ping {
        #[command(flatten)]
        target: TargetArgs,
        /// Connections.
        #[arg(long, default_value_t = 100)]
        conns: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Open loop: this many pings per second in all, on a fixed schedule over the
        /// connections, answered or not (RTT from the scheduled time). Default: closed loop,
        /// each connection's next ping when its pong came back.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// The ceiling's forwarder (run it on the server core).
    UdpForwarder {
        /// Address to listen on (loopback).
        #[arg(long, default_value = "127.0.0.1:47000")]
        listen: SocketAddr,
        /// Seconds to run.
        #[arg(long, default_value_t = 15.0)]
        seconds: f64,
    },
    /// The ceiling's source and sinks (run it on the load core).
    UdpSource {
        /// The forwarder.
        #[arg(long, default_value = "127.0.0.1:47000")]
        forwarder: SocketAddr,
        /// Sinks.
        #[arg(long, default_value_t = 200)]
        fanout: usize,
        /// Packets per second into the forwarder.
        #[arg(long, default_value_t = 2000)]
        pps: u32,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum IdleArg {
    Publishers,
    Players,
    Websockets,
}

fn print(v: &Value) {
    println!("{v}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), String> = match cli.cmd {
        Cmd::Fanout {
            target,
            media,
            ramp,
            stream,
        } => {
            let cfg = FanoutConfig {
                ramp: ramp.config(&target, media.profile(2000), FANOUT_DEFAULTS),
                stream,
            };
            let t = cfg.ramp.target.clone();
            fanout::run(&cfg, |r| {
                eprintln!("{}", r.human(t.kind.name()));
                print(&r.to_json(t.kind.name()));
            })
            .map(|_| ())
        }
        Cmd::Rooms {
            target,
            media,
            ramp,
            size,
            first_room,
        } => {
            let profile = media.profile(500);
            let cfg = RoomsConfig {
                ramp: ramp.config(&target, profile, ROOMS_DEFAULTS),
                size,
                first_room,
            };
            let t = cfg.ramp.target.clone();
            eprintln!(
                "[{}] rooms of {size}; media per publisher: {} kbit/s VP8 at {} fps, keyframe every {:.1} s, Opus {} pps ({:.0} pkt/s)",
                t.kind.name(),
                profile.video_bps / 1000,
                profile.fps,
                profile.keyframe_interval.as_secs_f64(),
                profile.audio_pps,
                profile.packets_per_second()
            );
            rooms::run(&cfg, |r| {
                eprintln!("{}", r.human(t.kind.name()));
                print(&r.to_json(t.kind.name(), &profile));
            })
            .map(|_| ())
        }
        Cmd::Churn {
            target,
            conns,
            seconds,
        } => sessions::churn(&target.target(), conns, seconds).map(|v| print(&v)),
        Cmd::Smoke { target } => smoke(&target),
        Cmd::Idle {
            target,
            kind,
            count,
        } => {
            let kind = match kind {
                IdleArg::Publishers => IdleKind::Publishers,
                IdleArg::Players => IdleKind::Players,
                IdleArg::Websockets => IdleKind::WebSockets,
            };
            match target.server_pid {
                Some(pid) => sessions::idle(&target.target(), kind, count, pid).map(|v| print(&v)),
                None => Err("--server-pid is required".into()),
            }
        }
        Cmd::Ping {
            target,
            conns,
            seconds,
            rate,
        } => ping::ping(&target.target(), conns, seconds, rate).map(|v| print(&v)),
        Cmd::UdpForwarder { listen, seconds } => {
            ceiling::forwarder(listen, seconds).map(|v| print(&v))
        }
        Cmd::UdpSource {
            forwarder,
            fanout,
            pps,
            seconds,
        } => ceiling::source(forwarder, fanout, pps, seconds).map(|v| print(&v)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("antenna-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// 1, 2 and 4 players for 5 s each; checks consistency, not speed.
fn smoke(target: &TargetArgs) -> Result<(), String> {
    let t = target.target();
    let cfg = FanoutConfig {
        ramp: RampConfig {
            target: t.clone(),
            steps: vec![1, 2, 4],
            hold: Duration::from_secs(5),
            settle: Duration::from_secs(1),
            join_rate: 20.0,
            max_inflight: 4,
            join_timeout: Duration::from_secs(15),
            probes_per_step: 1,
            probes_last: false,
            profile: MediaProfile::default(),
            server_pid: target.server_pid,
            loss_limit_pct: 100.0,
            min_delivery_pct: 0.0,
            remeasure_failed_step: false,
            stop_on_failed_joins: false,
            pause_for_joins: None,
        },
        stream: "smoke".into(),
    };
    let reports = fanout::run(&cfg, |r| {
        eprintln!("{}", r.human(t.kind.name()));
        print(&r.to_json(t.kind.name()));
    })?;
    check_smoke(&reports)
}

fn check_smoke(reports: &[fanout::StepReport]) -> Result<(), String> {
    if reports.len() != 3 {
        return Err(format!("{} of 3 steps ran", reports.len()));
    }
    for r in reports {
        if r.counts.received == 0 {
            return Err(format!(
                "step with {} players received nothing",
                r.target_players
            ));
        }
        if r.counts.received > r.counts.expected {
            return Err("received more distinct packets than expected".into());
        }
        if r.players_up != r.target_players {
            return Err(format!(
                "{} of {} players up ({:?})",
                r.players_up, r.target_players, r.failure
            ));
        }
        if r.latency_us.is_none() {
            return Err("probes measured no latency".into());
        }
    }
    Ok(())
}
