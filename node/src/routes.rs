//! The server's route table: which endpoint a request's method and target go to. The one
//! definition; the runtime parses the HTTP head, asks [`route`] and hands the head (and body)
//! to the endpoint it names. Inside the REST API, `store/src/rest.rs` maps the path after
//! `rest/v2` to its handlers.
//!
//! | method | target (query ignored here; a WebSocket's `?target=origin\|edge` goes to signalling) | route |
//! |---|---|---|
//! | `GET` | `/<App>/websocket` | [`Route::WebSocket`] (then the handshake headers decide `101`, `426` or `400`) |
//! | any | `/<App>/rest/…`, `/rest/v2/applications/settings/<App>` | [`Route::Rest`] (the admin gate, then the handlers) |
//! | `GET`, `HEAD` | `/metrics` | [`Route::Metrics`] (the first application's admin gate) |
//! | `GET`, `HEAD` | `/healthz`, `/readyz` | [`Route::Health`] |
//! | any | `/<App>/whip/…`, `/<App>/whep/…` | [`Route::Media`] (WHIP/WHEP) |
//! | `GET`, `HEAD` | `/`, `/<file>`, `/<App>/`, `/<App>/<file>` | [`Route::Static`] (`/` and `/<App>/` are `index.html`) |
//! | any | `/<App>` | [`Route::Redirect`] to `/<App>/` |
//!
//! Anything else is [`Route::NotFound`]; a known path with another method
//! [`Route::MethodNotAllowed`]; a target that is not an absolute path [`Route::BadTarget`].

use crate::whip::Kind;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// The AMS signalling WebSocket of `app`.
    WebSocket {
        /// The application.
        app: &'a str,
    },
    /// The admin REST API of `app`.
    Rest {
        /// The application whose access rules and data the request is for.
        app: &'a str,
    },
    /// `/metrics`, under the access rules of `app` (the first application).
    Metrics {
        /// The first application (empty without any).
        app: &'a str,
    },
    /// `/healthz` (`ready: false`) or `/readyz` (`ready: true`).
    Health {
        /// Readiness rather than liveness.
        ready: bool,
        /// `HEAD`: no body.
        head: bool,
    },
    /// A WHIP or WHEP request of `app`.
    Media {
        /// The application.
        app: &'a str,
        /// WHIP or WHEP.
        kind: Kind,
        /// The path segments after `whip`/`whep`.
        rest: Vec<&'a str>,
        /// The query string (without `?` and any fragment).
        query: &'a str,
    },
    /// An embedded file (the caller's `has_file` said it has it).
    Static {
        /// The file name.
        name: &'a str,
        /// `HEAD`: no body.
        head: bool,
    },
    /// `301` to this location.
    Redirect {
        /// The new location.
        location: String,
    },
    /// `404`.
    NotFound,
    /// `405`: the path exists, not with this method (`GET, HEAD` are allowed).
    MethodNotAllowed,
    /// `400`: the target is not an absolute path.
    BadTarget,
}

/// Routes a request: `method` and `target` as the request line has them, `apps` the
/// applications served, `has_file` whether a static file of that name exists.
pub fn route<'a>(
    method: &str,
    target: &'a str,
    apps: &'a [String],
    has_file: impl Fn(&str) -> bool,
) -> Route<'a> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Route::BadTarget;
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let is_app = |s: &str| apps.iter().any(|a| a == s);
    let head = method == "HEAD";
    let get = method == "GET" || head;
    let file = match segments.as_slice() {
        [app, "rest", ..] if is_app(app) => return Route::Rest { app },
        ["rest", "v2", "applications", "settings", app] if is_app(app) => {
            return Route::Rest { app }
        }
        [app, "websocket"] if is_app(app) => {
            return match method {
                "GET" => Route::WebSocket { app },
                _ => Route::MethodNotAllowed,
            }
        }
        ["metrics"] if get => {
            return Route::Metrics {
                app: apps.first().map_or("", String::as_str),
            }
        }
        ["healthz" | "readyz"] if get => {
            return Route::Health {
                ready: segments.first() == Some(&"readyz"),
                head,
            }
        }
        ["metrics" | "healthz" | "readyz"] => return Route::MethodNotAllowed,
        [app, kind @ ("whip" | "whep"), rest @ ..] if is_app(app) => {
            return Route::Media {
                app,
                kind: if *kind == "whip" {
                    Kind::Whip
                } else {
                    Kind::Whep
                },
                rest: rest.to_vec(),
                query: query(target),
            }
        }
        [""] => "index.html",
        [app] if is_app(app) => {
            return Route::Redirect {
                location: format!("/{app}/"),
            }
        }
        [app, ""] if is_app(app) => "index.html",
        [name] => name,
        [app, name] if is_app(app) => name,
        _ => return Route::NotFound,
    };
    match (has_file(file), get) {
        (true, true) => Route::Static { name: file, head },
        (true, false) => Route::MethodNotAllowed,
        (false, _) => Route::NotFound,
    }
}

/// The query string of a request target (without `?` and any fragment).
fn query(target: &str) -> &str {
    target
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps() -> Vec<String> {
        vec!["WebRTCAppEE".to_string(), "LiveApp".to_string()]
    }

    fn at<'a>(method: &str, target: &'a str, apps: &'a [String]) -> Route<'a> {
        route(method, target, apps, |f| {
            f == "index.html" || f == "play.html"
        })
    }

    #[test]
    fn rest_paths_of_known_applications() {
        let apps = apps();
        for (target, app) in [
            ("/LiveApp/rest/v2/broadcasts/create", "LiveApp"),
            ("/WebRTCAppEE/rest/v2/broadcasts/s1?a=1", "WebRTCAppEE"),
            ("/rest/v2/applications/settings/LiveApp", "LiveApp"),
            ("/LiveApp/rest/anything", "LiveApp"),
        ] {
            for m in ["GET", "POST", "PUT", "DELETE"] {
                assert_eq!(at(m, target, &apps), Route::Rest { app }, "{m} {target}");
            }
        }
        for target in [
            "/Other/rest/v2/broadcasts/count",
            "/rest/v2/applications/settings/Other",
            "//rest",
            "/rest",
        ] {
            assert_eq!(at("GET", target, &apps), Route::NotFound, "{target}");
        }
    }

    #[test]
    fn websocket_metrics_and_health() {
        let apps = apps();
        let ws = "/WebRTCAppEE/websocket?target=origin";
        assert_eq!(
            at("GET", ws, &apps),
            Route::WebSocket { app: "WebRTCAppEE" }
        );
        assert_eq!(at("POST", ws, &apps), Route::MethodNotAllowed);
        assert_eq!(at("GET", "/Other/websocket", &apps), Route::NotFound);
        for m in ["GET", "HEAD"] {
            assert_eq!(
                at(m, "/metrics", &apps),
                Route::Metrics { app: "WebRTCAppEE" },
                "the first application's access rules"
            );
        }
        assert_eq!(at("POST", "/metrics", &apps), Route::MethodNotAllowed);
        assert_eq!(
            at("GET", "/healthz", &apps),
            Route::Health {
                ready: false,
                head: false
            }
        );
        assert_eq!(
            at("HEAD", "/readyz", &apps),
            Route::Health {
                ready: true,
                head: true
            }
        );
        assert_eq!(at("DELETE", "/healthz", &apps), Route::MethodNotAllowed);
        assert_eq!(at("GET", "/metrics", &[]), Route::Metrics { app: "" });
    }

    #[test]
    fn whip_and_whep_with_their_query() {
        let apps = apps();
        assert_eq!(
            at("POST", "/LiveApp/whip/s1?mainTrack=r#x", &apps),
            Route::Media {
                app: "LiveApp",
                kind: Kind::Whip,
                rest: vec!["s1"],
                query: "mainTrack=r",
            }
        );
        assert_eq!(
            at("DELETE", "/LiveApp/whep/s1/res", &apps),
            Route::Media {
                app: "LiveApp",
                kind: Kind::Whep,
                rest: vec!["s1", "res"],
                query: "",
            }
        );
        assert_eq!(at("POST", "/Other/whip/s1", &apps), Route::NotFound);
    }

    #[test]
    fn static_files_redirects_and_the_rest() {
        let apps = apps();
        for target in [
            "/",
            "/WebRTCAppEE/",
            "/index.html",
            "/LiveApp/index.html?x=1",
        ] {
            assert_eq!(
                at("GET", target, &apps),
                Route::Static {
                    name: "index.html",
                    head: false
                },
                "{target}"
            );
        }
        assert_eq!(
            at("HEAD", "/LiveApp/play.html", &apps),
            Route::Static {
                name: "play.html",
                head: true
            }
        );
        assert_eq!(at("POST", "/", &apps), Route::MethodNotAllowed);
        assert_eq!(
            at("GET", "/WebRTCAppEE", &apps),
            Route::Redirect {
                location: "/WebRTCAppEE/".to_string()
            }
        );
        for target in [
            "/nope",
            "/WebRTCAppEE/nope.html",
            "/a/b/c",
            "/../etc/passwd",
            "/Other/index.html",
        ] {
            assert_eq!(at("GET", target, &apps), Route::NotFound, "{target}");
        }
        assert_eq!(
            at("POST", "/nope", &apps),
            Route::NotFound,
            "404 before 405"
        );
        assert_eq!(at("GET", "*", &apps), Route::BadTarget);
        assert_eq!(at("GET", "http://x/", &apps), Route::BadTarget);
    }
}
