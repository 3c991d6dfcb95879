//! Reloading: one record after another node's change, every application when a connection
//! comes (back) up, and refilling a Redis that lost its data from memory.

use std::collections::HashSet;
use std::time::Instant;

use antenna_store::WriteOp;
use tracing::warn;

use super::records::{command_of, op_from_value, subscriber_field, Kind};
use super::{Link, SharedData, Wait};
use crate::resp::{Command, Reply};

impl SharedData {
    /// Sends the backlog, then reloads every application.
    pub(super) fn resync(&mut self, now: Instant) {
        if !self.cmd.is_up() {
            return;
        }
        while let Some((seq, op)) = self.backlog.pop_front() {
            if !self.send_write(now, seq, op.clone()) {
                self.backlog.push_front((seq, op));
                return;
            }
        }
        self.stats.resyncs += 1;
        self.refilling.clear();
        let apps = self.config.apps.clone();
        let n = apps.len();
        for (i, app) in apps.into_iter().enumerate() {
            for kind in [
                Kind::Settings,
                Kind::Broadcasts,
                Kind::Tokens,
                Kind::Subscribers,
            ] {
                let key = self.config.key(&app, kind);
                let verb = if kind == Kind::Settings {
                    "GET"
                } else {
                    "HGETALL"
                };
                let last = i + 1 == n && kind == Kind::Subscribers;
                let wait = Wait::Load {
                    app: app.clone(),
                    kind,
                    last,
                };
                if self
                    .send(now, Link::Cmd, Command::new([verb, key.as_str()]), wait)
                    .is_none()
                {
                    return;
                }
            }
        }
        if n == 0 {
            self.loaded = true;
        }
    }

    /// Applies one record as read from Redis (`None`: deleted).
    pub(super) fn apply_value(&mut self, app: &str, kind: Kind, id: &str, value: Option<&[u8]>) {
        let op = match op_from_value(app, kind, id, value) {
            Ok(op) => op,
            // Settings are never deleted: a missing key is handled by `load`.
            Err(()) => return,
        };
        match op {
            Some(op) => self.data.apply(&op),
            None => {
                self.stats.bad_values += 1;
                warn!(
                    app,
                    kind = kind.name(),
                    id,
                    "shared data: unreadable record from Redis"
                );
            }
        }
    }

    /// One part of an application's snapshot.
    pub(super) fn load(&mut self, now: Instant, app: &str, kind: Kind, reply: Reply) {
        if kind == Kind::Settings {
            match reply {
                Reply::Bulk(v) => self.apply_value(app, kind, app, Some(&v)),
                _ if self.data.stored_settings(app).is_some() => {
                    // Redis lost this application (restarted empty): refill it from memory.
                    warn!(
                        app,
                        "shared data: Redis has no data for this application; \
                          refilling it from this node's memory"
                    );
                    self.refilling.insert(app.to_string());
                    self.refill(now, app);
                }
                _ => {}
            }
            return;
        }
        let Reply::Array(items) = reply else {
            self.stats.bad_values += 1;
            return;
        };
        let mut fields = HashSet::new();
        for pair in items.chunks(2) {
            if let [Reply::Bulk(f), Reply::Bulk(v)] = pair {
                let f = String::from_utf8_lossy(f).into_owned();
                self.apply_value(app, kind, &f, Some(v));
                fields.insert(f);
            }
        }
        // A refilled application keeps what memory has, except single-use tokens: which were
        // spent while Redis lost its data no node can know, so they are gone with it.
        if self.refilling.contains(app) && kind != Kind::Tokens {
            return;
        }
        // Records Redis no longer has are gone.
        let gone: Vec<String> = match (kind, self.data.app(app)) {
            (_, None) => Vec::new(),
            (Kind::Broadcasts, Some(a)) => a.broadcasts.keys().cloned().collect(),
            (Kind::Tokens, Some(a)) => a.tokens.keys().cloned().collect(),
            (Kind::Subscribers, Some(a)) => a
                .subscribers
                .keys()
                .map(|(s, u)| subscriber_field(s, u))
                .collect(),
            (Kind::Settings, Some(_)) => Vec::new(),
        };
        for id in gone.into_iter().filter(|f| !fields.contains(f)) {
            self.apply_value(app, kind, &id, None);
        }
    }

    /// Writes every record of `app` held in memory to Redis, where absent, single-use tokens
    /// excepted (see `load`).
    fn refill(&mut self, now: Instant, app: &str) {
        let Some(a) = self.data.app(app).cloned() else {
            return;
        };
        let mut ops: Vec<WriteOp> = Vec::new();
        if let Some(s) = a.settings {
            ops.push(WriteOp::PutSettings {
                app: app.into(),
                settings: Box::new(s),
            });
        }
        ops.extend(a.broadcasts.into_values().map(|b| WriteOp::PutBroadcast {
            app: app.into(),
            broadcast: Box::new(b),
        }));
        ops.extend(
            a.subscribers
                .into_values()
                .map(|subscriber| WriteOp::PutSubscriber {
                    app: app.into(),
                    subscriber,
                }),
        );
        for op in ops {
            let (cmd, ..) = command_of(&self.config, &op, true);
            if self.send(now, Link::Cmd, cmd, Wait::Ignore).is_some() {
                self.stats.writes += 1;
            }
        }
        // The other nodes reload the application (what they hold may be older).
        self.publish(now, app, Kind::Settings, "*");
    }
}
