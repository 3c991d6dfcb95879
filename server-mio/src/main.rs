//! The `antenna` binary: parse the configuration, bind, build the cores, run the loop.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use server_mio::config::{Cli, FileConfig, Settings, DEFAULT_LOG};
use server_mio::datastore::{self, Policy};
use server_mio::node::Node;
use server_mio::runtime::{self, Admin, Runtime};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// A random seed without a clock: std's `RandomState` is seeded from the OS.
fn random_seed() -> u64 {
    RandomState::new().build_hasher().finish()
}

fn init_logging(filter: Option<&str>) -> Result<(), String> {
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).map_err(|e| format!("invalid --log filter {f:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match cli.config.as_deref().map(FileConfig::load).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            eprintln!("antenna: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::resolve(&cli, &file, random_seed()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("antenna: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(settings.log.as_deref()) {
        eprintln!("antenna: {e}");
        return ExitCode::from(2);
    }
    // The seeded settings of every application (checked before anything is opened).
    let mut seeds = Vec::new();
    for app in &settings.apps {
        let table = settings
            .app_settings
            .iter()
            .find(|(name, _)| name == app)
            .map(|(_, t)| t);
        match datastore::seed_for(app, &settings.signalling, table) {
            Ok(s) => seeds.push((app.clone(), s)),
            Err(e) => {
                eprintln!("antenna: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let bound = match runtime::bind(settings.listen, settings.udp) {
        Ok(b) => b,
        Err(e) => {
            error!("{e}");
            eprintln!("antenna: {e}");
            return ExitCode::from(1);
        }
    };
    let listen_addr = bound.listen_addr;
    let udp_addr = bound.udp_addr;
    let announce = SocketAddr::new(settings.announce_ip, udp_addr.port());
    let rest_seed = match antenna_store::os_random_seed() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("antenna: cannot read /dev/urandom: {e}");
            return ExitCode::from(1);
        }
    };
    let mut signalling_config = settings.signalling.clone();
    let stats_interval = settings.stats_interval;
    let max_remote_candidates = settings.max_remote_candidates;
    let store_location = settings.store.clone();
    let primary_app = settings.apps.first().cloned().unwrap_or_default();
    let rt = Runtime::new(
        bound,
        announce,
        settings.apps.clone(),
        |now, local, notify| {
            let ds = datastore::open(&store_location, notify);
            match ds.health() {
                Ok(()) => {
                    match &ds.path {
                        Some(p) => info!(path = %p.display(), "datastore open"),
                        None => info!("datastore in memory only (--memory-store)"),
                    }
                    match ds.seed_settings(&seeds) {
                        Ok(seeded) if !seeded.is_empty() => {
                            info!(apps = ?seeded, "application settings seeded from the configuration")
                        }
                        Ok(_) => {}
                        Err(e) => error!("cannot seed application settings: {e}"),
                    }
                    datastore::apply_to_signalling(
                        &ds.settings(&primary_app),
                        &mut signalling_config,
                    );
                }
                Err(e) => {
                    // The runtime logs "DATASTORE NOT AVAILABLE" as its loop starts.
                    eprintln!("antenna: datastore not available: {e}");
                    if let Some((_, s)) = seeds.iter().find(|(a, _)| *a == primary_app) {
                        datastore::apply_to_signalling(s, &mut signalling_config);
                    }
                }
            }
            let mut sig = proto_core::Signalling::new(signalling_config, now);
            sig.set_access_policy(Box::new(Policy::new(
                ds.store.clone(),
                antenna_store::system_clock,
            )));
            let mut sfu = rtc_core::Sfu::new(
                rtc_core::SfuConfig {
                    local_addrs: vec![local],
                    stats_interval,
                },
                now,
            );
            sfu.set_max_remote_candidates(max_remote_candidates);
            let rest = antenna_store::RestApi::new(ds.store.clone(), rest_seed);
            (
                Node::new(sig, sfu),
                Admin {
                    datastore: ds,
                    rest,
                },
            )
        },
    );
    let rt = match rt {
        Ok(rt) => rt.with_cpu_limit(settings.cpu_limit),
        Err(e) => {
            eprintln!("antenna: cannot start the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    // The readiness line: tests and scripts wait for it (printed whatever the log filter).
    eprintln!(
        "antenna listening on http://{listen_addr}, udp {udp_addr} (announced as {announce}), apps {:?}",
        settings.apps
    );
    info!(
        "CPU admission control (highResourceUsage above this share of a core): {}",
        settings.cpu_limit.describe()
    );
    match rt.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("event loop failed: {e}");
            eprintln!("antenna: event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}
