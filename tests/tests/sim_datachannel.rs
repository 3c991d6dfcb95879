//! Data channels end to end through the simulated server: str0m browsers speak AMS signalling,
//! open data channels over real ICE/DTLS/SCTP on a lossy in-memory network, and the server
//! relays their messages.

use antenna_tests::media::MediaSim;
use serde_json::json;
use std::time::Duration;

/// Runs until `cond` holds, at most `limit` of virtual time.
fn run_until(m: &mut MediaSim, limit: Duration, cond: impl Fn(&MediaSim) -> bool) -> bool {
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while waited < limit {
        if cond(m) {
            return true;
        }
        m.run(step);
        waited += step;
    }
    cond(m)
}

#[test]
fn publisher_chat_reaches_players_and_players_answer_over_a_lossy_link() {
    for seed in [31, 32, 33] {
        let mut m = MediaSim::new(seed);
        m.loss_percent = 3;
        let p = m.publisher_with("talk", json!({"mainTrack":"room1"}), false);
        m.run(Duration::from_secs(2));
        assert!(m.browsers[p].got("publish_started"), "seed {seed}");
        let a = m.player("talk");
        let b = m.player("talk");
        assert!(
            run_until(&mut m, Duration::from_secs(10), |m| m.browsers[a]
                .client
                .channel_id()
                .is_some()
                && m.browsers[b].client.channel_id().is_some()),
            "seed {seed}: players get the server's channel"
        );
        assert_eq!(m.browsers[a].client.channel_labels(), ["talk"]);

        let mut sent = Vec::new();
        for i in 0..20 {
            let text = format!("{{\"eventType\":\"CHAT\",\"n\":{i}}}");
            assert!(m.browsers[p].client.send_data(false, text.as_bytes()));
            sent.push((false, text.into_bytes()));
            let bin: Vec<u8> = (0..3000u32).map(|x| (x * 7 + i) as u8).collect();
            assert!(m.browsers[p].client.send_data(true, &bin));
            sent.push((true, bin));
            m.run(Duration::from_millis(20));
        }
        assert!(
            run_until(&mut m, Duration::from_secs(10), |m| {
                m.browsers[a].client.data_received().len() == sent.len()
                    && m.browsers[b].client.data_received().len() == sent.len()
            }),
            "seed {seed}: every message despite {} lost datagrams",
            m.dropped
        );
        assert_eq!(m.browsers[a].client.data_received(), sent, "seed {seed}");
        assert_eq!(m.browsers[b].client.data_received(), sent, "seed {seed}");

        // Default distribution `all`: a player's message reaches the publisher and the other
        // player, not itself.
        assert!(m.browsers[a].client.send_data(false, b"question"));
        assert!(run_until(&mut m, Duration::from_secs(5), |m| {
            m.browsers[p].client.data_received().len() == 1
                && m.browsers[b].client.data_received().len() == sent.len() + 1
        }));
        m.run(Duration::from_millis(500));
        assert_eq!(m.browsers[a].client.data_received().len(), sent.len());
        let stats = m.sim.node.sfu.data_stats();
        println!(
            "seed {seed}: {} messages relayed as {} copies, {} of {} datagrams lost",
            stats.received,
            stats.delivered,
            m.dropped,
            m.dropped + m.delivered
        );
        assert_eq!(stats.delivered, 2 * sent.len() as u64 + 2);
        assert_eq!(stats.dropped_congested + stats.dropped_oversize, 0);
    }
}

#[test]
fn data_only_publish_goes_live_and_its_player_exchanges_messages() {
    let mut m = MediaSim::new(41);
    let p = m.publisher_with("sensor", json!({}), true);
    assert!(
        run_until(&mut m, Duration::from_secs(5), |m| m.browsers[p]
            .got("publish_started")),
        "{:?}",
        m.browsers[p].labels()
    );
    assert!(m.browsers[p].client.channel_id().is_some());
    // No publishTimeoutError later on.
    m.run(Duration::from_secs(11));
    assert!(
        !m.browsers[p].got("publishTimeoutError"),
        "{:?}",
        m.browsers[p].labels()
    );
    let v = m.player("sensor");
    assert!(
        run_until(&mut m, Duration::from_secs(5), |m| m.browsers[v]
            .got("play_started")
            && m.browsers[v].client.channel_id().is_some()),
        "{:?} {:?}",
        m.browsers[v].labels(),
        m.browsers[v].client.channel_labels()
    );
    let offer = m.browsers[v]
        .received
        .iter()
        .find(|x| x["command"] == "takeConfiguration")
        .and_then(|x| x["sdp"].as_str())
        .unwrap_or_default()
        .to_string();
    let mlines: Vec<&str> = offer.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(mlines.len(), 1, "{offer}");
    assert!(mlines[0].starts_with("m=application"), "{offer}");

    assert!(m.browsers[p].client.send_data(false, b"21.5C"));
    assert!(m.browsers[v].client.send_data(false, b"ack"));
    assert!(run_until(&mut m, Duration::from_secs(5), |m| {
        !m.browsers[v].client.data_received().is_empty()
            && !m.browsers[p].client.data_received().is_empty()
    }));
    assert_eq!(
        m.browsers[v].client.data_received(),
        [(false, b"21.5C".to_vec())]
    );
    assert_eq!(
        m.browsers[p].client.data_received(),
        [(false, b"ack".to_vec())]
    );

    // The publisher stops: the player is told, as for media streams.
    m.send(p, json!({"command":"stop","streamId":"sensor"}));
    assert!(m.browsers[p].got("publish_finished"));
    assert!(m.browsers[v].got("play_finished"));
}
