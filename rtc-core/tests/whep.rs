//! A WHEP player: the client offers receive-only m-lines and the SFU answers; media flows as to
//! any player, and the session ends like one.
#![allow(clippy::disallowed_methods)] // the one Instant::now() that starts the virtual clock

use std::time::{Duration, Instant};

use proto_core::{MediaCmd, MediaEvent, SessionId};
use rtc_core::testing::Harness;
use str0m::media::MediaKind;

const PUB: SessionId = SessionId(1);
const PLAY: SessionId = SessionId(2);
const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn whep_player_gets_an_answer_and_receives_audio_and_video() {
    let mut h = Harness::new(Instant::now());
    let p = h.add_client();
    let v = h.add_client();
    h.publish(p, PUB, "s");
    assert!(h.run_until(SECS(5), |h| h.clients[p].is_connected()));
    h.run_media(p, Duration::from_millis(300));
    let answer = h.play_whep(v, PLAY, "s", PUB).expect("answer");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(
        answer.contains("a=candidate:"),
        "the answer carries the host candidate"
    );
    assert_eq!(answer.matches("a=sendonly").count(), 2, "{answer}");
    assert!(
        !h.has_event(|e| matches!(e, MediaEvent::Offer { session, .. } if *session == PLAY)),
        "no server offer for a WHEP player"
    );
    let candidate = h.clients[v].candidate_line();
    h.command(MediaCmd::RemoteCandidate {
        session: PLAY,
        candidate,
    });
    assert!(
        h.run_until(SECS(5), |h| h.clients[v].is_connected()
            && h.has_event(|e| *e == MediaEvent::Connected { session: PLAY })),
        "WHEP player connects"
    );
    h.command(MediaCmd::RequestKeyframe { session: PUB });
    h.run_media(p, SECS(2));
    let audio = h.clients[v].media_count(MediaKind::Audio);
    let video = h.clients[v].media_count(MediaKind::Video);
    assert!(audio > 20, "audio frames {audio}");
    assert!(video > 10, "video frames {video}");
    h.command(MediaCmd::Close { session: PLAY });
    assert_eq!(h.sfu.session_count(), 1, "only the publisher is left");
}

#[test]
fn whep_offer_without_media_or_malformed_fails_as_remote_description() {
    let mut h = Harness::new(Instant::now());
    let p = h.add_client();
    h.publish(p, PUB, "s");
    for (n, offer) in ["v=0\r\nnonsense\r\n".to_string(), {
        // A data-channel-only offer: nothing to receive.
        let c = h.add_client();
        let mut api = h.clients[c].rtc.sdp_api();
        api.add_channel("x".into());
        api.apply().expect("offer").0.to_sdp_string()
    }]
    .into_iter()
    .enumerate()
    {
        let session = SessionId(10 + n as u64);
        h.command(MediaCmd::StartPlayAnswer {
            session,
            stream: "s".into(),
            publisher: PUB,
            offer,
        });
        assert!(
            h.has_event(|e| matches!(e, MediaEvent::Failed { session: s, reason, .. } if *s == session && reason.is_remote_description())),
            "offer {n} fails"
        );
    }
    assert_eq!(
        h.sfu.session_count(),
        1,
        "nothing left of the failed sessions"
    );
}
