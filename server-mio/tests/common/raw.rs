//! A WebSocket client by hand, for tests that need the bytes on the wire: the upgrade request,
//! masked client frames of any length, a socket opened past the `101` head; and the server's
//! resident memory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::tcp;

/// The upgrade request for `path` (`/WebRTCAppEE/websocket` and the like) on `host`, with the
/// RFC 6455 sample key (its accept is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`).
pub fn upgrade_request(host: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// A masked client frame with `opcode` and FIN set, any payload length.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_fragment(true, opcode, payload)
}

/// A masked client frame with FIN as given, any payload length.
pub fn client_fragment(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![if fin { 0x80 | opcode } else { opcode }];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Opens the default application's WebSocket by hand and returns the socket once the `101`
/// head was read (only the head: the server sends nothing else before the client speaks).
pub fn raw_ws(http: SocketAddr) -> TcpStream {
    let mut s = tcp(http);
    s.write_all(upgrade_request(http, "/WebRTCAppEE/websocket").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read the upgrade answer");
        assert_eq!(n, 1, "closed during the handshake: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s
}

/// A process's resident memory, in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
