#!/usr/bin/env bash
# Where Antenna's CPU goes per forwarded packet: the antenna binary under
# valgrind --tool=callgrind (perf has no hardware counters on this machine), 1 publisher ->
# $PLAYERS counting players for $HOLD s, in the bench namespace (see run.sh). $MEDIA are the
# load generator's media options: keep the packets sent per second within what the
# valgrind-slowed server forwards, or the figures measure its overload (bigger batches).
#
#   bench/profile.sh        # writes bench/results/profile/{callgrind.out,annotate*.txt,load.jsonl,per_packet.txt}
#   PLAYERS=200 MEDIA="--video-kbps 60 --fps 10 --audio-pps 10" OUT=bench/results/p200 bench/profile.sh
#   ANTENNA_ARGS="--forwarding str0m" bench/profile.sh    # str0m's send path instead of the fast path
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/profile}
NS=${NS:-antbench}
PLAYERS=${PLAYERS:-3}
HOLD=${HOLD:-20}
MEDIA=${MEDIA:-}
mkdir -p "$OUT"
rm -f "$OUT"/callgrind.out* "$OUT"/*.txt "$OUT"/*.jsonl
ulimit -n 65536 2>/dev/null
(cd "$ROOT" && cargo build --release -q -p server-mio --bin antenna -p antenna-load --bin antenna-load) || exit 1
ANTENNA=${ANTENNA:-$ROOT/target/release/antenna}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_namespace || exit 1

ip netns exec "$NS" taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
  "$ANTENNA" --listen 127.0.0.1:5080 --udp 127.0.0.1:50000 --log warn --memory-store ${ANTENNA_ARGS:-} \
  >"$OUT/antenna.log" 2>&1 &
PID=$!
wait_port 5080 300
ip netns exec "$NS" taskset -c 1 "$ROOT/target/release/antenna-load" fanout --server antenna \
  --server-pid "$PID" --steps "$PLAYERS" --hold "$HOLD" --settle 3 --join-rate "${JOIN_RATE:-5}" --inflight 5 $MEDIA \
  --join-timeout 120 --probes 0 --loss-limit 100 --ignore-failed-joins --stream prof \
  >"$OUT/load.jsonl" 2>"$OUT/load.log"
kill -TERM "$PID"; wait "$PID"
cat "$OUT/load.log"
callgrind_annotate --inclusive=yes "$OUT/callgrind.out" 2>/dev/null | sed -E "s%/[^ ]*/registry/src/[^/ ]+/%<cargo registry>/%g" | head -80 >"$OUT/annotate-inclusive.txt"
callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | sed -E "s%/[^ ]*/registry/src/[^/ ]+/%<cargo registry>/%g" | head -60 >"$OUT/annotate-self.txt"
python3 "$ROOT/bench/per_packet.py" "$OUT/callgrind.out" >"$OUT/per_packet.txt"
cat "$OUT/per_packet.txt"
