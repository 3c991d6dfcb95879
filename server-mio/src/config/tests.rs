use super::*;
use clap::Parser;
use std::path::Path;

fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["antenna"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap()
}

#[test]
fn defaults() {
    let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 7).unwrap();
    assert_eq!(s.listen, DEFAULT_LISTEN);
    assert_eq!(s.udp, DEFAULT_UDP);
    assert_eq!(s.announce_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(s.apps, vec!["WebRTCAppEE".to_string()]);
    assert_eq!(s.signalling.seed, 7);
    assert_eq!(s.signalling.client_start_timeout, Duration::from_secs(10));
    assert_eq!(s.stats_interval, Duration::from_secs(1));
    assert_eq!(s.log, None);
    assert_eq!(s.cpu_limit.percent(), Some(75));
    assert_eq!(s.data_max_message_size, 64 * 1024);
    let file = FileConfig::parse("dataChannelMaxMessageSize = 2048").unwrap();
    let s = Settings::resolve(&cli(&[]), &file, 7).unwrap();
    assert_eq!(s.data_max_message_size, 2048);
}

#[test]
fn webhook_allow_list_from_cli_or_file() {
    let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
    assert!(s.webhook_allow.is_empty(), "default: any host");
    let file = FileConfig::parse("webhook_allow_hosts = [\"hooks.example\"]").unwrap();
    let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
    assert!(s.webhook_allow.allows("hooks.example", 80));
    assert!(!s.webhook_allow.allows("other.example", 80));
    // The command line wins.
    let args = [
        "--webhook-allow-host",
        "127.0.0.1:9000",
        "--webhook-allow-host",
        "[::1]:9000",
    ];
    let s = Settings::resolve(&cli(&args), &file, 0).unwrap();
    assert!(s.webhook_allow.allows("::1", 9000));
    assert!(!s.webhook_allow.allows("hooks.example", 80));
    // A URL is not a host.
    let bad = cli(&["--webhook-allow-host", "http://h/"]);
    assert!(Settings::resolve(&bad, &FileConfig::default(), 0).is_err());
}

#[test]
fn cpu_limit_from_cli_or_file_and_off_switch() {
    let file = FileConfig::parse("cpu_limit = 90").unwrap();
    let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
    assert_eq!(s.cpu_limit.percent(), Some(90));
    // The AMS name works in the file too.
    let ams = FileConfig::parse("cpuLimit = 60").unwrap();
    let s = Settings::resolve(&cli(&[]), &ams, 0).unwrap();
    assert_eq!(s.cpu_limit.percent(), Some(60));
    // The command line wins.
    let s = Settings::resolve(&cli(&["--cpu-limit", "50"]), &file, 0).unwrap();
    assert_eq!(s.cpu_limit.percent(), Some(50));
    // 0 and 100+ turn admission control off, from either source.
    for off in ["0", "100", "400"] {
        let s = Settings::resolve(&cli(&["--cpu-limit", off]), &file, 0).unwrap();
        assert_eq!(s.cpu_limit, CpuLimit::OFF, "--cpu-limit {off}");
    }
    let s = Settings::resolve(&cli(&[]), &FileConfig::parse("cpu_limit = 0").unwrap(), 0).unwrap();
    assert_eq!(s.cpu_limit, CpuLimit::OFF);
    // Not a percentage: refused.
    assert!(Cli::try_parse_from(["antenna", "--cpu-limit", "-5"]).is_err());
    assert!(Cli::try_parse_from(["antenna", "--cpu-limit", "high"]).is_err());
    assert!(FileConfig::parse("cpu_limit = \"75%\"").is_err());
}

#[test]
fn limits_from_cli_or_file_with_defaults() {
    let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
    assert_eq!(s.limits, Limits::default());
    assert_eq!(s.limits.ws_idle_timeout, Duration::from_secs(30));
    assert_eq!(s.limits.max_connections_per_ip, 1000);
    let file = FileConfig::parse(
        r#"
        max_connections = 500
        maxConnectionsPerIp = 20
        ws_idle_timeout_ms = 5000
        ws_ping_interval_ms = 2000
        http_head_timeout_ms = 3000
        tcp_keepalive_s = 0
        max_pending_output = 200000
        "#,
    )
    .unwrap();
    let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
    assert_eq!(s.limits.max_connections, 500);
    assert_eq!(s.limits.max_connections_per_ip, 20);
    assert_eq!(s.limits.ws_idle_timeout, Duration::from_secs(5));
    assert_eq!(s.limits.ws_ping_interval, Duration::from_secs(2));
    assert_eq!(s.limits.http_head_timeout, Duration::from_secs(3));
    assert_eq!(s.limits.tcp_keepalive, Duration::ZERO);
    assert_eq!(s.limits.max_pending_output, 200_000);
    let s = Settings::resolve(
        &cli(&[
            "--max-connections",
            "7",
            "--max-connections-per-ip",
            "0",
            "--ws-idle-timeout-ms",
            "0",
            "--tcp-keepalive-s",
            "30",
        ]),
        &file,
        0,
    )
    .unwrap();
    assert_eq!(s.limits.max_connections, 7);
    assert_eq!(s.limits.max_connections_per_ip, 0);
    assert_eq!(s.limits.ws_idle_timeout, Duration::ZERO);
    assert_eq!(s.limits.ws_ping_interval, Duration::from_secs(2));
    assert_eq!(s.limits.tcp_keepalive, Duration::from_secs(30));
    // Nonsense is refused.
    let bad = FileConfig::parse("http_head_timeout_ms = 0").unwrap();
    assert!(Settings::resolve(&cli(&[]), &bad, 0).is_err());
    assert!(Settings::resolve(&cli(&["--max-pending-output", "10"]), &file, 0).is_err());
    assert!(Cli::try_parse_from(["antenna", "--max-connections", "-1"]).is_err());
}

#[test]
fn cli_overrides_file() {
    let file = FileConfig::parse(
        r#"
        listen = "127.0.0.1:6000"
        udp = "10.0.0.5:7000"
        apps = ["A", "B"]
        seed = 3
        log = "debug"
        stunServerURI = "stun:example.org:3478"
        turn_server_username = "u"
        turn_server_credential = "c"
        webRTCClientStartTimeoutMs = 2500
        no_packet_timeout_ms = 4000
        "#,
    )
    .unwrap();
    let s = Settings::resolve(
        &cli(&[
            "--listen",
            "127.0.0.1:7001",
            "--app",
            "LiveApp",
            "--seed",
            "9",
        ]),
        &file,
        1,
    )
    .unwrap();
    assert_eq!(s.listen, "127.0.0.1:7001".parse().unwrap());
    assert_eq!(s.udp, "10.0.0.5:7000".parse().unwrap());
    // A specific bind address is announced as it is.
    assert_eq!(s.announce_ip, "10.0.0.5".parse::<IpAddr>().unwrap());
    assert_eq!(s.apps, vec!["LiveApp".to_string()]);
    assert_eq!(s.signalling.seed, 9);
    assert_eq!(s.log.as_deref(), Some("debug"));
    assert_eq!(
        s.signalling.ice_servers.stun_server_uri,
        "stun:example.org:3478"
    );
    assert_eq!(
        s.signalling.ice_servers.turn_server_username.as_deref(),
        Some("u")
    );
    assert_eq!(
        s.signalling.ice_servers.turn_server_credential.as_deref(),
        Some("c")
    );
    assert_eq!(
        s.signalling.client_start_timeout,
        Duration::from_millis(2500)
    );
    assert_eq!(s.signalling.no_packet_timeout, Duration::from_millis(4000));
}

#[test]
fn file_apps_used_without_cli_apps() {
    let file = FileConfig::parse("apps = [\"A\", \"B\"]").unwrap();
    let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
    assert_eq!(s.apps, vec!["A".to_string(), "B".to_string()]);
}

#[test]
fn app_tables_name_apps_and_carry_ams_settings() {
    let file = FileConfig::parse(
        r#"
        data_dir = "/tmp/x"
        [apps.WebRTCAppEE]
        publishTokenControlEnabled = true
        webRTCViewerLimit = 2
        [apps.LiveApp]
        remoteAllowedCIDR = "10.0.0.0/8"
        "#,
    )
    .unwrap();
    let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
    assert_eq!(
        s.apps,
        vec!["LiveApp".to_string(), "WebRTCAppEE".to_string()]
    );
    assert_eq!(s.store, StoreLocation::Dir(PathBuf::from("/tmp/x")));
    let (name, web) = &s.app_settings[1];
    assert_eq!(name, "WebRTCAppEE");
    assert_eq!(web["publishTokenControlEnabled"], true);
    assert_eq!(web["webRTCViewerLimit"], 2);
    // --app picks the served apps; tables of other apps are ignored.
    let s = Settings::resolve(&cli(&["--app", "LiveApp", "--memory-store"]), &file, 0).unwrap();
    assert_eq!(s.app_settings.len(), 1);
    assert_eq!(s.store, StoreLocation::Memory);
    let s = Settings::resolve(&cli(&["--data-dir", "d"]), &FileConfig::default(), 0).unwrap();
    assert_eq!(s.store, StoreLocation::Dir(PathBuf::from("d")));
    let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
    assert_eq!(s.store, StoreLocation::Dir(PathBuf::from(DEFAULT_DATA_DIR)));
}

#[test]
fn admin_api_options() {
    let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
    assert_eq!(s.admin, AdminSettings::default());
    let file = FileConfig::parse(
        r#"
        admin_token_file = "/etc/antenna/token"
        rest_trust_loopback = true
        rest_hosts = ["media.example.org"]
        trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
        "#,
    )
    .unwrap();
    let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
    assert_eq!(
        s.admin.token_file.as_deref(),
        Some(Path::new("/etc/antenna/token"))
    );
    assert!(s.admin.trust_loopback);
    assert_eq!(s.admin.hosts, vec!["media.example.org".to_string()]);
    assert_eq!(s.admin.trusted_proxies.len(), 2);
    let s = Settings::resolve(
        &cli(&[
            "--rest-host",
            "a.example",
            "--trusted-proxy",
            "::1",
            "--admin-token-file",
            "t",
        ]),
        &file,
        0,
    )
    .unwrap();
    assert_eq!(s.admin.hosts, vec!["a.example".to_string()]);
    assert_eq!(s.admin.trusted_proxies.len(), 1);
    assert_eq!(s.admin.token_file.as_deref(), Some(Path::new("t")));
    for bad in [
        &["--trusted-proxy", "nope"][..],
        &["--rest-host", "a:80"],
        &["--rest-host", "a/b"],
    ] {
        assert!(
            Settings::resolve(&cli(bad), &FileConfig::default(), 0).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn limits_from_cli_file_and_defaults() {
    let s = Settings::resolve(&cli(&[]), &FileConfig::default(), 0).unwrap();
    assert_eq!(s.signalling.limits, proto_core::Limits::default());
    assert_eq!(
        s.max_remote_candidates,
        rtc_core::DEFAULT_MAX_REMOTE_CANDIDATES
    );
    let file = FileConfig::parse(
        r#"
        max_publishes_per_connection = 3
        max_plays_per_connection = 4
        max_rooms_per_connection = 5
        max_p2p_per_connection = 6
        max_id_length = 64
        max_name_length = 65
        max_token_length = 66
        max_metadata_length = 67
        max_candidate_length = 68
        max_remote_candidates = 8
        "#,
    )
    .unwrap();
    let s = Settings::resolve(&cli(&["--max-plays-per-connection", "9"]), &file, 0).unwrap();
    let l = &s.signalling.limits;
    assert_eq!(
        (
            l.max_publishes_per_conn,
            l.max_plays_per_conn,
            l.max_rooms_per_conn,
            l.max_p2p_per_conn
        ),
        (3, 9, 5, 6)
    );
    assert_eq!(
        (
            l.max_id_len,
            l.max_name_len,
            l.max_token_len,
            l.max_meta_len,
            l.max_candidate_len
        ),
        (64, 65, 66, 67, 68)
    );
    assert_eq!(s.max_remote_candidates, 8);
    let s = Settings::resolve(&cli(&["--max-remote-candidates", "2"]), &file, 0).unwrap();
    assert_eq!(s.max_remote_candidates, 2);
}

#[test]
fn unknown_key_is_an_error() {
    let err = FileConfig::parse("lisen = \"127.0.0.1:1\"").unwrap_err();
    assert!(err.0.contains("lisen"), "{err}");
}

#[test]
fn bad_app_names_rejected() {
    for bad in ["a/b", "", "..", "a b"] {
        let c = Cli {
            apps: vec![bad.to_string()],
            ..Cli::default()
        };
        assert!(
            Settings::resolve(&c, &FileConfig::default(), 0).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn unspecified_announce_ip_rejected() {
    assert!(Settings::resolve(
        &cli(&["--announce-ip", "0.0.0.0"]),
        &FileConfig::default(),
        0
    )
    .is_err());
    assert!(Settings::resolve(
        &cli(&["--udp", "[::]:5000", "--announce-ip", "127.0.0.1"]),
        &FileConfig::default(),
        0
    )
    .is_err());
}

#[test]
fn ipv6_any_announces_ipv6_loopback() {
    let s = Settings::resolve(&cli(&["--udp", "[::]:0"]), &FileConfig::default(), 0).unwrap();
    assert_eq!(s.announce_ip, "::1".parse::<IpAddr>().unwrap());
}

#[test]
fn cluster_secret_and_relay_ports_from_cli_or_file() {
    let url = "redis://127.0.0.1:6379/0";
    let s = Settings::resolve(&cli(&["--cluster", url]), &FileConfig::default(), 0).unwrap();
    let c = s.cluster.unwrap();
    assert_eq!((c.secret.as_str(), c.relay_ports), ("", None));
    let file =
        FileConfig::parse("cluster_secret = \"from-file\"\nrelay_ports = \"40000-40003\"").unwrap();
    let s = Settings::resolve(&cli(&["--cluster", url]), &file, 0).unwrap();
    let c = s.cluster.unwrap();
    assert_eq!(
        (c.secret.as_str(), c.relay_ports),
        ("from-file", Some((40000, 40003)))
    );
    // The command line wins.
    let args = [
        "--cluster",
        url,
        "--cluster-secret",
        "cli",
        "--relay-ports",
        "5-5",
    ];
    let c = Settings::resolve(&cli(&args), &file, 0)
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!((c.secret.as_str(), c.relay_ports), ("cli", Some((5, 5))));
    for bad in ["1", "9-8", "0-3", "x-3", "1000-3000"] {
        let args = ["--cluster", url, "--relay-ports", bad];
        assert!(
            Settings::resolve(&cli(&args), &FileConfig::default(), 0).is_err(),
            "{bad}"
        );
    }
    // Without --cluster they mean nothing: refused rather than ignored.
    assert!(
        Settings::resolve(&cli(&["--cluster-secret", "s"]), &FileConfig::default(), 0).is_err()
    );
}

/// The cluster node example shipped in `deploy/` stays a valid configuration.
#[test]
fn the_deploy_example_is_a_valid_cluster_node() {
    let file = FileConfig::parse(include_str!("../../../deploy/node.toml")).unwrap();
    let s = Settings::resolve(&cli(&[]), &file, 0).unwrap();
    let cluster = s.cluster.expect("the example is a cluster node");
    assert_eq!(cluster.node_id.as_deref(), Some("node1"));
    assert!(!cluster.secret.is_empty());
    assert_eq!(s.udp.port(), 50000);
}

#[test]
fn cluster_role_from_cli_or_file() {
    use proto_core::ClusterRole;
    let url = "redis://127.0.0.1:6379/0";
    let role = |args: &[&str], file: &str| {
        Settings::resolve(&cli(args), &FileConfig::parse(file).unwrap(), 0)
            .map(|s| s.cluster.unwrap().role)
    };
    assert_eq!(role(&["--cluster", url], "").unwrap(), ClusterRole::Both);
    assert_eq!(
        role(&["--cluster", url], "cluster_role = \"edge\"").unwrap(),
        ClusterRole::Edge
    );
    // The command line wins.
    let args = ["--cluster", url, "--cluster-role", "origin"];
    assert_eq!(
        role(&args, "cluster_role = \"edge\"").unwrap(),
        ClusterRole::Origin
    );
    for bad in ["", "Edge", "relay"] {
        assert!(
            role(&["--cluster", url, "--cluster-role", bad], "").is_err(),
            "{bad:?}"
        );
    }
    // Without --cluster a role means nothing: refused rather than ignored.
    assert!(
        Settings::resolve(&cli(&["--cluster-role", "edge"]), &FileConfig::default(), 0).is_err()
    );
}
