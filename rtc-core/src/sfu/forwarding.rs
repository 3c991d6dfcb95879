//! Publisher → player forwarding: which players a publisher's packets reach, keyframe requests,
//! and data-channel relaying (`data.rs` decides, this writes).

use super::*;

impl Sfu {
    pub(super) fn request_keyframe(&mut self, now: Instant, publisher: SessionId) {
        self.request_keyframe_within(now, publisher, KEYFRAME_REQUEST_GAP);
    }

    /// Asks `publisher` for a keyframe unless one was asked for less than `gap` ago.
    pub(super) fn request_keyframe_within(
        &mut self,
        now: Instant,
        publisher: SessionId,
        gap: Duration,
    ) {
        let Some(&key) = self.ids.get(&publisher) else {
            return;
        };
        let sent = self
            .sessions
            .get_mut(key)
            .is_some_and(|s| s.request_keyframe(now, gap));
        if sent {
            self.counters.keyframe_requests += 1;
            self.mutate(key, |_| Ok(()));
        }
    }

    pub(super) fn set_forwarding(
        &mut self,
        now: Instant,
        id: SessionId,
        video: Option<bool>,
        audio: Option<bool>,
    ) {
        let Some(Role::Player(p)) = self.session_mut(id).map(|s| &mut s.role) else {
            return;
        };
        let mut resumed_video = false;
        for (kind, want, on) in [
            (MediaKind::Video, video, &mut p.video_on),
            (MediaKind::Audio, audio, &mut p.audio_on),
        ] {
            let Some(want) = want else { continue };
            if *on && !want {
                for t in p.tracks.iter_mut().filter(|t| t.kind == kind) {
                    t.seq.pause();
                }
                if kind == MediaKind::Video {
                    p.video_gate.stop();
                }
            }
            if !*on && want && kind == MediaKind::Video {
                resumed_video = true;
            }
            *on = want;
        }
        if resumed_video {
            // Hold video back until a keyframe and ask for one now (see resume.rs).
            p.video_gate.start(now);
            p.video_gate.take_request();
            for publisher in p.sources() {
                self.request_keyframe_within(now, publisher, RESUME_REQUEST_GAP);
            }
        }
    }

    /// Writes a publisher's packets to each of its players.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        pub_key: usize,
        packets: Vec<str0m::rtp::RtpPacket>,
    ) {
        let Some(s) = self.sessions.get_mut(pub_key) else {
            return;
        };
        let from = s.id;
        let Role::Publisher(p) = &mut s.role else {
            return;
        };
        let players = std::mem::take(&mut p.players);
        let mut resume_request = false;
        let params: Vec<Option<PayloadParams>> = packets
            .iter()
            .map(|pk| p.params_for(pk.header.payload_type))
            .collect();
        for player in &players {
            let Some(&key) = self.ids.get(player) else {
                continue;
            };
            let Some(s) = self.sessions.get_mut(key) else {
                continue;
            };
            let mut wrote = false;
            for (packet, params) in packets.iter().zip(&params) {
                let Some(params) = params else { continue };
                if s.forward(now, from, packet, params, &mut self.outputs) > 0 {
                    wrote = true;
                    self.counters.forwarded_packets += 1;
                }
            }
            if let Role::Player(pl) = &mut s.role {
                resume_request |= pl.video_gate.take_request();
                for t in pl.tracks.iter_mut() {
                    resume_request |= t.gate.take_request();
                }
            }
            // A write only queues the packet in str0m: it is encrypted and sent on the
            // player's next `Input::Timeout`, which `flush` feeds (then drains) once for all
            // packets written until then. The fast path has sent it already.
            if wrote && !s.unflushed && s.fast.is_none() {
                s.unflushed = true;
                self.unflushed.push((key, *player));
            }
        }
        if let Some(Role::Publisher(p)) = self.sessions.get_mut(pub_key).map(|s| &mut s.role) {
            // Players added meanwhile (none can be, but keep them) go after the existing ones.
            let added = std::mem::replace(&mut p.players, players);
            p.players.extend(added);
        }
        if resume_request {
            if let Some(publisher) = self.sessions.get(pub_key).map(|s| s.id) {
                self.request_keyframe_within(now, publisher, RESUME_REQUEST_GAP);
            }
        }
    }

    /// A data channel opened: a data-only publisher is now live.
    pub(super) fn data_channel_opened(&mut self, key: usize) {
        if !self.data.config.enabled {
            return;
        }
        self.send_assignment_event(key);
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        if let Role::Publisher(p) = &mut s.role {
            if p.data_only && !p.media_started {
                p.media_started = true;
                self.outputs
                    .push_back(SfuOutput::Event(MediaEvent::MediaStarted { session: s.id }));
            }
        }
    }

    /// Relays data-channel messages received on session `from` to their receivers
    /// (`data.rs`). A receiver whose buffer is full loses its copy; nothing waits.
    pub(super) fn relay_data(
        &mut self,
        now: Instant,
        from: usize,
        messages: Vec<str0m::channel::ChannelData>,
    ) {
        let Some(s) = self.sessions.get(from) else {
            return;
        };
        let sender_id = s.id;
        let stats = &mut self.data.stats;
        for m in &messages {
            stats.received += 1;
            stats.received_bytes += m.data.len() as u64;
        }
        if !self.data.config.enabled {
            trace!(session = %sender_id, n = messages.len(), "data channel disabled: messages dropped");
            self.data.stats.dropped_not_relayed += messages.len() as u64;
            return;
        }
        let targets = match &s.role {
            Role::Publisher(p) => self.data.targets(Sender::Publisher {
                id: sender_id,
                players: &p.players,
            }),
            Role::Player(p) => {
                let siblings = match self.session_ref(p.publisher).map(|x| &x.role) {
                    Some(Role::Publisher(pb)) => pb.players.as_slice(),
                    _ => &[],
                };
                self.data.targets(Sender::Player {
                    id: sender_id,
                    publisher: p.publisher,
                    siblings,
                })
            }
        };
        if targets.is_empty() && matches!(s.role, Role::Player(_)) {
            trace!(session = %sender_id, "player data not distributed");
            self.data.stats.dropped_not_relayed += messages.len() as u64;
            return;
        }
        let max = self.data.config.max_message_size;
        for m in &messages {
            if m.data.len() > max {
                trace!(session = %sender_id, len = m.data.len(), max, "oversize data message dropped");
                self.data.stats.dropped_oversize += 1;
                continue;
            }
            if !self.data.allow(now, sender_id) {
                trace!(session = %sender_id, "data message over the sender's rate dropped");
                self.data.stats.dropped_rate += 1;
                continue;
            }
            for target in &targets {
                let Some(&key) = self.ids.get(target) else {
                    self.data.stats.dropped_not_open += 1;
                    continue;
                };
                let Some(t) = self.sessions.get_mut(key) else {
                    continue;
                };
                match t.write_data(m.binary, &m.data) {
                    DataWrite::Written => {
                        self.data.stats.delivered += 1;
                        self.mutate(key, |_| Ok(()));
                    }
                    DataWrite::Congested => {
                        trace!(session = %target, len = m.data.len(), "receiver congested: data message dropped");
                        self.data.stats.dropped_congested += 1;
                    }
                    DataWrite::NotOpen => self.data.stats.dropped_not_open += 1,
                }
            }
        }
    }
}
