//! The player's own bandwidth estimate, without running a send-side estimator.
//!
//! `bitrateMeasurement.targetBitrate` is the player's estimated available bandwidth; the SDK
//! and AMS's pages compare it with `videoBitrate + audioBitrate` to tell a good link from a bad
//! one. With the player BWE off (the default: str0m's pacer would hold keyframe bursts back),
//! nothing estimated it, and the target fell back to the video bitrate alone, which always read
//! as "not enough bandwidth".
//!
//! A browser receiving RTP estimates the bandwidth itself and reports it in REMB (RTCP
//! `goog-remb`) when the sender does not use transport-wide congestion control: offering players
//! no `transport-cc` header extension makes it do so, and str0m reports each REMB as
//! `Event::EgressBitrateEstimate(BweKind::Remb)`, which the session keeps as its estimate. The
//! video payload types keep `goog-remb` feedback (str0m's default for video), and the
//! `abs-send-time` extension stays, which the browser's receive-side estimator uses.

use str0m::format::{CodecConfig, PayloadParams};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::RtcConfig;

/// The standard header extensions without transport-wide sequence numbers.
pub(crate) fn extensions_without_twcc() -> ExtensionMap {
    let mut exts = ExtensionMap::empty();
    for (id, ext) in ExtensionMap::standard().iter() {
        if *ext != Extension::TransportSequenceNumber {
            exts.set(id, ext.clone());
        }
    }
    exts
}

/// A player configuration under which the browser reports its estimate in REMB.
pub(crate) fn receiver_estimates(mut config: RtcConfig) -> RtcConfig {
    let params: Vec<PayloadParams> = config
        .codec_config()
        .params()
        .iter()
        .map(|p| {
            let mut p = *p;
            p.set_fb_transport_cc(false);
            p
        })
        .collect();
    *config.codec_config() = CodecConfig::new_from_payload_params(params);
    config.set_extension_map(extensions_without_twcc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twcc_is_left_out_and_the_rest_kept() {
        let exts = extensions_without_twcc();
        assert_eq!(exts.id_of(Extension::TransportSequenceNumber), None);
        assert_eq!(exts.id_of(Extension::AbsoluteSendTime), Some(2));
        assert_eq!(exts.id_of(Extension::AudioLevel), Some(1));
        assert_eq!(exts.id_of(Extension::RtpMid), Some(4));
    }

    #[test]
    fn player_offer_has_remb_and_no_transport_cc() {
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        let config = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true);
        let mut rtc = receiver_estimates(config).build(now);
        let mut api = rtc.sdp_api();
        api.add_media(
            str0m::media::MediaKind::Video,
            str0m::media::Direction::SendOnly,
            None,
            None,
            None,
        );
        let (offer, _) = api.apply().expect("offer");
        let sdp = offer.to_sdp_string();
        assert!(sdp.contains("goog-remb"), "{sdp}");
        assert!(!sdp.contains("transport-cc"), "{sdp}");
        assert!(!sdp.contains("transport-wide-cc"), "{sdp}");
        assert!(sdp.contains("abs-send-time"), "{sdp}");
    }
}
