//! Two `Sfu`s in one process share nothing they were not given: each has the crypto provider
//! and certificate of its own `SfuConfig`, and a player's stable mids depend only on its own
//! `Sfu`'s seed and the stream, however the two `Sfu`s' calls interleave.
#![allow(clippy::disallowed_methods)] // the one Instant::now() that starts the virtual clock

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto_core::{MediaEvent, SessionId};
use rtc_core::testing::Harness;
use rtc_core::{SfuConfig, SfuCrypto};

const PUB: SessionId = SessionId(1);
const PLAY: SessionId = SessionId(2);

fn config(seed: u64, crypto: SfuCrypto) -> SfuConfig {
    let addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    SfuConfig {
        seed: Some(seed),
        crypto,
        ..SfuConfig::new(vec![addr], Duration::from_secs(1))
    }
}

fn lines(sdp: &str, prefix: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::to_string)
        .collect()
}

fn answer(h: &Harness) -> String {
    h.events
        .iter()
        .find_map(|(_, e)| match e {
            MediaEvent::Answer { session, sdp } if *session == PUB => Some(sdp.clone()),
            _ => None,
        })
        .expect("answer")
}

fn offer_mids(h: &Harness) -> Vec<String> {
    h.events
        .iter()
        .find_map(|(_, e)| match e {
            MediaEvent::Offer { session, sdp, .. } if *session == PLAY => {
                Some(lines(sdp, "a=mid:"))
            }
            _ => None,
        })
        .expect("offer")
}

/// A publisher of "s" on client 0, a player of it on client 1.
fn publish(h: &mut Harness) {
    let c = h.add_client();
    h.publish(c, PUB, "s");
    h.add_client();
}

#[test]
fn crypto_comes_from_the_config() {
    let a = SfuCrypto::generate();
    let b = SfuCrypto::generate();
    assert!(
        !std::ptr::addr_eq(a.provider.dtls_provider, b.provider.dtls_provider),
        "each SfuCrypto has its own DTLS provider"
    );
    let start = Instant::now();
    let mut one = Harness::with_config(start, config(1, a.clone()));
    let mut same = Harness::with_config(start, config(1, a));
    let mut other = Harness::with_config(start, config(1, b));
    for h in [&mut one, &mut same, &mut other] {
        publish(h);
    }
    let fingerprint = |h: &Harness| lines(&answer(h), "a=fingerprint:");
    assert!(!fingerprint(&one).is_empty());
    assert_eq!(fingerprint(&one), fingerprint(&same));
    assert_ne!(fingerprint(&one), fingerprint(&other));
}

#[test]
fn stable_mids_follow_each_sfu_seed_alone() {
    let start = Instant::now();
    // Alone: the mids seed 1 gives.
    let mut alone = Harness::with_config(start, config(1, SfuCrypto::generate()));
    publish(&mut alone);
    alone.play(1, PLAY, "s", PUB);
    let expected = offer_mids(&alone);
    assert!(!expected.is_empty());

    // Interleaved with another Sfu of another seed on the same thread.
    let mut a = Harness::with_config(start, config(1, SfuCrypto::generate()));
    let mut b = Harness::with_config(start, config(2, SfuCrypto::generate()));
    publish(&mut a);
    publish(&mut b);
    b.play(1, PLAY, "s", PUB);
    a.play(1, PLAY, "s", PUB);
    assert_eq!(offer_mids(&a), expected);
    assert_ne!(offer_mids(&b), expected, "another seed gives other mids");
}
