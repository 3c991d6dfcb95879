//! Random datagrams never panic the SFU and never disturb a live session.
#![allow(clippy::disallowed_methods)] // the one Instant::now() that starts the virtual clock

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proto_core::{MediaEvent, SessionId};
use rtc_core::testing::Harness;
use rtc_core::{Sfu, SfuConfig};

fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1500),
        // Shaped like STUN (0..3), DTLS (20..63) and RTP/RTCP (128..191) to get past demux.
        (
            prop_oneof![0u8..4, 20u8..64, 128u8..192],
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(first, mut rest)| {
                rest.insert(0, first);
                rest
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_into_empty_sfu(data in datagram(), port in 1u16..65535) {
        let now = Instant::now();
        let local: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut sfu = Sfu::new(
            SfuConfig::new(vec![local], Duration::from_secs(1)),
            now,
        );
        let src = SocketAddr::from(([10, 9, 9, 9], port));
        sfu.handle_receive(now, src, local, &data);
        prop_assert!(sfu.poll_output().is_none());
    }
}

#[test]
fn garbage_from_anywhere_leaves_live_sessions_alone() {
    let mut h = Harness::new(Instant::now());
    let p = h.add_client();
    let publisher = SessionId(7);
    h.publish(p, publisher, "s");
    assert!(h.run_until(Duration::from_secs(5), |h| h
        .has_event(|e| *e == MediaEvent::Connected { session: publisher })));
    let client_addr = h.clients[p].addr;
    let sfu_addr = h.sfu_addr;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for i in 0..500 {
        let data = datagram().new_tree(&mut runner).unwrap().current();
        // Half of it spoofs the connected client's address, to hit the cached route.
        let src = if i % 2 == 0 {
            client_addr
        } else {
            SocketAddr::from(([10, 8, 0, 1], 1000 + i as u16))
        };
        let now = h.now;
        h.sfu.handle_receive(now, src, sfu_addr, &data);
        h.pump();
    }
    h.run_media(p, Duration::from_millis(500));
    assert!(h.sfu.is_connected(publisher));
    assert!(!h.has_event(|e| matches!(e, MediaEvent::Failed { .. } | MediaEvent::Closed { .. })));
    assert!(h.has_event(|e| *e == MediaEvent::MediaStarted { session: publisher }));
}
