//! [`Signalling::check_invariants`]: the internal indexes checked against each other (the
//! tests and the fuzzers call it after every input).

use super::*;

impl Signalling {
    /// Checks the internal indexes against each other; `Err` describes the first violation.
    /// For tests and fuzzing.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut timers = BTreeSet::new();
        for (sid, s) in &self.sessions {
            if let Some(at) = s.deadline {
                timers.insert((at, *sid));
            }
            if let Role::Publish(p) = &s.role {
                if p.held_until.is_some() {
                    // Held: its connection is gone; it waits for a re-publish or its deadline.
                    // (Its old connection id may have been reused by a new connection, which
                    // must not list it.)
                    let listed = self
                        .conns
                        .get(&s.conn)
                        .is_some_and(|c| c.publishes.get(&s.stream) == Some(sid));
                    if s.deadline != p.held_until || !p.live || listed {
                        return Err(format!("held {sid} is inconsistent"));
                    }
                    if self.publishers.get(&key(&s.app, &s.stream)) != Some(sid) {
                        return Err(format!("held {sid} is not the publisher of {}", s.stream));
                    }
                    continue;
                }
                if p.relay {
                    // A relay publisher belongs to no open connection (`remote.rs`).
                    if self.publishers.get(&key(&s.app, &s.stream)) != Some(sid)
                        || s.deadline.is_some()
                    {
                        return Err(format!("relay {sid} is inconsistent"));
                    }
                    continue;
                }
            }
            let c = self
                .conns
                .get(&s.conn)
                .ok_or(format!("{sid} owned by closed {:?}", s.conn))?;
            if c.app != s.app {
                return Err(format!("{sid} app differs from its connection's"));
            }
            match &s.role {
                Role::Publish(p) => {
                    if c.publishes.get(&s.stream) != Some(sid) {
                        return Err(format!("{sid} missing from its conn's publishes"));
                    }
                    if self.publishers.get(&key(&s.app, &s.stream)) != Some(sid) {
                        return Err(format!("{sid} is not the publisher of {}", s.stream));
                    }
                    if let Some(m) = &p.main_track {
                        let indexed = self
                            .main_track_streams
                            .get(&key(&s.app, m))
                            .is_some_and(|ids| ids.contains(&s.stream));
                        if !indexed {
                            return Err(format!("{sid} missing from the main-track index of {m}"));
                        }
                    }
                    if p.live && !p.restoring && s.deadline.is_some() {
                        return Err(format!("live {sid} has a start deadline"));
                    }
                    for player in &p.players {
                        match self.sessions.get(player).map(|x| &x.role) {
                            Some(Role::Play(pl)) if pl.publisher == *sid => {}
                            _ => return Err(format!("{sid} lists bad player {player}")),
                        }
                    }
                }
                Role::Play(p) => {
                    if c.plays.get(&s.stream) != Some(sid) {
                        return Err(format!("{sid} missing from its conn's plays"));
                    }
                    let Some(publisher) = self.sessions.get(&p.publisher) else {
                        return Err(format!("{sid} plays a gone publisher"));
                    };
                    match &publisher.role {
                        Role::Publish(ps)
                            if ps.players.contains(sid)
                                && ps.live
                                && publisher.stream == s.stream
                                && publisher.app == s.app => {}
                        _ => return Err(format!("{sid} has an inconsistent publisher")),
                    }
                    if !s.media_known {
                        return Err(format!("player {sid} unknown to media"));
                    }
                }
                Role::RoomPlay(p) => {
                    if c.plays.get(&s.stream) != Some(sid) {
                        return Err(format!("{sid} missing from its conn's plays"));
                    }
                    let listed = self
                        .room_players
                        .get(&key(&s.app, &s.stream))
                        .is_some_and(|set| set.contains(sid));
                    if !listed || !s.media_known || s.deadline.is_some() {
                        return Err(format!("room player {sid} badly indexed"));
                    }
                    for (id, publisher) in &p.sent {
                        let ok = self.publishers.get(&key(&s.app, id)) == Some(publisher);
                        if !ok {
                            return Err(format!("room player {sid} sent a gone subtrack {id}"));
                        }
                    }
                }
            }
        }
        if timers != self.timers {
            return Err("timer index differs from session deadlines".into());
        }
        for ((app, room), set) in &self.room_players {
            if set.is_empty() {
                return Err(format!("empty room player set of {room} kept"));
            }
            for sid in set {
                match self.sessions.get(sid) {
                    Some(s)
                        if matches!(s.role, Role::RoomPlay(_))
                            && s.app == *app
                            && s.stream == *room => {}
                    _ => return Err(format!("room player index of {room} is stale")),
                }
            }
        }
        for ((app, id), sid) in &self.publishers {
            match self.sessions.get(sid) {
                Some(s) if s.app == *app && s.stream == *id => {}
                _ => return Err(format!("publisher index of {id} is stale")),
            }
        }
        for (cid, c) in &self.conns {
            for sid in c.publishes.values().chain(c.plays.values()) {
                if self.sessions.get(sid).map(|s| s.conn) != Some(*cid) {
                    return Err(format!("{cid:?} lists foreign or gone {sid}"));
                }
            }
            for id in &c.p2p {
                if !self.is_p2p_member(*cid, &c.app, id) {
                    return Err(format!("{cid:?} p2p {id} not in the group"));
                }
            }
            for (room, id) in &c.rooms {
                let ok = self
                    .rooms
                    .get(&key(&c.app, room))
                    .and_then(|r| r.members.get(id))
                    .is_some_and(|m| m.conn == *cid);
                if !ok {
                    return Err(format!("{cid:?} membership {room}/{id} not in the room"));
                }
            }
        }
        for ((app, id), peers) in &self.p2p {
            if peers.is_empty() || peers.len() > 2 {
                return Err(format!("p2p {id} has {} peers", peers.len()));
            }
            for p in peers {
                let ok = self
                    .conns
                    .get(p)
                    .is_some_and(|c| c.app == *app && c.p2p.contains(id));
                if !ok {
                    return Err(format!("p2p {id} lists {p:?} wrongly"));
                }
            }
            if peers.len() == 2 && peers.first() == peers.get(1) {
                return Err(format!("p2p {id} lists a peer twice"));
            }
        }
        for ((app, room), ids) in &self.main_track_streams {
            if ids.is_empty() {
                return Err(format!("empty main-track index entry {room} kept"));
            }
            for id in ids {
                let ok = self
                    .publishers
                    .get(&key(app, id))
                    .and_then(|sid| self.sessions.get(sid))
                    .is_some_and(|s| {
                        matches!(&s.role, Role::Publish(p) if p.main_track.as_deref() == Some(room))
                    });
                if !ok {
                    return Err(format!("main-track index lists {id} in {room} wrongly"));
                }
            }
        }
        for ((app, id), rooms) in &self.member_rooms {
            if rooms.is_empty() {
                return Err(format!("empty member index entry {id} kept"));
            }
            for room in rooms {
                let ok = self
                    .rooms
                    .get(&key(app, room))
                    .is_some_and(|r| r.members.contains_key(id));
                if !ok {
                    return Err(format!("member index lists {id} in {room} wrongly"));
                }
            }
        }
        for ((app, room), r) in &self.rooms {
            if r.members.is_empty() {
                return Err(format!("empty room {room} kept"));
            }
            for id in r.members.keys() {
                let indexed = self
                    .member_rooms
                    .get(&key(app, id))
                    .is_some_and(|rooms| rooms.contains(room));
                if !indexed {
                    return Err(format!(
                        "member {id} of {room} missing from the member index"
                    ));
                }
            }
            for (id, m) in &r.members {
                let ok = self.conns.get(&m.conn).is_some_and(|c| {
                    c.app == *app && c.rooms.contains(&(room.clone(), id.clone()))
                });
                if !ok {
                    return Err(format!("room {room} member {id} wrongly owned"));
                }
            }
        }
        self.check_role_invariants()
    }
}
