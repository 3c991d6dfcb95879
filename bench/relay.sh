#!/usr/bin/env bash
# Cluster mode: fan-out through an edge (see BENCHMARKS.md, "Cluster: fan-out through an
# edge"). Debian's redis-server, an origin node and an edge node (each one `antenna`
# process, `--cluster` and `--cluster-secret`) on 127.0.0.1; one publisher on the origin and
#   1. direct: $PLAYERS players on the origin;
#   2. edge:   the same $PLAYERS players on the edge, through one relay (same publisher
#              settings, a second stream id);
# then, for the cost per forwarded packet, the same two cases with fewer players and lighter
# media under callgrind (the origin in case 1, the edge in case 2), as bench/profile.sh does.
# Redis's INFO commandstats is saved for an idle window and for each case.
#
#   bench/relay.sh                              # ~3 min on 2 cores; bench/results/relay/summary.md
#   PLAYERS=100 HOLD=15 PROFILE=0 bench/relay.sh
#   RELAY=1 bench/run.sh                        # run.sh runs it too, after its own steps
#
# No namespace, no pinning: everything is on loopback ports chosen below (change BASE if they
# are taken); the nodes and the load generator share the machine's cores.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/relay}
PLAYERS=${PLAYERS:-100}
HOLD=${HOLD:-10}
MEDIA=${MEDIA:-}
IDLE=${IDLE:-10}
LOG=${LOG:-warn}
PROFILE=${PROFILE:-1}
PROF_PLAYERS=${PROF_PLAYERS:-10}
PROF_HOLD=${PROF_HOLD:-15}
PROF_MEDIA=${PROF_MEDIA:---video-kbps 300 --fps 15 --audio-pps 25}
BASE=${BASE:-5490}
REDIS_PORT=$((BASE + 1000))
ORIGIN=127.0.0.1:$BASE
EDGE=127.0.0.1:$((BASE + 1))
ORIGIN_UDP=127.0.0.1:$((BASE + 45000))
EDGE_UDP=127.0.0.1:$((BASE + 45001))
# relay UDP sockets, 8 per node (each node binds its own)
RELAY_PORTS=$((BASE + 45010))
SECRET=bench-relay-secret
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl "$OUT"/*.log "$OUT"/*.txt "$OUT"/*.md "$OUT"/callgrind.out*

log() { echo "[relay $(date -u +%H:%M:%S)] $*" >&2; }
ulimit -n 65536 2>/dev/null || ulimit -n 16384 2>/dev/null
command -v redis-server >/dev/null || { log "needs Debian's redis-server"; exit 1; }
log "building (release)"
(cd "$ROOT" && cargo build --release -q -p server-mio --bin antenna -p antenna-load --bin antenna-load) || exit 1
ANTENNA="$ROOT/target/release/antenna"
LOAD="$ROOT/target/release/antenna-load"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

wait_ready() { # $1 = http address, $2 = seconds
  for _ in $(seq $(($2 * 10))); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$1/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  log "$1 not ready"; return 1
}
stop() { # $1 = pid: SIGTERM (callgrind writes its profile on exit), then wait
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
# node <name> <http> <udp> [wrapper...]: starts one node, sets NODE_PID
node() {
  local name=$1 http=$2 udp=$3 relay=$RELAY_PORTS; shift 3
  [ "$name" = edge ] && relay=$((RELAY_PORTS + 8))
  "$@" "$ANTENNA" --listen "$http" --udp "$udp" --memory-store --log "$LOG" --cpu-limit 0 --rest-trust-loopback \
    --cluster "redis://127.0.0.1:$REDIS_PORT/0" --node-id "$name" --cluster-secret "$SECRET" \
    --relay-ports "$relay-$((relay + 7))" >>"$OUT/$name.log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
}
redis() { redis-cli -p "$REDIS_PORT" "$@"; }
stats() { # $1 = file: commandstats since the last reset, with the seconds they cover
  { echo "seconds $(( $(date +%s%N) / 1000000 - STATS_T0 ))ms"; redis INFO commandstats; } >"$OUT/$1"
}
reset_stats() { redis CONFIG RESETSTAT >/dev/null; STATS_T0=$(( $(date +%s%N) / 1000000 )); }

# fanout <name> <server pid> [antenna-load args]: one step of $2 players, CPU of both nodes
# sampled beside it (bench/relay_cpu.py), commandstats of the run
fanout() {
  local name=$1 players=$2 hold=$3 pid=$4; shift 4
  reset_stats
  python3 "$ROOT/bench/relay_cpu.py" "$OUT/$name-cpu.jsonl" "$O_PID" "$E_PID" &
  local sampler=$!
  "$LOAD" fanout --addr "$ORIGIN" --server-pid "$pid" --steps "$players" --hold "$hold" \
    --settle 3 --join-rate 50 --inflight 20 --join-timeout 60 --loss-limit 100 --min-delivery 0 \
    --ignore-failed-joins "$@" >"$OUT/$name.jsonl" 2>>"$OUT/load.log"
  kill -INT "$sampler"; wait "$sampler"
  stats "$name-redis.txt"
  tail -n 1 "$OUT/load.log" >&2
}

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis PING >/dev/null 2>&1 && break; sleep 0.1; done

{ echo "start $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg) nproc $(nproc)"
  echo "commit $(cd "$ROOT" && git rev-parse --short HEAD)"
  echo "players $PLAYERS hold $HOLD media '${MEDIA:-default}' profile players $PROF_PLAYERS hold $PROF_HOLD media '$PROF_MEDIA'"
  ps -eo pcpu,pid,comm --sort=-pcpu | head -8; } >"$OUT/conditions.txt"

# ---- 1. timed runs: direct, then through the edge ---------------------------------------
node origin "$ORIGIN" "$ORIGIN_UDP"; O_PID=$NODE_PID
node edge "$EDGE" "$EDGE_UDP"; E_PID=$NODE_PID
wait_ready "$ORIGIN" 10 && wait_ready "$EDGE" 10 || exit 1
log "idle: $IDLE s of heartbeats (2 nodes, no stream)"
reset_stats; sleep "$IDLE"; stats idle-redis.txt
# Broadcast records for the two streams, as a REST client would make them: a stream with a
# record gets its live status and viewer count written to the shared data (Redis).
for s in direct relayed profdirect profedge; do
  curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d "{\"streamId\":\"$s\"}" \
    "http://$ORIGIN/WebRTCAppEE/rest/v2/broadcasts/create"
done
log "direct: 1 publisher and $PLAYERS players on the origin, hold $HOLD s"
# shellcheck disable=SC2086
fanout direct "$PLAYERS" "$HOLD" "$O_PID" --stream direct $MEDIA
log "edge: 1 publisher on the origin, $PLAYERS players on the edge, hold $HOLD s"
# shellcheck disable=SC2086
fanout edge "$PLAYERS" "$HOLD" "$E_PID" --play-addr "$EDGE" --stream relayed $MEDIA
grep -h "relay\|CLUSTER" "$OUT/origin.log" "$OUT/edge.log" | tail -n 5 >&2

# ---- 2. instructions per forwarded packet (callgrind) -------------------------------------
if [ "$PROFILE" = 1 ]; then
  command -v valgrind >/dev/null || { log "no valgrind: profile skipped"; PROFILE=0; }
fi
if [ "$PROFILE" = 1 ]; then
  cg() { echo valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-$1.out"; }
  # shellcheck disable=SC2046
  for case in direct edge; do
    stop "$O_PID"; stop "$E_PID"
    if [ "$case" = direct ]; then
      node origin "$ORIGIN" "$ORIGIN_UDP" $(cg direct); O_PID=$NODE_PID
      node edge "$EDGE" "$EDGE_UDP"; E_PID=$NODE_PID
      PROF_PID=$O_PID; PLAY=()
    else
      node origin "$ORIGIN" "$ORIGIN_UDP"; O_PID=$NODE_PID
      node edge "$EDGE" "$EDGE_UDP" $(cg edge); E_PID=$NODE_PID
      PROF_PID=$E_PID; PLAY=(--play-addr "$EDGE")
    fi
    wait_ready "$ORIGIN" 60 && wait_ready "$EDGE" 60 || exit 1
    log "callgrind ($case): $PROF_PLAYERS players, hold $PROF_HOLD s, media '$PROF_MEDIA'"
    # shellcheck disable=SC2086
    fanout "prof-$case" "$PROF_PLAYERS" "$PROF_HOLD" "$PROF_PID" "${PLAY[@]}" --stream "prof$case" \
      --probes 0 $PROF_MEDIA
    stop "$PROF_PID"
    python3 "$ROOT/bench/per_packet.py" "$OUT/callgrind-$case.out" >"$OUT/per_packet-$case.txt"
  done
fi
cleanup; PIDS=()
echo "end $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/conditions.txt"
python3 "$ROOT/bench/relay_report.py" "$OUT" | tee "$OUT/summary.md"
