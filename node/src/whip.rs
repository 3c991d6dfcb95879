//! WHIP/WHEP requests answered with the cores (see `whip.rs` for the HTTP side).
//!
//! A `POST` opens a resource connection in signalling and feeds it the publish or play; the
//! cores run to quiescence within the call, so the answer (or the refusal) is known when it
//! returns. Later, whatever ends the resource's session (its publisher stopping, a media
//! failure, a timeout, the server shutting down) reaches the resource as a message to its
//! connection, and the resource is ended and forgotten at once.
//!
//! A `PATCH` is trickle (candidates to signalling, as a `takeCandidate`) or an ICE restart
//! (RFC 9725 §4.3.3): the node asks signalling for the resource's media session and the media
//! layer restarts ICE on it ([`rtc_core::Sfu::ice_restart`]); the answer is the server's new
//! credentials as an sdpfrag with a new `ETag`.

use std::net::IpAddr;
use std::time::Instant;

use proto_core::{ConnId, HttpMediaRequest, Notification, SdpType, ServerMessage};
use rtc_core::{IceRestart, IceRestartError};
use tracing::{debug, info, warn};

use crate::Node;

mod lockout;
mod resources;
pub use resources::*;

/// Why a WHEP `POST` of a live main track (room) is refused (`422`).
pub const MAIN_TRACK_REFUSAL: &str = "a main track (room) cannot be played with WHEP: \
    WHEP plays one stream without renegotiation; play a subtrack's id, or the room with the \
    SDK's WebSocket play";

/// The answer to a WHIP/WHEP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status, for logs.
    pub status: u16,
    /// The whole HTTP response.
    pub response: Vec<u8>,
}

impl Node {
    /// Answers a WHIP/WHEP request whose head passed the runtime's router and whose body was
    /// read, from the client at `ip`.
    pub fn handle_http_media(
        &mut self,
        now: Instant,
        ip: IpAddr,
        head: &MediaHead,
        body: &[u8],
    ) -> HttpReply {
        if head.method == Method::Post {
            if let Some(left) = self.resources.bad_tokens.locked(now, ip) {
                *self.resources.refused.entry(429).or_default() += 1;
                let secs = left.as_millis().div_ceil(1000).max(1).to_string();
                info!(%ip, kind = head.kind.segment(), app = %head.app, stream = %head.stream,
                    retry_after_s = %secs, "whip/whep request refused: address locked out after wrong tokens");
                return HttpReply {
                    status: 429,
                    response: reply(
                        429,
                        "text/plain; charset=utf-8",
                        b"too many wrong tokens from this address; retry later\n",
                        &[("Retry-After", secs.as_str())],
                    ),
                };
            }
        }
        let result = match head.method {
            Method::Post => self.http_post(now, ip, head, body),
            Method::Patch => self.http_patch(now, head, body),
            Method::Delete => self.http_delete(now, head),
        };
        match result {
            Ok(reply) => reply,
            Err((status, why)) => {
                *self.resources.refused.entry(status).or_default() += 1;
                info!(%ip, kind = head.kind.segment(), app = %head.app, stream = %head.stream,
                    status, why, "whip/whep request refused");
                HttpReply {
                    status,
                    response: refusal(status, &why),
                }
            }
        }
    }

    fn http_post(
        &mut self,
        now: Instant,
        ip: IpAddr,
        head: &MediaHead,
        body: &[u8],
    ) -> Result<HttpReply, (u16, String)> {
        let (offer, ufrag) = check_offer(body).map_err(|why| (400, why.to_string()))?;
        self.resources
            .admit(ip)
            .map_err(|(status, why)| (status, why.to_string()))?;
        let conn = self.resources.alloc_conn();
        let req = HttpMediaRequest {
            stream_id: head.stream.clone(),
            token: head.token.clone(),
            main_track: head.main_track.clone(),
            offer: offer.to_string(),
        };
        self.creating = Some(conn);
        let role_refusals = self.sig.role_refusals();
        match head.kind {
            Kind::Whip => self.sig.handle_whip_publish(now, conn, &head.app, req),
            Kind::Whep => self.sig.handle_whep_play(now, conn, &head.app, req),
        }
        self.pump(now);
        self.creating = None;
        // An edge refused the publish (`proto-core/src/signalling/role.rs`): no token was wrong.
        let role_refused = self.sig.role_refusals() != role_refusals;
        let mut answer = None;
        let mut error = None;
        let mut closed = false;
        let mut candidates = Vec::new();
        for m in std::mem::take(&mut self.created) {
            match m {
                Some(ServerMessage::TakeConfiguration {
                    sdp_type: SdpType::Answer,
                    sdp,
                    ..
                }) => answer = Some(sdp),
                Some(ServerMessage::TakeCandidate { candidate, .. }) => candidates.push(candidate),
                Some(ServerMessage::Error(e)) => {
                    error.get_or_insert(e.definition);
                }
                Some(ServerMessage::Notification(Notification::ServerWillStop)) | None => {
                    closed = true;
                }
                Some(_) => {}
            }
        }
        let answer = match (answer, error, closed) {
            (Some(sdp), None, false) => sdp,
            (_, e, _) => {
                // Nothing of it may stay behind.
                self.sig.handle_http_delete(now, conn, &head.stream);
                self.pump(now);
                if matches!(e, Some(proto_core::SignalError::UnauthorizedAccess))
                    && head.token.is_some()
                    && !role_refused
                    && self.resources.bad_tokens.record_failure(now, ip)
                {
                    warn!(%ip, kind = head.kind.segment(), app = %head.app,
                        lockouts = self.resources.bad_tokens.lockouts,
                        "whip/whep: address locked out after repeated wrong tokens");
                }
                return Err(match (e, closed) {
                    // AMS has no WHEP endpoint to follow; a room cannot be one WHEP stream.
                    (Some(proto_core::SignalError::NoStreamExist), _)
                        if head.kind == Kind::Whep
                            && self.sig.is_live_main_track(&head.app, &head.stream) =>
                    {
                        (422, MAIN_TRACK_REFUSAL.to_string())
                    }
                    (Some(e), _) if role_refused => (403, e.definition().to_string()),
                    (Some(e), _) => (
                        status_for(e, head.token.is_some()),
                        e.definition().to_string(),
                    ),
                    (None, true) => (503, "the server is stopping".to_string()),
                    // E.g. a publish that resumed a held publisher of the id: no new session.
                    (None, false) => (409, "no media session was created".to_string()),
                });
            }
        };
        if head.token.is_some() {
            self.resources.bad_tokens.record_success(ip);
        }
        let answer = with_candidates(answer, &candidates);
        let id = self.resources.insert(Resource {
            conn,
            kind: head.kind,
            app: head.app.clone(),
            stream: head.stream.clone(),
            ip,
            etag: String::new(),
            ufrag,
            restarts: Vec::new(),
        });
        let etag = self
            .resources
            .by_conn(conn)
            .map(|r| r.etag.clone())
            .unwrap_or_default();
        let location = format!("/{}/{}/{}/{id}", head.app, head.kind.segment(), head.stream);
        let link = self.ice_link();
        let mut extra = vec![
            ("Location", location.as_str()),
            ("ETag", etag.as_str()),
            ("Accept-Patch", "application/trickle-ice-sdpfrag"),
        ];
        if let Some(link) = &link {
            extra.push(("Link", link.as_str()));
        }
        info!(%ip, kind = head.kind.segment(), app = %head.app, stream = %head.stream,
            resources = self.resources.len(), "whip/whep resource created");
        Ok(HttpReply {
            status: 201,
            response: reply(201, "application/sdp", answer.as_bytes(), &extra),
        })
    }

    fn resource_of(&self, head: &MediaHead) -> Result<Resource, (u16, String)> {
        head.resource
            .as_deref()
            .and_then(|id| self.resources.get(head.kind, &head.app, &head.stream, id))
            .cloned()
            .ok_or((404, "no such resource".to_string()))
    }

    fn http_patch(
        &mut self,
        now: Instant,
        head: &MediaHead,
        body: &[u8],
    ) -> Result<HttpReply, (u16, String)> {
        let r = self.resource_of(head)?;
        if let Some(tag) = &head.if_match {
            if tag != "*" && *tag != r.etag {
                return Err((412, "If-Match does not match the resource's ETag".into()));
            }
        }
        let patch =
            check_patch(body, r.ufrag.as_deref()).map_err(|(s, why)| (s, why.to_string()))?;
        let (ufrag, pwd, candidates) = match patch {
            Patch::Trickle(candidates) => {
                for c in candidates {
                    self.sig
                        .handle_http_candidate(now, r.conn, &r.stream, c.to_string());
                }
                self.pump(now);
                return Ok(HttpReply {
                    status: 204,
                    response: reply(204, "text/plain; charset=utf-8", b"", &[]),
                });
            }
            Patch::Restart {
                ufrag,
                pwd,
                candidates,
            } => (ufrag, pwd, candidates),
        };
        self.ice_restart(now, head, &r, ufrag, pwd, candidates)
    }

    /// An ICE restart (RFC 9725 §4.3.3) of resource `r`: the media layer restarts ICE on the
    /// resource's session with the client's new credentials; `200` with the server's.
    fn ice_restart(
        &mut self,
        now: Instant,
        head: &MediaHead,
        r: &Resource,
        ufrag: &str,
        pwd: &str,
        candidates: Vec<&str>,
    ) -> Result<HttpReply, (u16, String)> {
        if head.if_match.is_none() {
            return Err((428, "an ICE restart needs If-Match: \"*\"".into()));
        }
        if let Err(wait) = self.resources.admit_restart(r.conn, now) {
            let secs = wait.as_millis().div_ceil(1000).max(1).to_string();
            *self.resources.refused.entry(429).or_default() += 1;
            info!(kind = head.kind.segment(), app = %head.app, stream = %head.stream,
                retry_after_s = %secs, "whip/whep request refused: too many ICE restarts");
            return Ok(HttpReply {
                status: 429,
                response: reply(
                    429,
                    "text/plain; charset=utf-8",
                    b"too many ICE restarts of this resource; retry later\n",
                    &[("Retry-After", secs.as_str())],
                ),
            });
        }
        let session = self
            .sig
            .http_session(r.conn, &r.stream)
            .ok_or((404, "the resource has no media session".to_string()))?;
        let restart = IceRestart {
            ufrag: ufrag.to_string(),
            pwd: pwd.to_string(),
            candidates: candidates.iter().map(|c| c.to_string()).collect(),
        };
        let result = self.sfu.ice_restart(now, session, &restart);
        self.pump(now);
        let done = result.map_err(|e| {
            let status = match e {
                IceRestartError::NoSession => 404,
                _ => 422,
            };
            (status, format!("ICE restart refused: {e}"))
        })?;
        let etag = self
            .resources
            .restarted(r.conn, ufrag)
            .ok_or((404, "no such resource".to_string()))?;
        info!(kind = head.kind.segment(), app = %head.app, stream = %head.stream,
            candidates = restart.candidates.len(), "whip/whep ICE restart");
        let frag = restart_fragment(&done.answer, &done.ufrag, &done.pwd, &done.candidates);
        Ok(HttpReply {
            status: 200,
            response: reply(
                200,
                "application/trickle-ice-sdpfrag",
                frag.as_bytes(),
                &[("ETag", etag.as_str())],
            ),
        })
    }

    fn http_delete(&mut self, now: Instant, head: &MediaHead) -> Result<HttpReply, (u16, String)> {
        let r = self.resource_of(head)?;
        self.end_resource(now, r.conn, "deleted");
        Ok(HttpReply {
            status: 200,
            response: reply(200, "text/plain; charset=utf-8", b"ended\n", &[]),
        })
    }

    /// Ends and forgets the resource of `conn`.
    fn end_resource(&mut self, now: Instant, conn: ConnId, why: &str) {
        let Some(r) = self.resources.remove_conn(conn) else {
            return;
        };
        info!(kind = r.kind.segment(), app = %r.app, stream = %r.stream, why,
            resources = self.resources.len(), "whip/whep resource ended");
        self.sig.handle_http_delete(now, conn, &r.stream);
        self.pump(now);
    }

    /// Acts on what signalling sent to resource connections; true if anything was done that
    /// may have produced more outputs.
    pub(super) fn settle_resources(&mut self, now: Instant) -> bool {
        let events = std::mem::take(&mut self.http_events);
        let mut acted = false;
        for (conn, msg) in events {
            if Some(conn) == self.creating {
                self.created.push(msg);
                continue;
            }
            let ends = match &msg {
                None => true,
                Some(ServerMessage::Error(_)) => true,
                Some(ServerMessage::Notification(
                    Notification::PublishFinished { .. }
                    | Notification::PlayFinished { .. }
                    | Notification::ServerWillStop,
                )) => true,
                Some(_) => false,
            };
            if !ends {
                continue;
            }
            let Some(r) = self.resources.remove_conn(conn) else {
                continue;
            };
            debug!(kind = r.kind.segment(), app = %r.app, stream = %r.stream, ?msg,
                "whip/whep resource ended by its session");
            self.sig.handle_http_delete(now, conn, &r.stream);
            acted = true;
        }
        acted
    }

    /// RFC 9725 `Link` header of the configured STUN/TURN server, if any.
    fn ice_link(&self) -> Option<String> {
        let ice = &self.sig.config().ice_servers;
        if ice.stun_server_uri.is_empty() || ice.stun_server_uri.contains(['"', '>', '\r', '\n']) {
            return None;
        }
        let mut link = format!("<{}>; rel=\"ice-server\"", ice.stun_server_uri);
        if let (Some(u), Some(c)) = (&ice.turn_server_username, &ice.turn_server_credential) {
            if !u.contains(['"', '\r', '\n']) && !c.contains(['"', '\r', '\n']) {
                link.push_str(&format!(
                    "; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\""
                ));
            }
        }
        Some(link)
    }
}

/// The answer with the trickled candidates added, if it carries none itself (a client that
/// does not trickle needs them in the SDP).
fn with_candidates(answer: String, candidates: &[String]) -> String {
    if candidates.is_empty() || answer.contains("a=candidate:") {
        return answer;
    }
    let mut out = answer;
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    for c in candidates {
        let c = c.strip_prefix("a=").unwrap_or(c);
        out.push_str("a=");
        out.push_str(c);
        out.push_str("\r\n");
    }
    out
}
