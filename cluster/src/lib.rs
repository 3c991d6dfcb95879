//! Antenna's cluster core: a Sans-IO Redis connection and the shared registry of nodes and
//! live streams, plus an in-memory Redis model behind the same RESP bytes.
//!
//! Pure like the other cores: no sockets, threads, clocks or randomness; time comes in as
//! `now`, bytes in and out through `handle_*` / `poll_output` / `poll_timeout`.
//!
//! - [`resp`]: RESP2 commands and replies (the `redis-protocol` crate), bounded.
//! - [`conn`]: one connection: pipelined commands matched to replies in order, pub/sub
//!   messages, reconnect with back-off, "unavailable" while down.
//! - [`registry`]: [`Cluster`], this node's heartbeat and live streams, stream look-ups, each
//!   room's members (`registry/rooms.rs`), viewer counts across nodes (`registry/viewers.rs`).
//! - [`data`]: [`SharedData`], the cluster's datastore (broadcasts, tokens, subscribers,
//!   settings) in Redis behind `antenna_store::Store`.
//! - `model` (cargo feature `testing`): `MemRedis`, the in-memory Redis of the tests and the
//!   simulation.
//! - [`relay`]: [`RelayClient`], the AMS client signalling of one relay (edge → origin), and
//!   the cluster credential ([`cluster_token`], [`verify_cluster_token`]).
//! - `testing` (cargo feature `testing`): `testing::Link`, a cluster core wired to a model,
//!   with Redis outages.
//!
//! # DESIGN: what is in Redis
//!
//! | key | value | written | lifetime |
//! |---|---|---|---|
//! | `antenna:node:{node_id}` | JSON [`NodeInfo`]: `id`, `http`, `udp`, `load` | `SET .. PX ttl` at every heartbeat ([`registry::HEARTBEAT`], 2 s) and as soon as Redis is (back) up | [`registry::TTL`] (6 s) after the last heartbeat; `DEL` on a graceful stop |
//! | `antenna:stream:{app}/{stream}` | JSON [`StreamEntry`]: `origin` (node id), `http` | `SET .. PX ttl` when the publish goes live and at every heartbeat | TTL after the origin's last heartbeat; `DEL` when the publish ends |
//! | `antenna:room:{app}/{room}` | HASH member stream id → its node id (streams published with `mainTrack` = room) | `HSET` + `PEXPIRE .. ttl` when the member goes live and at every heartbeat of its node | the key: TTL after the last heartbeat of a node with a member; `HDEL` when the member ends or its node stops gracefully (a dead node's fields stay until the key expires: their stream look-up finds nothing) |
//! | `antenna:viewers:{app}/{stream}` | HASH node id → its WebRTC viewers of the stream (streams it publishes or relays) | at the heartbeat, when the count changed: `HSET` (`HDEL` at 0); `PEXPIRE .. ttl` at every heartbeat while non-zero | the key: TTL after the last heartbeat of a node with viewers; a dead node's field stays until then, but readers skip nodes whose key is gone (`EXISTS`) |
//! | `antenna:data:{app}:broadcasts` | HASH stream id → Broadcast (AMS JSON) | `HSET`/`HDEL` per REST change, live status and viewer-count change | no TTL (the data of the service) |
//! | `antenna:data:{app}:tokens` | HASH token id → Token JSON | `HSET` at REST create; `HDEL` to spend (atomic: the node that gets `1` spent it), at REST delete and expiry purges | no TTL; expired tokens are purged by the nodes |
//! | `antenna:data:{app}:subscribers` | HASH `["streamId","subscriberId"]` → Subscriber JSON | `HSET`/`HDEL` per REST change | no TTL |
//! | `antenna:data:{app}:settings` | STRING: AppSettings JSON | `SET` per REST change; `SET NX` of the configuration's seed at start | no TTL |
//! | channel `antenna:data` | JSON `{node, app, kind, id}` after each data write (`id` `*`: reload the application) | `PUBLISH` | pub/sub, at most 4 KiB read |
//!
//! The shared data ([`data`]) is a cache in every node, written through to Redis: each write is
//! one `HSET`/`HDEL`/`SET` plus one `PUBLISH`; each other node then reloads that record (one
//! `HGET`/`GET`). A write is durable (a REST answer released) when Redis acknowledges it.
//! When a connection comes back, the node sends what it wrote meanwhile (bounded backlog) and
//! reloads everything (`GET` + three `HGETALL` per application). Redis dead: reads and local
//! streams go on from memory, REST answers 503, token spends are refused. A partitioned node
//! keeps serving from a possibly stale cache and catches up at reconnection (last writer
//! wins per record; a live status or viewer count write replaces the whole broadcast record,
//! so a REST update made elsewhere at the same moment can be overwritten).
//!
//! A node killed without a word (`kill -9`, a lost machine) is gone from Redis, its streams
//! with it, at most [`registry::TTL`] after its last heartbeat: 6 s by default, 4 to 6 s after
//! the death. While Redis is away, local publishing and playing go on untouched; registry writes
//! are skipped and look-ups answer at once that the data store is not available; when Redis
//! returns, the node re-registers itself and all its streams in the same poll (Redis may have
//! restarted empty). A partitioned node is, to the others, a dead node: its entries expire;
//! when the partition heals its next heartbeat brings them back.
//!
//! # DESIGN: the origin → edge relay
//!
//! One relay per stream per edge node, shared by the edge's players. The edge plays the
//! stream from its origin as a player would: [`RelayClient`] speaks AMS over a WebSocket to
//! the origin (`play` with a cluster credential, the origin's offer, the answer, candidates,
//! `play_finished`), and the edge's media layer runs the relay session (`MediaCmd::StartRelay`
//! in `rtc-core/src/sfu/relay.rs`): full ICE and controlling against the origin's ICE-lite
//! play session, DTLS client, on a relay UDP address of its own (the origin has one address
//! for every session, so two relays from one origin must differ on the edge's side of the
//! 5-tuple). Inside the edge the relay is a publisher: its packets are forwarded to the edge's
//! players, their keyframe requests go upstream as PLIs. The credential is
//! `antenna-cluster.` + hex HMAC-SHA256 of `app/stream` under the shared secret, checked in
//! constant time: one seen on the wire opens that one stream only. The relay ends when the
//! origin says `play_finished` (its stream ended), refuses, breaks the protocol or sends no
//! offer within 10 s, or when the edge's last player leaves (`stop`). Redis sees one `GET` per
//! relay (the look-up of the stream's origin), nothing per viewer.
//!
//! A conference spanning nodes: a node with a room player asks for the room's members
//! (`HGETALL`, at the first room play and then every 2 s while it has room players); each
//! member of another node is looked up (`GET` of its stream key) and relayed like a played
//! stream, the relay joining the local room as a subtrack; members already here (published
//! or relayed) cost nothing more. A room's relays end with the member's origin stream, or at
//! the poll after the room's last local player left. Bounds: 16 members relayed per room,
//! 64 rooms asked per poll, 256 members read per room.
//!
//! # DESIGN: Redis operations per second
//!
//! What the code issues (the counters in [`registry`] and [`data`], checked against Redis's
//! `INFO commandstats` by `bench/relay.sh`; BENCHMARKS.md, "Cluster: fan-out through an
//! edge"), with N nodes and H = 2 s the heartbeat:
//!
//! | event | commands | measured (2 nodes) |
//! |---|---|---|
//! | heartbeat, per node | 1 `SET` every H | idle 10 s: 10 `SET` |
//! | live stream, on its origin | 1 `SET` when live, 1 `SET` every H, 1 `DEL` at its end | 15.7 s, one stream: 24 `SET` (16 heartbeats, 8 for the stream) |
//! | a play on an edge that has no relay of the stream | 1 `GET` (the look-up); later players of that stream on that edge: 0 | 100 edge players: 1 `GET` |
//! | a shared-data write | `HSET`/`HDEL`/`SET` + `PUBLISH` on the writer, 1 `HGET`/`GET` reload on each of the N − 1 others: N + 1 | as many `HSET`, `PUBLISH` and `HGET` |
//! | publish start and end of a stream with a broadcast record | 1 write each (live status) | included below |
//! | play start and end on the stream's origin (a record) | 1 write each (viewer count) | 100 players: 201 `HSET` (with the 1 status) |
//! | play start and end on an edge | 0 at once (the relay is no viewer on the origin); the count below | 100 players: 4-5 `HSET` (with the status; measured before the viewer counts, which add at most 1 record write per H) |
//! | viewer counts, per stream published or relayed on a node | every H: 1 `HSET`/`HDEL` if its count changed, 1 `PEXPIRE` if non-zero, 1 `HGETALL`; per node every H: 1 `EXISTS` per other node seen in those hashes; on the origin, a broadcast record write when the other nodes' sum changed (at most 1 per H) | `cluster/tests/viewers.rs`: an unchanged count, 13 s: 1 `HSET` |
//! | a live room member, on its node | 1 `HSET` + 1 `PEXPIRE` when live and every H, 1 `HDEL` at its end | not measured |
//! | a room with players on a node | 1 `HGETALL` at its first room play and every H; 1 `GET` per member of another node not relayed yet | not measured |
//!
//! A stream without a broadcast record (published without a REST create) writes no shared
//! data at all. At N = 100 nodes, 1,000 live streams and 100,000 viewers, each watching 10
//! minutes (so 100,000 / 600 s = 167 plays start and 167 end per second):
//!
//! - registry: heartbeats 100 / 2 = 50/s, stream refreshes 1,000 / 2 = 500/s: 550/s, whatever
//!   the viewers;
//! - viewers on the origins, streams with records: (167 + 167) writes/s × (100 + 1) = 33,700/s;
//!   with the registry 33,700 + 550 = about 34,300 commands/s (and the `PUBLISH`es deliver
//!   334 × 100 = 33,400 messages/s to the nodes), a third of one Redis core's ~100,000 simple
//!   commands/s; the reloads grow as viewers × nodes, so this is the term to batch first (a
//!   viewer count written at most once a second per stream) if either grows;
//! - viewers on edges (the relay): the viewers cost nothing; relays do. If every stream is
//!   relayed to 10 edges for an hour, 10,000 relays start and end per hour: 2.8 look-ups/s and
//!   5.6 viewer-count writes/s × 101 = 561/s: about 1,100 commands/s in all;
//! - viewer counts across nodes (on paper): if each stream is on its origin and 10 edges,
//!   11,000 (stream, node) pairs: `PEXPIRE` and `HGETALL` 11,000 / 2 = 5,500/s each, `HSET`
//!   at most the 334 count changes/s, `EXISTS` at most 100 × 99 / 2 = 4,950/s: about
//!   16,000 commands/s; streams with records add the origin's record write when the edges'
//!   sum changes, at most 1,000 / 2 = 500 writes/s × 101 = 50,500/s in the worst case (every
//!   stream's sum changing every heartbeat), which is the term to watch;
//! - conferences spanning nodes (on paper): 1,000 rooms of 10 members, every node with a
//!   player of every room (the worst case): members 10,000 × 2 / 2 = 10,000/s, room polls
//!   100 × 1,000 / 2 = 50,000/s: 60,000 commands/s, so such deployments want pub/sub on the
//!   room key instead of the poll (not done).

pub mod conn;
pub mod data;
#[cfg(any(test, feature = "testing"))]
pub mod model;
pub mod registry;
pub mod relay;
pub mod resp;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use conn::{ConnConfig, ConnEvent, ConnOutput, RedisConn, Unavailable};
pub use data::{DataConfig, DataEvent, DataOutput, DataStats, Link, SharedData};
#[cfg(any(test, feature = "testing"))]
pub use model::MemRedis;
pub use registry::{Cluster, ClusterConfig, ClusterEvent, ClusterOutput, NodeInfo, StreamEntry};
pub use relay::{
    cluster_token, verify_cluster_token, RelayClient, RelayClientConfig, RelayEnd, RelayOutput,
};
pub use resp::{Command, Reply};

/// Parses `redis://HOST:PORT/DB` (port 6379 and database 0 when left out) into the address
/// to connect to and the database. Host names are not resolved here: give an IP address or
/// `localhost`.
pub fn parse_url(url: &str) -> Result<(std::net::SocketAddr, u32), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("{url}: expected redis://HOST:PORT/DB"))?;
    let (hostport, db) = match rest.split_once('/') {
        Some((h, "")) => (h, 0),
        Some((h, d)) => (
            h,
            d.parse::<u32>()
                .map_err(|_| format!("{url}: database must be a number"))?,
        ),
        None => (rest, 0),
    };
    if hostport.contains('@') {
        return Err(format!(
            "{url}: credentials in the URL are not supported yet"
        ));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| format!("{url}: bad port"))?)
        }
        _ => (hostport, 6379),
    };
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{url}: host must be an IP address or localhost"))?;
    Ok((std::net::SocketAddr::new(ip, port), db))
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://127.0.0.1:6380/2").unwrap(),
            ("127.0.0.1:6380".parse().unwrap(), 2)
        );
        assert_eq!(
            parse_url("redis://localhost").unwrap(),
            ("127.0.0.1:6379".parse().unwrap(), 0)
        );
        assert_eq!(
            parse_url("redis://[::1]:7000/").unwrap(),
            ("[::1]:7000".parse().unwrap(), 0)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("redis://u:p@127.0.0.1").is_err());
        assert!(parse_url("redis://127.0.0.1:6379/x").is_err());
        assert!(parse_url("redis://example.com").is_err());
    }
}
