use super::*;

#[test]
fn seed_layers_defaults_file_and_table() {
    let mut sig = proto_core::Config::default();
    sig.ice_servers.stun_server_uri = "stun:a:1".into();
    let s = seed_for("A", &sig, None).unwrap();
    assert_eq!(s.stun_server_uri, "stun:a:1");
    assert_eq!(s.webrtc_client_start_timeout_ms, 10_000);
    let mut t = Map::new();
    t.insert("publishTokenControlEnabled".into(), true.into());
    t.insert("stunServerURI".into(), "stun:b:2".into());
    let s = seed_for("A", &sig, Some(&t)).unwrap();
    assert!(s.publish_token_control_enabled);
    assert_eq!(s.stun_server_uri, "stun:b:2");
    t.insert("webRTCViewerLimit".into(), "many".into());
    assert!(seed_for("A", &sig, Some(&t)).is_err());
    let mut t = Map::new();
    t.insert("remoteAllowedCIDR".into(), "nope".into());
    assert!(seed_for("A", &sig, Some(&t)).is_err());
    let mut cfg = proto_core::Config::default();
    apply_to_signalling(&s, &mut cfg);
    assert_eq!(cfg.ice_servers.stun_server_uri, "stun:b:2");
    assert_eq!(cfg.ice_servers.turn_server_username, None);
}

#[test]
fn data_channel_settings_follow_the_application() {
    let sig = proto_core::Config::default();
    let mut data = rtc_core::DataConfig {
        max_message_size: 1000,
        ..rtc_core::DataConfig::default()
    };
    // AMS defaults: enabled, distribution `all`.
    apply_to_data(&seed_for("A", &sig, None).unwrap(), &mut data);
    assert!(data.enabled);
    assert_eq!(data.player_distribution, rtc_core::PlayerDistribution::All);
    let mut t = Map::new();
    t.insert("dataChannelEnabled".into(), false.into());
    t.insert("dataChannelPlayerDistribution".into(), "publisher".into());
    apply_to_data(&seed_for("A", &sig, Some(&t)).unwrap(), &mut data);
    assert!(!data.enabled);
    assert_eq!(
        data.player_distribution,
        rtc_core::PlayerDistribution::Publisher
    );
    assert_eq!(data.max_message_size, 1000, "the size limit is the file's");
    t.insert("dataChannelPlayerDistribution".into(), "bogus".into());
    apply_to_data(&seed_for("A", &sig, Some(&t)).unwrap(), &mut data);
    assert_eq!(data.player_distribution, rtc_core::PlayerDistribution::All);
}
