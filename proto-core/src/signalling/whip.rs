//! WHIP publishers and WHEP players (HTTP resources, RFC 9725) as signalling sees them.
//!
//! The runtime gives each HTTP resource a connection of its own ([`Signalling::handle_open`] is
//! called by these inputs) and feeds the request in as the SDK's messages would arrive:
//! - a WHIP `POST` is a `publish` of the stream (token, `mainTrack`) followed by the client's
//!   offer (`takeConfiguration`): the same checks, refusals and counters as on a WebSocket,
//!   and the stream is like any other afterwards (players, rooms, stream info, REST status);
//! - a WHEP `POST` is a `play` whose media session answers the client's offer
//!   ([`MediaCmd::StartPlayAnswer`](crate::MediaCmd::StartPlayAnswer)) instead of offering.
//!   Only a published stream can be played this way (a main track's room play needs the
//!   server's renegotiation offers): anything else is `no_stream_exist`, which the node
//!   answers `422` for a live main track ([`Signalling::is_live_main_track`]) and `404`
//!   otherwise;
//! - a trickled candidate (`PATCH`) is a `takeCandidate`;
//! - `DELETE` is [`Signalling::handle_http_delete`]: a `stop`, then the connection closes (so a
//!   WHIP publisher is not held for a reconnect as a dropped WebSocket's is).
//!
//! What signalling sends to the connection (`start`, the answer, candidates, errors,
//! notifications) comes out as [`Output::Send`](crate::Output::Send) like for any connection;
//! the runtime turns it into the HTTP response, and ends the resource when its session ends.

use std::time::Instant;

use super::{ConnId, Signalling};
use crate::message::{
    ClientMessage, Play, Publish, SdpType, StreamRef, TakeCandidate, TakeConfiguration,
};

/// A WHIP or WHEP `POST`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpMediaRequest {
    /// The stream id (last path segment).
    pub stream_id: String,
    /// The bearer token (`Authorization: Bearer …`), if any: publish or play token, JWT or
    /// hash token of the stream, checked by the access policy.
    pub token: Option<String>,
    /// WHIP: `?mainTrack=` (room membership).
    pub main_track: Option<String>,
    /// The client's SDP offer.
    pub offer: String,
}

impl Signalling {
    /// A WHIP `POST` on application `app`; `conn` is a new connection id for the resource.
    pub fn handle_whip_publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        app: &str,
        req: HttpMediaRequest,
    ) {
        self.handle_open(now, conn, app);
        let id = req.stream_id;
        self.handle_message(
            now,
            conn,
            ClientMessage::Publish(Publish {
                stream_id: Some(id.clone()),
                token: req.token,
                main_track: req.main_track,
                ..Publish::default()
            }),
        );
        // Refused: nothing was created, the offer goes nowhere.
        if !self
            .conns
            .get(&conn)
            .is_some_and(|c| c.publishes.contains_key(&id))
        {
            return;
        }
        self.handle_message(
            now,
            conn,
            ClientMessage::TakeConfiguration(TakeConfiguration {
                stream_id: Some(id),
                sdp_type: SdpType::Offer,
                sdp: req.offer,
            }),
        );
    }

    /// A WHEP `POST` on application `app`; `conn` is a new connection id for the resource.
    pub fn handle_whep_play(
        &mut self,
        now: Instant,
        conn: ConnId,
        app: &str,
        req: HttpMediaRequest,
    ) {
        self.handle_open(now, conn, app);
        self.whep_offer = Some(req.offer);
        self.handle_message(
            now,
            conn,
            ClientMessage::Play(Play {
                stream_id: Some(req.stream_id),
                token: req.token,
                ..Play::default()
            }),
        );
        // Taken by an accepted play; a refused one leaves it.
        self.whep_offer = None;
    }

    /// A candidate trickled to a WHIP/WHEP resource (`PATCH`).
    pub fn handle_http_candidate(
        &mut self,
        now: Instant,
        conn: ConnId,
        stream_id: &str,
        candidate: String,
    ) {
        self.handle_message(
            now,
            conn,
            ClientMessage::TakeCandidate(TakeCandidate {
                stream_id: Some(stream_id.to_string()),
                label: None,
                id: None,
                candidate,
            }),
        );
    }

    /// Whether `stream_id` on `app` is a main track (room) with a live subtrack and no
    /// publisher of its own: what a WHEP `POST` cannot play (a room play renegotiates with
    /// server offers as subtracks come and go; WHEP has no renegotiation).
    pub fn is_live_main_track(&self, app: &str, stream_id: &str) -> bool {
        self.has_live_subtrack(app, stream_id)
    }

    /// The media session a WHIP/WHEP resource's connection publishes or plays `stream_id`
    /// with, if it has one (an ICE restart `PATCH` goes to it).
    pub fn http_session(&self, conn: ConnId, stream_id: &str) -> Option<crate::SessionId> {
        let c = self.conns.get(&conn)?;
        c.publishes
            .get(stream_id)
            .or_else(|| c.plays.get(stream_id))
            .copied()
    }

    /// `DELETE` of a WHIP/WHEP resource, or its end for any other reason: stops what the
    /// resource's connection publishes or plays, then closes the connection.
    pub fn handle_http_delete(&mut self, now: Instant, conn: ConnId, stream_id: &str) {
        if self.conns.contains_key(&conn) {
            self.handle_message(
                now,
                conn,
                ClientMessage::Stop(StreamRef {
                    stream_id: Some(stream_id.to_string()),
                }),
            );
        }
        self.handle_closed(now, conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::Harness;
    use crate::media::{MediaCmd, MediaEvent};
    use crate::message::ServerMessage;
    use crate::{Config, Output, SignalError};

    const APP: &str = "WebRTCAppEE";

    fn req(id: &str) -> HttpMediaRequest {
        HttpMediaRequest {
            stream_id: id.into(),
            offer: "OFFER".into(),
            ..HttpMediaRequest::default()
        }
    }

    fn errors(outs: &[Output], conn: ConnId) -> Vec<&'static str> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Send(c, ServerMessage::Error(e)) if *c == conn => {
                    Some(e.definition.definition())
                }
                _ => None,
            })
            .collect()
    }

    fn publish_session(outs: &[Output]) -> Option<crate::SessionId> {
        outs.iter().find_map(|o| match o {
            Output::Media(MediaCmd::StartPublish { session, offer, .. }) if offer == "OFFER" => {
                Some(*session)
            }
            _ => None,
        })
    }

    #[test]
    fn whip_publish_is_a_publish_and_delete_leaves_nothing() {
        let mut h = Harness::new(Config::default());
        let whip = ConnId(1 << 40);
        let outs = h.whip(whip.0, APP, req("cam1"));
        let s = publish_session(&outs).expect("StartPublish with the client's offer");
        h.media_event(MediaEvent::Answer {
            session: s,
            sdp: "ANSWER".into(),
        });
        h.media_event(MediaEvent::MediaStarted { session: s });
        // An SDK player plays it like any stream.
        h.open(2, APP);
        let outs = h.text(2, r#"{"command":"play","streamId":"cam1"}"#);
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::Media(MediaCmd::StartPlay { publisher, .. }) if *publisher == s)),
            "{outs:?}"
        );
        // A second WHIP publish of the same id is refused as on a WebSocket.
        let other = ConnId((1 << 40) + 1);
        let outs = h.whip(other.0, APP, req("cam1"));
        assert_eq!(
            errors(&outs, other),
            vec![SignalError::StreamIdInUse.definition()]
        );
        h.http_delete(other.0, "cam1");
        // DELETE ends the publish (the player is told) and forgets the connection.
        let outs = h.http_delete(whip.0, "cam1");
        assert!(outs.contains(&Output::Media(MediaCmd::Close { session: s })));
        assert_eq!(h.sig.publisher_count(), 0);
        h.close(2);
        assert!(h.sig.is_idle(), "nothing left after DELETE");
    }

    #[test]
    fn whep_play_answers_the_client_offer_and_unknown_stream_is_404() {
        let mut h = Harness::new(Config::default());
        let whep = ConnId(1 << 41);
        let outs = h.whep(whep.0, APP, req("nope"));
        assert_eq!(
            errors(&outs, whep),
            vec![SignalError::NoStreamExist.definition()]
        );
        h.http_delete(whep.0, "nope");
        // A live WebSocket publisher.
        h.open(1, APP);
        h.text(1, r#"{"command":"publish","streamId":"s1"}"#);
        let outs = h.text(
            1,
            r#"{"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"OFFER"}"#,
        );
        let publisher = publish_session(&outs).expect("publisher");
        h.media_event(MediaEvent::MediaStarted { session: publisher });
        let whep = ConnId((1 << 41) + 1);
        let outs = h.whep(whep.0, APP, req("s1"));
        let session = outs
            .iter()
            .find_map(|o| match o {
                Output::Media(MediaCmd::StartPlayAnswer {
                    session,
                    publisher: p,
                    offer,
                    ..
                }) if *p == publisher && offer == "OFFER" => Some(*session),
                _ => None,
            })
            .expect("StartPlayAnswer");
        assert!(!outs
            .iter()
            .any(|o| matches!(o, Output::Media(MediaCmd::StartPlay { .. }))));
        let outs = h.media_event(MediaEvent::Answer {
            session,
            sdp: "ANSWER".into(),
        });
        assert!(outs.iter().any(|o| matches!(o,
            Output::Send(c, ServerMessage::TakeConfiguration { sdp_type: SdpType::Answer, sdp, .. })
                if *c == whep && sdp == "ANSWER")));
        h.sig.handle_http_candidate(
            h.now,
            whep,
            "s1",
            "candidate:1 1 udp 1 10.0.0.9 4000 typ host".into(),
        );
        let outs = h.drain();
        assert!(outs.iter().any(|o| matches!(o, Output::Media(MediaCmd::RemoteCandidate { session: s, .. }) if *s == session)));
        // The publisher ends: the WHEP player is told (the runtime then ends its resource).
        let outs = h.text(1, r#"{"command":"stop","streamId":"s1"}"#);
        assert!(outs
            .iter()
            .any(|o| matches!(o, Output::Send(c, ServerMessage::Notification(_)) if *c == whep)));
        h.http_delete(whep.0, "s1");
        h.close(1);
        assert!(h.sig.is_idle());
    }

    #[test]
    fn whip_main_track_makes_the_stream_a_subtrack_of_the_room() {
        let mut h = Harness::new(Config::default());
        let whip = ConnId(1 << 42);
        let outs = h.whip(
            whip.0,
            APP,
            HttpMediaRequest {
                main_track: Some("room1".into()),
                ..req("cam1")
            },
        );
        let s = publish_session(&outs).expect("StartPublish");
        assert!(outs.contains(&Output::Media(MediaCmd::SetMainTrack {
            session: s,
            main_track: format!("{APP}/room1"),
        })));
        h.open(2, APP);
        let outs = h.text(2, r#"{"command":"getTrackList","streamId":"room1"}"#);
        assert!(
            outs.iter().any(|o| matches!(o,
                Output::Send(c, ServerMessage::TrackList { track_list, .. })
                    if c.0 == 2 && track_list == &vec!["cam1".to_string()])),
            "{outs:?}"
        );
        h.http_delete(whip.0, "cam1");
        h.close(2);
        assert!(h.sig.is_idle());
    }
}
