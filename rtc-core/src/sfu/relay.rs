//! Relay sessions: on an edge node, the media layer as the *client* of a play session on the
//! stream's origin node (cluster mode's media path).
//!
//! The origin offers its player m-lines as to any browser (sendonly, ICE-lite, DTLS
//! `actpass`). The edge's relay accepts that offer with a full ICE agent: str0m makes the
//! side that answers an ICE-lite offer the controlling agent, so the edge sends the
//! connectivity checks and nominates; its answer takes `a=setup:active`, so it is the DTLS
//! client. The origin's candidates come in its offer (the media layer puts its host
//! candidates there), so no trickle is needed before the checks start. Inside the edge the relay is an ordinary [`Publisher`]: players are forwarded its
//! packets, and their keyframe requests become PLIs towards the origin, whose player session
//! forwards them to the origin's publisher.
//!
//! Each relay sends and receives on a local address of its own, taken from
//! [`crate::SfuConfig::relay_addrs`]: the origin has one UDP address for all its sessions,
//! so two relays from one origin would otherwise share one 5-tuple, and neither DTLS nor SRTP
//! can be told apart on it. Datagrams to a relay address go to that relay only (no look-up
//! by source); the number of those addresses bounds the relays of a node.

use std::net::SocketAddr;
use std::time::Instant;

use proto_core::{FailReason, MediaEvent, SessionId};
use str0m::change::SdpOffer;
use str0m::media::Mid;
use str0m::Candidate;
use tracing::debug;

use super::negotiate::accepted_media_mids;
use super::Sfu;
use crate::session::{Publisher, Role};
use crate::SfuOutput;

impl Sfu {
    pub(super) fn start_relay(&mut self, now: Instant, id: SessionId, stream: String, offer: &str) {
        if self.ids.contains_key(&id) {
            debug!(session = %id, "StartRelay for an existing session ignored");
            return;
        }
        let Some(local) = self.free_relay_addr() else {
            self.counters.relays_refused += 1;
            debug!(session = %id, %stream, in_use = self.relays.len(),
                "relay refused: every relay address is in use");
            self.outputs.push_back(SfuOutput::Event(MediaEvent::Failed {
                session: id,
                reason: FailReason::RelayCapacity,
            }));
            return;
        };
        // str0m answers `actpass` with `passive`; reading the origin's `actpass` as `passive`
        // makes the edge answer `active` (RFC 5763's choice for an answerer): the edge opens
        // DTLS as soon as its ICE check succeeds, no round trip waiting for the origin.
        let offer = offer.replace("a=setup:actpass", "a=setup:passive");
        let offer = match SdpOffer::from_sdp_string(&offer) {
            Ok(o) => o,
            Err(e) => return self.fail_sdp(id, format!("bad relay offer: {e}")),
        };
        let config = self
            .base_config()
            .set_ice_lite(false)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true);
        let mut rtc = config.build(now);
        let mut candidates = Vec::new();
        match Candidate::host(local, "udp") {
            Ok(c) => {
                if let Some(c) = rtc.add_local_candidate(c) {
                    candidates.push(c.to_sdp_string());
                }
            }
            Err(e) => return self.fail_sdp(id, format!("relay address {local}: {e}")),
        }
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a.to_sdp_string(),
            Err(e) => return self.fail_sdp(id, format!("relay offer not accepted: {e}")),
        };
        let mut publisher = Publisher::new(stream.clone());
        for mid in accepted_media_mids(&answer) {
            publisher.learn_track(&rtc, Mid::from(mid));
        }
        publisher.data_only = publisher.tracks.is_empty();
        debug!(session = %id, %stream, %local, tracks = publisher.tracks.len(),
            "relay session created");
        let key = self.insert(now, id, rtc, Role::Publisher(publisher));
        self.relays.insert(local, key);
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Answer {
            session: id,
            sdp: answer.clone(),
        }));
        self.emit_candidates(id, &answer, candidates);
        // Starts ICE: the first checks go out to the candidates of the offer.
        self.mutate(key, |_| Ok(()));
    }

    /// A relay address no relay uses, in configuration order.
    fn free_relay_addr(&self) -> Option<SocketAddr> {
        self.config
            .relay_addrs
            .iter()
            .copied()
            .find(|a| !self.relays.contains_key(a))
    }

    /// Number of relay sessions.
    pub fn relay_count(&self) -> usize {
        self.relays.len()
    }
}
