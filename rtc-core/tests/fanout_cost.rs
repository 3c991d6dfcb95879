//! Cost of forwarding, measured in the in-memory harness (run with `--release --ignored`).
#![allow(clippy::disallowed_methods)] // the one Instant::now() that starts the virtual clock

use std::time::{Duration, Instant};

use proto_core::{MediaCmd, MediaEvent, SessionId};
use rtc_core::testing::Harness;

#[test]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
fn fanout_cost_per_forwarded_packet() {
    let players = std::env::var("FANOUT_PLAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20u64);
    let mut h = Harness::new(Instant::now());
    let bwe = std::env::var("FANOUT_BWE").map_or(true, |v| v != "0");
    h.sfu.set_player_bwe(bwe);
    let p = h.add_client();
    h.publish(p, SessionId(1), "s");
    assert!(h.run_until(Duration::from_secs(5), |h| h.has_event(|e| *e
        == MediaEvent::Connected {
            session: SessionId(1)
        })));
    for i in 0..players {
        let c = h.add_client();
        h.play(c, SessionId(100 + i), "s", SessionId(1));
    }
    assert!(h.run_until(Duration::from_secs(10), |h| (0..players)
        .all(|i| h.sfu.is_connected(SessionId(100 + i)))));
    h.command(MediaCmd::RequestKeyframe {
        session: SessionId(1),
    });
    h.run_media(p, Duration::from_secs(1));
    let (busy0, sent0) = (h.sfu_busy, h.delivered_to_clients);
    let secs = 5;
    h.run_media(p, Duration::from_secs(secs));
    let busy = h.sfu_busy - busy0;
    let sent = h.delivered_to_clients - sent0;
    let per_packet = busy.as_nanos() as f64 / sent.max(1) as f64;
    println!(
        "players {players} (bwe {bwe}): {sent} datagrams to clients in {secs} s virtual, SFU busy {busy:?}, \
         {per_packet:.0} ns per datagram sent (incl. receive, RTCP, timers)"
    );
    assert!(
        sent as u64 > players * 100 * secs,
        "media reached all players"
    );
}
