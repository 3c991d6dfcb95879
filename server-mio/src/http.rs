//! The HTTP side of the listener, without IO: parse one request head into an [`Action`].
//!
//! Which endpoint a request goes to is the node's route table (`node/src/routes.rs`); here are
//! only the parts that need the parsed head: the REST head ([`RestHead::from_request`]: a
//! `Content-Length` body of up to [`MAX_BODY_LEN`], else `413`; chunked bodies get `411`), the
//! WHIP/WHEP head (`whip.rs`), the WebSocket handshake (`101`, else `426` or `400`), the
//! embedded files of `static/`, and the text of the plain answers (`404`, `405`, `301`, `400`,
//! `431`).
//!
//! Every plain response carries `Connection: close`; there is no keep-alive.

/// One embedded file of `static/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticFile {
    /// File name (no directories).
    pub name: &'static str,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/static_files.rs"));

/// Largest request head accepted (request line plus headers).
pub const MAX_REQUEST_LEN: usize = 16 * 1024;

/// Largest REST request body.
pub use antenna_store::MAX_BODY_LEN;
pub use node::http_text::{reason, response};

/// The head of a REST request (parsed by [`antenna_store::RestHead::from_request`]); the
/// runtime asks [`antenna_store::RestGate`] about it before reading `content_length` body bytes.
pub use antenna_store::RestHead;

use node::routes::Route;

/// Most headers accepted in one request.
const MAX_HEADERS: usize = 48;

/// What to do with a complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `response` (a `101 Switching Protocols`), then speak WebSocket for `app`.
    Upgrade {
        /// The application (first path segment).
        app: String,
        /// The URL's query string (without `?`), e.g. `target=origin`.
        query: String,
        /// The handshake response.
        response: Vec<u8>,
    },
    /// Write `response`, then close.
    Respond {
        /// HTTP status code, for logs.
        status: u16,
        /// The whole response.
        response: Vec<u8>,
    },
    /// A REST API request: read the body, then answer it.
    Rest(RestHead),
    /// `GET /metrics`: the gate decides on the head (as for REST), then the runtime answers.
    Metrics(RestHead),
    /// `GET /healthz` (`ready: false`) or `GET /readyz` (`ready: true`): the runtime answers.
    Health {
        /// Readiness (listening, store writable, not shutting down) rather than liveness.
        ready: bool,
        /// `HEAD`: no body.
        head: bool,
    },
    /// A WHIP/WHEP request (`whip.rs`): read its `content_length` body, then answer it.
    Media(crate::whip::MediaHead),
    /// A REST API request refused for its malformed head (400, 411, 413): write the refusal,
    /// then close. `head` has what could be parsed, for the log.
    RestRefused {
        /// Why.
        refusal: antenna_store::Refusal,
        /// Method and path, for the log.
        head: RestHead,
    },
}

/// Parses the request head at the start of `buf`.
///
/// `None`: incomplete, read more. `Some((consumed, action))`: `consumed` bytes were the head;
/// anything after them belongs to the next protocol (early WebSocket frames).
pub fn handle_request(buf: &[u8], apps: &[String]) -> Option<(usize, Action)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST_LEN => None,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => Some((
            buf.len(),
            error(
                431,
                "Request Header Fields Too Large",
                "request head too large\n",
            ),
        )),
        Err(e) => Some((buf.len(), error(400, "Bad Request", &format!("{e}\n")))),
        Ok(httparse::Status::Complete(n)) => Some((n, route(&req, apps))),
    }
}

fn header<'a>(req: &'a httparse::Request<'_, '_>, name: &str) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// True if the comma-separated header value contains `token` (case-insensitive).
fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Turns the route the node's table picks ([`node::routes::route`]) into an [`Action`]: the
/// parsing that needs the whole head (REST and WHIP heads, the WebSocket handshake) and the
/// embedded files.
fn route(req: &httparse::Request<'_, '_>, apps: &[String]) -> Action {
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let has_file = |name: &str| STATIC_FILES.iter().any(|f| f.name == name);
    match node::routes::route(method, target, apps, has_file) {
        Route::WebSocket { app } => websocket(req, app),
        Route::Rest { app } => rest(req, app),
        Route::Metrics { app } => match rest(req, app) {
            Action::Rest(head) => Action::Metrics(head),
            refused => refused,
        },
        Route::Health { ready, head } => Action::Health { ready, head },
        Route::Media {
            app,
            kind,
            rest,
            query,
        } => crate::whip::route(req, app, kind, &rest, query),
        Route::Static { name, head } => match STATIC_FILES.iter().find(|f| f.name == name) {
            Some(f) => Action::Respond {
                status: 200,
                response: response(200, "OK", f.content_type, f.body, head, &[]),
            },
            None => not_found(),
        },
        Route::Redirect { location } => redirect(&location),
        Route::NotFound => not_found(),
        Route::MethodNotAllowed => method_not_allowed(),
        Route::BadTarget => error(
            400,
            "Bad Request",
            "request target must be an absolute path\n",
        ),
    }
}

fn rest(req: &httparse::Request<'_, '_>, app: &str) -> Action {
    match RestHead::from_request(req, app) {
        Ok(head) => Action::Rest(head),
        Err(refusal) => Action::RestRefused {
            refusal,
            head: RestHead {
                method: req.method.unwrap_or("").to_string(),
                path: req
                    .path
                    .unwrap_or("")
                    .split(['?', '#'])
                    .next()
                    .unwrap_or("")
                    .to_string(),
                app: app.to_string(),
                ..RestHead::default()
            },
        },
    }
}

/// The handshake of a `GET` the route table sent to a WebSocket endpoint.
fn websocket(req: &httparse::Request<'_, '_>, app: &str) -> Action {
    let upgrade = header(req, "upgrade");
    if !has_token(upgrade, "websocket") || !has_token(header(req, "connection"), "upgrade") {
        return plain(
            426,
            "Upgrade Required",
            "this is a WebSocket endpoint\n",
            &[("Upgrade", "websocket")],
        );
    }
    if header(req, "sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return plain(
            426,
            "Upgrade Required",
            "unsupported WebSocket version\n",
            &[("Sec-WebSocket-Version", "13")],
        );
    }
    let Some(key) = header(req, "sec-websocket-key").map(<[u8]>::trim_ascii) else {
        return error(400, "Bad Request", "missing Sec-WebSocket-Key\n");
    };
    if key.is_empty() {
        return error(400, "Bad Request", "empty Sec-WebSocket-Key\n");
    }
    let accept = tungstenite::handshake::derive_accept_key(key);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nServer: antenna\r\n\r\n"
    )
    .into_bytes();
    let target = req.path.unwrap_or("");
    let query = target
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
    Action::Upgrade {
        app: app.to_string(),
        query: query.to_string(),
        response,
    }
}

fn not_found() -> Action {
    // The path is not echoed back: no reflected content.
    error(404, "Not Found", "not found\n")
}

fn method_not_allowed() -> Action {
    plain(
        405,
        "Method Not Allowed",
        "method not allowed\n",
        &[("Allow", "GET, HEAD")],
    )
}

fn redirect(location: &str) -> Action {
    plain(
        301,
        "Moved Permanently",
        "moved\n",
        &[("Location", location)],
    )
}

/// A plain-text error response.
pub fn error(status: u16, reason: &str, body: &str) -> Action {
    plain(status, reason, body, &[])
}

/// A plain-text response with `extra` headers, then close.
fn plain(status: u16, reason: &str, body: &str, extra: &[(&str, &str)]) -> Action {
    Action::Respond {
        status,
        response: response(
            status,
            reason,
            "text/plain; charset=utf-8",
            body.as_bytes(),
            false,
            extra,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps() -> Vec<String> {
        vec!["WebRTCAppEE".to_string(), "LiveApp".to_string()]
    }

    fn status_of(action: &Action) -> u16 {
        match action {
            Action::Upgrade { .. } => 101,
            Action::Respond { status, .. } => *status,
            Action::RestRefused { refusal, .. } => refusal.status,
            Action::Rest(_) | Action::Metrics(_) | Action::Health { .. } | Action::Media(_) => 0,
        }
    }

    #[test]
    fn metrics_and_health_routes() {
        let req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\n\r\n";
        let (_, a) = handle_request(req.as_bytes(), &apps()).expect("complete");
        let Action::Metrics(head) = a else {
            panic!("{a:?}")
        };
        assert_eq!(
            head.app, "WebRTCAppEE",
            "the first application's access rules"
        );
        assert_eq!(head.authorization.as_deref(), Some("Bearer t"));
        let post = "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        assert_eq!(
            status_of(&handle_request(post.as_bytes(), &apps()).expect("c").1),
            405
        );
        let head = "HEAD /readyz HTTP/1.1\r\n\r\n";
        assert_eq!(
            handle_request(head.as_bytes(), &apps()).expect("c").1,
            Action::Health {
                ready: true,
                head: true
            }
        );
    }

    #[test]
    fn rest_requests_are_routed_with_their_head() {
        let req = "PUT /WebRTCAppEE/rest/v2/broadcasts/s1?a=1&b=2 HTTP/1.1\r\n\
                   Authorization: Bearer x.y.z\r\nContent-Length: 5\r\n\r\nhello";
        let (n, a) = handle_request(req.as_bytes(), &apps()).unwrap();
        assert_eq!(&req[n..], "hello");
        let Action::Rest(head) = a else {
            panic!("{a:?}")
        };
        assert_eq!(head.method, "PUT");
        assert_eq!(head.path, "/WebRTCAppEE/rest/v2/broadcasts/s1");
        assert_eq!(head.query, "a=1&b=2");
        assert_eq!(head.authorization.as_deref(), Some("Bearer x.y.z"));
        assert_eq!(head.content_length, 5);
        assert_eq!(head.app, "WebRTCAppEE");
        assert!(!head.expect_continue);
        let (_, a) = handle_request(
            b"GET /rest/v2/applications/settings/LiveApp HTTP/1.1\r\n\r\n",
            &apps(),
        )
        .unwrap();
        assert!(matches!(a, Action::Rest(RestHead { ref app, .. }) if app == "LiveApp"));
        // Oversize and chunked bodies, bad lengths.
        let big = format!(
            "POST /LiveApp/rest/v2/broadcasts/create HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_LEN + 1
        );
        assert_eq!(
            status_of(&handle_request(big.as_bytes(), &apps()).unwrap().1),
            413
        );
        let chunked = "POST /LiveApp/rest/v2/broadcasts/create HTTP/1.1\r\n\
                       Transfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            status_of(&handle_request(chunked.as_bytes(), &apps()).unwrap().1),
            411
        );
        let bad = "POST /LiveApp/rest/v2/x HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(
            status_of(&handle_request(bad.as_bytes(), &apps()).unwrap().1),
            400
        );
    }

    fn get(path: &str) -> Action {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        handle_request(req.as_bytes(), &apps()).unwrap().1
    }

    const WS_HEADERS: &str = "Host: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn websocket_upgrade_with_query() {
        let req =
            format!("GET /WebRTCAppEE/websocket?target=origin HTTP/1.1\r\n{WS_HEADERS}\r\nXY");
        let (n, action) = handle_request(req.as_bytes(), &apps()).unwrap();
        assert_eq!(n, req.len() - 2, "early frame bytes are not consumed");
        let Action::Upgrade {
            app,
            query,
            response,
        } = action
        else {
            panic!("{action:?}")
        };
        assert_eq!(
            (app.as_str(), query.as_str()),
            ("WebRTCAppEE", "target=origin")
        );
        let text = String::from_utf8(response).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
        // RFC 6455 section 1.3 example.
        assert!(
            text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{text}"
        );
    }

    #[test]
    fn websocket_without_upgrade_is_426() {
        assert_eq!(status_of(&get("/LiveApp/websocket")), 426);
    }

    #[test]
    fn websocket_bad_version_and_missing_key() {
        let req =
            "GET /LiveApp/websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: abc\r\n\r\n";
        let (_, a) = handle_request(req.as_bytes(), &apps()).unwrap();
        assert_eq!(status_of(&a), 426);
        let req =
            "GET /LiveApp/websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
        let (_, a) = handle_request(req.as_bytes(), &apps()).unwrap();
        assert_eq!(status_of(&a), 400);
    }

    #[test]
    fn static_pages() {
        let index = STATIC_FILES.iter().find(|f| f.name == "index.html");
        for path in [
            "/",
            "/WebRTCAppEE/",
            "/index.html",
            "/LiveApp/index.html?x=1",
        ] {
            let action = get(path);
            match index {
                Some(f) => {
                    let Action::Respond { status, response } = action else {
                        panic!()
                    };
                    assert_eq!(status, 200, "{path}");
                    assert!(response.ends_with(f.body));
                }
                None => assert_eq!(status_of(&action), 404),
            }
        }
        let Action::Respond { status, response } = get("/WebRTCAppEE") else {
            panic!()
        };
        assert_eq!(status, 301);
        let text = String::from_utf8(response).unwrap();
        assert!(text.contains("Location: /WebRTCAppEE/\r\n"), "{text}");
    }

    #[test]
    fn every_static_file_is_served_at_root_and_under_each_app() {
        for f in STATIC_FILES {
            assert_eq!(status_of(&get(&format!("/{}", f.name))), 200);
            assert_eq!(status_of(&get(&format!("/LiveApp/{}", f.name))), 200);
        }
    }

    #[test]
    fn head_has_no_body() {
        let Some(f) = STATIC_FILES.first() else {
            return;
        };
        let req = format!("HEAD /{} HTTP/1.1\r\n\r\n", f.name);
        let (_, Action::Respond { status, response }) =
            handle_request(req.as_bytes(), &apps()).unwrap()
        else {
            panic!()
        };
        assert_eq!(status, 200);
        let text = String::from_utf8(response).unwrap();
        assert!(text.ends_with("\r\n\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", f.body.len())));
    }

    #[test]
    fn malformed_and_partial() {
        assert!(handle_request(b"GET / HTTP/1.1\r\nHost:", &apps()).is_none());
        let (_, a) = handle_request(b"\x00\x01garbage\r\n\r\n", &apps()).unwrap();
        assert_eq!(status_of(&a), 400);
        let (_, a) = handle_request(b"GET * HTTP/1.1\r\n\r\n", &apps()).unwrap();
        assert_eq!(status_of(&a), 400);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_REQUEST_LEN));
        let (_, a) = handle_request(big.as_bytes(), &apps()).unwrap();
        assert_eq!(status_of(&a), 431);
    }

    #[test]
    fn error_response_is_well_formed() {
        let Action::Respond { response, .. } = error(404, "Not Found", "not found\n") else {
            panic!()
        };
        let text = String::from_utf8(response).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 10\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nnot found\n"));
    }
}
