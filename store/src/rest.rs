//! AMS-compatible REST API handlers as pure functions: a parsed request in, a response out.
//!
//! Routes (`{App}` is the application; AMS paths):
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/{App}/rest/v2/broadcasts/create` | Broadcast |
//! | GET | `/{App}/rest/v2/broadcasts/{id}` | Broadcast, 404 |
//! | PUT | `/{App}/rest/v2/broadcasts/{id}` | Result (merge of the given keys) |
//! | DELETE | `/{App}/rest/v2/broadcasts/{id}[?deleteSubtracks=true]` | Result |
//! | DELETE | `/{App}/rest/v2/broadcasts?ids=a,b` | Result |
//! | GET | `/{App}/rest/v2/broadcasts/list/{offset}/{size}[?type_by&sort_by&order_by&search]` | [Broadcast] (size ≤ 50) |
//! | GET | `/{App}/rest/v2/broadcasts/count`, `/active-live-stream-count` | `{number}` |
//! | GET | `/{App}/rest/v2/broadcasts/{id}/broadcast-statistics`, `/total-broadcast-statistics` | statistics |
//! | GET | `/{App}/rest/v2/broadcasts/{id}/token?expireDate=&type=[&roomId=]` | Token |
//! | GET | `/{App}/rest/v2/broadcasts/{id}/jwt-token?expireDate=&type=[&roomId=]` | Token (tokenId = JWT) |
//! | POST | `/{App}/rest/v2/broadcasts/validate-token` | Result (uses up a one-time token) |
//! | DELETE | `/{App}/rest/v2/broadcasts/{id}/tokens` | Result |
//! | GET | `/{App}/rest/v2/broadcasts/{id}/tokens/list/{offset}/{size}` | [Token] |
//! | POST, DELETE | `/{App}/rest/v2/broadcasts/{id}/subscribers` | Result |
//! | GET | `/{App}/rest/v2/broadcasts/{id}/subscribers/list/{offset}/{size}` | [Subscriber] (no secrets) |
//! | DELETE | `/{App}/rest/v2/broadcasts/{id}/subscribers/{sid}` | Result |
//! | GET | `/{App}/rest/v2/broadcasts/{id}/subscribers/{sid}/totp[?type=]` | Result, dataId = code |
//! | PUT | `/{App}/rest/v2/broadcasts/{id}/subscribers/{sid}/block/{seconds}/{type}` | Result |
//! | POST, DELETE | `/{App}/rest/v2/broadcasts/{id}/subtrack?id=` | Result |
//! | GET, PUT | `/rest/v2/applications/settings/{App}` (also under `/{App}/rest/v2/…`) | AppSettings (secrets redacted) / Result |
//! | GET | `/{App}/rest/v2/openapi.json` | OpenAPI 3 document |
//!
//! `Result` is `{success, message, dataId, errorId}`. Bad input gets 400 with a message in a
//! Result, unknown ids 404, an unknown route 404, a wrong method 405, a failed store 503.
//!
//! Access is decided before a request gets here, on its head, by the gate (`gate.rs`: the
//! client address against `remoteAllowedCIDR`, the admin token or a REST JWT, …).

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{Subscriber, Token};
use crate::store::{SharedStore, StoreError, WriteOp, WriteSeq};

mod access;
mod broadcasts;

/// The OpenAPI 3 description of these endpoints.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Most items a list endpoint returns.
pub const MAX_LIST: usize = 50;

/// One HTTP request, as the runtime parsed it.
#[derive(Debug, Clone, Copy)]
pub struct RestRequest<'a> {
    /// `GET`, `POST`, `PUT`, `DELETE` (case-insensitive).
    pub method: &'a str,
    /// The path, without the query (`/LiveApp/rest/v2/broadcasts/create`), still percent-encoded.
    pub path: &'a str,
    /// The query string without `?` (may be empty).
    pub query: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// The answer to a [`RestRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// Send the response only once [`crate::Store::durable_seq`] reaches this (the request
    /// changed the store). `None`: send at once.
    pub durable_after: Option<WriteSeq>,
    /// The request changed this application's settings: the runtime should re-read the ones it
    /// caches (ICE servers, start timeout, …). Security settings apply at once anyway.
    pub settings_changed: Option<String>,
}

impl RestResponse {
    fn json<T: Serialize>(status: u16, v: &T) -> RestResponse {
        RestResponse {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec()),
            durable_after: None,
            settings_changed: None,
        }
    }

    fn result(status: u16, success: bool, message: Option<&str>, data_id: Option<&str>) -> Self {
        RestResponse::json(
            status,
            &json!({"success": success, "message": message, "dataId": data_id, "errorId": 0}),
        )
    }

    fn ok(message: Option<&str>, data_id: Option<&str>) -> Self {
        RestResponse::result(200, true, message, data_id)
    }

    fn fail(status: u16, message: &str) -> Self {
        RestResponse::result(status, false, Some(message), None)
    }

    fn after(mut self, seq: Option<WriteSeq>) -> Self {
        self.durable_after = seq;
        self
    }

    /// The body as UTF-8 (for logs and tests).
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parsed query parameters (first value wins).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The REST API of every application, over the shared store.
///
/// Sans-IO: [`RestApi::serve`] takes a parsed request and the wall-clock time and returns the
/// response; it never blocks on disk (see [`RestResponse::durable_after`]).
pub struct RestApi {
    store: SharedStore,
    rng: ChaCha20Rng,
}

impl std::fmt::Debug for RestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestApi").finish_non_exhaustive()
    }
}

/// What a store write produced.
type WriteResult = Result<Option<WriteSeq>, StoreError>;

impl RestApi {
    /// A REST API over `store`. `seed` seeds the generator of token and stream ids: the runtime
    /// **must** pass 32 bytes from the OS random source (token ids are secrets); tests may pass a
    /// fixed seed.
    pub fn new(store: SharedStore, seed: [u8; 32]) -> RestApi {
        RestApi {
            store,
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    fn random_string(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| {
                let i = self.rng.next_u32() as usize % ALPHANUMERIC.len();
                char::from(ALPHANUMERIC.get(i).copied().unwrap_or(b'a'))
            })
            .collect()
    }

    fn write_all(&mut self, ops: Vec<WriteOp>) -> WriteResult {
        let mut store = self.store.borrow_mut();
        let mut last = None;
        for op in ops {
            last = Some(store.write(op)?);
        }
        Ok(last)
    }

    fn written(&mut self, ops: Vec<WriteOp>, ok: RestResponse) -> RestResponse {
        match self.write_all(ops) {
            Ok(seq) => ok.after(seq),
            Err(e) => RestResponse::fail(503, &e.to_string()),
        }
    }

    /// Answers one request whose access was already granted (by [`crate::RestGate`] on its
    /// head): no address or credential checks here.
    pub fn serve(&mut self, now_ms: u64, req: &RestRequest<'_>) -> RestResponse {
        let Some((app, rest)) = route(req.path) else {
            return RestResponse::fail(404, "Not found");
        };
        let app = app.as_str();
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        if !proto_core::is_valid_stream_id(app) {
            return RestResponse::fail(404, "Unknown application");
        }
        let settings = self.store.borrow().data().settings(app);
        let method = req.method.to_ascii_uppercase();
        let q = Query::parse(req.query);
        let m = method.as_str();
        match rest.as_slice() {
            ["openapi.json"] => match m {
                "GET" => RestResponse {
                    status: 200,
                    content_type: "application/json",
                    body: OPENAPI_JSON.as_bytes().to_vec(),
                    durable_after: None,
                    settings_changed: None,
                },
                _ => method_not_allowed(),
            },
            ["applications", "settings", target] if *target == app => match m {
                "GET" => RestResponse::json(200, &settings.redacted_json()),
                "PUT" => self.put_settings(app, settings, req.body),
                _ => method_not_allowed(),
            },
            ["broadcasts", b @ ..] => self.broadcasts(now_ms, app, m, b, &q, req.body),
            _ => RestResponse::fail(404, "Not found"),
        }
    }

    fn broadcasts(
        &mut self,
        now_ms: u64,
        app: &str,
        m: &str,
        path: &[&str],
        q: &Query,
        body: &[u8],
    ) -> RestResponse {
        match (m, path) {
            ("POST", ["create"]) => self.create(now_ms, app, body),
            ("GET", ["count"]) => {
                let n = self.store.borrow().data().broadcasts(app).count();
                RestResponse::json(200, &json!({ "number": n }))
            }
            ("GET", ["active-live-stream-count"]) => {
                let n = self.active_count(app);
                RestResponse::json(200, &json!({ "number": n }))
            }
            ("GET", ["total-broadcast-statistics"]) => {
                let store = self.store.borrow();
                let data = store.data();
                let (mut webrtc, mut hls, mut rtmp, mut dash) = (0i64, 0i64, 0i64, 0i64);
                for b in data.broadcasts(app) {
                    webrtc += b.webrtc_viewer_count;
                    hls += b.hls_viewer_count;
                    rtmp += b.rtmp_viewer_count;
                    dash += b.dash_viewer_count;
                }
                drop(store);
                RestResponse::json(
                    200,
                    &json!({
                        "totalRTMPWatchersCount": rtmp,
                        "totalHLSWatchersCount": hls,
                        "totalWebRTCWatchersCount": webrtc,
                        "totalDASHWatchersCount": dash,
                        "activeLiveStreamCount": self.active_count(app),
                    }),
                )
            }
            ("GET", ["list", o, s]) => match page(o, s) {
                Ok((o, s)) => self.list(app, o, s, q),
                Err(r) => r,
            },
            ("POST", ["validate-token"]) => self.validate_token(now_ms, app, body),
            ("DELETE", []) => self.delete_many(app, q),
            (
                _,
                ["create" | "count" | "active-live-stream-count" | "total-broadcast-statistics"],
            )
            | (_, ["list", _, _])
            | (_, ["validate-token"])
            | (_, []) => method_not_allowed(),
            (_, [id, tail @ ..]) => {
                if !proto_core::is_valid_stream_id(id) {
                    return RestResponse::fail(400, "Stream id is not valid.");
                }
                self.one_broadcast(now_ms, app, m, id, tail, q, body)
            }
        }
    }

    fn active_count(&self, app: &str) -> usize {
        self.store
            .borrow()
            .data()
            .broadcasts(app)
            .filter(|b| b.status == "broadcasting")
            .count()
    }

    #[allow(clippy::too_many_arguments)]
    fn one_broadcast(
        &mut self,
        now_ms: u64,
        app: &str,
        m: &str,
        id: &str,
        tail: &[&str],
        q: &Query,
        body: &[u8],
    ) -> RestResponse {
        let exists = self.store.borrow().data().broadcast(app, id).is_some();
        match (m, tail) {
            ("GET", []) => match self.store.borrow().data().broadcast(app, id) {
                Some(b) => RestResponse::json(200, b),
                None => not_found_broadcast(),
            },
            ("PUT", []) => self.update(app, id, body),
            ("DELETE", []) => self.delete(app, id, q.flag("deleteSubtracks")),
            ("GET", ["broadcast-statistics"]) => {
                match self.store.borrow().data().broadcast(app, id) {
                    Some(b) => RestResponse::json(
                        200,
                        &json!({
                            "totalRTMPWatchersCount": b.rtmp_viewer_count,
                            "totalHLSWatchersCount": b.hls_viewer_count,
                            "totalWebRTCWatchersCount": b.webrtc_viewer_count,
                            "totalDASHWatchersCount": b.dash_viewer_count,
                        }),
                    ),
                    None => not_found_broadcast(),
                }
            }
            ("GET", ["token"]) => self.token(now_ms, app, id, q, false),
            ("GET", ["jwt-token"]) => self.token(now_ms, app, id, q, true),
            ("DELETE", ["tokens"]) => {
                let ops: Vec<WriteOp> = self
                    .store
                    .borrow()
                    .data()
                    .tokens_of(app, id)
                    .into_iter()
                    .map(|t| WriteOp::DeleteToken {
                        app: app.to_string(),
                        token_id: t.token_id.clone(),
                    })
                    .collect();
                self.written(ops, RestResponse::ok(None, None))
            }
            ("GET", ["tokens", "list", o, s]) => match page(o, s) {
                Ok((o, s)) => {
                    let store = self.store.borrow();
                    let v: Vec<&Token> = store
                        .data()
                        .tokens_of(app, id)
                        .into_iter()
                        .skip(o)
                        .take(s)
                        .collect();
                    RestResponse::json(200, &v)
                }
                Err(r) => r,
            },
            ("POST", ["subscribers"]) => self.add_subscriber(app, id, body),
            ("DELETE", ["subscribers"]) => {
                let ops: Vec<WriteOp> = self
                    .store
                    .borrow()
                    .data()
                    .subscribers_of(app, id)
                    .map(|s| WriteOp::DeleteSubscriber {
                        app: app.to_string(),
                        stream_id: id.to_string(),
                        subscriber_id: s.subscriber_id.clone(),
                    })
                    .collect();
                self.written(ops, RestResponse::ok(None, None))
            }
            ("GET", ["subscribers", "list", o, s]) => match page(o, s) {
                Ok((o, s)) => {
                    let store = self.store.borrow();
                    let v: Vec<Value> = store
                        .data()
                        .subscribers_of(app, id)
                        .skip(o)
                        .take(s)
                        .map(Subscriber::public_json)
                        .collect();
                    RestResponse::json(200, &v)
                }
                Err(r) => r,
            },
            ("DELETE", ["subscribers", sid]) => {
                if self
                    .store
                    .borrow()
                    .data()
                    .subscriber(app, id, sid)
                    .is_none()
                {
                    return RestResponse::fail(404, "Subscriber is not found");
                }
                let op = WriteOp::DeleteSubscriber {
                    app: app.to_string(),
                    stream_id: id.to_string(),
                    subscriber_id: sid.to_string(),
                };
                self.written(vec![op], RestResponse::ok(None, None))
            }
            ("GET", ["subscribers", sid, "totp"]) => self.totp(now_ms, app, id, sid, q),
            ("PUT", ["subscribers", sid, "block", secs, kind]) => {
                self.block(now_ms, app, id, sid, secs, kind)
            }
            ("POST" | "DELETE", ["subtrack"]) => {
                if !exists {
                    return not_found_broadcast();
                }
                self.subtrack(app, id, q.get("id"), m == "POST")
            }
            (
                _,
                []
                | ["broadcast-statistics"
                | "token"
                | "jwt-token"
                | "tokens"
                | "subscribers"
                | "subtrack"]
                | ["tokens", "list", _, _]
                | ["subscribers", "list", _, _]
                | ["subscribers", _]
                | ["subscribers", _, "totp"]
                | ["subscribers", _, "block", _, _],
            ) => method_not_allowed(),
            _ => RestResponse::fail(404, "Not found"),
        }
    }
}

/// Splits a REST path into the application and the rest of the path after `rest/v2`
/// (percent-decoded segments).
fn route(path: &str) -> Option<(String, Vec<String>)> {
    let segs: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    match segs.as_slice() {
        [r, v, a, s, app] if r == "rest" && v == "v2" && a == "applications" && s == "settings" => {
            Some((app.clone(), vec![a.clone(), s.clone(), app.clone()]))
        }
        [app, r, v, rest @ ..] if r == "rest" && v == "v2" => Some((app.clone(), rest.to_vec())),
        _ => None,
    }
}

fn page(o: &str, s: &str) -> Result<(usize, usize), RestResponse> {
    match (o.parse::<usize>(), s.parse::<usize>()) {
        (Ok(o), Ok(s)) => Ok((o, s.min(MAX_LIST))),
        _ => Err(RestResponse::fail(
            400,
            "offset and size must be non-negative integers",
        )),
    }
}

fn bad_json(e: &serde_json::Error) -> RestResponse {
    RestResponse::fail(400, &format!("Bad request body: {e}"))
}

fn not_found_broadcast() -> RestResponse {
    RestResponse::fail(404, "Broadcast is not found")
}

fn method_not_allowed() -> RestResponse {
    RestResponse::fail(405, "Method not allowed")
}
