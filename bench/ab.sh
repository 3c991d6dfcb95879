#!/usr/bin/env bash
# Before/after: the fan-out ramp of bench/run.sh against two antenna binaries, back to back
# (A, then B, then A and B again), same pinning (server core 0, load core 1), in a private
# loopback-only network namespace. For showing what a change to the forwarding path did.
#
#   ANTENNA_A=/path/to/old/antenna ANTENNA_B=target/release/antenna bench/ab.sh
#   ANTENNA_A=target/release/antenna ARGS_A="--forwarding str0m" bench/ab.sh   # one binary, two paths
#
# Writes $OUT/{a,b}{1,2}-fanout.jsonl and prints one summary line per step.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/ab}
NS=${NS:-antab}
STEPS=${STEPS:-100,200,300,400,500,600,800}
HOLD=${HOLD:-8}
ROUNDS=${ROUNDS:-2}
A=${ANTENNA_A:?set ANTENNA_A to the antenna binary before the change}
B=${ANTENNA_B:-$ROOT/target/release/antenna}
ARGS_A=${ARGS_A:-}
ARGS_B=${ARGS_B:-}
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null
(cd "$ROOT" && cargo build --release -q -p antenna-load --bin antenna-load) || exit 1
LOAD="$ROOT/target/release/antenna-load"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_namespace || exit 1

run() { # run LABEL BINARY [ARGS]
  local label=$1 bin=$2 pid
  # shellcheck disable=SC2086 # ARGS are words
  ip netns exec "$NS" taskset -c 0 "$bin" --listen 127.0.0.1:5080 --udp 127.0.0.1:50000 \
    --memory-store --log warn ${3:-} >"$OUT/$label-server.log" 2>&1 &
  pid=$!
  wait_port 5080
  ip netns exec "$NS" taskset -c 1 "$LOAD" fanout --server-pid "$pid" --steps "$STEPS" \
    --hold "$HOLD" --settle 2 --join-rate 200 --inflight 100 --probes 2 --pause-for-joins 11 \
    --stream ab >"$OUT/$label-fanout.jsonl" 2>"$OUT/$label-human.log"
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "== $label ($bin ${3:-}) $(date -u +%H:%M:%S) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  grep '^\[antenna\]' "$OUT/$label-human.log"
}

for r in $(seq "$ROUNDS"); do
  run "a$r" "$A" "$ARGS_A"
  run "b$r" "$B" "$ARGS_B"
done
