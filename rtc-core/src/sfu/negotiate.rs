//! Building sessions from SDP: a publisher from its offer, a player with the server's offer
//! (stable mids), the client's answer and trickled candidates, and the local candidates
//! announced back.

use super::*;

impl Sfu {
    pub(super) fn base_config(&self) -> RtcConfig {
        self.rtc_config
            .clone()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_stats_interval(Some(self.config.stats_interval))
    }

    /// The configuration of a player's `Rtc`: the publisher's codecs (`params`, without
    /// RTX/RED), or with none known the usual ones (Opus, VP8, VP9, H.264); sender-side
    /// bandwidth estimation if enabled.
    pub(super) fn player_config(&self, params: &[PayloadParams]) -> RtcConfig {
        let mut config = self.base_config();
        if params.is_empty() {
            config = config
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(true)
                .enable_vp9(true)
                .enable_h264(true);
        } else {
            let fresh: Vec<PayloadParams> = params
                .iter()
                .filter(|p| !matches!(p.spec().codec, Codec::Rtx | Codec::Red | Codec::Unknown))
                .map(|p| PayloadParams::new(p.pt(), p.resend(), p.spec()))
                .collect();
            *config.codec_config() = CodecConfig::new_from_payload_params(fresh);
        }
        if self.player_bwe {
            config = config.enable_bwe(Some(PLAYER_BWE_START));
        }
        config
    }

    pub(super) fn start_publish(
        &mut self,
        now: Instant,
        id: SessionId,
        stream: String,
        offer: &str,
    ) {
        if self.ids.contains_key(&id) {
            debug!(session = %id, "StartPublish for an existing session ignored");
            return;
        }
        // A publisher only sends: answering `recvonly` keeps the browser from expecting media
        // (and firing `ontrack`) on its publish connection. The SDK offers `sendrecv`.
        let offer = offer
            .lines()
            .map(|l| {
                if l.trim_end() == "a=sendrecv" {
                    "a=sendonly"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n")
            + "\r\n";
        let offer_text = offer;
        let offer = match SdpOffer::from_sdp_string(&offer_text) {
            Ok(o) => o,
            Err(e) => return self.fail_sdp(id, format!("bad offer: {e}")),
        };
        // Opus without RED (so audio arrives as plain Opus), VP8, VP9, H.264.
        let config = self
            .base_config()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true);
        let mut rtc = config.build(now);
        let candidates = self.add_local_candidates(&mut rtc);
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a.to_sdp_string(),
            Err(e) => return self.fail_sdp(id, format!("offer not accepted: {e}")),
        };
        let stream_name = stream.clone();
        let mut publisher = Publisher::new(stream);
        // Learn the tracks now: str0m's MediaAdded only comes once DTLS is up, and players
        // joining before that should still mirror this publisher's codecs.
        let media_mids = accepted_media_mids(&answer);
        publisher.data_only = media_mids.is_empty()
            && answer
                .lines()
                .any(|l| l.starts_with("m=application ") && !l.starts_with("m=application 0 "));
        for mid in media_mids {
            publisher.learn_track(&rtc, Mid::from(mid));
        }
        let role = Role::Publisher(publisher);
        debug!(session = %id, %stream_name, "publish session created");
        let key = self.insert(now, id, rtc, role);
        if let Some(s) = self.sessions.get_mut(key) {
            s.remote_offer = Some(offer_text);
        }
        // Players that asked for this publisher before it existed.
        let waiting: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| matches!(&s.role, Role::Player(p) if p.publisher == id))
            .map(|(_, s)| s.id)
            .collect();
        // Their video continues from this publisher's first keyframe (resume.rs).
        for player in &waiting {
            if let Some(Role::Player(pl)) = self.session_mut(*player).map(|s| &mut s.role) {
                if pl.video_on {
                    pl.video_gate.start(now);
                    pl.video_gate.take_request();
                }
            }
        }
        if let Some(Role::Publisher(p)) = self.sessions.get_mut(key).map(|s| &mut s.role) {
            p.players = waiting;
        }
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Answer {
            session: id,
            sdp: answer.clone(),
        }));
        self.emit_candidates(id, &answer, candidates);
        self.mutate(key, |_| Ok(()));
    }

    /// A player's configuration mirroring `publisher`'s negotiated codecs (defaults if not
    /// known yet), and the media kinds it sends.
    pub(super) fn player_setup(&self, publisher: SessionId) -> (Vec<MediaKind>, RtcConfig) {
        // Mirror the publisher's negotiated codecs and kinds; defaults if not known yet.
        let (kinds, params) = match self
            .ids
            .get(&publisher)
            .and_then(|k| self.sessions.get(*k))
            .map(|s| &s.role)
        {
            Some(Role::Publisher(p)) if p.data_only => (Vec::new(), Vec::new()),
            Some(Role::Publisher(p)) if !p.tracks.is_empty() => {
                let mut kinds: Vec<MediaKind> = Vec::new();
                for t in &p.tracks {
                    if !kinds.contains(&t.kind) {
                        kinds.push(t.kind);
                    }
                }
                (kinds, p.params.clone())
            }
            _ => (vec![MediaKind::Audio, MediaKind::Video], Vec::new()),
        };
        let mut config = self.player_config(&params);
        if !self.player_bwe {
            config = crate::remb::receiver_estimates(config);
        }
        (kinds, config)
    }

    pub(super) fn start_play(
        &mut self,
        now: Instant,
        id: SessionId,
        stream: String,
        publisher: SessionId,
    ) {
        if self.ids.contains_key(&id) {
            debug!(session = %id, "StartPlay for an existing session ignored");
            return;
        }
        let (kinds, config) = self.player_setup(publisher);
        let mut rtc = config.build(now);
        let candidates = self.add_local_candidates(&mut rtc);
        let mut api = rtc.sdp_api();
        let mut tracks = Vec::new();
        let mut offered = Vec::new();
        // Stable mids: str0m draws a new mid from its thread-local fastrand generator, so a
        // player that plays the same stream again would get new mids. The SDK's watchdog
        // stops and replays a stream so quickly that the first offer may still be applied to
        // its peer connection, and Chromium refuses a later offer whose m-lines (mids) differ
        // from the first. Seeding the generator from the stream name while the m-lines are
        // added makes every offer of a stream carry the same mids; the generator then goes on
        // from where it was, so nothing else becomes predictable.
        let mids = crate::rng::StableMids::enter(self.seed(), &stream);
        for kind in kinds {
            let mid = api.add_media(kind, Direction::SendOnly, Some(stream.clone()), None, None);
            tracks.push(OutTrack::new(mid, kind));
            offered.push(OfferedTrack {
                mid: mid.to_string(),
                kind: if kind == MediaKind::Audio {
                    TrackKind::Audio
                } else {
                    TrackKind::Video
                },
                source: None,
            });
        }
        // The data channel, after the media m-lines: one ordered channel labelled with the
        // stream id, opened by the server (the SDK's play mode takes it in `ondatachannel`).
        if self.data.config.enabled {
            api.add_channel(stream.clone());
        }
        drop(mids);
        let Some((offer, pending)) = api.apply() else {
            return self.no_offer(id);
        };
        let sdp = offer.to_sdp_string();
        let key = self.insert_player(now, id, rtc, stream, publisher, Some(pending), tracks);
        self.first_offer(key, id, sdp, offered, candidates);
    }

    /// A new player's offer could not be made: the session fails.
    pub(super) fn no_offer(&mut self, id: SessionId) {
        debug!(session = %id, "no offer could be created");
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Failed {
            session: id,
            reason: FailReason::NoOffer,
        }));
    }

    /// A new player (session `key`, `id`) offers `sdp` with its local candidates.
    pub(super) fn first_offer(
        &mut self,
        key: usize,
        id: SessionId,
        sdp: String,
        tracks: Vec<OfferedTrack>,
        candidates: Vec<String>,
    ) {
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Offer {
            session: id,
            sdp: sdp.clone(),
            tracks,
        }));
        self.emit_candidates(id, &sdp, candidates);
        self.mutate(key, |_| Ok(()));
    }

    pub(super) fn remote_answer(&mut self, now: Instant, id: SessionId, sdp: &str) {
        let Some(&key) = self.ids.get(&id) else {
            trace!(session = %id, "answer for unknown session");
            return;
        };
        let Some(Role::Player(p)) = self.sessions.get_mut(key).map(|s| &mut s.role) else {
            trace!(session = %id, "answer for a publish session ignored");
            return;
        };
        let Some(pending) = p.pending.take() else {
            trace!(session = %id, "answer without a pending offer ignored");
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                self.remove(key);
                return self.fail_sdp(id, format!("bad answer: {e}"));
            }
        };
        let mut failed = None;
        self.mutate(key, |rtc| {
            rtc.sdp_api()
                .accept_answer(pending, answer)
                .inspect_err(|e| failed = Some(e.to_string()))
        });
        if let Some(reason) = failed {
            // `mutate` queued a generic failure; report the SDP failure instead.
            self.work.retain(|(k, _, _)| *k != key);
            self.remove(key);
            self.fail_sdp(id, format!("answer not accepted: {reason}"));
        } else {
            self.room_answered(now, key);
        }
        self.process(now);
    }

    pub(super) fn remote_candidate(&mut self, _now: Instant, id: SessionId, candidate: &str) {
        let Some(&key) = self.ids.get(&id) else {
            trace!(session = %id, "candidate for unknown session");
            return;
        };
        let line = candidate.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if line.is_empty() {
            return; // end-of-candidates
        }
        let line = if line.starts_with("candidate:") {
            line.to_string()
        } else {
            format!("candidate:{line}")
        };
        let c = match Candidate::from_sdp_string(&line) {
            Ok(c) => c,
            Err(e) => {
                trace!(session = %id, "ignored candidate: {e}");
                return;
            }
        };
        if c.proto() != Protocol::Udp {
            trace!(session = %id, "ignored non-udp candidate");
            return;
        }
        if !self
            .candidates
            .admit(id, c.addr(), self.max_remote_candidates)
        {
            self.counters.candidates_dropped += 1;
            debug!(
                session = %id,
                kept = self.candidates.count(id),
                max = self.max_remote_candidates,
                "remote candidate dropped (duplicate or over the bound)"
            );
            return;
        }
        self.mutate(key, |rtc| {
            rtc.add_remote_candidate(c);
            Ok(())
        });
    }

    pub(super) fn add_local_candidates(&self, rtc: &mut Rtc) -> Vec<String> {
        let mut lines = Vec::new();
        for addr in &self.config.local_addrs {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    if let Some(c) = rtc.add_local_candidate(c) {
                        lines.push(c.to_sdp_string());
                    }
                }
                Err(e) => debug!(%addr, "local address not usable as candidate: {e}"),
            }
        }
        lines
    }

    pub(super) fn emit_candidates(&mut self, id: SessionId, sdp: &str, lines: Vec<String>) {
        let mid = sdp
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
            .unwrap_or("0")
            .to_string();
        for candidate in lines {
            self.outputs
                .push_back(SfuOutput::Event(MediaEvent::Candidate {
                    session: id,
                    candidate: LocalCandidate {
                        mline_index: 0,
                        mid: mid.clone(),
                        candidate,
                    },
                }));
        }
    }

    pub(super) fn fail_sdp(&mut self, id: SessionId, reason: String) {
        debug!(session = %id, "{reason}");
        self.outputs.push_back(SfuOutput::Event(MediaEvent::Failed {
            session: id,
            reason: FailReason::RemoteDescription(reason),
        }));
    }
}

/// Mids of the audio/video m-lines an SDP accepts (port not 0).
pub(super) fn accepted_media_mids(sdp: &str) -> Vec<&str> {
    let mut mids = Vec::new();
    let mut in_media = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            in_media = matches!(kind, "audio" | "video") && port != "0";
        } else if in_media {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                mids.push(mid);
                in_media = false;
            }
        }
    }
    mids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_mids_skip_rejected_and_application() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:b\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:c\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:d\r\n";
        assert_eq!(accepted_media_mids(sdp), vec!["a", "d"]);
    }
}
