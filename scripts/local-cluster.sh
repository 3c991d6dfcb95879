#!/usr/bin/env bash
# A local Antenna cluster on loopback, for trying cluster mode:
#
#   scripts/local-cluster.sh [NODES]        (default: one node per core, `nproc`)
#
# Starts Debian's `redis-server` on 127.0.0.1 and NODES antenna processes, node i (from 1) on
# HTTP/WebSocket 127.0.0.1:$((BASE_HTTP + i - 1)) and UDP 127.0.0.1:$((BASE_UDP + i - 1)), all
# sharing the Redis (broadcasts, tokens, settings, the registry of nodes and streams). Each node
# is one process on one thread: one per core uses every core. The SDK reaches node i at
# ws://127.0.0.1:<its HTTP port>/WebRTCAppEE/websocket; a stream published on one node plays on
# any other (relayed from its origin). The admin REST API answers callers on 127.0.0.1 without a
# credential (--rest-trust-loopback: this is a local try-out). Ctrl-C (or SIGTERM) stops everything.
#
# Environment:
#   ANTENNA_BIN     the antenna binary [default: target/release/antenna, built if missing]
#   REDIS_PORT      [default: 6390]
#   BASE_HTTP       [default: 5080]
#   BASE_UDP        [default: 50000]
#   CLUSTER_SECRET  the shared secret the nodes relay streams with [default: a random one]
#   CHECK=1         start everything, check that every node answers /readyz and is in Redis's
#                   registry, then stop (exit status 0 only if all of that held)
#   LOG_DIR         where each process's log goes [default: a new temporary directory]
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"

NODES="${1:-$(nproc)}"
case "$NODES" in '' | *[!0-9]* | 0) echo "usage: $0 [NODES >= 1]" >&2; exit 2 ;; esac
REDIS_PORT="${REDIS_PORT:-6390}"
BASE_HTTP="${BASE_HTTP:-5080}"
BASE_UDP="${BASE_UDP:-50000}"
CLUSTER_SECRET="${CLUSTER_SECRET:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
LOG_DIR="${LOG_DIR:-$(mktemp -d -t antenna-cluster.XXXXXX)}"
mkdir -p "$LOG_DIR"

command -v redis-server >/dev/null || {
    echo "redis-server is missing: apt-get install redis-server (Debian)" >&2
    exit 1
}
BIN="${ANTENNA_BIN:-$ROOT/target/release/antenna}"
if [ ! -x "$BIN" ]; then
    echo "building the antenna binary (cargo build --release -p server-mio)"
    (cd "$ROOT" && cargo build --release -p server-mio)
fi

PIDS=()
stop_all() {
    trap - EXIT INT TERM
    local pid
    # Nodes first (a graceful stop removes their registry keys), then Redis.
    for pid in "${PIDS[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]:1}"; do wait "$pid" 2>/dev/null || true; done
    [ "${#PIDS[@]}" -gt 0 ] && { kill -TERM "${PIDS[0]}" 2>/dev/null || true; wait "${PIDS[0]}" 2>/dev/null || true; }
}
trap stop_all EXIT
trap 'exit 130' INT TERM

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$LOG_DIR" >"$LOG_DIR/redis.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$LOG_DIR/redis.log" >&2; exit 1; }
    sleep 0.1
done

for i in $(seq "$NODES"); do
    http=$((BASE_HTTP + i - 1))
    udp=$((BASE_UDP + i - 1))
    "$BIN" --listen "127.0.0.1:$http" --udp "127.0.0.1:$udp" \
        --cluster "redis://127.0.0.1:$REDIS_PORT/0" --node-id "node$i" \
        --cluster-secret "$CLUSTER_SECRET" --memory-store --rest-trust-loopback \
        >"$LOG_DIR/node$i.log" 2>&1 &
    PIDS+=("$!")
    echo "node$i: ws://127.0.0.1:$http/WebRTCAppEE/websocket  (UDP $udp, pid $!, log $LOG_DIR/node$i.log)"
done
echo "redis: 127.0.0.1:$REDIS_PORT (pid ${PIDS[0]}); logs in $LOG_DIR"

# `GET /readyz` on a port answers 200 (bash's /dev/tcp: no HTTP client needed).
readyz() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
    printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r -t 2 line <&3 || line=
    exec 3>&-
    [[ "$line" == "HTTP/1.1 200 "* ]]
}

# Every node answers /readyz and has its key in the registry.
ready() {
    local i
    for i in $(seq "$NODES"); do
        readyz "$((BASE_HTTP + i - 1))" || return 1
        [ "$(redis-cli -p "$REDIS_PORT" exists "antenna:node:node$i")" = 1 ] || return 1
    done
}
for _ in $(seq 100); do
    ready && break
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || { echo "a process exited; logs in $LOG_DIR" >&2; tail -n 20 "$LOG_DIR"/*.log >&2; exit 1; }
    done
    sleep 0.1
done
if ! ready; then
    echo "not every node became ready within 10 s; logs in $LOG_DIR" >&2
    exit 1
fi
echo "all $NODES nodes ready"
[ "${CHECK:-0}" = 1 ] && exit 0
wait -n "${PIDS[@]}" || true
echo "a process exited; stopping the cluster (logs in $LOG_DIR)" >&2
