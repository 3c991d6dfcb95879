//! RESP2 on the wire: commands encoded as arrays of bulk strings, replies decoded into
//! [`Reply`] with the `redis-protocol` crate. Every reply from the socket is bounded before the
//! crate parses it: at most [`MAX_REPLY`] bytes buffered and [`MAX_DEPTH`] nested arrays (the
//! crate's parser recurses, so nesting is checked by a skim first).

use redis_protocol::resp2::{
    decode, encode,
    types::{OwnedFrame, Resp2Frame},
};

/// Bytes of one reply (or of the unparsed input) buffered at most.
pub const MAX_REPLY: usize = 1 << 20;
/// Nested arrays in one reply at most (our replies nest two deep: EXEC of SCAN).
pub const MAX_DEPTH: usize = 8;
/// Elements of one array at most (bounds the work a tiny header could ask for).
pub const MAX_ELEMENTS: usize = 1 << 16;

/// One reply (or a pushed pub/sub message) from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$n` bulk string.
    Bulk(Vec<u8>),
    /// `*n` array.
    Array(Vec<Reply>),
    /// `$-1` or `*-1`.
    Nil,
}

impl Reply {
    /// A bulk or status reply as UTF-8 text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Bulk(b) => std::str::from_utf8(b).ok(),
            Reply::Status(s) => Some(s),
            _ => None,
        }
    }

    /// An integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn from_frame(f: OwnedFrame) -> Reply {
        match f {
            OwnedFrame::SimpleString(s) => Reply::Status(String::from_utf8_lossy(&s).into_owned()),
            OwnedFrame::Error(e) => Reply::Error(e),
            OwnedFrame::Integer(i) => Reply::Int(i),
            OwnedFrame::BulkString(b) => Reply::Bulk(b),
            OwnedFrame::Array(a) => Reply::Array(a.into_iter().map(Reply::from_frame).collect()),
            OwnedFrame::Null => Reply::Nil,
        }
    }

    fn to_frame(&self) -> OwnedFrame {
        match self {
            Reply::Status(s) => OwnedFrame::SimpleString(s.as_bytes().to_vec()),
            Reply::Error(e) => OwnedFrame::Error(e.clone()),
            Reply::Int(i) => OwnedFrame::Integer(*i),
            Reply::Bulk(b) => OwnedFrame::BulkString(b.clone()),
            Reply::Array(a) => OwnedFrame::Array(a.iter().map(Reply::to_frame).collect()),
            Reply::Nil => OwnedFrame::Null,
        }
    }

    /// The reply's RESP2 bytes (the in-memory model's answers).
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(&self.to_frame())
    }
}

fn encode_frame(frame: &OwnedFrame) -> Vec<u8> {
    let mut buf = vec![0; frame.encode_len(false)];
    // The buffer is exactly the frame's encoded length, so encoding cannot run out of room.
    let n = encode::encode(&mut buf, frame, false).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// A command: its name and arguments, each a bulk string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub Vec<Vec<u8>>);

impl Command {
    /// A command from its words.
    pub fn new<I, A>(words: I) -> Command
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        Command(words.into_iter().map(|w| w.as_ref().to_vec()).collect())
    }

    /// The command's RESP2 bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(&OwnedFrame::Array(
            self.0
                .iter()
                .map(|w| OwnedFrame::BulkString(w.clone()))
                .collect(),
        ))
    }

    /// The command's name, upper case.
    pub fn name(&self) -> String {
        self.0
            .first()
            .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase())
            .unwrap_or_default()
    }
}

/// Why the input was refused: the connection is closed (and counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not RESP2.
    Malformed(String),
    /// More than [`MAX_REPLY`] bytes without a whole reply.
    TooLarge,
    /// More than [`MAX_DEPTH`] nested arrays or an array of more than [`MAX_ELEMENTS`].
    TooDeep,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(e) => write!(f, "malformed RESP: {e}"),
            DecodeError::TooLarge => write!(f, "reply larger than {MAX_REPLY} bytes"),
            DecodeError::TooDeep => write!(f, "reply nested deeper than {MAX_DEPTH}"),
        }
    }
}

/// Reassembles replies from bytes read in any pieces.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Appends bytes read from the socket.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Forgets what is buffered (a new connection).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The next whole reply, `Ok(None)` if more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        match skim(&self.buf)? {
            None if self.buf.len() > MAX_REPLY => return Err(DecodeError::TooLarge),
            None => return Ok(None),
            Some(_) => {}
        }
        match decode::decode(&self.buf) {
            Ok(Some((frame, used))) => {
                self.buf.drain(..used);
                Ok(Some(Reply::from_frame(frame)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(DecodeError::Malformed(format!("{e:?}"))),
        }
    }
}

/// Walks the headers of the first frame without building it: `Some(len)` when it is whole,
/// `None` when more bytes are needed; refuses nesting deeper than [`MAX_DEPTH`], arrays
/// longer than [`MAX_ELEMENTS`] and bulk strings longer than [`MAX_REPLY`].
fn skim(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    // Elements still expected at each open array level.
    let mut open: Vec<usize> = Vec::new();
    let mut at = 0;
    loop {
        let Some(nl) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = &buf[at..at + nl];
        at += nl + 2;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| DecodeError::Malformed("empty line".into()))?;
        let number = || -> Result<i64, DecodeError> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| DecodeError::Malformed("bad length".into()))
        };
        match kind {
            b'+' | b'-' | b':' => {}
            b'$' => {
                let n = number()?;
                if n > MAX_REPLY as i64 {
                    return Err(DecodeError::TooLarge);
                }
                if n >= 0 {
                    let n = n as usize;
                    if buf.len() < at + n + 2 {
                        return Ok(None);
                    }
                    at += n + 2;
                }
            }
            b'*' => {
                let n = number()?;
                if n > MAX_ELEMENTS as i64 {
                    return Err(DecodeError::TooDeep);
                }
                if n > 0 {
                    if open.len() >= MAX_DEPTH {
                        return Err(DecodeError::TooDeep);
                    }
                    open.push(n as usize);
                    continue;
                }
            }
            other => return Err(DecodeError::Malformed(format!("type byte {other}"))),
        }
        // One element done: close the arrays it completes.
        loop {
            match open.last_mut() {
                None => return Ok(Some(at)),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reply() -> impl Strategy<Value = Reply> {
        let leaf = prop_oneof![
            "[a-zA-Z0-9 ]{0,20}".prop_map(Reply::Status),
            "[a-zA-Z0-9 ]{0,20}".prop_map(Reply::Error),
            any::<i64>().prop_map(Reply::Int),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Reply::Bulk),
            Just(Reply::Nil),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            proptest::collection::vec(inner, 0..5).prop_map(Reply::Array)
        })
    }

    proptest! {
        #[test]
        fn replies_round_trip_split_at_every_byte(replies in proptest::collection::vec(reply(), 1..4)) {
            let bytes: Vec<u8> = replies.iter().flat_map(Reply::encode).collect();
            for cut in 0..=bytes.len() {
                let mut d = Decoder::default();
                let mut got = Vec::new();
                d.feed(&bytes[..cut]);
                while let Some(r) = d.next_reply().unwrap() { got.push(r); }
                d.feed(&bytes[cut..]);
                while let Some(r) = d.next_reply().unwrap() { got.push(r); }
                // An empty array and a nil array both read back as what was written,
                // except that RESP2 cannot tell a nil array from a nil bulk: both are Nil.
                prop_assert_eq!(&got, &replies);
                prop_assert_eq!(d.buffered(), 0);
            }
        }

        #[test]
        fn commands_encode_as_arrays_of_bulk_strings(words in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 1..6)) {
            let cmd = Command(words.clone());
            let mut d = Decoder::default();
            d.feed(&cmd.encode());
            let want = Reply::Array(words.into_iter().map(Reply::Bulk).collect());
            prop_assert_eq!(d.next_reply().unwrap(), Some(want));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut d = Decoder::default();
            d.feed(&bytes);
            for _ in 0..8 {
                match d.next_reply() { Ok(Some(_)) => continue, _ => break }
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let mut d = Decoder::default();
        d.feed(&b"*1\r\n".repeat(100_000));
        assert_eq!(d.next_reply(), Err(DecodeError::TooDeep));
    }

    #[test]
    fn huge_bulk_and_huge_arrays_are_refused() {
        let mut d = Decoder::default();
        d.feed(b"$999999999\r\n");
        assert_eq!(d.next_reply(), Err(DecodeError::TooLarge));
        let mut d = Decoder::default();
        d.feed(b"*99999999\r\n");
        assert_eq!(d.next_reply(), Err(DecodeError::TooDeep));
    }

    #[test]
    fn endless_line_is_refused_at_the_cap() {
        let mut d = Decoder::default();
        d.feed(b"+");
        d.feed(&vec![b'a'; MAX_REPLY + 1]);
        assert_eq!(d.next_reply(), Err(DecodeError::TooLarge));
    }

    #[test]
    fn simple_replies_decode() {
        let mut d = Decoder::default();
        d.feed(b"+OK\r\n:3\r\n$-1\r\n-ERR no\r\n");
        assert_eq!(d.next_reply().unwrap(), Some(Reply::Status("OK".into())));
        assert_eq!(d.next_reply().unwrap(), Some(Reply::Int(3)));
        assert_eq!(d.next_reply().unwrap(), Some(Reply::Nil));
        assert_eq!(d.next_reply().unwrap(), Some(Reply::Error("ERR no".into())));
        assert_eq!(d.next_reply().unwrap(), None);
    }
}
