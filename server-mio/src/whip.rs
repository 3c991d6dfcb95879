//! WHIP/WHEP head parsing: the head of a request the node's route table sent to
//! `/<App>/whip/…` or `/<App>/whep/…`, into an [`Action`]. What a resource is, its bounds and
//! its answers live in the node crate (`node::whip`), beside the code that answers with the
//! cores.

use crate::http::Action;

pub use node::whip::*;

fn respond(status: u16, why: &str) -> Action {
    Action::Respond {
        status,
        response: refusal(status, why),
    }
}

/// Routes `/<app>/whip/…` or `/<app>/whep/…` (`rest`: the segments after `whip`/`whep`).
pub fn route(
    req: &httparse::Request<'_, '_>,
    app: &str,
    kind: Kind,
    rest: &[&str],
    query: &str,
) -> Action {
    let method = req.method.unwrap_or("");
    let (stream, resource) = match rest {
        [s] if !s.is_empty() => (*s, None),
        [s, r] if !s.is_empty() && !r.is_empty() => (*s, Some(*r)),
        _ => return respond(404, "not found"),
    };
    if !proto_core::is_valid_stream_id(stream) || stream.len() > 128 {
        return respond(400, "invalid stream id");
    }
    let allow = if resource.is_some() {
        "PATCH, DELETE, OPTIONS"
    } else {
        "POST, OPTIONS"
    };
    let method = match (method, resource.is_some()) {
        ("OPTIONS", _) => {
            let mut extra = vec![
                ("Allow", allow),
                ("Access-Control-Allow-Methods", allow),
                (
                    "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, If-Match",
                ),
                ("Access-Control-Max-Age", "86400"),
            ];
            if resource.is_none() {
                extra.push(("Accept-Post", "application/sdp"));
            } else {
                extra.push(("Accept-Patch", "application/trickle-ice-sdpfrag"));
            }
            return Action::Respond {
                status: 204,
                response: reply(204, "text/plain; charset=utf-8", b"", &extra),
            };
        }
        ("POST", false) => Method::Post,
        ("PATCH", true) => Method::Patch,
        ("DELETE", true) => Method::Delete,
        _ => {
            return Action::Respond {
                status: 405,
                response: reply(
                    405,
                    "text/plain; charset=utf-8",
                    b"method not allowed\n",
                    &[("Allow", allow)],
                ),
            }
        }
    };
    let header = |name: &str| -> Option<&str> {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    if req
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        return respond(411, "send the body with Content-Length");
    }
    let content_length = match header("content-length") {
        None => 0,
        Some(v) => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return respond(400, "bad Content-Length"),
        },
    };
    if content_length > MAX_SDP_LEN {
        return respond(413, "body too large");
    }
    let media_type = header("content-type")
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let wanted = match method {
        Method::Post => Some("application/sdp"),
        Method::Patch => Some("application/trickle-ice-sdpfrag"),
        Method::Delete => None,
    };
    if let Some(wanted) = wanted {
        if media_type.as_deref() != Some(wanted) {
            return respond(415, &format!("Content-Type must be {wanted}"));
        }
        if content_length == 0 {
            return respond(400, "empty body");
        }
    }
    let param = |name: &str| -> Option<String> {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
            .filter(|v| !v.is_empty())
    };
    let token = header("authorization")
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        })
        .filter(|t| !t.is_empty())
        .or_else(|| param("token"));
    Action::Media(MediaHead {
        method,
        kind,
        app: app.to_string(),
        stream: stream.to_string(),
        resource: resource.map(str::to_string),
        token,
        main_track: if kind == Kind::Whip {
            param("mainTrack")
        } else {
            None
        },
        if_match: header("if-match").map(str::to_string),
        content_length,
    })
}

/// `%XX` and `+` decoding of a query value (invalid escapes are kept as they are).
fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| {
            b.get(j)
                .and_then(|c| char::from(*c).to_digit(16))
                .map(|d| d as u8)
        };
        match c {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(c),
            },
            b'+' => out.push(b' '),
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
