//! The session table: inserting and removing sessions, routing addresses to them, and the one
//! path every `Rtc` mutation takes (`mutate` → drain → `process`).

use super::*;

impl Sfu {
    /// Routes datagrams from `source` to session `key` from now on.
    pub(super) fn add_route(&mut self, key: usize, source: SocketAddr) {
        if self.routes.insert(source, key) == Some(key) {
            return;
        }
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.routes.retain(|a| *a != source);
        s.routes.push(source);
        if s.routes.len() > MAX_ROUTES_PER_SESSION {
            let old = s.routes.remove(0);
            if self.routes.get(&old) == Some(&key) {
                self.routes.remove(&old);
            }
        }
    }

    pub(super) fn session_ref(&self, id: SessionId) -> Option<&Session> {
        let key = *self.ids.get(&id)?;
        self.sessions.get(key)
    }

    pub(super) fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        let key = *self.ids.get(&id)?;
        self.sessions.get_mut(key)
    }

    /// Adds a player of `publisher` (a stream play, not a room play) with everything on, and
    /// registers it with its publisher; returns its slab key.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_player(
        &mut self,
        now: Instant,
        id: SessionId,
        rtc: Rtc,
        stream: String,
        publisher: SessionId,
        pending: Option<str0m::change::SdpPendingOffer>,
        tracks: Vec<OutTrack>,
    ) -> usize {
        let role = Role::Player(Player {
            stream,
            publisher,
            room: None,
            pending,
            tracks,
            video_on: true,
            audio_on: true,
            forced_height: 0,
            video_gate: KeyframeGate::default(),
        });
        let key = self.insert(now, id, rtc, role);
        if let Some(Role::Publisher(p)) = self.session_mut(publisher).map(|s| &mut s.role) {
            p.players.push(id);
        }
        key
    }

    pub(super) fn insert(
        &mut self,
        now: Instant,
        id: SessionId,
        mut rtc: Rtc,
        role: Role,
    ) -> usize {
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let mut s = Session::new(id, rtc, role, now, self.config.stats_interval);
        // The DTLS str0m made when this `Rtc` was built: its keys, for the fast path.
        let slot = self.config.crypto.dtls.take_last_slot();
        // Not with the players' bandwidth estimation: it needs str0m's transport-wide sequence
        // numbers on every packet it sends.
        if self.fast_path && !self.player_bwe && matches!(s.role, Role::Player(_)) {
            s.fast_keys = slot.map(|k| (k, self.config.crypto.provider.srtp_provider));
        }
        s.connect_deadline = Some(now + self.connect_timeout);
        let key = self.sessions.insert(s);
        self.ids.insert(id, key);
        self.ufrags.insert(key, ufrag);
        key
    }

    /// One mutation of a session's `Rtc`, then the drain, then its timer is updated. Effects
    /// are queued for [`Sfu::process`].
    pub(super) fn mutate(&mut self, key: usize, f: impl FnOnce(&mut Rtc) -> Result<(), RtcError>) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let mut fx = Effects::default();
        match f(&mut s.rtc) {
            Ok(()) => s.drain(self.now, &mut self.outputs, &mut fx),
            Err(e) => s.fail(&e, &mut fx),
        }
        let id = s.id;
        if !fx.is_empty() {
            self.work.push_back((key, id, fx));
        }
        self.reschedule(key);
    }

    pub(super) fn reschedule(&mut self, key: usize) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let at = s.deadline();
        if s.scheduled == Some(at) {
            return;
        }
        if let Some(old) = s.scheduled.take() {
            self.timers.remove(&(old, key));
        }
        s.scheduled = Some(at);
        self.timers.insert((at, key));
    }

    /// Acts on queued effects: forwarding, keyframe requests, dead sessions.
    pub(super) fn process(&mut self, now: Instant) {
        while let Some((key, id, fx)) = self.work.pop_front() {
            if self.sessions.get(key).is_none_or(|s| s.id != id) {
                continue;
            }
            if !fx.packets.is_empty() {
                self.forward(now, key, fx.packets);
            }
            if fx.channel_opened {
                self.data_channel_opened(key);
            }
            if !fx.data.is_empty() {
                self.relay_data(now, key, fx.data);
            }
            if fx.keyframe_requested || fx.player_connected {
                // A player whose video is off asks for keyframes because its decoder starves;
                // they would be dropped here, so the publisher is not asked for them.
                let video_on = match self.sessions.get(key).map(|s| &s.role) {
                    Some(Role::Player(p)) => p.video_on,
                    _ => true,
                };
                if fx.keyframe_requested && video_on {
                    self.outputs
                        .push_back(SfuOutput::Event(MediaEvent::KeyframeRequested {
                            session: id,
                        }));
                }
                let publishers = match self.sessions.get(key).map(|s| &s.role) {
                    Some(Role::Player(p)) if video_on || fx.player_connected => p.sources(),
                    _ => Vec::new(),
                };
                for publisher in publishers {
                    self.request_keyframe(now, publisher);
                }
            }
            if let Some(ev) = fx.dead {
                self.remove(key);
                self.outputs.push_back(SfuOutput::Event(ev));
            }
        }
    }

    /// Sends close output (DTLS close_notify, RTCP BYE) and drops the session without an event.
    pub(super) fn close_quietly(&mut self, key: usize) {
        if let Some(s) = self.sessions.get_mut(key) {
            if s.connected && s.rtc.close().is_ok() {
                let mut fx = Effects::default();
                s.drain(self.now, &mut self.outputs, &mut fx);
            }
        }
        self.remove(key);
    }

    pub(super) fn remove(&mut self, key: usize) {
        if self.sessions.get(key).is_none() {
            return;
        }
        let s = self.sessions.remove(key);
        if let Some(f) = &s.fast {
            self.fast_ended.add(&f.counters);
        }
        self.ids.remove(&s.id);
        self.ufrags.remove(key);
        self.candidates.forget(s.id);
        for addr in &s.routes {
            if self.routes.get(addr) == Some(&key) {
                self.routes.remove(addr);
            }
        }
        if let Some(at) = s.scheduled {
            self.timers.remove(&(at, key));
        }
        self.data.forget(s.id);
        self.relays.retain(|_, k| *k != key);
        if let Role::Player(p) = &s.role {
            for publisher in p.sources() {
                if let Some(Role::Publisher(pb)) = self.session_mut(publisher).map(|x| &mut x.role)
                {
                    pb.players.retain(|x| *x != s.id);
                }
            }
        }
        let stream = match &s.role {
            Role::Publisher(p) => &p.stream,
            Role::Player(p) => &p.stream,
        };
        debug!(session = %s.id, %stream, "session removed");
    }
}
