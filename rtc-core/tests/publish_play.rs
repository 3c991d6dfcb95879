//! A str0m "browser" publishes through the SFU in memory, another plays it.
//!
//! (A little over 600 lines: every test here is one step of the same publish → play path,
//! from the first offer to the flushed datagram, sharing `publish_and_play`; split by topic
//! they would each need that set-up again.)
#![allow(clippy::disallowed_methods)] // the one Instant::now() that starts the virtual clock

use std::time::{Duration, Instant};

use proto_core::{FailReason, MediaCmd, MediaEvent, SessionId, TrackKind};
use rtc_core::testing::Harness;
use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::Event;

const PUB: SessionId = SessionId(1);
const PLAY: SessionId = SessionId(2);
const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Publisher (client 0) connected and sending, player (client 1) connected.
fn publish_and_play() -> Harness {
    publish_and_play_on(true)
}

/// [`publish_and_play`] with the player's RTP on the fast path or on str0m's.
fn publish_and_play_on(fast_path: bool) -> Harness {
    let mut h = Harness::new(Instant::now());
    h.sfu.set_fast_path(fast_path);
    let p = h.add_client();
    let v = h.add_client();
    h.publish(p, PUB, "stream1");
    assert!(
        h.run_until(SECS(5), |h| h.clients[p].is_connected()
            && h.has_event(|e| *e == MediaEvent::Connected { session: PUB })),
        "publisher connects"
    );
    h.run_media(p, Duration::from_millis(500));
    h.play(v, PLAY, "stream1", PUB);
    assert!(
        h.run_until(SECS(5), |h| h.clients[v].is_connected()
            && h.has_event(|e| *e == MediaEvent::Connected { session: PLAY })),
        "player connects"
    );
    // Signalling asks for a keyframe when a player connects.
    h.command(MediaCmd::RequestKeyframe { session: PUB });
    h
}

#[test]
fn publish_answer_candidate_connected_media_started() {
    let mut h = Harness::new(Instant::now());
    let p = h.add_client();
    h.publish(p, PUB, "s");
    let answer = h.events.iter().find_map(|(_, e)| match e {
        MediaEvent::Answer { session, sdp } if *session == PUB => Some(sdp.clone()),
        _ => None,
    });
    let answer = answer.expect("answer");
    assert!(answer.contains("a=ice-lite"), "ICE-lite server");
    assert!(
        answer.contains("a=candidate:"),
        "answer carries the host candidate"
    );
    let cand = h.events.iter().find_map(|(_, e)| match e {
        MediaEvent::Candidate { session, candidate } if *session == PUB => Some(candidate.clone()),
        _ => None,
    });
    let cand = cand.expect("candidate event");
    assert_eq!(cand.mline_index, 0);
    let first_mid = answer
        .lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .expect("mid");
    assert_eq!(cand.mid, first_mid.trim());
    assert!(cand.candidate.starts_with("candidate:"));
    assert!(cand.candidate.contains("10.0.0.1 5000 typ host"));

    assert!(h.run_until(SECS(5), |h| h
        .has_event(|e| *e == MediaEvent::Connected { session: PUB })));
    assert!(!h.has_event(|e| matches!(e, MediaEvent::MediaStarted { .. })));
    h.run_media(p, Duration::from_millis(300));
    assert!(h.has_event(|e| *e == MediaEvent::MediaStarted { session: PUB }));
}

#[test]
fn player_receives_audio_and_video() {
    let mut h = publish_and_play();
    let offer = h.events.iter().find_map(|(_, e)| match e {
        MediaEvent::Offer {
            session,
            sdp,
            tracks,
        } if *session == PLAY => Some((sdp.clone(), tracks.clone())),
        _ => None,
    });
    let (sdp, tracks) = offer.expect("offer");
    let kinds: Vec<TrackKind> = tracks.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, vec![TrackKind::Audio, TrackKind::Video]);
    assert!(
        sdp.contains("a=msid:stream1 "),
        "msid stream id is the stream name"
    );
    assert!(sdp.contains("a=sendonly"));
    assert!(sdp.contains("VP8/90000") && sdp.contains("opus/48000/2"));

    h.run_media(0, SECS(2));
    let audio = h.clients[1].media_count(MediaKind::Audio);
    let video = h.clients[1].media_count(MediaKind::Video);
    assert!(audio > 50, "player got {audio} audio frames");
    assert!(video > 25, "player got {video} video frames");
    // The first forwarded video is decodable from a keyframe onwards; payloads arrive intact.
    let key = h.clients[1].events.iter().find_map(|(_, e)| match e {
        Event::MediaData(d) if d.data.len() == 3000 => Some(d.data.clone()),
        _ => None,
    });
    let key = key.expect("a keyframe reached the player");
    assert_eq!(
        &key[..10],
        &rtc_core::testing::vp8_keyframe(640, 480, 3000)[..10]
    );
}

#[test]
fn stats_report_size_codec_and_bitrates() {
    let mut h = publish_and_play();
    h.run_media(0, SECS(3));
    let last = |s: SessionId| {
        h.events.iter().rev().find_map(|(_, e)| match e {
            MediaEvent::Stats { session, stats } if *session == s => Some(stats.clone()),
            _ => None,
        })
    };
    let pub_stats = last(PUB).expect("publisher stats");
    assert_eq!((pub_stats.width, pub_stats.height), (640, 480));
    assert_eq!(pub_stats.video_codec, "VP8");
    // ~1.2 kB every 40 ms plus keyframes: ~250 kbit/s; 80 B audio every 20 ms: ~32 kbit/s.
    assert!(pub_stats.video_bitrate > 150_000, "{pub_stats:?}");
    assert!(pub_stats.audio_bitrate > 20_000, "{pub_stats:?}");
    let play_stats = last(PLAY).expect("player stats");
    assert!(play_stats.video_bitrate > 150_000, "{play_stats:?}");
    assert!(play_stats.audio_bitrate > 20_000, "{play_stats:?}");
    assert_eq!(play_stats.video_codec, "VP8");
}

#[test]
fn request_keyframe_reaches_publisher() {
    let mut h = publish_and_play();
    h.run_media(0, SECS(1));
    let before = h.clients[0].keyframe_requests();
    h.command(MediaCmd::RequestKeyframe { session: PUB });
    h.run_media(0, Duration::from_millis(200));
    assert!(
        h.clients[0].keyframe_requests() > before,
        "publisher saw a PLI"
    );
}

#[test]
fn player_pli_is_reported_and_reaches_publisher() {
    let mut h = publish_and_play();
    h.run_media(0, SECS(1));
    let before = h.clients[0].keyframe_requests();
    let video_mid = {
        let c = &h.clients[1];
        c.events
            .iter()
            .find_map(|(_, e)| match e {
                Event::MediaAdded(m) if m.kind == MediaKind::Video => Some(m.mid),
                _ => None,
            })
            .expect("video media at player")
    };
    let now = h.now;
    {
        let c = &mut h.clients[1];
        c.rtc
            .writer(video_mid)
            .expect("writer")
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .expect("pli");
        c.handle_timeout(now);
    }
    h.run_media(0, Duration::from_millis(500));
    assert!(h.has_event(|e| *e == MediaEvent::KeyframeRequested { session: PLAY }));
    assert!(h.clients[0].keyframe_requests() > before);
}

#[test]
fn set_forwarding_gates_video_only() {
    let mut h = publish_and_play();
    h.run_media(0, SECS(1));
    h.command(MediaCmd::SetForwarding {
        session: PLAY,
        video: Some(false),
        audio: None,
    });
    // Let in-flight frames land.
    h.run_media(0, Duration::from_millis(300));
    let v0 = h.clients[1].media_count(MediaKind::Video);
    let a0 = h.clients[1].media_count(MediaKind::Audio);
    h.run_media(0, SECS(1));
    assert_eq!(
        h.clients[1].media_count(MediaKind::Video),
        v0,
        "video stopped"
    );
    assert!(
        h.clients[1].media_count(MediaKind::Audio) > a0 + 30,
        "audio continues"
    );

    h.command(MediaCmd::SetForwarding {
        session: PLAY,
        video: Some(true),
        audio: None,
    });
    h.run_media(0, SECS(2));
    assert!(
        h.clients[1].media_count(MediaKind::Video) > v0 + 20,
        "video resumed"
    );
}

#[test]
fn closing_publisher_stops_media_and_drops_session() {
    let mut h = publish_and_play();
    h.run_media(0, SECS(1));
    let events_before = h.events.len();
    h.command(MediaCmd::Close { session: PUB });
    assert!(!h.sfu.is_connected(PUB));
    assert_eq!(h.sfu.session_count(), 1);
    // The browser is told (DTLS close_notify).
    assert!(
        h.clients[0]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Closed))
            || !h.clients[0].rtc.is_alive(),
        "publisher client saw the close"
    );
    h.run_for(Duration::from_millis(200));
    let v0 = h.clients[1].media_count(MediaKind::Video);
    h.run_for(SECS(1));
    assert_eq!(
        h.clients[1].media_count(MediaKind::Video),
        v0,
        "no media after close"
    );
    // Close is silent: no Closed/Failed for the publisher.
    assert!(!h.events[events_before..].iter().any(|(_, e)| matches!(
        e,
        MediaEvent::Closed { session } | MediaEvent::Failed { session, .. } if *session == PUB
    )));
    // The player is still there and keeps its connection.
    assert!(h.sfu.is_connected(PLAY));
}

#[test]
fn player_gone_is_reported_closed() {
    let mut h = publish_and_play();
    h.run_media(0, SECS(1));
    // The player's browser vanishes: no more STUN consent, no DTLS close.
    h.clients[1].rtc.disconnect();
    assert!(
        h.run_until(SECS(60), |h| h
            .has_event(|e| *e == MediaEvent::Closed { session: PLAY })),
        "player session closes once consent is lost"
    );
    assert!(!h.sfu.is_connected(PLAY));
    // The publisher keeps going.
    h.run_media(0, Duration::from_millis(200));
    assert!(h.sfu.is_connected(PUB));
}

#[test]
fn bad_offer_fails_with_remote_description() {
    let mut h = Harness::new(Instant::now());
    h.command(MediaCmd::StartPublish {
        session: PUB,
        stream: "s".into(),
        offer: "v=0\r\nthis is not sdp\r\n".into(),
    });
    assert!(h.has_event(|e| matches!(e,
        MediaEvent::Failed { session, reason: FailReason::RemoteDescription(_) } if *session == PUB)));
    assert_eq!(h.sfu.session_count(), 0);
}

#[test]
fn bad_answer_fails_with_remote_description() {
    let mut h = Harness::new(Instant::now());
    h.command(MediaCmd::StartPlay {
        session: PLAY,
        stream: "s".into(),
        publisher: PUB,
    });
    assert!(h.has_event(|e| matches!(e, MediaEvent::Offer { .. })));
    h.command(MediaCmd::RemoteAnswer {
        session: PLAY,
        sdp: "garbage".into(),
    });
    assert!(h.has_event(|e| matches!(e,
        MediaEvent::Failed { session, reason: FailReason::RemoteDescription(_) } if *session == PLAY)));
    assert_eq!(h.sfu.session_count(), 0);
}

#[test]
fn unconnected_session_fails_after_connect_timeout() {
    let mut h = Harness::new(Instant::now());
    let p = h.add_client();
    let offer = h.clients[p].publish_offer(true, true);
    h.command(MediaCmd::StartPublish {
        session: PUB,
        stream: "s".into(),
        offer,
    });
    // The client never applies the answer, so it never connects.
    assert!(h.run_until(SECS(40), |h| {
        h.has_event(|e| {
            matches!(e,
        MediaEvent::Failed { session, reason } if *session == PUB && !reason.is_remote_description())
        })
    }));
    assert_eq!(h.sfu.session_count(), 0);
}

#[test]
fn play_before_publish_offer_uses_audio_and_video() {
    let mut h = Harness::new(Instant::now());
    h.command(MediaCmd::StartPlay {
        session: PLAY,
        stream: "later".into(),
        publisher: PUB,
    });
    let tracks = h.events.iter().find_map(|(_, e)| match e {
        MediaEvent::Offer { tracks, .. } => Some(tracks.clone()),
        _ => None,
    });
    let kinds: Vec<TrackKind> = tracks.expect("offer").iter().map(|t| t.kind).collect();
    assert_eq!(kinds, vec![TrackKind::Audio, TrackKind::Video]);
}

#[test]
fn unparsable_and_tcp_candidates_are_ignored() {
    let mut h = publish_and_play();
    for c in [
        "",
        "candidate:",
        "candidate:1 1 tcp 2122260223 10.0.9.9 9 typ host tcptype active",
        "candidate:1 1 udp 2122260223 abcd.local 5000 typ host",
        "a=candidate:1 1 udp 2122260223 10.0.9.9 5000 typ host",
        "1 1 udp 2122260223 10.0.9.8 5000 typ host",
    ] {
        h.command(MediaCmd::RemoteCandidate {
            session: PLAY,
            candidate: c.into(),
        });
    }
    h.run_media(0, Duration::from_millis(300));
    assert!(h.sfu.is_connected(PLAY));
}

/// The offer the real AMS SDK 2.16.2 made in Chrome (audio, video, data channel; BUNDLE).
const SDK_OFFER: &str = include_str!("data/sdk-2.16.2-publish-offer.sdp");

#[test]
fn sdk_chrome_offer_is_answered_and_mirrored_to_players() {
    let mut h = Harness::new(Instant::now());
    h.command(MediaCmd::StartPublish {
        session: PUB,
        stream: "stream1".into(),
        offer: SDK_OFFER.into(),
    });
    let answer = h.events.iter().find_map(|(_, e)| match e {
        MediaEvent::Answer { sdp, .. } => Some(sdp.clone()),
        _ => None,
    });
    let answer = answer.expect("answer to the SDK offer");
    for needle in [
        "a=group:BUNDLE 0 1 2",
        "m=application",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:98 VP9/90000",
        "H264/90000",
        "a=recvonly",
    ] {
        assert!(answer.contains(needle), "answer lacks {needle}:\n{answer}");
    }
    assert!(!answer.contains("red/48000"), "audio RED is not negotiated");
    let cand = h.events.iter().find_map(|(_, e)| match e {
        MediaEvent::Candidate { candidate, .. } => Some(candidate.clone()),
        _ => None,
    });
    assert_eq!(cand.expect("candidate").mid, "0");

    // A player joining before the publisher's DTLS is up already mirrors its codecs and PTs.
    h.command(MediaCmd::StartPlay {
        session: PLAY,
        stream: "stream1".into(),
        publisher: PUB,
    });
    let offer = h.events.iter().find_map(|(_, e)| match e {
        MediaEvent::Offer { sdp, tracks, .. } => Some((sdp.clone(), tracks.clone())),
        _ => None,
    });
    let (offer, tracks) = offer.expect("player offer");
    assert_eq!(tracks.len(), 2);
    for needle in [
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:102 H264/90000",
        "a=rtpmap:98 VP9/90000",
        "a=msid:stream1 ",
        "a=sendonly",
        "a=ice-lite",
    ] {
        assert!(
            offer.contains(needle),
            "player offer lacks {needle}:\n{offer}"
        );
    }
    assert!(
        !offer.contains("AV1"),
        "only the publisher's codecs are offered"
    );
}

#[test]
fn h264_is_forwarded_and_sized_from_sps() {
    use str0m::format::Codec;
    let mut h = publish_and_play();
    let before = h.clients[1].media_count(MediaKind::Video);
    h.run_media_codec(0, SECS(3), Codec::H264);
    let got = h.clients[1].media_count(MediaKind::Video) - before;
    assert!(got > 40, "player got {got} H.264 frames");
    let h264_frames = h.clients[1]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::MediaData(d) if d.params.spec().codec == Codec::H264))
        .count();
    assert!(
        h264_frames > 40,
        "player decoded {h264_frames} frames as H.264"
    );
    let stats = h.events.iter().rev().find_map(|(_, e)| match e {
        MediaEvent::Stats { session, stats } if *session == PUB => Some(stats.clone()),
        _ => None,
    });
    let stats = stats.expect("publisher stats");
    assert_eq!(stats.video_codec, "H264");
    assert_eq!((stats.width, stats.height), (720, 404));
}

#[test]
fn player_connecting_asks_publisher_for_a_keyframe() {
    let mut h = Harness::new(Instant::now());
    let p = h.add_client();
    let v = h.add_client();
    h.publish(p, PUB, "s");
    assert!(h.run_until(SECS(5), |h| h.sfu.is_connected(PUB)));
    h.run_media(p, SECS(1));
    assert_eq!(h.clients[p].keyframe_requests(), 0);
    h.play(v, PLAY, "s", PUB);
    assert!(h.run_until(SECS(5), |h| h.sfu.is_connected(PLAY)));
    h.run_media(p, Duration::from_millis(200));
    assert!(
        h.clients[p].keyframe_requests() > 0,
        "PLI sent without a RequestKeyframe"
    );
}

#[test]
fn vp9_is_forwarded() {
    use str0m::format::Codec;
    let mut h = publish_and_play();
    h.run_media_codec(0, SECS(2), Codec::Vp9);
    let vp9_frames = h.clients[1]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::MediaData(d) if d.params.spec().codec == Codec::Vp9))
        .count();
    assert!(vp9_frames > 25, "player got {vp9_frames} VP9 frames");
    let stats = h.events.iter().rev().find_map(|(_, e)| match e {
        MediaEvent::Stats { session, stats } if *session == PLAY => Some(stats.clone()),
        _ => None,
    });
    assert_eq!(stats.expect("player stats").video_codec, "VP9");
}

/// The SDK may apply a stale play offer to its peer connection and then receive the offer of
/// its next play of the same stream on that connection: Chromium accepts it only if the
/// m-lines keep their mids. Every play offer of a stream carries the same mids; other
/// streams get other mids.
#[test]
fn play_offers_of_a_stream_keep_their_mids() {
    let mut h = publish_and_play();
    let mids = |h: &Harness, session: SessionId| -> Vec<String> {
        h.events
            .iter()
            .find_map(|(_, e)| match e {
                MediaEvent::Offer {
                    session: s, tracks, ..
                } if *s == session => Some(tracks.iter().map(|t| t.mid.clone()).collect()),
                _ => None,
            })
            .expect("offer")
    };
    h.command(MediaCmd::StartPlay {
        session: SessionId(3),
        stream: "stream1".into(),
        publisher: PUB,
    });
    h.command(MediaCmd::StartPlay {
        session: SessionId(4),
        stream: "other".into(),
        publisher: PUB,
    });
    let first = mids(&h, PLAY);
    assert_eq!(first.len(), 2);
    assert_eq!(mids(&h, SessionId(3)), first);
    assert_ne!(mids(&h, SessionId(4)), first);
}

/// Publisher datagrams carrying one fresh audio frame, not yet given to the SFU.
fn one_audio_frame(h: &mut Harness) -> Vec<rtc_core::testing::Datagram> {
    let mut now = h.now;
    h.clients[0].write_frame(
        now,
        MediaKind::Audio,
        str0m::format::Codec::Opus,
        &[1u8; 80],
    );
    for _ in 0..100 {
        if !h.clients[0].outbox.is_empty() {
            break;
        }
        now += Duration::from_millis(1);
        h.clients[0].handle_timeout(now);
    }
    let datagrams: Vec<_> = h.clients[0].outbox.drain(..).collect();
    assert!(!datagrams.is_empty(), "the publisher sent its frame");
    datagrams
}

/// Datagrams the SFU has for `player`, taken from its outputs.
fn sent_to(h: &mut Harness, player: std::net::SocketAddr) -> usize {
    let mut n = 0;
    while let Some(out) = h.sfu.poll_output() {
        if matches!(&out, rtc_core::SfuOutput::Transmit(t) if t.destination == player) {
            n += 1;
        }
    }
    n
}

/// On the fast path a forwarded packet is sealed and queued when its datagram is handled:
/// no flush, no player woken.
#[test]
fn fast_path_sends_at_once() {
    let mut h = publish_and_play();
    h.run_media(0, SECS(1));
    let player = h.clients[1].addr;
    let datagrams = one_audio_frame(&mut h);
    h.pump();
    sent_to(&mut h, player);
    let before = h.sfu.counters();
    for d in &datagrams {
        h.sfu
            .handle_receive(h.now, d.source, d.destination, &d.contents);
    }
    assert!(!h.sfu.needs_flush(), "nothing waits for a flush");
    assert!(sent_to(&mut h, player) >= 1, "the packet left at once");
    let after = h.sfu.counters();
    assert_eq!(after.flush_wakeups, before.flush_wakeups);
    assert!(after.forwarded_packets > before.forwarded_packets);
}

/// The player's str0m decodes what the fast path sealed (AES-GCM SRTP), and str0m's sender
/// reports to it carry the fast path's RTP time and counts.
#[test]
fn fast_path_media_and_sender_reports_reach_the_player() {
    let mut h = publish_and_play();
    let before_v = h.clients[1].media_count(MediaKind::Video);
    h.run_media(0, SECS(3));
    assert!(h.clients[1].media_count(MediaKind::Video) > before_v + 30);
    assert!(h.clients[1].media_count(MediaKind::Audio) > 50);
    let c = h.sfu.counters();
    assert!(c.sender_reports_rewritten >= 2, "{c:?}");
    assert_eq!(c.rtcp_unreadable, 0, "{c:?}");
    assert_eq!(
        c.flush_wakeups, 0,
        "str0m's send path was never used: {c:?}"
    );
    assert_eq!(c.fast_path_players, 1, "{c:?}");
}

/// On str0m's path (`set_fast_path(false)`) a publisher's packet is written to its players by
/// `handle_receive` and leaves only with the explicit `flush` (no timeout involved); a second
/// flush has nothing to send.
#[test]
fn forwarded_media_leaves_on_flush() {
    let mut h = publish_and_play_on(false);
    h.run_media(0, SECS(1));
    let player = h.clients[1].addr;
    let datagrams = one_audio_frame(&mut h);
    h.pump();
    sent_to(&mut h, player);
    let now = h.now;
    assert!(!h.sfu.needs_flush());
    for d in &datagrams {
        h.sfu
            .handle_receive(now, d.source, d.destination, &d.contents);
    }
    assert!(h.sfu.needs_flush(), "the packet was written to the player");
    assert_eq!(sent_to(&mut h, player), 0, "nothing sent before the flush");
    let before = h.sfu.counters();
    h.sfu.flush(now);
    assert!(!h.sfu.needs_flush());
    assert!(sent_to(&mut h, player) >= 1, "the flush sent the packet");
    let after = h.sfu.counters();
    assert_eq!(
        after.flush_wakeups - before.flush_wakeups,
        1,
        "the one player written to was woken once"
    );
    assert_eq!(after.timer_wakeups, before.timer_wakeups, "no timer ran");
    h.sfu.flush(now);
    assert_eq!(
        sent_to(&mut h, player),
        0,
        "a second flush has nothing to send"
    );
    assert_eq!(h.sfu.counters().flush_wakeups, after.flush_wakeups);
}

/// Timers wake only the sessions that are due: one `handle_timeout` at the earliest deadline
/// wakes at least one session and no more than the sessions whose deadline has passed.
#[test]
fn handle_timeout_wakes_only_due_sessions() {
    let mut h = publish_and_play();
    h.run_media(0, SECS(1));
    h.pump();
    while h.sfu.poll_output().is_some() {}
    let Some(next) = h.sfu.poll_timeout() else {
        panic!("live sessions have timers");
    };
    let at = next.max(h.now);
    let before = h.sfu.counters().timer_wakeups;
    h.sfu.handle_timeout(at);
    let woken = h.sfu.counters().timer_wakeups - before;
    assert!(woken >= 1, "the session due at {next:?} was woken");
    assert!(
        woken <= h.sfu.session_count() as u64,
        "at most one wake per due session: {woken}"
    );
    // Every woken session was re-armed later: at that instant nothing is due and a second call
    // wakes nobody.
    assert!(h.sfu.poll_timeout().is_some_and(|t| t > at));
    let before = h.sfu.counters().timer_wakeups;
    h.sfu.handle_timeout(at);
    assert_eq!(h.sfu.counters().timer_wakeups, before);
}

/// One `handle_timeout` wakes at most `TIMER_BUDGET` sessions, so a datagram never waits
/// behind every session's timers at once; the rest stay due and the next calls take them.
#[test]
fn handle_timeout_wakes_at_most_a_budget_of_sessions() {
    let mut h = Harness::new(Instant::now());
    let p = h.add_client();
    h.publish(p, PUB, "s");
    assert!(h.run_until(SECS(5), |h| h.sfu.is_connected(PUB)));
    let n = rtc_core::TIMER_BUDGET + 8;
    for i in 0..n {
        let v = h.add_client();
        h.play(v, SessionId(100 + i as u64), "s", PUB);
    }
    assert!(h.run_until(SECS(10), |h| (0..n)
        .all(|i| h.sfu.is_connected(SessionId(100 + i as u64)))));
    h.pump();
    while h.sfu.poll_output().is_some() {}
    // A second later every session is due.
    let later = h.now + SECS(1);
    let mut calls = Vec::new();
    while h.sfu.poll_timeout().is_some_and(|t| t <= later) {
        let before = h.sfu.counters().timer_wakeups;
        h.sfu.handle_timeout(later);
        calls.push(h.sfu.counters().timer_wakeups - before);
    }
    assert!(calls.len() >= 2, "{calls:?}");
    assert!(
        calls.iter().all(|w| *w <= rtc_core::TIMER_BUDGET as u64),
        "{calls:?}"
    );
    assert!(
        calls.iter().sum::<u64>() > n as u64,
        "every session was woken: {calls:?}"
    );
}

/// Video frames the player receives while its incoming datagrams are dropped for `gap`, and
/// the frames the publisher wrote meanwhile and during the 2 s after.
fn frames_after_a_gap(gap: Duration, fast_path: bool) -> (usize, usize) {
    let mut h = publish_and_play_on(fast_path);
    h.run_media(0, SECS(1));
    let player = h.clients[1].addr;
    let before = h.clients[1].media_count(MediaKind::Video);
    h.blackholed.push(player);
    let (_, lost) = h.run_media(0, gap);
    h.blackholed.clear();
    let (_, after) = h.run_media(0, SECS(2));
    h.run_for(Duration::from_millis(300));
    if fast_path && gap < SECS(1) {
        assert!(
            h.sfu.counters().retransmitted_packets > 0,
            "the fast path resent"
        );
    }
    (
        h.clients[1].media_count(MediaKind::Video) - before,
        lost + after,
    )
}

/// A short loss is repaired by retransmission from the player's send buffer (NACK): every
/// frame arrives. A loss longer than the buffer keeps (`RTX_CACHE_AGE`, 500 ms) is not.
#[test]
fn retransmission_repairs_short_losses_only() {
    for fast_path in [true, false] {
        let (got, sent) = frames_after_a_gap(Duration::from_millis(100), fast_path);
        assert!(
            got + 1 >= sent,
            "fast path {fast_path}, 100 ms gap: {got} of {sent} frames"
        );
        let (got, sent) = frames_after_a_gap(Duration::from_millis(1500), fast_path);
        assert!(
            got + 10 < sent,
            "fast path {fast_path}, 1.5 s gap: {got} of {sent} frames"
        );
    }
}

/// Keyframe on join: the SFU's own request when the player connects and the requests that
/// follow within 300 ms (signalling's `RequestKeyframe`, the player's PLI) reach the publisher
/// as one PLI, at once: it is there after one step of at most 1 ms of virtual time (the
/// harness has no network delay).
#[test]
fn keyframe_on_join_reaches_publisher_once_and_at_once() {
    let mut h = Harness::new(Instant::now());
    let p = h.add_client();
    let v = h.add_client();
    h.publish(p, PUB, "s");
    assert!(h.run_until(SECS(5), |h| h.sfu.is_connected(PUB)));
    h.run_media(p, SECS(1));
    assert_eq!(h.clients[p].keyframe_requests(), 0);
    h.play(v, PLAY, "s", PUB);
    assert!(h.run_until(SECS(5), |h| h.sfu.is_connected(PLAY)));
    h.command(MediaCmd::RequestKeyframe { session: PUB });
    let before = h.now;
    h.step(Duration::from_millis(1));
    assert!(h.now <= before + Duration::from_millis(1));
    assert_eq!(h.clients[p].keyframe_requests(), 1, "at once");
    // Another request before a keyframe came (the player's PLI while its decoder waits, say)
    // is folded into the one already sent.
    h.command(MediaCmd::RequestKeyframe { session: PUB });
    h.step(Duration::from_millis(1));
    assert_eq!(
        h.clients[p].keyframe_requests(),
        1,
        "folded while unanswered"
    );
    // Once a keyframe passed, a request is a new need (a player that connected after it):
    // it goes out at once, even within the 300 ms gap.
    let first = h.now;
    let kf = h.clients[v].media_count(MediaKind::Video);
    let now = h.now;
    let frame = rtc_core::testing::vp8_keyframe(640, 480, 3000);
    h.clients[p].write_frame(now, MediaKind::Video, str0m::format::Codec::Vp8, &frame);
    h.run_for(Duration::from_millis(20));
    assert!(
        h.clients[v].media_count(MediaKind::Video) > kf,
        "the keyframe passed"
    );
    let t = h.now;
    assert!(t < first + Duration::from_millis(100), "within the gap");
    h.command(MediaCmd::RequestKeyframe { session: PUB });
    h.step(Duration::from_millis(1));
    assert_eq!(
        h.clients[p].keyframe_requests(),
        2,
        "answered, so asked again"
    );
    assert!(h.now <= t + Duration::from_millis(1));
    h.command(MediaCmd::RequestKeyframe { session: PUB });
    h.step(Duration::from_millis(1));
    assert_eq!(
        h.clients[p].keyframe_requests(),
        2,
        "and folded again until answered"
    );
}
