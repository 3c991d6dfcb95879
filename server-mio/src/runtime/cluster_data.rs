//! The runtime's side of the cluster's shared data (`antenna_cluster::SharedData`, the
//! Redis-backed datastore used with `--cluster`): its two Redis sockets (commands, and the
//! subscriber connection that hears other nodes' changes), the settings that follow a change
//! made on another node, and the `play`/`publish` frames held while a single-use token is
//! spent in Redis. The core decides; this file moves bytes and frames.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use antenna_cluster::data::MAX_HELD_FRAMES;
use antenna_cluster::{DataEvent, DataOutput, Link, SharedData};
use mio::Token;
use tracing::{debug, info};

use super::redis_socket::{Ready, RedisSocket};
use super::{conn_id, Runtime};

/// The shared data's command socket.
pub(super) const REDIS_DATA: Token = Token(5);
/// The shared data's subscriber socket.
pub(super) const REDIS_SUB: Token = Token(6);

/// The shared data's sockets, and the frames waiting for a token spend.
#[derive(Debug)]
pub(super) struct DataLink {
    core: Rc<RefCell<SharedData>>,
    cmd: RedisSocket,
    sub: RedisSocket,
    /// Frames of a connection held while its token spend is asked of Redis, in order.
    held: HashMap<Token, VecDeque<String>>,
    /// Claims under way: the connection, the application and the token.
    claims: HashMap<u64, (Token, String, String)>,
    /// Frames dropped because a connection sent more than [`MAX_HELD_FRAMES`] while held.
    pub(super) held_dropped: u64,
    /// Frames held for a token spend so far.
    pub(super) held_total: u64,
}

impl DataLink {
    fn socket(&mut self, link: Link) -> &mut RedisSocket {
        match link {
            Link::Cmd => &mut self.cmd,
            Link::Sub => &mut self.sub,
        }
    }

    /// Whether a WebSocket text frame goes to the node now (`false`: it is held, or dropped
    /// over the bound). A `play`/`publish` naming a single-use token this node knows waits
    /// for Redis to say whether this node spent it ([`SharedData::claim`]); frames behind it
    /// wait too, so the client's order is kept.
    pub(super) fn admit(&mut self, now: Instant, token: Token, text: &str) -> bool {
        if let Some(q) = self.held.get_mut(&token) {
            if q.len() >= MAX_HELD_FRAMES {
                self.held_dropped += 1;
                info!(
                    conn = token.0,
                    dropped = self.held_dropped,
                    "frame dropped: too many sent while a token spend waits for Redis"
                );
            } else {
                q.push_back(text.to_string());
            }
            return false;
        }
        let mut core = self.core.borrow_mut();
        let Some((app, tok)) = core.token_in_frame(text) else {
            return true;
        };
        // Redis away: the frame goes on; spending its token is refused by the store
        // (`data_store_not_available`).
        let Some(claim) = core.claim(now, &app, &tok) else {
            return true;
        };
        self.held_total += 1;
        debug!(
            conn = token.0,
            claim, "frame held while its token is spent in Redis"
        );
        self.claims.insert(claim, (token, app, tok));
        self.held.insert(token, VecDeque::from([text.to_string()]));
        false
    }
}

impl Runtime {
    /// Cluster mode's shared data: the datastore opened by `datastore::open_cluster` gets
    /// its sockets to the Redis at `redis`.
    pub(super) fn with_shared_data(&mut self, redis: SocketAddr) {
        let Some(core) = self.datastore.cluster.clone() else {
            return;
        };
        let now = Instant::now();
        core.borrow_mut().handle_timeout(now);
        self.shared = Some(DataLink {
            core,
            cmd: RedisSocket::new(redis, REDIS_DATA),
            sub: RedisSocket::new(redis, REDIS_SUB),
            held: HashMap::new(),
            claims: HashMap::new(),
            held_dropped: 0,
            held_total: 0,
        });
    }

    /// Readiness of one of the shared data's sockets.
    pub(super) fn data_ready(&mut self, now: Instant, link: Link, event: &mio::event::Event) {
        let Some(d) = self.shared.as_mut() else {
            return;
        };
        let registry = self.poll.registry();
        let core = d.core.clone();
        let socket = d.socket(link);
        match socket.ready(registry) {
            Ready::Pending => return,
            Ready::Failed(why) => return core.borrow_mut().handle_closed(now, link, &why),
            Ready::Connected => core.borrow_mut().handle_connected(now, link),
            Ready::Open => {}
        }
        if event.is_readable() || event.is_read_closed() || socket.more {
            let mut c = core.borrow_mut();
            if let Err(why) = socket.read(registry, |b| c.handle_input(now, link, b)) {
                c.handle_closed(now, link, &why);
            }
        }
    }

    /// Runs the shared data's timer when due, and reads what a budget left behind.
    pub(super) fn data_timeout(&mut self, now: Instant) {
        let Some(d) = self.shared.as_mut() else {
            return;
        };
        let core = d.core.clone();
        if core.borrow().poll_timeout().is_some_and(|t| t <= now) {
            core.borrow_mut().handle_timeout(now);
        }
        let registry = self.poll.registry();
        for link in [Link::Cmd, Link::Sub] {
            let socket = d.socket(link);
            if socket.more {
                let mut c = core.borrow_mut();
                if let Err(why) = socket.read(registry, |b| c.handle_input(now, link, b)) {
                    c.handle_closed(now, link, &why);
                }
            }
        }
    }

    /// The shared data's next deadline.
    pub(super) fn data_deadline(&self) -> Option<Instant> {
        self.shared
            .as_ref()
            .and_then(|d| d.core.borrow().poll_timeout())
    }

    /// Carries out what the shared data asks for; part of the loop turn's drain point.
    pub(super) fn data_drain(&mut self, now: Instant) {
        let Some(d) = self.shared.as_mut() else {
            return;
        };
        let core = d.core.clone();
        let registry = self.poll.registry();
        let mut events = Vec::new();
        loop {
            let mut any = false;
            loop {
                let Some(o) = core.borrow_mut().poll_output() else {
                    break;
                };
                any = true;
                match o {
                    DataOutput::Connect(link) => {
                        if let Err(why) = d.socket(link).connect(registry) {
                            core.borrow_mut().handle_closed(now, link, &why);
                        }
                    }
                    DataOutput::Close(link) => d.socket(link).close(registry),
                    DataOutput::Transmit(link, b) => d.socket(link).queue(&b),
                    DataOutput::Event(e) => events.push(e),
                }
            }
            for link in [Link::Cmd, Link::Sub] {
                if let Err(why) = d.socket(link).write(registry) {
                    core.borrow_mut().handle_closed(now, link, &why);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        if events.is_empty() {
            return;
        }
        for e in events {
            match e {
                DataEvent::SettingsChanged(app) => {
                    self.node.settings_changed(now, &app);
                    self.drain(now);
                }
                DataEvent::ClaimDone { claim, won } => self.claim_done(now, claim, won),
            }
        }
        // Writes Redis acknowledged release the REST answers waiting for them.
        self.release_held(now);
    }

    /// A token spend was answered: the held frames go to the node, in order, until one needs
    /// another spend.
    fn claim_done(&mut self, now: Instant, claim: u64, won: bool) {
        let Some(d) = self.shared.as_mut() else {
            return;
        };
        let Some((token, app, tok)) = d.claims.remove(&claim) else {
            return;
        };
        debug!(conn = token.0, won, "token spend answered; frames released");
        let mut frames = d.held.remove(&token).unwrap_or_default();
        let open = self.conns.get(&token).is_some_and(|c| c.is_open_ws());
        if let Some(first) = frames.pop_front() {
            if open {
                self.node.handle_ws_text(now, conn_id(token), &first);
            }
        }
        // The request was handled: a token claimed and not spent (refused for another
        // reason) goes back to Redis.
        d.core.borrow_mut().settle(now, &app, &tok);
        while let Some(f) = frames.pop_front() {
            if !open {
                break;
            }
            if d.admit(now, token, &f) {
                self.node.handle_ws_text(now, conn_id(token), &f);
            } else if let Some(q) = d.held.get_mut(&token) {
                // Held again behind a new spend: the rest follow it.
                q.extend(frames.drain(..));
            }
        }
        self.dirty.push(token);
    }
}
