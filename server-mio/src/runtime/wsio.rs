//! What tungstenite reads from and writes to ([`WsIo`] over the shared [`ReadAhead`]), the
//! [`FrameTracker`] that tells when its read buffer can be let go of, and [`write_out`].

use std::io::{self, ErrorKind, Read, Write};

use mio::net::TcpStream;

use super::WS_READ_BUDGET;

/// Size of the runtime's one read-ahead buffer, shared by every WebSocket (see [`WsIo`]).
pub(super) const WS_READ_AHEAD: usize = 64 * 1024;

/// The runtime's read-ahead buffer: one for every WebSocket, holding what was read from the
/// socket of the connection being driven and not yet taken by tungstenite.
pub(super) struct ReadAhead {
    pub(super) buf: Box<[u8]>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl ReadAhead {
    pub(super) fn new() -> ReadAhead {
        ReadAhead {
            buf: vec![0; WS_READ_AHEAD].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    pub(super) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// What tungstenite reads from and writes to. Reads come from a WebSocket's socket through
/// the shared [`ReadAhead`]: tungstenite reads at most its (small, per-connection) read
/// buffer's size at a time; this reads the socket in large chunks and hands them out from
/// memory, so small per-connection buffers do not cost a system call per [`WS_READ_BUFFER`]
/// bytes. The read-ahead only ever holds bytes of the connection being driven: tungstenite is
/// read until `WouldBlock`, which this returns only once the read-ahead is empty, and the
/// driver clears it before reading another connection. Writes are appended to the
/// connection's output (`out`), which the runtime writes to the socket: tungstenite never
/// keeps output (or a buffer sized for it) of its own.
pub(super) struct WsIo<'a> {
    pub(super) stream: &'a mut TcpStream,
    pub(super) ahead: &'a mut ReadAhead,
    pub(super) out: &'a mut Vec<u8>,
    /// Sees every byte handed to tungstenite.
    pub(super) frames: &'a mut FrameTracker,
    /// Bytes this may still read from the socket (the per-turn read budget).
    pub(super) budget: usize,
    /// The budget ran out: the `WouldBlock` returned was not the socket's.
    pub(super) yielded: bool,
    /// The last socket read was short (fewer bytes than asked for): the kernel had nothing
    /// more, so the next read answers `WouldBlock` without the system call that would say so.
    /// Readiness is edge-triggered and every arrival after that read is a new event, so
    /// nothing waits unseen; this saves one `recvfrom` (the `EAGAIN`) per message read.
    pub(super) drained: bool,
    /// Whether a short read sets `drained` (not when the event that woke the driver said the
    /// peer closed: its end of stream, already queued, would bring no new event).
    pub(super) short_read_ends: bool,
}

impl<'a> WsIo<'a> {
    /// A connection's reads and writes, with a fresh per-turn read budget.
    pub(super) fn new(
        stream: &'a mut TcpStream,
        ahead: &'a mut ReadAhead,
        out: &'a mut Vec<u8>,
        frames: &'a mut FrameTracker,
    ) -> WsIo<'a> {
        WsIo {
            stream,
            ahead,
            out,
            frames,
            budget: WS_READ_BUDGET,
            yielded: false,
            drained: false,
            short_read_ends: true,
        }
    }
}

impl Read for WsIo<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.ahead.start >= self.ahead.end {
            self.ahead.clear();
            if self.drained {
                return Err(ErrorKind::WouldBlock.into());
            }
            if self.budget == 0 {
                // Only ever with the read-ahead empty, so nothing of this connection is lost
                // when another one is read next.
                self.yielded = true;
                return Err(ErrorKind::WouldBlock.into());
            }
            let room = self.budget.min(self.ahead.buf.len());
            // WouldBlock and errors go to tungstenite as they are; 0 is the end of the stream.
            let n = self
                .stream
                .read(self.ahead.buf.get_mut(..room).unwrap_or_default())?;
            self.ahead.end = n;
            self.budget = self.budget.saturating_sub(n);
            self.drained = self.short_read_ends && n > 0 && n < room;
        }
        let available = self
            .ahead
            .buf
            .get(self.ahead.start..self.ahead.end)
            .unwrap_or_default();
        let n = available.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
            self.frames.feed(src);
        }
        self.ahead.start += n;
        Ok(n)
    }
}

impl Write for WsIo<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Follows the frame boundaries of a client's byte stream (RFC 6455 section 5.2 headers), to
/// tell when tungstenite holds neither part of a frame nor part of a fragmented message, and
/// how large the largest frame was. It only counts: tungstenite validates the frames.
#[derive(Debug, Default, Clone)]
pub(super) struct FrameTracker {
    /// The header of the frame being received, so far (at most 14 bytes).
    pub(super) head: [u8; 14],
    pub(super) head_len: usize,
    /// Payload bytes of the current frame still to come.
    pub(super) payload_left: u64,
    /// A data frame without FIN was seen: its message is not complete yet.
    pub(super) fragmented: bool,
    /// The largest frame payload seen (reset by the runtime).
    pub(super) largest: u64,
}

impl FrameTracker {
    pub(super) fn feed(&mut self, mut data: &[u8]) {
        while let Some((&byte, rest)) = data.split_first() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len() as u64);
                self.payload_left -= n;
                data = data.get(n as usize..).unwrap_or_default();
                continue;
            }
            data = rest;
            if let Some(slot) = self.head.get_mut(self.head_len) {
                *slot = byte;
                self.head_len += 1;
            }
            if let Some((fin, opcode, len)) = self.header() {
                self.head_len = 0;
                self.payload_left = len;
                self.largest = self.largest.max(len);
                // Data frames (continuation 0, text 1, binary 2) start or go on with a
                // message; control frames (8 and up) may come in between and change nothing.
                if opcode < 8 {
                    self.fragmented = !fin;
                }
            }
        }
    }

    /// `(FIN, opcode, payload length)` once the header is complete.
    pub(super) fn header(&self) -> Option<(bool, u8, u64)> {
        let head = self.head.get(..self.head_len)?;
        let (&b0, &b1) = (head.first()?, head.get(1)?);
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        let (ext, len7) = match b1 & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        if head.len() < 2 + ext + mask {
            return None;
        }
        let len = match len7 {
            Some(n) => n,
            None => head
                .get(2..2 + ext)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        };
        Some((b0 & 0x80 != 0, b0 & 0x0f, len))
    }

    /// True between frames, outside a fragmented message.
    pub(super) fn at_rest(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0 && !self.fragmented
    }
}

/// Writes `out` to `stream` until it is empty (then frees its allocation) or the socket would
/// block (`WouldBlock`, the rest stays in `out`).
pub(super) fn write_out(stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    let mut written = 0;
    let result = loop {
        let Some(rest) = out.get(written..).filter(|r| !r.is_empty()) else {
            break Ok(());
        };
        match stream.write(rest) {
            Ok(0) => break Err(io::Error::new(ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    if written >= out.len() {
        *out = Vec::new();
    } else {
        out.drain(..written);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A connected pair: the server side as a non-blocking mio stream, the client side std.
    fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (TcpStream::from_std(server), client)
    }

    #[test]
    fn ws_io_reads_through_the_read_ahead_in_small_pieces() {
        let (mut server, mut client) = pair();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&data).unwrap();
        client.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut ahead = ReadAhead::new();
        let mut out = Vec::new();
        let mut frames = FrameTracker::default();
        let mut io = WsIo {
            stream: &mut server,
            ahead: &mut ahead,
            out: &mut out,
            frames: &mut frames,
            budget: usize::MAX,
            yielded: false,
            drained: false,
            short_read_ends: true,
        };
        let mut got = Vec::new();
        let mut piece = [0u8; 300];
        loop {
            match io.read(&mut piece) {
                Ok(0) => panic!("end of stream"),
                Ok(n) => got.extend_from_slice(&piece[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, data);
        // WouldBlock only once the read-ahead is empty.
        assert_eq!(ahead.start, ahead.end);
        // The end of the stream reads as 0.
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
        let mut io = WsIo {
            stream: &mut server,
            ahead: &mut ahead,
            out: &mut out,
            frames: &mut frames,
            budget: usize::MAX,
            yielded: false,
            drained: false,
            short_read_ends: true,
        };
        assert_eq!(io.read(&mut piece).unwrap(), 0);
    }

    #[test]
    fn ws_io_stops_after_a_short_read_without_asking_the_socket_again() {
        let (mut server, mut client) = pair();
        client.write_all(b"ping").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut ahead = ReadAhead::new();
        let mut out = Vec::new();
        let mut frames = FrameTracker::default();
        let mut io = WsIo::new(&mut server, &mut ahead, &mut out, &mut frames);
        let mut piece = [0u8; 300];
        assert_eq!(io.read(&mut piece).unwrap(), 4);
        assert!(
            io.drained,
            "4 bytes of 64 KiB asked: the kernel had no more"
        );
        // What arrives now is left for the next readiness event (edge-triggered: this arrival
        // is one): this driver's read says WouldBlock without a system call.
        client.write_all(b"more").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let err = io.read(&mut piece).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert!(!io.yielded, "the socket's WouldBlock, not the budget's");
        // The next event's driver reads it.
        let mut io = WsIo::new(&mut server, &mut ahead, &mut out, &mut frames);
        assert_eq!(io.read(&mut piece).unwrap(), 4);
        assert_eq!(&piece[..4], b"more");
    }

    #[test]
    fn ws_io_reads_to_the_end_of_the_stream_when_the_peer_closed() {
        let (mut server, mut client) = pair();
        client.write_all(b"bye").unwrap();
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
        let mut ahead = ReadAhead::new();
        let mut out = Vec::new();
        let mut frames = FrameTracker::default();
        let mut io = WsIo::new(&mut server, &mut ahead, &mut out, &mut frames);
        io.short_read_ends = false;
        let mut piece = [0u8; 300];
        assert_eq!(io.read(&mut piece).unwrap(), 3);
        assert_eq!(
            io.read(&mut piece).unwrap(),
            0,
            "the end of the stream is read"
        );
    }

    #[test]
    fn ws_io_writes_go_to_the_output_and_write_out_frees_it() {
        let (mut server, mut client) = pair();
        let mut ahead = ReadAhead::new();
        let mut out = Vec::new();
        let mut frames = FrameTracker::default();
        let mut io = WsIo {
            stream: &mut server,
            ahead: &mut ahead,
            out: &mut out,
            frames: &mut frames,
            budget: usize::MAX,
            yielded: false,
            drained: false,
            short_read_ends: true,
        };
        io.write_all(b"hello ").unwrap();
        io.write_all(b"world").unwrap();
        io.flush().unwrap();
        assert_eq!(out, b"hello world");
        write_out(&mut server, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(out.capacity(), 0, "the output buffer is freed once written");
        let mut got = [0u8; 11];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello world");
    }

    /// A frame header: FIN, opcode, masked, payload length.
    fn header(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            n if n < 126 => h.push(0x80 | n as u8),
            n if n <= 0xffff => {
                h.push(0x80 | 126);
                h.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                h.push(0x80 | 127);
                h.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = header(fin, opcode, len);
        f.resize(f.len() + len, b'x');
        f
    }

    #[test]
    fn frame_tracker_follows_boundaries_in_any_pieces() {
        let mut stream = Vec::new();
        stream.extend(frame(true, 1, 20));
        stream.extend(frame(true, 1, 300));
        stream.extend(frame(true, 2, 70_000));
        stream.extend(frame(true, 9, 0));
        // Fragmented: text without FIN, a ping in between, the final continuation.
        stream.extend(frame(false, 1, 1000));
        stream.extend(frame(true, 9, 5));
        stream.extend(frame(true, 0, 10));
        for piece in [1, 2, 3, 7, 13, 100, 4096, stream.len()] {
            let mut t = FrameTracker::default();
            let mut fed = 0;
            // Positions at which the tracker must be at rest: after each complete frame,
            // except inside the fragmented message.
            let rest_points: Vec<usize> = {
                let sizes = [
                    frame(true, 1, 20).len(),
                    frame(true, 1, 300).len(),
                    frame(true, 2, 70_000).len(),
                    frame(true, 9, 0).len(),
                    frame(false, 1, 1000).len(),
                    frame(true, 9, 5).len(),
                    frame(true, 0, 10).len(),
                ];
                let mut at = 0;
                let mut points = Vec::new();
                for (i, s) in sizes.iter().enumerate() {
                    at += s;
                    if i != 4 && i != 5 {
                        points.push(at);
                    }
                }
                points
            };
            for chunk in stream.chunks(piece) {
                t.feed(chunk);
                fed += chunk.len();
                assert_eq!(
                    t.at_rest(),
                    rest_points.contains(&fed),
                    "pieces of {piece}, at {fed}"
                );
            }
            assert!(t.at_rest());
            assert_eq!(t.largest, 70_000);
        }
    }

    #[test]
    fn frame_tracker_mid_header_and_mid_payload_is_not_at_rest() {
        let mut t = FrameTracker::default();
        let f = frame(true, 1, 200);
        t.feed(&f[..1]);
        assert!(!t.at_rest());
        t.feed(&f[1..3]);
        assert!(!t.at_rest());
        t.feed(&f[3..f.len() - 1]);
        assert!(!t.at_rest());
        t.feed(&f[f.len() - 1..]);
        assert!(t.at_rest());
        assert_eq!(t.largest, 200);
    }

    #[test]
    fn write_out_keeps_what_the_socket_does_not_take() {
        let (mut server, client) = pair();
        // More than any socket buffer takes while the client does not read.
        let big = vec![7u8; 16 << 20];
        let mut out = big.clone();
        let err = write_out(&mut server, &mut out).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert!(!out.is_empty() && out.len() < big.len());
        drop(client);
    }
}
