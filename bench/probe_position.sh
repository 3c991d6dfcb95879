#!/usr/bin/env bash
# Where the latency probes sit in a server's send order, and what that does to the figure:
# 1 publisher -> $PLAYERS players, the 2 probes joining first, then (a fresh server) last,
# against Antenna and Janus, same pinning and namespace as bench/run.sh.
#
#   bench/probe_position.sh        # writes bench/results/probe-position/{antenna,janus}-{first,last}.jsonl
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/probe-position}
NS=${NS:-antbench}
PLAYERS=${PLAYERS:-50}
HOLD=${HOLD:-10}
ROUNDS=${ROUNDS:-2}
IP=10.200.0.1
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null
(cd "$ROOT" && cargo build --release -q -p server-mio --bin antenna -p antenna-load --bin antenna-load) || exit 1
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_namespace "$IP" || exit 1

one() { # SERVER POSITION ROUND
  local s=$1 pos=$2 r=$3 pid extra=() flag=()
  case $s in
    antenna)
      # `ip netns exec` itself, not the `inns` function: `$!` must be the server (ip execs it).
      ip netns exec "$NS" taskset -c 0 "$ROOT/target/release/antenna" --listen 127.0.0.1:5080 --udp 127.0.0.1:50000 \
        --log warn --memory-store --cpu-limit 0 >"$OUT/antenna-server.log" 2>&1 &
      pid=$!; wait_port 5080 ;;
    janus)
      "$ROOT/bench/janus-config.sh" "$OUT/janus-config" 8188 1 >/dev/null
      ip netns exec "$NS" taskset -c 0 janus -F "$OUT/janus-config" -L "$OUT/janus.log" >/dev/null 2>&1 &
      pid=$!; wait_port 8188; extra=(--peer-ip "$IP") ;;
  esac
  sleep 1
  [ "$pos" = last ] && flag=(--probes-last)
  inns taskset -c 1 "$ROOT/target/release/antenna-load" fanout --server "$s" --server-pid "$pid" \
    --steps "$PLAYERS" --hold "$HOLD" --settle 2 --join-rate 200 --inflight 100 --probes 2 \
    "${flag[@]}" "${extra[@]}" --stream probepos >"$OUT/$s-$pos-$r.jsonl" 2>>"$OUT/human.log"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  # A server that did not stop in time would answer the next run: make sure it is gone.
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  python3 -c "
import json,sys
r=json.loads(open(sys.argv[1]).read().splitlines()[-1])
print('%-7s probes %-5s round %s: video p50/p99 %s/%s us, audio p50/p99 %s/%s us' % (sys.argv[2], sys.argv[3], sys.argv[4],
  r.get('latency_p50_us'), r.get('latency_p99_us'), r.get('audio_latency_p50_us'), r.get('audio_latency_p99_us')))
" "$OUT/$s-$pos-$r.jsonl" "$s" "$pos" "$r" | tee -a "$OUT/summary.txt"
}

: >"$OUT/summary.txt"
for r in $(seq "$ROUNDS"); do
  for s in antenna janus; do
    for pos in first last; do one "$s" "$pos" "$r"; done
  done
done
