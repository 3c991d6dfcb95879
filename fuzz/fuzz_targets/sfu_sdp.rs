//! Fuzzes the SDP and candidate path into the media layer: arbitrary offers, answers, remote
//! candidates and datagrams (including STUN binding requests naming a session's ufrag) go into
//! one `rtc_core::Sfu`, as signalling and the network would hand them over.
//!
//! Input format, read until the bytes run out (missing bytes read as zero):
//! `op` byte, then per `op % 8`:
//! 0 `StartPublish` (session byte, text), 1 `StartPlay` (session byte, publisher byte),
//! 2 `RemoteAnswer` (session byte, text), 3 `RemoteCandidate` (session byte, text),
//! 4 a datagram (source byte, bytes), 5 time passes (byte * 10 ms) and timers fire,
//! 6 `Close` (session byte), 7 the answer a browser would give to the session's last offer
//! (session byte) or a STUN binding request naming the session's ufrag.
//! A text or bytes field is a little-endian `u16` length and that many bytes (lossy UTF-8).
//!
//! Checks: no panic; every event names a session that was started; a publish session that was
//! answered has an `a=ice-ufrag`; after closing every session, none is left and no timer is due.
//! The `Sfu` (and its DTLS certificate) is built once per process and reused: each input closes
//! what it opened.
#![no_main]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use proto_core::{MediaCmd, MediaEvent, SessionId};
use rtc_core::{Sfu, SfuConfig, SfuOutput};
use str0m::ice::{StunMessage, TransId};

const LOCAL: &str = "127.0.0.1:5000";

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn slice(&mut self) -> &'a [u8] {
        let len = usize::from(u16::from_le_bytes([self.byte(), self.byte()])).min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head
    }
    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.slice()).into_owned()
    }
    fn session(&mut self) -> SessionId {
        SessionId(1 + u64::from(self.byte() % 4))
    }
}

struct State {
    sfu: Sfu,
    now: Instant,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// What one input learnt about its sessions from the SFU's events.
#[derive(Default)]
struct Seen {
    /// Roles each session id was started with in this input (true = publisher).
    started: BTreeMap<SessionId, Vec<bool>>,
    offers: BTreeMap<SessionId, String>,
    ufrags: BTreeMap<SessionId, String>,
}

fn ufrag_of(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .map(str::to_string)
}

/// The answer a browser gives to a server offer, roughly: same media, roles swapped.
fn mirror_answer(offer: &str) -> String {
    offer
        .lines()
        .map(|l| match l.trim_end() {
            "a=sendonly" => "a=recvonly".to_string(),
            "a=setup:actpass" => "a=setup:active".to_string(),
            "a=ice-lite" => String::new(),
            l if l.starts_with("a=ice-ufrag:") => "a=ice-ufrag:fuzz".to_string(),
            l if l.starts_with("a=ice-pwd:") => "a=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz".to_string(),
            l => l.to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

fn drain(sfu: &mut Sfu, seen: &mut Seen) {
    while let Some(out) = sfu.poll_output() {
        let SfuOutput::Event(ev) = out else { continue };
        let s = ev.session();
        assert!(
            seen.started.contains_key(&s),
            "event for a session never started: {ev:?}"
        );
        match ev {
            MediaEvent::Answer { session, sdp } => {
                assert!(seen.started[&session].contains(&true), "answer to a player");
                let ufrag = ufrag_of(&sdp).expect("answer without ufrag");
                seen.ufrags.insert(session, ufrag);
            }
            MediaEvent::Offer { session, sdp, .. } => {
                assert!(
                    seen.started[&session].contains(&false),
                    "offer to a publisher"
                );
                if let Some(u) = ufrag_of(&sdp) {
                    seen.ufrags.insert(session, u);
                }
                seen.offers.insert(session, sdp);
            }
            _ => {}
        }
    }
}

fn stun_request(ufrag: &str, tail: u8) -> Vec<u8> {
    let username = format!("{ufrag}:x{tail}");
    let mut buf = vec![0u8; 512];
    let n = StunMessage::binding_request(&username, TransId::new(), true, 1, 100, tail & 1 == 0)
        .to_bytes(Some(b"not-the-password"), &mut buf, |_, _| [tail; 20])
        .unwrap_or(0);
    buf.truncate(n);
    buf
}

/// The `n`th relay address of the fuzzed media layer.
fn relay_addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5001 + u16::from(n)))
}

fuzz_target!(|data: &[u8]| {
    STATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let st = slot.get_or_insert_with(|| {
            #[allow(clippy::disallowed_methods)] // the origin of the virtual clock
            let now = Instant::now();
            let local: SocketAddr = LOCAL.parse().expect("addr");
            State {
                sfu: Sfu::new(
                    SfuConfig {
                        relay_addrs: vec![relay_addr(0), relay_addr(1)],
                        ..SfuConfig::new(vec![local], Duration::from_secs(1))
                    },
                    now,
                ),
                now,
            }
        });
        let local: SocketAddr = LOCAL.parse().expect("addr");
        let mut b = Bytes(data);
        let mut seen = Seen::default();
        let mut steps = 0;
        while !b.0.is_empty() && steps < 64 {
            steps += 1;
            let op = b.byte();
            let cmd = match op % 8 {
                0 => {
                    let session = b.session();
                    seen.started.entry(session).or_default().push(true);
                    let (stream, offer) = (format!("s{}", session.0), b.text());
                    // The high bit: an edge's relay of an origin's offer instead of a publish.
                    Some(if op & 0x80 == 0 {
                        MediaCmd::StartPublish {
                            session,
                            stream,
                            offer,
                        }
                    } else {
                        MediaCmd::StartRelay {
                            session,
                            stream,
                            offer,
                        }
                    })
                }
                1 => {
                    let session = b.session();
                    let publisher = b.session();
                    seen.started.entry(session).or_default().push(false);
                    Some(MediaCmd::StartPlay {
                        session,
                        stream: format!("s{}", publisher.0),
                        publisher,
                    })
                }
                2 => Some(MediaCmd::RemoteAnswer {
                    session: b.session(),
                    sdp: b.text(),
                }),
                3 => Some(MediaCmd::RemoteCandidate {
                    session: b.session(),
                    candidate: b.text(),
                }),
                4 => {
                    let source = SocketAddr::from(([127, 0, 0, 2], 4000 + u16::from(b.byte())));
                    let datagram = b.slice().to_vec();
                    // The high bit: to a relay address rather than the main one.
                    let dest = if op & 0x80 == 0 { local } else { relay_addr(op & 1) };
                    st.sfu.handle_receive(st.now, source, dest, &datagram);
                    None
                }
                5 => {
                    st.now += Duration::from_millis(u64::from(b.byte()) * 10);
                    st.sfu.handle_timeout(st.now);
                    None
                }
                6 => Some(MediaCmd::Close {
                    session: b.session(),
                }),
                _ => {
                    let session = b.session();
                    let tail = b.byte();
                    if tail & 0x80 == 0 {
                        seen.offers
                            .get(&session)
                            .map(|offer| MediaCmd::RemoteAnswer {
                                session,
                                sdp: mirror_answer(offer),
                            })
                    } else {
                        if let Some(u) = seen.ufrags.get(&session) {
                            let source = SocketAddr::from(([127, 0, 0, 3], u16::from(tail)));
                            let req = stun_request(u, tail);
                            st.sfu.handle_receive(st.now, source, local, &req);
                        }
                        None
                    }
                }
            };
            if let Some(cmd) = cmd {
                st.sfu.handle_command(st.now, cmd);
            }
            drain(&mut st.sfu, &mut seen);
        }
        for session in seen.started.keys() {
            st.sfu
                .handle_command(st.now, MediaCmd::Close { session: *session });
        }
        drain(&mut st.sfu, &mut seen);
        assert_eq!(st.sfu.session_count(), 0, "sessions left after closing all");
        // Nothing due once every session is gone (players' flush is the only other timer).
        st.now += Duration::from_millis(1);
        st.sfu.handle_timeout(st.now);
        drain(&mut st.sfu, &mut seen);
        assert_eq!(st.sfu.poll_timeout(), None, "timer left after closing all");
    });
});
