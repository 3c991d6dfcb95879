//! The ceiling: a trivial one-thread UDP forwarder (receive, AES-128-GCM seal with aws-lc-rs,
//! send to every registered sink), and its source and sinks.
//!
//! It does what an SFU must do per forwarded packet at the very least (one seal, one
//! `send_to`), and nothing else: what one core can forward at all.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use serde_json::{json, Value};

use crate::ws::check_loopback;

/// The datagram a sink sends to register.
pub const REGISTER: &[u8] = b"REGISTER-SINK";

/// Runs the forwarder on `listen` for `seconds`; returns its figures. Prints one JSON line a
/// second on stdout.
pub fn forwarder(listen: SocketAddr, seconds: f64) -> Result<Value, String> {
    check_loopback(listen).map_err(|e| e.to_string())?;
    let sock = UdpSocket::bind(listen).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_128_GCM, &[7u8; 16]).map_err(|_| "aes key".to_string())?,
    );
    let mut sinks: Vec<SocketAddr> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 2048];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut counter: u64 = 0;
    let (mut sent, mut errors, mut received) = (0u64, 0u64, 0u64);
    let mut second_start = Instant::now();
    let mut second_sent = 0u64;
    let mut best = 0f64;
    let mut busy_seconds: Vec<f64> = Vec::new();
    while Instant::now() < end {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let Some(data) = buf.get(..n) else { continue };
                if data == REGISTER {
                    if !sinks.contains(&from) {
                        sinks.push(from);
                    }
                    continue;
                }
                received += 1;
                for sink in &sinks {
                    counter += 1;
                    let mut nonce = [0u8; 12];
                    for (d, s) in nonce.iter_mut().zip(counter.to_be_bytes()) {
                        *d = s;
                    }
                    let Some(body) = out.get_mut(..n) else { break };
                    body.copy_from_slice(data);
                    let Ok(tag) = key.seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&[0u8; 12]),
                        body,
                    ) else {
                        errors += 1;
                        continue;
                    };
                    let Some(t) = out.get_mut(n..n + 16) else {
                        break;
                    };
                    t.copy_from_slice(tag.as_ref());
                    let Some(packet) = out.get(..n + 16) else {
                        break;
                    };
                    match sock.send_to(packet, sink) {
                        Ok(_) => sent += 1,
                        Err(_) => errors += 1,
                    }
                }
                second_sent = sent;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
        let el = second_start.elapsed();
        if el >= Duration::from_secs(1) {
            let pps = second_sent as f64 / el.as_secs_f64();
            if pps > 0.0 {
                busy_seconds.push(pps);
                println!(
                    "{}",
                    json!({"forwarded_pps": pps.round(), "sinks": sinks.len()})
                );
            }
            best = best.max(pps);
            second_start = Instant::now();
            sent = 0;
            second_sent = 0;
        }
    }
    busy_seconds.sort_by(f64::total_cmp);
    let median = busy_seconds
        .get(busy_seconds.len() / 2)
        .copied()
        .unwrap_or(0.0);
    Ok(json!({
        "kind": "udp-forwarder", "sinks": sinks.len(), "received": received,
        "forwarded_pps_median": median.round(), "forwarded_pps_best": best.round(),
        "send_errors": errors,
    }))
}

/// Registers `fanout` sinks with the forwarder, sends `pps` 1200-byte packets a second to it
/// for `seconds`, and drains the sinks. Returns the packets the sinks received.
pub fn source(
    forwarder: SocketAddr,
    fanout: usize,
    pps: u32,
    seconds: f64,
) -> Result<Value, String> {
    check_loopback(forwarder).map_err(|e| e.to_string())?;
    let mut sinks = Vec::with_capacity(fanout);
    for _ in 0..fanout {
        let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        s.send_to(REGISTER, forwarder).map_err(|e| e.to_string())?;
        sinks.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let src = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    src.set_nonblocking(true).map_err(|e| e.to_string())?;
    let payload = vec![0xabu8; 1200];
    let step = Duration::from_secs(1) / pps.max(1);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut next = start;
    let (mut sent, mut received) = (0u64, 0u64);
    let mut buf = vec![0u8; 2048];
    while Instant::now() < end {
        let now = Instant::now();
        while next <= now {
            if src.send_to(&payload, forwarder).is_ok() {
                sent += 1;
            }
            next += step;
        }
        for s in &sinks {
            while s.recv_from(&mut buf).is_ok() {
                received += 1;
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    Ok(json!({
        "kind": "udp-source", "fanout": fanout, "sent": sent, "sent_pps": (sent as f64 / wall).round(),
        "sinks_received_pps": (received as f64 / wall).round(),
    }))
}
