#!/usr/bin/env bash
# CI smoke of the fan-out benchmark (about 20 s): starts the release `antenna` on loopback
# ports, runs `antenna-load smoke` against it (1 publisher; 1, 2 and 4 players, 5 s each) and
# stops the server. Fails if media does not arrive or the load generator's loss accounting is
# inconsistent; it never asserts speed. Used by ./test.sh (step "load").
#
#   bench/smoke.sh        # builds both binaries (release) if needed
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WS=${SMOKE_WS:-127.0.0.1:5380}
UDP=${SMOKE_UDP:-127.0.0.1:50380}
cargo build --release -q -p server-mio --bin antenna -p antenna-load --bin antenna-load
LOG=$(mktemp)
target/release/antenna --listen "$WS" --udp "$UDP" --memory-store --log warn \
    >"$LOG" 2>&1 &
PID=$!
# shellcheck disable=SC2064
trap "kill $PID 2>/dev/null || true; rm -f '$LOG'" EXIT
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/${WS%:*}/${WS#*:}") 2>/dev/null; then break; fi
    kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "antenna exited"; exit 1; }
    sleep 0.1
done
rc=0
target/release/antenna-load smoke --addr "$WS" --server-pid "$PID" || rc=$?
kill -TERM "$PID"
wait "$PID" || { echo "antenna exited with $?"; rc=1; }
if [ "$rc" -ne 0 ]; then
    echo "---- antenna log"
    cat "$LOG"
fi
exit "$rc"
