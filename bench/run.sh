#!/usr/bin/env bash
# Antenna vs Janus benchmarks, one command (see BENCHMARKS.md):
#
#   bench/run.sh            # full run, ~15-18 min on 2 cores; writes bench/results/latest/table.md
#   QUICK=1 bench/run.sh    # shorter steps and holds (~7 min), for trying the tooling
#   ONLY=antenna bench/run.sh
#   RELAY=1 bench/run.sh    # also bench/relay.sh (cluster: fan-out through an edge, ~3 min)
#
# Needs root (apt-get for Janus, a private network namespace). Everything runs inside the
# namespace `antbench` (loopback plus a veth pair with 10.200.0.1, because Janus does not gather
# ICE candidates on loopback): no traffic leaves it, and no port of the host is used.
# The server is pinned to core 0 (`taskset -c 0`), the load generator to core 1.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/latest}
NS=${NS:-antbench}
QUICK=${QUICK:-0}
PING_RATE=${PING_RATE:-20000}
ONLY=${ONLY:-}
IP=10.200.0.1
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl "$OUT"/*.json "$OUT"/*.log "$OUT"/*.txt "$OUT"/table.md

if [ "$QUICK" = 1 ]; then
  STEPS=${STEPS:-50,200,400,700,1000,1400}
  HOLD=${HOLD:-5}
  IDLE=${IDLE:-200}
  WS=${WS:-2000}
  ROOM_STEPS=${ROOM_STEPS:-5,20,40}
  ROOM_HOLD=${ROOM_HOLD:-4}
  CHURN_S=${CHURN_S:-5}
else
  STEPS=${STEPS:-50,100,150,200,250,300,350,400,500,600,700,800,900,1000,1200,1600,2000}
  HOLD=${HOLD:-8}
  IDLE=${IDLE:-500}
  WS=${WS:-10000}
  ROOM_STEPS=${ROOM_STEPS:-5,10,15,20,30,40,60,80,100,120}
  ROOM_HOLD=${ROOM_HOLD:-5}
  CHURN_S=${CHURN_S:-8}
fi

log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }
conditions() { # what else is running (the machine is shared)
  { echo "== $1 $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    ps -eo pcpu,pid,comm --sort=-pcpu | head -8; } >>"$OUT/conditions.txt"
}

# ---- prerequisites ---------------------------------------------------------------------------
ulimit -n 65536 2>/dev/null || ulimit -n 16384 2>/dev/null || log "could not raise ulimit -n ($(ulimit -n))"
command -v janus >/dev/null || { log "installing janus"; apt-get install -y janus >"$OUT/apt.log" 2>&1 || log "janus install failed"; }
log "building (release)"
(cd "$ROOT" && cargo build --release -q -p server-mio --bin antenna -p antenna-load --bin antenna-load) || exit 1
ANTENNA="$ROOT/target/release/antenna"
LOAD="$ROOT/target/release/antenna-load"

# ---- namespace -------------------------------------------------------------------------------
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_namespace "$IP" || exit 1

SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
  fi
}
trap stop_server EXIT


start_server() { # $1 = antenna|janus
  stop_server
  case $1 in
    antenna)
      # Every client comes from 127.0.0.1: no per-address cap, and room for 10,000 WebSockets.
      ip netns exec "$NS" taskset -c 0 "$ANTENNA" --listen 127.0.0.1:5080 --udp 127.0.0.1:50000 --log warn --memory-store --cpu-limit 0 \
        --max-connections-per-ip 0 --max-connections 20000 \
        >>"$OUT/antenna.log" 2>&1 &
      SERVER_PID=$!; wait_port 5080 ;;
    janus)
      "$ROOT/bench/janus-config.sh" "$OUT/janus-config" 8188 1 >/dev/null
      ip netns exec "$NS" taskset -c 0 janus -F "$OUT/janus-config" -L "$OUT/janus.log" >/dev/null 2>&1 &
      SERVER_PID=$!; wait_port 8188 ;;
  esac
  sleep 1
}

load() { # $1 = server, rest = antenna-load args
  local s=$1; shift
  local extra=()
  if [ "$s" = janus ]; then extra=(--peer-ip "$IP"); fi
  inns taskset -c 1 "$LOAD" "$@" --server "$s" --server-pid "$SERVER_PID" "${extra[@]}"
}

capacity() { # largest step with loss < 0.5 %, delivery >= 98.5 %, no failed joins, CPU <= 100 %
  python3 - "$1" <<'PY'
import json, sys
best = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    ok = r["loss_pct"] < 0.5 and r["delivery_pct"] >= 98.5 and r["failed_joins"] == 0 and r["silent_players"] == 0 \
        and (r["server_cpu_pct"] or 0) <= 100.5 and r["players_up"] == r["players"]
    if ok:
        best = max(best, r["players"])
print(best)
PY
}

conditions start
# ---- per server ------------------------------------------------------------------------------
for S in antenna janus; do
  [ -n "$ONLY" ] && [ "$ONLY" != "$S" ] && continue
  if [ "$S" = janus ] && ! command -v janus >/dev/null; then log "no janus: skipped"; continue; fi

  conditions "$S"
  log "$S: fan-out ramp ($STEPS, hold $HOLD s)"
  start_server "$S"
  load "$S" fanout --steps "$STEPS" --hold "$HOLD" --settle 2 --join-rate 200 --inflight 100 \
    --probes 2 --pause-for-joins 5 --stream ramp >"$OUT/$S-fanout.jsonl" 2>>"$OUT/$S-human.log"
  tail -n 3 "$OUT/$S-human.log" >&2
  N=$(capacity "$OUT/$S-fanout.jsonl")
  log "$S: capacity $N players"

  if [ "$N" -gt 0 ]; then
    L25=$(( N * 25 / 100 )); L50=$(( N * 50 / 100 )); L90=$(( N * 90 / 100 ))
    [ "$L25" -lt 1 ] && L25=1; [ "$L50" -le "$L25" ] && L50=$((L25 + 1)); [ "$L90" -le "$L50" ] && L90=$((L50 + 1))
    log "$S: latency at $L25/$L50/$L90 players"
    start_server "$S"
    load "$S" fanout --steps "$L25,$L50,$L90" --hold $((HOLD + 4)) --settle 3 --join-rate 200 \
      --inflight 100 --probes 3 --pause-for-joins 5 --loss-limit 100 --min-delivery 0 --ignore-failed-joins --stream lat \
      >"$OUT/$S-latency.jsonl" 2>>"$OUT/$S-human.log"
  fi

  log "$S: signalling ping/pong, 100 connections"
  start_server "$S"
  load "$S" ping --conns 100 --seconds 10 >"$OUT/$S-ping.json" 2>>"$OUT/$S-human.log"
  # Open loop: the same 100 WebSockets at a fixed $PING_RATE pings/s, answered or not (the
  # closed loop above measures how fast two event loops wake each other; this, what a
  # server's RTT is at a given load).
  load "$S" ping --conns 100 --seconds 10 --rate "$PING_RATE" >"$OUT/$S-ping-open.json" 2>>"$OUT/$S-human.log"

  log "$S: rooms ramp ($ROOM_STEPS rooms of 4, hold $ROOM_HOLD s)"
  start_server "$S"
  load "$S" rooms --steps "$ROOM_STEPS" --hold "$ROOM_HOLD" --settle 2 --join-rate 200 --inflight 100 \
    --probes 2 --pause-for-joins 5 >"$OUT/$S-rooms.jsonl" 2>>"$OUT/$S-human.log"
  tail -n 1 "$OUT/$S-human.log" >&2

  log "$S: room join/leave churn, 50 connections, $CHURN_S s"
  start_server "$S"
  load "$S" churn --conns 50 --seconds "$CHURN_S" >"$OUT/$S-churn.json" 2>>"$OUT/$S-human.log"

  for kind in publishers players; do
    log "$S: RSS per idle $kind ($IDLE)"
    start_server "$S"
    load "$S" idle --kind "$kind" --count "$IDLE" >"$OUT/$S-idle-$kind.json" 2>>"$OUT/$S-human.log"
  done
  log "$S: RSS of $WS idle WebSockets"
  start_server "$S"
  load "$S" idle --kind websockets --count "$WS" >"$OUT/$S-idle-websockets.json" 2>>"$OUT/$S-human.log"
  stop_server
done

# ---- the ceiling -----------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = ceiling ]; then
  log "ceiling: AES-128-GCM UDP forwarder, 200 sinks"
  ip netns exec "$NS" taskset -c 0 "$LOAD" udp-forwarder --listen 127.0.0.1:47000 --seconds 14 \
    >"$OUT/ceiling-forwarder.jsonl" 2>>"$OUT/ceiling.log" &
  SERVER_PID=$!
  sleep 0.5
  inns taskset -c 1 "$LOAD" udp-source --forwarder 127.0.0.1:47000 --fanout 200 --pps 2000 \
    --seconds 10 >"$OUT/ceiling-source.json" 2>>"$OUT/ceiling.log"
  wait "$SERVER_PID"; SERVER_PID=
fi

# ---- cluster: fan-out through an edge (off by default) ---------------------------------------
if [ "${RELAY:-0}" = 1 ]; then
  log "cluster: fan-out through an edge (bench/relay.sh)"
  OUT="$OUT/relay" bash "$ROOT/bench/relay.sh" >/dev/null || log "bench/relay.sh failed"
fi

conditions end
# ---- machine and table -----------------------------------------------------------------------
{
  echo "{\"nproc\": $(nproc), \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\","
  echo " \"kernel\": \"$(uname -r)\", \"date\": \"$(date -u +%FT%TZ)\", \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
  echo " \"janus\": \"$(dpkg-query -W -f='${Version}' janus 2>/dev/null)\", \"antenna_commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)\"}"
} >"$OUT/machine.json"
python3 "$ROOT/bench/table.py" "$OUT" >"$OUT/table.md"
python3 "$ROOT/bench/summary.py" "$OUT" >"$OUT/summary.json"
cat "$OUT/table.md"
