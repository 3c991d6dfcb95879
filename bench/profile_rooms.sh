#!/usr/bin/env bash
# Per-turn and per-packet work of Antenna in the rooms scenario: the antenna binary under
# valgrind --tool=callgrind (instruction counts are repeatable on a loaded machine, seconds are
# not), $ROOMS rooms of 4 (everyone publishes and plays the other 3) held $HOLD s, in the bench
# namespace (see run.sh). $MEDIA are the load generator's media options: keep the packets per
# second within what the valgrind-slowed server forwards. A dump every $DUMP_EVERY s
# (callgrind_control) makes one callgrind.out.N per interval, so the hold is counted apart from
# the joins. Writes callgrind.out*, load.jsonl, the logs and per_interval.txt into $OUT.
#
#   bench/profile_rooms.sh     # 20 rooms, 20 s, bench/results/rooms-profile/
#   ANTENNA=/tmp/old/antenna OUT=bench/results/rooms-before bench/profile_rooms.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results/rooms-profile}
NS=${NS:-antbench}
ROOMS=${ROOMS:-20}
HOLD=${HOLD:-20}
MEDIA=${MEDIA:---video-kbps 30 --fps 5 --audio-pps 5}
DUMP_EVERY=${DUMP_EVERY:-5}
mkdir -p "$OUT"
rm -f "$OUT"/callgrind.out* "$OUT"/*.txt "$OUT"/*.jsonl "$OUT"/*.log
ulimit -n 65536 2>/dev/null
(cd "$ROOT" && cargo build --release -q -p server-mio --bin antenna -p antenna-load --bin antenna-load) || exit 1
ANTENNA=${ANTENNA:-$ROOT/target/release/antenna}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_namespace || exit 1

ip netns exec "$NS" taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
  "$ANTENNA" --listen 127.0.0.1:5080 --udp 127.0.0.1:50000 --log info --memory-store --cpu-limit 0 \
  >"$OUT/antenna.log" 2>&1 &
PID=$!
wait_port 5080 300
(while kill -0 "$PID" 2>/dev/null; do sleep "$DUMP_EVERY"; callgrind_control -d "$PID" >/dev/null 2>&1; done) &
DUMPER=$!
# shellcheck disable=SC2086
ip netns exec "$NS" taskset -c 1 "$ROOT/target/release/antenna-load" rooms --server antenna \
  --server-pid "$PID" --steps "$ROOMS" --hold "$HOLD" --settle 3 --join-rate "${JOIN_RATE:-20}" \
  --inflight 10 $MEDIA --join-timeout 300 --probes 0 --loss-limit 100 --ignore-failed-joins \
  >"$OUT/load.jsonl" 2>"$OUT/load.log"
kill -TERM "$PID"; wait "$PID"; kill "$DUMPER" 2>/dev/null
cat "$OUT/load.log"
python3 "$ROOT/bench/per_interval.py" "$OUT" >"$OUT/per_interval.txt"
cat "$OUT/per_interval.txt"
