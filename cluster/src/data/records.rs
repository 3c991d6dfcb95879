//! How the shared data's records map to Redis: the kinds of keys, the command of each write,
//! the record a value read back stands for, and the change messages.

use antenna_store::{AppSettings, Broadcast, Subscriber, Token, WriteOp};
use serde::{Deserialize, Serialize};

use super::DataConfig;
use crate::resp::Command;

/// The kinds of records, one Redis key each per application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `HASH` stream id → Broadcast JSON.
    Broadcasts,
    /// `HASH` token id → Token JSON.
    Tokens,
    /// `HASH` `["streamId","subscriberId"]` → Subscriber JSON.
    Subscribers,
    /// `STRING`: the AppSettings JSON.
    Settings,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Broadcasts => "broadcasts",
            Kind::Tokens => "tokens",
            Kind::Subscribers => "subscribers",
            Kind::Settings => "settings",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Change {
    pub(super) node: String,
    pub(super) app: String,
    pub(super) kind: Kind,
    pub(super) id: String,
}

pub(super) fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

pub(super) fn subscriber_field(stream: &str, sub: &str) -> String {
    json(&[stream, sub])
}

/// The Redis command of a write and the change it announces. `seed`: only if absent.
pub(super) fn command_of(
    c: &DataConfig,
    op: &WriteOp,
    seed: bool,
) -> (Command, String, Kind, String) {
    match op {
        WriteOp::PutBroadcast { app, broadcast } => {
            let (k, id) = (c.key(app, Kind::Broadcasts), &broadcast.stream_id);
            let set = if seed { "HSETNX" } else { "HSET" };
            let cmd = Command::new([set, &k, id, &json(&**broadcast)]);
            (cmd, app.clone(), Kind::Broadcasts, id.clone())
        }
        WriteOp::DeleteBroadcast { app, stream_id } => {
            let k = c.key(app, Kind::Broadcasts);
            let cmd = Command::new(["HDEL", k.as_str(), stream_id]);
            (cmd, app.clone(), Kind::Broadcasts, stream_id.clone())
        }
        WriteOp::PutToken { app, token } => {
            let (k, id) = (c.key(app, Kind::Tokens), &token.token_id);
            let set = if seed { "HSETNX" } else { "HSET" };
            let cmd = Command::new([set, &k, id, &json(token)]);
            (cmd, app.clone(), Kind::Tokens, id.clone())
        }
        WriteOp::DeleteToken { app, token_id } => {
            let k = c.key(app, Kind::Tokens);
            let cmd = Command::new(["HDEL", k.as_str(), token_id]);
            (cmd, app.clone(), Kind::Tokens, token_id.clone())
        }
        WriteOp::PutSubscriber { app, subscriber } => {
            let k = c.key(app, Kind::Subscribers);
            let f = subscriber_field(&subscriber.stream_id, &subscriber.subscriber_id);
            let set = if seed { "HSETNX" } else { "HSET" };
            let cmd = Command::new([set, &k, &f, &json(subscriber)]);
            (cmd, app.clone(), Kind::Subscribers, f)
        }
        WriteOp::DeleteSubscriber {
            app,
            stream_id,
            subscriber_id,
        } => {
            let k = c.key(app, Kind::Subscribers);
            let f = subscriber_field(stream_id, subscriber_id);
            let cmd = Command::new(["HDEL", k.as_str(), &f]);
            (cmd, app.clone(), Kind::Subscribers, f)
        }
        WriteOp::PutSettings { app, settings } => {
            let k = c.key(app, Kind::Settings);
            let mut words = vec!["SET".to_string(), k, json(&**settings)];
            if seed {
                words.push("NX".into());
            }
            (
                Command::new(words),
                app.clone(),
                Kind::Settings,
                app.clone(),
            )
        }
    }
}

/// The write a value read from Redis stands for (`None` value: the record was deleted);
/// `Ok(None)` if the value cannot be read; `Err` for a missing settings key (never deleted).
pub(super) fn op_from_value(
    app: &str,
    kind: Kind,
    id: &str,
    value: Option<&[u8]>,
) -> Result<Option<WriteOp>, ()> {
    let app_s = app.to_string();
    Ok(match (kind, value) {
        (Kind::Broadcasts, Some(v)) => {
            serde_json::from_slice::<Broadcast>(v)
                .ok()
                .map(|b| WriteOp::PutBroadcast {
                    app: app_s,
                    broadcast: Box::new(b),
                })
        }
        (Kind::Broadcasts, None) => Some(WriteOp::DeleteBroadcast {
            app: app_s,
            stream_id: id.to_string(),
        }),
        (Kind::Tokens, Some(v)) => serde_json::from_slice::<Token>(v)
            .ok()
            .map(|token| WriteOp::PutToken { app: app_s, token }),
        (Kind::Tokens, None) => Some(WriteOp::DeleteToken {
            app: app_s,
            token_id: id.to_string(),
        }),
        (Kind::Subscribers, Some(v)) => {
            serde_json::from_slice::<Subscriber>(v)
                .ok()
                .map(|subscriber| WriteOp::PutSubscriber {
                    app: app_s,
                    subscriber,
                })
        }
        (Kind::Subscribers, None) => {
            serde_json::from_str::<[String; 2]>(id)
                .ok()
                .map(|[stream_id, subscriber_id]| WriteOp::DeleteSubscriber {
                    app: app_s,
                    stream_id,
                    subscriber_id,
                })
        }
        (Kind::Settings, Some(v)) => {
            serde_json::from_slice::<AppSettings>(v)
                .ok()
                .map(|s| WriteOp::PutSettings {
                    app: app_s,
                    settings: Box::new(s),
                })
        }
        (Kind::Settings, None) => return Err(()),
    })
}
