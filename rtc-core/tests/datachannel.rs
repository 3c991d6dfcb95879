//! Data channels through the SFU in memory: str0m "browsers" publish and play, and exchange
//! data-channel messages through the relay (`data.rs`).
#![allow(clippy::disallowed_methods)] // the one Instant::now() that starts the virtual clock

use std::time::{Duration, Instant};

use proto_core::{MediaCmd, MediaEvent, SessionId};
use rtc_core::testing::Harness;
use rtc_core::{DataConfig, PlayerDistribution};

const PUB: SessionId = SessionId(1);
const PLAY_A: SessionId = SessionId(2);
const PLAY_B: SessionId = SessionId(3);
const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Client indexes of a publisher and two players whose channels are all open.
struct Room {
    h: Harness,
    publisher: usize,
    a: usize,
    b: usize,
}

fn connected(h: &Harness, session: SessionId) -> bool {
    h.has_event(|e| *e == MediaEvent::Connected { session })
}

/// A publisher of `stream` (audio+video, or data only) and two players, every channel open.
fn room_with(config: DataConfig, media: bool) -> Room {
    let mut h = Harness::new(Instant::now());
    h.sfu.set_data_config(config);
    let publisher = h.add_client();
    let a = h.add_client();
    let b = h.add_client();
    h.publish_kinds(publisher, PUB, "stream1", media, media);
    assert!(
        h.run_until(SECS(5), |h| h.clients[publisher].channel_id().is_some()
            && connected(h, PUB)),
        "publisher connects and opens its channel"
    );
    if media {
        h.run_media(publisher, Duration::from_millis(200));
    }
    h.play(a, PLAY_A, "stream1", PUB);
    h.play(b, PLAY_B, "stream1", PUB);
    if config.enabled {
        assert!(
            h.run_until(SECS(5), |h| h.clients[a].channel_id().is_some()
                && h.clients[b].channel_id().is_some()),
            "players get the server's channel"
        );
    } else {
        assert!(h.run_until(SECS(5), |h| connected(h, PLAY_A) && connected(h, PLAY_B)));
    }
    Room { h, publisher, a, b }
}

fn room() -> Room {
    room_with(DataConfig::default(), true)
}

fn player_offer(h: &Harness, session: SessionId) -> String {
    h.events
        .iter()
        .find_map(|(_, e)| match e {
            MediaEvent::Offer {
                session: s, sdp, ..
            } if *s == session => Some(sdp.clone()),
            _ => None,
        })
        .expect("player offer")
}

#[test]
fn publisher_text_and_binary_reach_both_players() {
    let Room {
        mut h,
        publisher,
        a,
        b,
    } = room();
    // The player's offer: media first, then one channel labelled with the stream id.
    let offer = player_offer(&h, PLAY_A);
    let kinds: Vec<&str> = offer
        .lines()
        .filter_map(|l| l.strip_prefix("m="))
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["audio", "video", "application"], "{offer}");
    assert_eq!(h.clients[a].channel_labels(), ["stream1"]);

    // Text, then binary the way the SDK sends it: an 8-byte header, then token-prefixed
    // chunks of at most 16000 bytes.
    assert!(h.clients[publisher].send_data(false, b"{\"eventType\":\"CHAT\",\"m\":\"hi\"}"));
    let image: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let token = 4242i32.to_le_bytes();
    let mut header = token.to_vec();
    header.extend_from_slice(&(image.len() as i32).to_le_bytes());
    let mut sent = vec![(false, b"{\"eventType\":\"CHAT\",\"m\":\"hi\"}".to_vec())];
    assert!(h.clients[publisher].send_data(true, &header));
    sent.push((true, header));
    for chunk in image.chunks(16_000) {
        let mut m = token.to_vec();
        m.extend_from_slice(chunk);
        assert!(h.clients[publisher].send_data(true, &m));
        sent.push((true, m));
    }
    assert!(
        h.run_until(SECS(2), |h| h.clients[a].data_received().len()
            == sent.len()
            && h.clients[b].data_received().len() == sent.len()),
        "both players get every message"
    );
    assert_eq!(
        h.clients[a].data_received(),
        sent,
        "same bytes, kind, order"
    );
    assert_eq!(h.clients[b].data_received(), sent);
    let stats = h.sfu.data_stats();
    assert_eq!(stats.received, sent.len() as u64);
    assert_eq!(stats.delivered, 2 * sent.len() as u64);
    assert_eq!(stats.dropped_oversize + stats.dropped_congested, 0);
    // With the default distribution (`all`) nothing went back to the publisher.
    assert!(h.clients[publisher].data_received().is_empty());
}

#[test]
fn oversize_message_is_dropped_and_counted() {
    let config = DataConfig {
        max_message_size: 1000,
        ..DataConfig::default()
    };
    let Room {
        mut h,
        publisher,
        a,
        b,
    } = room_with(config, true);
    assert!(h.clients[publisher].send_data(false, &[b'x'; 1001]));
    assert!(h.clients[publisher].send_data(true, &[7u8; 1000]));
    assert!(
        h.run_until(SECS(2), |h| h.clients[a].data_received().len() == 1
            && h.clients[b].data_received().len() == 1)
    );
    h.run_for(Duration::from_millis(200));
    assert_eq!(h.clients[a].data_received(), [(true, vec![7u8; 1000])]);
    assert_eq!(h.clients[b].data_received(), [(true, vec![7u8; 1000])]);
    let stats = h.sfu.data_stats();
    assert_eq!(stats.dropped_oversize, 1);
    assert_eq!(stats.received, 2);
    assert_eq!(stats.delivered, 2);
}

#[test]
fn player_messages_follow_the_distribution_setting() {
    for (mode, to_publisher, to_other_player) in [
        (PlayerDistribution::All, true, true),
        (PlayerDistribution::Publisher, true, false),
        (PlayerDistribution::None, false, false),
    ] {
        let config = DataConfig {
            player_distribution: mode,
            ..DataConfig::default()
        };
        let Room {
            mut h,
            publisher,
            a,
            b,
        } = room_with(config, true);
        assert!(h.clients[a].send_data(false, b"from a"));
        // A marker from the publisher: once it reached player b, a's message had its chance.
        h.run_for(Duration::from_millis(300));
        assert!(h.clients[publisher].send_data(false, b"marker"));
        assert!(h.run_until(SECS(2), |h| h.clients[b]
            .data_received()
            .contains(&(false, b"marker".to_vec()))));
        h.run_for(Duration::from_millis(100));
        let got = |c: usize| {
            h.clients[c]
                .data_received()
                .contains(&(false, b"from a".to_vec()))
        };
        assert_eq!(got(publisher), to_publisher, "{mode:?}: publisher");
        assert_eq!(got(b), to_other_player, "{mode:?}: other player");
        assert!(!got(a), "{mode:?}: never echoed to the sender");
        if mode == PlayerDistribution::None {
            assert_eq!(h.sfu.data_stats().dropped_not_relayed, 1);
        }
    }
}

#[test]
fn data_only_publish_goes_live_on_channel_open_and_players_get_a_channel_only() {
    let mut h = Harness::new(Instant::now());
    let publisher = h.add_client();
    let a = h.add_client();
    h.publish_kinds(publisher, PUB, "dataonly", false, false);
    assert!(h.run_until(SECS(5), |h| h
        .has_event(|e| *e == MediaEvent::MediaStarted { session: PUB })));
    assert!(
        h.clients[publisher].channel_id().is_some(),
        "live once the channel is open"
    );
    h.play(a, PLAY_A, "dataonly", PUB);
    let offer = player_offer(&h, PLAY_A);
    let mlines: Vec<&str> = offer.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(mlines.len(), 1, "{offer}");
    assert!(mlines[0].starts_with("m=application "), "{offer}");
    assert!(h.run_until(SECS(5), |h| h.clients[a].channel_id().is_some()));
    assert!(h.has_event(|e| *e == MediaEvent::Connected { session: PLAY_A }));

    assert!(h.clients[publisher].send_data(false, b"to the player"));
    assert!(h.run_until(SECS(2), |h| !h.clients[a].data_received().is_empty()));
    assert!(h.clients[a].send_data(false, b"to the publisher"));
    assert!(h.run_until(SECS(2), |h| !h.clients[publisher]
        .data_received()
        .is_empty()));
    assert_eq!(
        h.clients[a].data_received(),
        [(false, b"to the player".to_vec())]
    );
    assert_eq!(
        h.clients[publisher].data_received(),
        [(false, b"to the publisher".to_vec())]
    );
}

#[test]
fn disabled_data_channel_offers_none_and_relays_nothing() {
    let config = DataConfig {
        enabled: false,
        ..DataConfig::default()
    };
    let Room {
        mut h,
        publisher,
        a,
        ..
    } = room_with(config, true);
    assert!(!player_offer(&h, PLAY_A).contains("m=application"));
    assert!(h.clients[publisher].send_data(false, b"nobody hears this"));
    h.run_for(Duration::from_millis(300));
    assert!(h.clients[a].channel_id().is_none());
    assert_eq!(h.sfu.data_stats().dropped_not_relayed, 1);

    // A data-only publish never goes live.
    let p2 = h.add_client();
    h.publish_kinds(p2, SessionId(10), "dataonly", false, false);
    h.run_for(SECS(2));
    assert!(h.clients[p2].channel_id().is_some());
    assert!(!h.has_event(|e| *e
        == MediaEvent::MediaStarted {
            session: SessionId(10)
        }));
}

#[test]
fn subtrack_messages_reach_the_players_of_its_main_track() {
    // Subtrack "alice" of main track "room1" (app "App"), played by client a; client m stands
    // for a player of the main track, registered through the hook main-track playback uses.
    let Room {
        mut h,
        publisher,
        a,
        b,
    } = room();
    h.command(MediaCmd::SetMainTrack {
        session: PUB,
        main_track: "App/room1".into(),
    });
    let other = h.add_client();
    let m = h.add_client();
    h.publish(other, SessionId(20), "other");
    assert!(h.run_until(SECS(5), |h| connected(h, SessionId(20))));
    h.run_media(other, Duration::from_millis(200));
    h.play(m, SessionId(21), "other", SessionId(20));
    assert!(h.run_until(SECS(5), |h| h.clients[m].channel_id().is_some()));
    h.sfu.add_main_track_player("App/room1", SessionId(21));
    h.sfu.add_main_track_player("App/room1", PLAY_A); // also a direct player: one copy only

    assert!(h.clients[publisher].send_data(false, b"chat"));
    assert!(
        h.run_until(SECS(2), |h| !h.clients[m].data_received().is_empty()
            && !h.clients[a].data_received().is_empty()
            && !h.clients[b].data_received().is_empty())
    );
    h.run_for(Duration::from_millis(200));
    for c in [a, b, m] {
        assert_eq!(h.clients[c].data_received(), [(false, b"chat".to_vec())]);
    }
    // Messages of the other (not a subtrack) stream stay with its own players.
    assert!(h.clients[other].send_data(false, b"not for room1"));
    assert!(h.run_until(SECS(2), |h| h.clients[m].data_received().len() == 2));
    h.run_for(Duration::from_millis(200));
    assert_eq!(h.clients[a].data_received().len(), 1);

    // The registration ends with the player session.
    h.command(MediaCmd::Close {
        session: SessionId(21),
    });
    assert!(h.clients[publisher].send_data(false, b"after"));
    assert!(h.run_until(SECS(2), |h| h.clients[a].data_received().len() == 2));
    assert_eq!(h.clients[m].data_received().len(), 2);
}

#[test]
fn a_slow_player_loses_its_own_messages_only() {
    let Room {
        mut h,
        publisher,
        a,
        b,
    } = room();
    // Player b stops reading: nothing reaches it any more, so its SCTP window never opens.
    let b_addr = h.clients[b].addr;
    h.blackholed.push(b_addr);
    let n = 400usize;
    let mut sent = 0usize;
    let start = h.now;
    while sent < n {
        let msg = format!("{sent:04}").repeat(256); // 1 KiB
        if h.clients[publisher].send_data(false, msg.as_bytes()) {
            sent += 1;
        }
        h.step(Duration::from_millis(1));
        assert!(h.now - start < SECS(20), "publisher could not send");
    }
    assert!(
        h.run_until(SECS(5), |h| h.clients[a].data_received().len() == n),
        "the fast player gets all {n} messages: got {}",
        h.clients[a].data_received().len()
    );
    let stats = h.sfu.data_stats();
    assert_eq!(stats.received, n as u64);
    assert!(
        stats.dropped_congested > 0,
        "the slow player's copies beyond its buffer are dropped: {stats:?}"
    );
    assert_eq!(
        stats.delivered + stats.dropped_congested,
        2 * n as u64,
        "{stats:?}"
    );
    // 400 KiB for b, at most 128 KiB buffered in str0m for it: most copies dropped.
    assert!(stats.dropped_congested >= 250, "{stats:?}");
    eprintln!("slow receiver: {stats:?}");
}

#[test]
fn a_flooding_sender_is_held_to_its_rate() {
    let config = DataConfig {
        max_messages_per_second: 20,
        ..DataConfig::default()
    };
    let Room {
        mut h,
        publisher,
        a,
        b,
    } = room_with(config, true);
    // 60 messages at one instant: one second's worth (20) passes.
    for i in 0..60 {
        assert!(h.clients[publisher].send_data(false, format!("m{i}").as_bytes()));
    }
    h.pump();
    assert!(
        h.run_until(SECS(1), |h| h.clients[a].data_received().len() >= 20
            && h.clients[b].data_received().len() >= 20)
    );
    h.run_for(Duration::from_millis(100));
    let first: Vec<_> = (0..20)
        .map(|i| (false, format!("m{i}").into_bytes()))
        .collect();
    assert_eq!(h.clients[a].data_received(), first);
    assert_eq!(h.clients[b].data_received(), first);
    let stats = h.sfu.data_stats();
    assert_eq!(stats.dropped_rate, 40, "{stats:?}");
    // The bucket refills: a second later the sender may send again.
    h.run_for(SECS(1));
    assert!(h.clients[publisher].send_data(false, b"later"));
    assert!(h.run_until(SECS(1), |h| h.clients[a].data_received().len() == 21));
}
