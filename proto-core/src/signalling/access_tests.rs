//! The access-policy seam as signalling drives it (issue 9, authorisation): the room facts
//! signalling vouches for, check-then-commit, joinRoom checks, member ids, and connections
//! closed after repeated credential failures.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};

use super::*;
use crate::access::{Grant, JoinRoomRequest};
use crate::fuzzing::Harness;
use crate::media::MediaEvent;
use std::time::Duration;

const APP: &str = "LiveApp";

#[derive(Debug, Default)]
struct Log {
    /// `(stream, room, room_member)` of each publish check.
    publishes: Vec<(String, Option<String>, bool)>,
    /// `(stream, room, room_member)` of each play check.
    plays: Vec<(String, Option<String>, bool)>,
    /// Tokens spent by commits.
    spent: Vec<String>,
    joins: Vec<(String, Option<String>)>,
    ticks: u32,
}

/// A policy that grants a spendable token, refuses on demand and records what it is told.
#[derive(Debug)]
struct Spy {
    log: Rc<RefCell<Log>>,
    refuse: Option<SignalError>,
    refuse_join: Option<SignalError>,
    tick_at: Option<Instant>,
}

impl Spy {
    fn install(h: &mut Harness) -> Rc<RefCell<Log>> {
        let log = Rc::new(RefCell::new(Log::default()));
        h.sig.set_access_policy(Box::new(Spy {
            log: log.clone(),
            refuse: None,
            refuse_join: None,
            tick_at: None,
        }));
        log
    }
}

impl AccessPolicy for Spy {
    fn check_publish(&mut self, _: Instant, r: &PublishRequest<'_>) -> Result<Grant, SignalError> {
        self.log.borrow_mut().publishes.push((
            r.stream_id.to_string(),
            r.main_track.map(str::to_string),
            r.room_member,
        ));
        match self.refuse {
            Some(e) => Err(e),
            None => Ok(Grant {
                spend_token: r.token.map(str::to_string),
                ..Grant::free(r.app)
            }),
        }
    }
    fn check_play(&mut self, _: Instant, r: &PlayRequest<'_>) -> Result<Grant, SignalError> {
        self.log.borrow_mut().plays.push((
            r.stream_id.to_string(),
            r.room.filter(|s| !s.is_empty()).map(str::to_string),
            r.room_member,
        ));
        match self.refuse {
            Some(e) => Err(e),
            None => Ok(Grant {
                spend_token: r.token.map(str::to_string),
                ..Grant::free(r.app)
            }),
        }
    }
    fn commit(&mut self, _: Instant, g: Grant) -> Result<(), SignalError> {
        if let Some(t) = g.spend_token {
            self.log.borrow_mut().spent.push(t);
        }
        Ok(())
    }
    fn check_join_room(&mut self, _: Instant, r: &JoinRoomRequest<'_>) -> Result<(), SignalError> {
        self.log
            .borrow_mut()
            .joins
            .push((r.room.to_string(), r.stream_id.map(str::to_string)));
        self.refuse_join.map_or(Ok(()), Err)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.tick_at
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.log.borrow_mut().ticks += 1;
        self.tick_at = Some(now + Duration::from_secs(60));
    }
}

fn sent(outs: &[Output], conn: u64) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(c, m) if c.0 == conn => serde_json::from_str(&m.to_json()).ok(),
            _ => None,
        })
        .collect()
}

fn send(h: &mut Harness, conn: u64, v: Value) -> Vec<Output> {
    h.text(conn, &v.to_string())
}

fn definition(outs: &[Output], conn: u64) -> String {
    let s = sent(outs, conn);
    assert_eq!(s.len(), 1, "one message expected: {s:?}");
    s[0]["definition"]
        .as_str()
        .or(s[0]["command"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Publishes `id` (token `tok`) from `conn` until media flows.
fn live(h: &mut Harness, conn: u64, id: &str, main_track: &str) {
    let outs = send(
        h,
        conn,
        json!({"command":"publish","streamId":id,"mainTrack":main_track,"token":"pub"}),
    );
    assert_eq!(sent(&outs, conn)[0]["command"], "start", "{outs:?}");
    let outs = send(
        h,
        conn,
        json!({"command":"takeConfiguration","streamId":id,"type":"offer","sdp":"OFFER"}),
    );
    let sid = outs
        .iter()
        .find_map(|o| match o {
            Output::Media(MediaCmd::StartPublish { session, .. }) => Some(*session),
            _ => None,
        })
        .expect("publish session");
    h.media_event(MediaEvent::MediaStarted { session: sid });
}

/// Finding 1: signalling tells the policy whether the stream really belongs to the room the
/// client names; naming it is not enough.
#[test]
fn room_facts_given_to_the_policy() {
    let mut h = Harness::new(Config::default());
    let log = Spy::install(&mut h);
    h.open(1, APP);
    h.open(2, APP);
    // `victim` names `alice` as main track: not a member of anything.
    send(
        &mut h,
        1,
        json!({"command":"publish","streamId":"victim","mainTrack":"alice","token":"t"}),
    );
    assert_eq!(
        log.borrow().publishes.last(),
        Some(&("victim".into(), Some("alice".into()), false))
    );
    // A legacy member of room r1 publishing with mainTrack r1: vouched for.
    send(
        &mut h,
        2,
        json!({"command":"joinRoom","room":"r1","streamId":"m1"}),
    );
    send(
        &mut h,
        2,
        json!({"command":"publish","streamId":"m1","mainTrack":"r1"}),
    );
    assert_eq!(
        log.borrow().publishes.last(),
        Some(&("m1".into(), Some("r1".into()), true))
    );
    // Play: a live subtrack of the room is vouched for, another live stream is not.
    live(&mut h, 1, "sub", "room9");
    live(&mut h, 1, "other", "");
    h.open(3, APP);
    send(
        &mut h,
        3,
        json!({"command":"play","streamId":"sub","room":"room9"}),
    );
    send(
        &mut h,
        3,
        json!({"command":"play","streamId":"other","room":"room9"}),
    );
    send(
        &mut h,
        3,
        json!({"command":"play","streamId":"m1","room":"r1"}),
    );
    let plays = log.borrow().plays.clone();
    assert_eq!(
        plays,
        [
            ("sub".into(), Some("room9".into()), true),
            ("other".into(), Some("room9".into()), false),
            ("m1".into(), Some("r1".into()), true),
        ]
    );
    h.finish();
}

/// Finding 4: a grant is committed (the token spent) only when signalling accepts the request.
#[test]
fn tokens_are_spent_only_by_accepted_requests() {
    let mut h = Harness::new(Config::default());
    let log = Spy::install(&mut h);
    h.open(1, APP);
    h.open(2, APP);
    // The viewer is early: no_stream_exist, token kept.
    let outs = send(
        &mut h,
        2,
        json!({"command":"play","streamId":"s1","token":"v"}),
    );
    assert_eq!(definition(&outs, 2), "no_stream_exist");
    assert!(log.borrow().spent.is_empty());
    live(&mut h, 1, "s1", "");
    assert_eq!(log.borrow().spent, ["pub"]);
    let outs = send(
        &mut h,
        2,
        json!({"command":"play","streamId":"s1","token":"v"}),
    );
    assert_eq!(sent(&outs, 2).len(), 0, "play accepted: media session only");
    assert_eq!(log.borrow().spent, ["pub", "v"]);
    // already_playing and streamIdInUse spend nothing.
    let outs = send(
        &mut h,
        2,
        json!({"command":"play","streamId":"s1","token":"v2"}),
    );
    assert_eq!(definition(&outs, 2), "already_playing");
    let outs = send(
        &mut h,
        2,
        json!({"command":"publish","streamId":"s1","token":"p2"}),
    );
    assert_eq!(definition(&outs, 2), "streamIdInUse");
    assert_eq!(log.borrow().spent, ["pub", "v"]);
    assert_eq!(h.sig.refusals().get(SignalError::NoStreamExist), 1);
    assert_eq!(h.sig.refusals().get(SignalError::AlreadyPlaying), 1);
    assert_eq!(h.sig.refusals().get(SignalError::StreamIdInUse), 1);
    h.finish();
}

/// Finding 5: joinRoom runs the policy's check, and a member id held by another open
/// connection is not taken over; once the holder is gone (a reconnect) the id is free.
#[test]
fn join_room_is_checked_and_member_ids_are_not_taken_over() {
    let mut h = Harness::new(Config::default());
    let log = Rc::new(RefCell::new(Log::default()));
    h.sig.set_access_policy(Box::new(Spy {
        log: log.clone(),
        refuse: None,
        refuse_join: Some(SignalError::RoomNotActiveOrExpired),
        tick_at: None,
    }));
    h.open(1, APP);
    let outs = send(
        &mut h,
        1,
        json!({"command":"joinRoom","room":"r1","streamId":"alice"}),
    );
    assert_eq!(
        sent(&outs, 1),
        [
            json!({"command":"error","definition":"room_not_active_or_expired","streamId":"alice","room":"r1"})
        ]
    );
    assert_eq!(log.borrow().joins, [("r1".into(), Some("alice".into()))]);
    assert!(h.sig.rooms.is_empty());
    assert_eq!(h.sig.refusals().get(SignalError::RoomNotActiveOrExpired), 1);

    let log = Spy::install(&mut h);
    let outs = send(
        &mut h,
        1,
        json!({"command":"joinRoom","room":"r1","streamId":"alice"}),
    );
    assert_eq!(definition(&outs, 1), "joinedTheRoom");
    // A stranger asks for alice's id: refused, alice stays a member.
    h.open(2, APP);
    let outs = send(
        &mut h,
        2,
        json!({"command":"joinRoom","room":"r1","streamId":"alice"}),
    );
    assert_eq!(
        sent(&outs, 2),
        [json!({"command":"error","definition":"streamIdInUse","streamId":"alice"})]
    );
    assert_eq!(
        h.sig.rooms[&key(APP, "r1")].members["alice"].conn,
        ConnId(1)
    );
    // The same connection may join again (idempotent).
    let outs = send(
        &mut h,
        1,
        json!({"command":"joinRoom","room":"r1","streamId":"alice"}),
    );
    assert_eq!(definition(&outs, 1), "joinedTheRoom");
    // A reconnect: the old connection is gone, the new one gets the id.
    h.close(1);
    let outs = send(
        &mut h,
        2,
        json!({"command":"joinRoom","room":"r1","streamId":"alice"}),
    );
    assert_eq!(definition(&outs, 2), "joinedTheRoom");
    assert_eq!(log.borrow().joins.len(), 4);
    h.finish();
}

/// Finding 2 (per connection): after MAX_AUTH_FAILURES_PER_CONN credential refusals the
/// connection gets its error and is closed; other refusals do not count.
#[test]
fn a_connection_is_closed_after_repeated_credential_failures() {
    let mut h = Harness::new(Config::default());
    let log = Rc::new(RefCell::new(Log::default()));
    h.sig.set_access_policy(Box::new(Spy {
        log: log.clone(),
        refuse: Some(SignalError::UnauthorizedAccess),
        refuse_join: None,
        tick_at: None,
    }));
    h.open(1, APP);
    for i in 1..MAX_AUTH_FAILURES_PER_CONN {
        let outs = send(
            &mut h,
            1,
            json!({"command":"play","streamId":"s1","subscriberId":"u","subscriberCode":i.to_string()}),
        );
        assert_eq!(definition(&outs, 1), "unauthorized_access");
        assert!(!outs.iter().any(|o| matches!(o, Output::Close(_))));
    }
    let outs = send(&mut h, 1, json!({"command":"publish","streamId":"s1"}));
    assert_eq!(definition(&outs, 1), "unauthorized_access");
    assert!(outs.contains(&Output::Close(ConnId(1))), "closed: {outs:?}");
    assert!(h.sig.conns.is_empty());
    // Nothing more is answered on it.
    assert!(send(&mut h, 1, json!({"command":"ping"})).is_empty());
    let r = h.sig.refusals();
    assert_eq!(
        r.get(SignalError::UnauthorizedAccess),
        u64::from(MAX_AUTH_FAILURES_PER_CONN)
    );
    assert_eq!(r.conns_closed, 1);
    h.finish();
}

/// The policy's housekeeping timer is part of signalling's timeout.
#[test]
fn the_policy_timer_is_driven_by_signalling() {
    let mut h = Harness::new(Config::default());
    let log = Rc::new(RefCell::new(Log::default()));
    let at = h.now + Duration::from_secs(5);
    h.sig.set_access_policy(Box::new(Spy {
        log: log.clone(),
        refuse: None,
        refuse_join: None,
        tick_at: Some(at),
    }));
    assert_eq!(h.sig.poll_timeout(), Some(at));
    h.advance(Duration::from_secs(4));
    assert_eq!(log.borrow().ticks, 0);
    h.advance(Duration::from_secs(1));
    assert_eq!(log.borrow().ticks, 1);
    assert_eq!(h.sig.poll_timeout(), Some(at + Duration::from_secs(60)));
    h.sig.set_access_policy(Box::new(OpenAccess));
}
