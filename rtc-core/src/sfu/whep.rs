//! Players that bring their own offer (WHEP): the client offers receive-only m-lines and the
//! server answers, instead of the server offering as it does for SDK players.
//!
//! The session is an ordinary [`Player`] afterwards: one outgoing track per media kind the
//! client accepted (the first m-line of each kind; later ones of the same kind stay silent),
//! codecs mirrored from the publisher as far as the client offered them, forwarding, keyframe
//! gating and statistics as for any player. A data channel the client offers is accepted but
//! carries nothing (WHEP has no data channel).

use std::time::Instant;

use proto_core::{MediaEvent, SessionId};
use str0m::change::SdpOffer;
use str0m::media::MediaKind;
use tracing::debug;

use super::negotiate::accepted_media_mids;
use super::Sfu;
use crate::forward::OutTrack;
use crate::SfuOutput;

impl Sfu {
    pub(super) fn start_play_answer(
        &mut self,
        now: Instant,
        id: SessionId,
        stream: String,
        publisher: SessionId,
        offer: &str,
    ) {
        if self.ids.contains_key(&id) {
            debug!(session = %id, "StartPlayAnswer for an existing session ignored");
            return;
        }
        let offer_text = offer;
        let offer = match SdpOffer::from_sdp_string(offer) {
            Ok(o) => o,
            Err(e) => return self.fail_sdp(id, format!("bad offer: {e}")),
        };
        let (_, config) = self.player_setup(publisher);
        let mut rtc = config.build(now);
        let candidates = self.add_local_candidates(&mut rtc);
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a.to_sdp_string(),
            Err(e) => return self.fail_sdp(id, format!("offer not accepted: {e}")),
        };
        let mut tracks: Vec<OutTrack> = Vec::new();
        for mid in accepted_media_mids(&answer) {
            let mid = str0m::media::Mid::from(mid);
            let Some(media) = rtc.media(mid) else {
                continue;
            };
            let kind = media.kind();
            if !media.direction().is_sending() || tracks.iter().any(|t| t.kind == kind) {
                continue;
            }
            tracks.push(OutTrack::new(mid, kind));
        }
        if tracks.is_empty() {
            return self.fail_sdp(id, "offer has no receiving audio or video m-line".into());
        }
        debug!(session = %id, %stream, tracks = tracks.len(),
            video = tracks.iter().any(|t| t.kind == MediaKind::Video), "whep play session created");
        let key = self.insert_player(now, id, rtc, stream, publisher, None, tracks);
        if let Some(s) = self.sessions.get_mut(key) {
            s.remote_offer = Some(offer_text.to_string());
        }
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Answer {
            session: id,
            sdp: answer.clone(),
        }));
        self.emit_candidates(id, &answer, candidates);
        self.mutate(key, |_| Ok(()));
    }
}
