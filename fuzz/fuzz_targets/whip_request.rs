//! Fuzzes WHIP/WHEP from raw request bytes against the real cores (signalling and the SFU
//! behind the node, as the binary runs them): the input is a sequence of HTTP requests
//! separated by NUL bytes, each routed by `http::handle_request` and, when it is a WHIP/WHEP
//! request, answered by `Node::handle_http_media` with the bytes after its head as the body.
//! Virtual time moves one second per request. Besides "never panics", it checks:
//! - every answer is a complete HTTP response whose status is one of the documented ones, with
//!   the CORS header;
//! - the resource table stays consistent and within its bounds after every request;
//! - after a graceful shutdown every resource has ended and nothing is left in the table.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use proto_core::{Config, Signalling};
use rtc_core::{Sfu, SfuConfig};
use server_mio::http::{handle_request, Action};
use node::Node;
use server_mio::whip::MAX_RESOURCES;

const STATUSES: &[u16] = &[
    200, 201, 204, 400, 401, 403, 404, 405, 409, 411, 412, 413, 415, 422, 428, 429, 500, 503,
];

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let sig = Signalling::new(Config::default(), now);
    let udp: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
    let sfu = Sfu::new(
        SfuConfig::new(vec![udp], Duration::from_secs(1)),
        now,
    );
    let mut node = Node::new(sig, sfu);
    let apps = vec!["WebRTCAppEE".to_string()];
    for (i, chunk) in data.split(|b| *b == 0).take(64).enumerate() {
        let Some((consumed, action)) = handle_request(chunk, &apps) else {
            continue;
        };
        let Action::Media(head) = action else {
            continue;
        };
        let body = chunk.get(consumed..).unwrap_or_default();
        let body = body
            .get(..head.content_length.min(body.len()))
            .unwrap_or_default();
        let ip = IpAddr::from([10, 0, 0, (i % 3) as u8]);
        let reply = node.handle_http_media(now, ip, &head, body);
        assert!(STATUSES.contains(&reply.status), "status {}", reply.status);
        let text = String::from_utf8_lossy(&reply.response);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {} ", reply.status)),
            "{text}"
        );
        assert!(
            text.contains("\r\nAccess-Control-Allow-Origin: *\r\n"),
            "{text}"
        );
        node.resources.check_invariants();
        assert!(node.resources.len() <= MAX_RESOURCES);
        now += Duration::from_secs(1);
        node.handle_timeout(now);
        while node.poll_output().is_some() {}
    }
    node.shutdown(now);
    while node.poll_output().is_some() {}
    assert!(node.resources.is_empty(), "resources left after shutdown");
    node.resources.check_invariants();
});
