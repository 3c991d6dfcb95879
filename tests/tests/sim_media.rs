//! Media end to end through the simulated server: str0m browsers publish and play over an
//! in-memory network with real ICE, DTLS and SRTP, driven by AMS signalling.

use antenna_tests::media::MediaSim;
use serde_json::json;
use std::time::Duration;
use str0m::media::MediaKind;

fn publish_and_play(seed: u64, loss: u64) -> MediaSim {
    let mut m = MediaSim::new(seed);
    m.loss_percent = loss;
    let p = m.publisher("cam");
    m.run(Duration::from_secs(2));
    assert!(
        m.browsers[p].got("publish_started"),
        "{:?}",
        m.browsers[p].labels()
    );
    let v = m.player("cam");
    m.run(Duration::from_secs(4));
    assert!(
        m.browsers[v].got("play_started"),
        "{:?}",
        m.browsers[v].labels()
    );
    m
}

#[test]
fn publisher_media_reaches_player() {
    let mut m = publish_and_play(11, 0);
    let v = 1;
    let audio = m.browsers[v].client.media_count(MediaKind::Audio);
    let video = m.browsers[v].client.media_count(MediaKind::Video);
    println!("player received {audio} audio and {video} video frames in 4 s");
    assert!(audio > 100, "audio frames {audio}");
    assert!(video > 60, "video frames {video}");

    // getStreamInfo reports measured values.
    m.send(0, json!({"command":"getStreamInfo","streamId":"cam"}));
    let info = m.browsers[0].received.last().cloned().unwrap();
    assert_eq!(info["command"], "streamInformation", "{info}");
    assert_eq!(info["streamInfo"][0]["streamWidth"], 640, "{info}");
    assert_eq!(info["streamInfo"][0]["streamHeight"], 360, "{info}");
    assert!(
        info["streamInfo"][0]["videoBitrate"].as_u64().unwrap() > 100_000,
        "{info}"
    );

    // The publisher stops: the player is told.
    m.send(0, json!({"command":"stop","streamId":"cam"}));
    assert!(m.browsers[0].got("publish_finished"));
    assert!(
        m.browsers[v].got("play_finished"),
        "{:?}",
        m.browsers[v].labels()
    );
}

#[test]
fn toggle_video_stops_and_resumes_forwarding() {
    let mut m = publish_and_play(12, 0);
    // Video resumes from a keyframe, which the publisher sends when asked (as browsers do).
    m.keyframe_on_request = Some(Duration::from_millis(300));
    let v = 1;
    m.send(
        v,
        json!({"command":"toggleVideo","streamId":"cam","trackId":"cam","enabled":false}),
    );
    m.run(Duration::from_millis(500));
    let before = m.browsers[v].client.media_count(MediaKind::Video);
    m.run(Duration::from_secs(2));
    let paused = m.browsers[v].client.media_count(MediaKind::Video) - before;
    assert_eq!(paused, 0, "video kept flowing while toggled off");
    m.send(
        v,
        json!({"command":"toggleVideo","streamId":"cam","trackId":"cam","enabled":true}),
    );
    m.run(Duration::from_secs(2));
    let resumed = m.browsers[v].client.media_count(MediaKind::Video) - before;
    assert!(resumed > 20, "video did not resume: {resumed}");
}

#[test]
fn lossy_link_still_converges() {
    let m = publish_and_play(13, 5);
    let v = 1;
    let video = m.browsers[v].client.media_count(MediaKind::Video);
    println!(
        "5% loss: {} datagrams dropped of {}, player decoded {video} video frames",
        m.dropped,
        m.dropped + m.delivered
    );
    assert!(m.dropped > 0);
    assert!(video > 30, "video frames {video}");
}

#[test]
fn media_run_is_reproducible_from_seed() {
    let a = publish_and_play(21, 3);
    let b = publish_and_play(21, 3);
    assert_eq!(a.dropped, b.dropped);
    assert_eq!(a.delivered, b.delivered);
    let (ta, tb) = (a.sim.masked_transcript(), b.sim.masked_transcript());
    if let Some((x, y)) = ta.lines().zip(tb.lines()).find(|(x, y)| x != y) {
        panic!("transcripts differ:\n{x}\n{y}");
    }
    assert_eq!(ta.lines().count(), tb.lines().count());
}
