//! The `antenna` binary: parse the configuration, bind, build the cores, run the loop.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use node::admin::{self, Admin, AdminConfig};
use node::Node;
use proto_core::ClusterRole;
use server_mio::config::{Cli, FileConfig, Settings, DEFAULT_LOG};
use server_mio::datastore::{self, TokenSource};
use server_mio::limits;
use server_mio::runtime::{self, Runtime};
use tracing::{error, info, warn};
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

/// The admin REST API's access: the admin token (read, or generated at the first start and
/// printed once) and the access settings.
fn admin_access(settings: &Settings) -> Result<antenna_store::AdminAccess, String> {
    let random = server_mio::clock::os_random_seed()
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let (token, source) = datastore::admin_token(
        &settings.store,
        settings.admin.token_file.as_deref(),
        random,
    )?;
    match &source {
        TokenSource::Read(path) => info!(path = %path.display(), "admin token read from its file"),
        TokenSource::Created(path) => eprintln!(
            "antenna: generated the admin REST token (send it as `Authorization: Bearer <token>`), \
             written to {}: {token}",
            path.display()
        ),
        TokenSource::Ephemeral => eprintln!(
            "antenna: admin REST token for this run (memory store; pass --admin-token-file to \
             keep one): {token}"
        ),
    }
    let a = &settings.admin;
    if a.trust_loopback {
        warn!(
            "--rest-trust-loopback: REST callers on 127.0.0.1/::1 need no credential; do not use \
             this behind a proxy on the same host"
        );
    } else {
        info!("admin REST API: every caller needs the admin token or the application's REST JWT");
    }
    Ok(antenna_store::AdminAccess {
        admin_token: Some(token),
        trust_loopback: a.trust_loopback,
        hosts: a.hosts.clone(),
        trusted_proxies: a.trusted_proxies.clone(),
    })
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
        match admin::settings::seed_for(app, &settings.signalling, table) {
            Ok(s) => seeds.push((app.clone(), s)),
            Err(e) => {
                eprintln!("antenna: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Connections cost a descriptor each: use what the hard limit allows.
    let nofile = match limits::raise_nofile() {
        Ok((before, after)) => {
            if before != after {
                info!("open-file limit raised from {before} to {after}");
            }
            Some(after)
        }
        Err(e) => {
            warn!("cannot read or raise the open-file limit: {e}");
            None
        }
    };
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
    // Cluster mode with a secret: one UDP socket per relay of another node's stream (an
    // origin-only node pulls none).
    let relay_sockets = match settings
        .cluster
        .as_ref()
        .filter(|c| !c.secret.is_empty() && c.role != ClusterRole::Origin)
    {
        Some(c) => {
            match runtime::bind_relays(
                settings.udp.ip(),
                settings.announce_ip,
                c.relay_ports,
                server_mio::config::DEFAULT_RELAYS,
            ) {
                Ok(r) => Some(r),
                Err(e) => {
                    error!("{e}");
                    eprintln!("antenna: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        None => {
            if settings
                .cluster
                .as_ref()
                .is_some_and(|c| c.secret.is_empty())
            {
                warn!("cluster mode without --cluster-secret: no relays to or from other nodes");
            }
            None
        }
    };
    let relay_addrs = relay_sockets
        .as_ref()
        .map(runtime::RelaySockets::addrs)
        .unwrap_or_default();
    let cluster_secret = settings
        .cluster
        .as_ref()
        .map(|c| c.secret.clone())
        .filter(|s| !s.is_empty());
    let rest_seed = match server_mio::clock::os_random_seed() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("antenna: cannot read /dev/urandom: {e}");
            return ExitCode::from(1);
        }
    };
    let resource_seed = match server_mio::clock::os_random_seed() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("antenna: cannot read /dev/urandom: {e}");
            return ExitCode::from(1);
        }
    };
    let access = match admin_access(&settings) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("antenna: {e}");
            return ExitCode::from(1);
        }
    };
    let mut signalling_config = settings.signalling.clone();
    let stats_interval = settings.stats_interval;
    let mut data_config = rtc_core::DataConfig {
        max_message_size: settings.data_max_message_size,
        ..rtc_core::DataConfig::default()
    };
    let max_remote_candidates = settings.max_remote_candidates;
    let fast_path = settings.fast_path;
    let store_location = settings.store.clone();
    // Cluster mode: this node's id, and the shared data in Redis instead of the local file.
    let cluster_http = SocketAddr::new(settings.announce_ip, listen_addr.port());
    let cluster_id = settings.cluster.as_ref().map(|c| {
        c.node_id
            .clone()
            .unwrap_or_else(|| cluster_http.to_string())
    });
    let shared_data = settings
        .cluster
        .as_ref()
        .zip(cluster_id.clone())
        .map(|(c, id)| antenna_cluster::DataConfig {
            node_id: id,
            prefix: "antenna".into(),
            apps: settings.apps.clone(),
            conn: antenna_cluster::ConnConfig {
                db: c.db,
                ..antenna_cluster::ConnConfig::default()
            },
        });
    let primary_app = settings.apps.first().cloned().unwrap_or_default();
    let rt = Runtime::new(
        bound,
        announce,
        settings.apps.clone(),
        |now, local, notify| {
            let ds = match shared_data {
                Some(config) => datastore::open_cluster(config, now),
                None => datastore::open(&store_location, notify),
            };
            if ds.cluster.is_some() {
                // Loaded from Redis once the loop runs; the configuration's settings are
                // offered to the cluster (kept only where Redis has none yet).
                info!("datastore: the cluster's shared data in Redis");
                if let Err(e) = ds.seed_settings(&seeds) {
                    error!("cannot seed application settings: {e}");
                }
            }
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
                    admin::settings::apply_to_signalling(
                        &ds.settings(&primary_app),
                        &mut signalling_config,
                    );
                    admin::settings::apply_to_data(&ds.settings(&primary_app), &mut data_config);
                }
                Err(_) if ds.cluster.is_some() => {
                    if let Some((_, s)) = seeds.iter().find(|(a, _)| *a == primary_app) {
                        admin::settings::apply_to_signalling(s, &mut signalling_config);
                        admin::settings::apply_to_data(s, &mut data_config);
                    }
                }
                Err(e) => {
                    // The runtime logs "DATASTORE NOT AVAILABLE" as its loop starts.
                    eprintln!("antenna: datastore not available: {e}");
                    if let Some((_, s)) = seeds.iter().find(|(a, _)| *a == primary_app) {
                        admin::settings::apply_to_signalling(s, &mut signalling_config);
                        admin::settings::apply_to_data(s, &mut data_config);
                    }
                }
            }
            let sig = proto_core::Signalling::new(signalling_config, now);
            let sfu_config = rtc_core::SfuConfig {
                relay_addrs,
                ..rtc_core::SfuConfig::new(vec![local], stats_interval)
            };
            let mut sfu = rtc_core::Sfu::new(sfu_config, now);
            sfu.set_data_config(data_config);
            sfu.set_max_remote_candidates(max_remote_candidates);
            sfu.set_fast_path(fast_path);
            // The one wall-clock reading: the admin core and the access policy derive wall time
            // from it and the `now` of each call.
            let admin = Admin::new(AdminConfig {
                store: ds.store.clone(),
                access,
                rest_seed,
                wall: antenna_store::WallAnchor {
                    at: now,
                    unix_ms: server_mio::clock::unix_ms(),
                },
                primary_app: Some(primary_app.clone()).filter(|a| !a.is_empty()),
            });
            let mut node = Node::new(sig, sfu)
                .with_resource_seed(resource_seed)
                .with_admin(admin);
            if let Some(secret) = cluster_secret {
                node.set_cluster(node::ClusterMode {
                    node_id: cluster_id.clone().unwrap_or_default(),
                    secret,
                });
            }
            if let Some(c) = &settings.cluster {
                info!(role = c.role.name(), "cluster role");
                node.set_cluster_role(c.role);
            }
            (node, ds)
        },
    );
    let rt = match rt.and_then(|rt| {
        rt.with_cpu_limit(settings.cpu_limit)
            .with_limits(settings.limits, nofile)
            .with_shutdown_drain(settings.shutdown_drain)
            .with_webhooks(settings.webhook_allow.clone())
            .map(|rt| match &settings.cluster {
                Some(c) => {
                    let id = cluster_id.clone().unwrap_or_default();
                    let config =
                        antenna_cluster::ClusterConfig::new(&id, cluster_http, announce, c.db);
                    rt.with_cluster(c.redis, config)
                }
                None => rt,
            })
            .and_then(|rt| match relay_sockets {
                Some(r) => rt.with_relays(r),
                None => Ok(rt),
            })
    }) {
        Ok(rt) => rt,
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
    let l = &settings.limits;
    info!(
        max_connections = rt.max_connections(),
        max_connections_per_ip = l.max_connections_per_ip,
        ws_idle_timeout_ms = l.ws_idle_timeout.as_millis() as u64,
        ws_ping_interval_ms = l.ws_ping_interval.as_millis() as u64,
        http_head_timeout_ms = l.http_head_timeout.as_millis() as u64,
        tcp_keepalive_s = l.tcp_keepalive.as_secs(),
        max_pending_output = l.max_pending_output,
        "connection limits"
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
