//! An in-memory Redis that speaks the same RESP bytes, for deterministic tests and the
//! simulation: the subset Antenna uses (PING, SELECT, GET, SET with EX/PX/NX/XX, GETDEL,
//! DEL, EXISTS, EXPIRE, PEXPIRE, PTTL, HSET, HSETNX, HGET, HDEL, HGETALL, KEYS with `*` patterns, PUBLISH,
//! SUBSCRIBE). Time is given (`now`); keys expire exactly at their deadline. One database.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::resp::{Decoder, Reply};

/// A client connection of the model.
pub type ClientId = u64;

#[derive(Debug, Clone)]
enum Value {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
}

#[derive(Debug, Default)]
struct Client {
    decoder: Decoder,
    out: VecDeque<u8>,
    channels: Vec<Vec<u8>>,
}

/// The model. See the module docs.
#[derive(Debug, Default)]
pub struct MemRedis {
    keys: HashMap<Vec<u8>, (Value, Option<Instant>)>,
    clients: BTreeMap<ClientId, Client>,
    next_client: ClientId,
    /// Commands executed (the per-operation counts of the DESIGN notes).
    pub commands: u64,
}

fn err(msg: &str) -> Reply {
    Reply::Error(format!("ERR {msg}"))
}

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn glob(pattern: &[u8], key: &[u8]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((b'*', rest)) => (0..=key.len()).any(|i| glob(rest, &key[i..])),
        Some((c, rest)) => key.first() == Some(c) && glob(rest, &key[1..]),
    }
}

fn int_arg(a: &[u8]) -> Option<i64> {
    std::str::from_utf8(a).ok()?.parse().ok()
}

impl MemRedis {
    /// An empty model.
    pub fn new() -> MemRedis {
        MemRedis::default()
    }

    /// A client connects.
    pub fn connect(&mut self) -> ClientId {
        self.next_client += 1;
        self.clients.insert(self.next_client, Client::default());
        self.next_client
    }

    /// A client goes away (its subscriptions with it).
    pub fn disconnect(&mut self, client: ClientId) {
        self.clients.remove(&client);
    }

    /// Whether `client` is connected.
    pub fn is_connected(&self, client: ClientId) -> bool {
        self.clients.contains_key(&client)
    }

    /// Bytes the client wrote. Returns false if they were not RESP (the client is dropped, as
    /// Redis does).
    pub fn handle_input(&mut self, now: Instant, client: ClientId, data: &[u8]) -> bool {
        let Some(c) = self.clients.get_mut(&client) else {
            return false;
        };
        c.decoder.feed(data);
        loop {
            let Some(c) = self.clients.get_mut(&client) else {
                return false;
            };
            let cmd = match c.decoder.next_reply() {
                Ok(Some(Reply::Array(words))) => words,
                Ok(None) => return true,
                Ok(Some(_)) | Err(_) => {
                    self.disconnect(client);
                    return false;
                }
            };
            let words: Option<Vec<Vec<u8>>> = cmd
                .into_iter()
                .map(|w| match w {
                    Reply::Bulk(b) => Some(b),
                    _ => None,
                })
                .collect();
            let reply = match words {
                Some(w) if !w.is_empty() => self.execute(now, client, &w),
                _ => err("bad command"),
            };
            if let Some(c) = self.clients.get_mut(&client) {
                c.out.extend(reply.encode());
            }
        }
    }

    /// Bytes waiting for the client to read.
    pub fn poll_transmit(&mut self, client: ClientId) -> Option<Vec<u8>> {
        let c = self.clients.get_mut(&client)?;
        if c.out.is_empty() {
            return None;
        }
        Some(c.out.drain(..).collect())
    }

    fn live(&mut self, now: Instant, key: &[u8]) -> Option<&mut (Value, Option<Instant>)> {
        if self
            .keys
            .get(key)
            .is_some_and(|(_, exp)| exp.is_some_and(|e| now >= e))
        {
            self.keys.remove(key);
        }
        self.keys.get_mut(key)
    }

    /// The hash at `key` (a new empty one if the key is absent); `None` if it holds a string.
    fn hash_at(&mut self, now: Instant, key: &[u8]) -> Option<&mut BTreeMap<Vec<u8>, Vec<u8>>> {
        if self.live(now, key).is_none() {
            self.keys
                .insert(key.to_vec(), (Value::Hash(BTreeMap::new()), None));
        }
        match self.keys.get_mut(key) {
            Some((Value::Hash(h), _)) => Some(h),
            _ => None,
        }
    }

    /// Keys alive at `now` matching a `*` pattern, sorted.
    pub fn keys(&mut self, now: Instant, pattern: &[u8]) -> Vec<Vec<u8>> {
        self.keys
            .retain(|_, (_, exp)| !exp.is_some_and(|e| now >= e));
        let mut k: Vec<Vec<u8>> = self
            .keys
            .keys()
            .filter(|k| glob(pattern, k))
            .cloned()
            .collect();
        k.sort();
        k
    }

    /// The hash stored at `key` at `now`, as text fields and values (empty: no such hash).
    pub fn hash(&mut self, now: Instant, key: &[u8]) -> BTreeMap<String, String> {
        match self.live(now, key) {
            Some((Value::Hash(h), _)) => h
                .iter()
                .map(|(f, v)| {
                    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                    (text(f), text(v))
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// The string stored at `key` at `now`.
    pub fn get(&mut self, now: Instant, key: &[u8]) -> Option<Vec<u8>> {
        match self.live(now, key) {
            Some((Value::Str(v), _)) => Some(v.clone()),
            _ => None,
        }
    }

    fn execute(&mut self, now: Instant, client: ClientId, w: &[Vec<u8>]) -> Reply {
        self.commands += 1;
        let name = String::from_utf8_lossy(&w[0]).to_ascii_uppercase();
        let args = &w[1..];
        match (name.as_str(), args.len()) {
            ("PING", 0) => Reply::Status("PONG".into()),
            ("SELECT", 1) => match int_arg(&args[0]) {
                Some(0) => ok(),
                _ => err("DB index is out of range"),
            },
            ("GET", 1) => match self.live(now, &args[0]) {
                Some((Value::Str(v), _)) => Reply::Bulk(v.clone()),
                Some(_) => wrong_type(),
                None => Reply::Nil,
            },
            ("GETDEL", 1) => match self.live(now, &args[0]) {
                Some((Value::Str(v), _)) => {
                    let v = v.clone();
                    self.keys.remove(&args[0]);
                    Reply::Bulk(v)
                }
                Some(_) => wrong_type(),
                None => Reply::Nil,
            },
            ("SET", n) if n >= 2 => self.set(now, args),
            ("DEL", n) | ("EXISTS", n) if n >= 1 => {
                let mut count = 0;
                for k in args {
                    if self.live(now, k).is_some() {
                        count += 1;
                        if name == "DEL" {
                            self.keys.remove(k);
                        }
                    }
                }
                Reply::Int(count)
            }
            ("EXPIRE", 2) | ("PEXPIRE", 2) => {
                let Some(n) = int_arg(&args[1]) else {
                    return err("value is not an integer or out of range");
                };
                let ms = if name == "EXPIRE" {
                    n.saturating_mul(1000)
                } else {
                    n
                };
                match self.live(now, &args[0]) {
                    Some(entry) => {
                        if ms <= 0 {
                            self.keys.remove(&args[0]);
                        } else {
                            entry.1 = Some(now + Duration::from_millis(ms as u64));
                        }
                        Reply::Int(1)
                    }
                    None => Reply::Int(0),
                }
            }
            ("PTTL", 1) => match self.live(now, &args[0]) {
                Some((_, Some(e))) => Reply::Int(e.duration_since(now).as_millis() as i64),
                Some((_, None)) => Reply::Int(-1),
                None => Reply::Int(-2),
            },
            ("HSET", n) if n >= 3 && n % 2 == 1 => {
                let Some(h) = self.hash_at(now, &args[0]) else {
                    return wrong_type();
                };
                let mut added = 0;
                for pair in args[1..].chunks(2) {
                    if h.insert(pair[0].clone(), pair[1].clone()).is_none() {
                        added += 1;
                    }
                }
                Reply::Int(added)
            }
            ("HGET", 2) => match self.live(now, &args[0]) {
                Some((Value::Hash(h), _)) => {
                    h.get(&args[1]).cloned().map_or(Reply::Nil, Reply::Bulk)
                }
                Some(_) => wrong_type(),
                None => Reply::Nil,
            },
            ("HSETNX", 3) => {
                let Some(h) = self.hash_at(now, &args[0]) else {
                    return wrong_type();
                };
                if h.contains_key(&args[1]) {
                    Reply::Int(0)
                } else {
                    h.insert(args[1].clone(), args[2].clone());
                    Reply::Int(1)
                }
            }
            ("HDEL", n) if n >= 2 => match self.live(now, &args[0]) {
                Some((Value::Hash(h), _)) => {
                    let removed = args[1..].iter().filter(|f| h.remove(*f).is_some()).count();
                    if h.is_empty() {
                        self.keys.remove(&args[0]);
                    }
                    Reply::Int(removed as i64)
                }
                Some(_) => wrong_type(),
                None => Reply::Int(0),
            },
            ("HGETALL", 1) => match self.live(now, &args[0]) {
                Some((Value::Hash(h), _)) => Reply::Array(
                    h.iter()
                        .flat_map(|(k, v)| [Reply::Bulk(k.clone()), Reply::Bulk(v.clone())])
                        .collect(),
                ),
                Some(_) => wrong_type(),
                None => Reply::Array(Vec::new()),
            },
            ("KEYS", 1) => Reply::Array(
                self.keys(now, &args[0])
                    .into_iter()
                    .map(Reply::Bulk)
                    .collect(),
            ),
            ("PUBLISH", 2) => {
                let message = Reply::Array(vec![
                    Reply::Bulk(b"message".to_vec()),
                    Reply::Bulk(args[0].clone()),
                    Reply::Bulk(args[1].clone()),
                ])
                .encode();
                let mut n = 0;
                for c in self.clients.values_mut() {
                    if c.channels.contains(&args[0]) {
                        c.out.extend(message.iter().copied());
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            ("SUBSCRIBE", 1) => {
                let Some(c) = self.clients.get_mut(&client) else {
                    return Reply::Nil;
                };
                if !c.channels.contains(&args[0]) {
                    c.channels.push(args[0].clone());
                }
                Reply::Array(vec![
                    Reply::Bulk(b"subscribe".to_vec()),
                    Reply::Bulk(args[0].clone()),
                    Reply::Int(c.channels.len() as i64),
                ])
            }
            _ => err(&format!("unknown command or wrong arguments '{name}'")),
        }
    }

    fn set(&mut self, now: Instant, args: &[Vec<u8>]) -> Reply {
        let (key, value) = (&args[0], &args[1]);
        let mut expiry = None;
        let (mut nx, mut xx) = (false, false);
        let mut rest = args[2..].iter();
        while let Some(opt) = rest.next() {
            match opt.to_ascii_uppercase().as_slice() {
                b"NX" => nx = true,
                b"XX" => xx = true,
                o @ (b"EX" | b"PX") => {
                    let Some(n) = rest.next().and_then(|a| int_arg(a)).filter(|n| *n > 0) else {
                        return err("invalid expire time in 'set' command");
                    };
                    let ms = if o == b"EX" {
                        n.saturating_mul(1000)
                    } else {
                        n
                    };
                    expiry = Some(now + Duration::from_millis(ms as u64));
                }
                _ => return err("syntax error"),
            }
        }
        let exists = self.live(now, key).is_some();
        if (nx && exists) || (xx && !exists) {
            return Reply::Nil;
        }
        self.keys
            .insert(key.clone(), (Value::Str(value.clone()), expiry));
        ok()
    }
}

fn wrong_type() -> Reply {
    Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests {
    use super::*;
    use crate::resp::Command;

    fn run(m: &mut MemRedis, now: Instant, c: ClientId, words: &[&str]) -> Reply {
        assert!(m.handle_input(now, c, &Command::new(words).encode()));
        let mut d = Decoder::default();
        d.feed(&m.poll_transmit(c).unwrap());
        d.next_reply().unwrap().unwrap()
    }

    #[test]
    fn set_get_with_expiry_and_nx() {
        let t = Instant::now();
        let mut m = MemRedis::new();
        let c = m.connect();
        assert_eq!(run(&mut m, t, c, &["SET", "a", "1", "PX", "500"]), ok());
        assert_eq!(run(&mut m, t, c, &["SET", "a", "2", "NX"]), Reply::Nil);
        assert_eq!(run(&mut m, t, c, &["GET", "a"]), Reply::Bulk(b"1".to_vec()));
        assert_eq!(run(&mut m, t, c, &["PTTL", "a"]), Reply::Int(500));
        let later = t + Duration::from_millis(500);
        assert_eq!(run(&mut m, later, c, &["GET", "a"]), Reply::Nil);
        assert_eq!(
            run(&mut m, later, c, &["SET", "a", "3", "NX", "EX", "2"]),
            ok()
        );
        assert_eq!(run(&mut m, later, c, &["EXPIRE", "a", "0"]), Reply::Int(1));
        assert_eq!(run(&mut m, later, c, &["EXISTS", "a"]), Reply::Int(0));
        assert!(matches!(
            run(&mut m, t, c, &["SET", "a", "1", "EX", "x"]),
            Reply::Error(_)
        ));
    }

    #[test]
    fn getdel_spends_once_across_clients() {
        let t = Instant::now();
        let mut m = MemRedis::new();
        let (a, b) = (m.connect(), m.connect());
        run(&mut m, t, a, &["SET", "token", "x"]);
        assert_eq!(
            run(&mut m, t, b, &["GETDEL", "token"]),
            Reply::Bulk(b"x".to_vec())
        );
        assert_eq!(run(&mut m, t, a, &["GETDEL", "token"]), Reply::Nil);
    }

    #[test]
    fn hashes_keys_and_del() {
        let t = Instant::now();
        let mut m = MemRedis::new();
        let c = m.connect();
        assert_eq!(
            run(&mut m, t, c, &["HSET", "h", "f", "1", "g", "2"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut m, t, c, &["HGETALL", "h"]),
            Reply::Array(
                ["f", "1", "g", "2"]
                    .iter()
                    .map(|s| Reply::Bulk(s.as_bytes().to_vec()))
                    .collect()
            )
        );
        run(&mut m, t, c, &["SET", "x:1", "a"]);
        run(&mut m, t, c, &["SET", "x:2", "b"]);
        assert_eq!(
            run(&mut m, t, c, &["KEYS", "x:*"]),
            Reply::Array(vec![
                Reply::Bulk(b"x:1".to_vec()),
                Reply::Bulk(b"x:2".to_vec())
            ])
        );
        assert_eq!(
            run(&mut m, t, c, &["DEL", "x:1", "x:2", "x:3"]),
            Reply::Int(2)
        );
        assert!(matches!(run(&mut m, t, c, &["GET", "h"]), Reply::Error(_)));
        assert!(matches!(run(&mut m, t, c, &["FLUSHALL"]), Reply::Error(_)));
    }

    #[test]
    fn publish_reaches_subscribers_only() {
        let t = Instant::now();
        let mut m = MemRedis::new();
        let (s, p) = (m.connect(), m.connect());
        run(&mut m, t, s, &["SUBSCRIBE", "ch"]);
        assert_eq!(run(&mut m, t, p, &["PUBLISH", "ch", "hi"]), Reply::Int(1));
        assert_eq!(
            run(&mut m, t, p, &["PUBLISH", "other", "hi"]),
            Reply::Int(0)
        );
        let mut d = Decoder::default();
        d.feed(&m.poll_transmit(s).unwrap());
        assert_eq!(
            d.next_reply().unwrap().unwrap(),
            Reply::Array(vec![
                Reply::Bulk(b"message".to_vec()),
                Reply::Bulk(b"ch".to_vec()),
                Reply::Bulk(b"hi".to_vec())
            ])
        );
    }

    #[test]
    fn garbage_drops_the_client() {
        let mut m = MemRedis::new();
        let c = m.connect();
        assert!(!m.handle_input(Instant::now(), c, b":1\r\n"));
        assert!(!m.is_connected(c));
    }
}
