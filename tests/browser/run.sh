#!/usr/bin/env bash
# Real-browser end-to-end tests of Antenna (see README.md).
#
# Installs Debian's chromium if missing, the npm packages if missing, builds the antenna binary
# (release profile; ANTENNA_PROFILE=debug for a debug build, ANTENNA_BIN=<path> to skip the
# build), then runs e2e.mjs and security.mjs inside a new loopback-only network namespace. Needs
# root (apt-get, ip netns). Extra environment: E2E_ONLY=0,1,7 runs only those e2e cases (and
# skips security.mjs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PROFILE="${ANTENNA_PROFILE:-release}"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v ip >/dev/null || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "run.sh: installing ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

cd "$HERE"
if [ ! -d node_modules ]; then
  echo "run.sh: npm ci"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

if [ -z "${ANTENNA_BIN:-}" ]; then
  if [ "$PROFILE" = release ]; then
    (cd "$ROOT" && cargo build --release -p server-mio --bin antenna)
  else
    (cd "$ROOT" && cargo build -p server-mio --bin antenna)
  fi
  ANTENNA_BIN="$ROOT/target/$PROFILE/antenna"
fi
export ANTENNA_BIN

NS="antenna-e2e-$$"
ip netns add "$NS"
cleanup() {
  # Whatever this run started in the namespace (server, browser) goes with it.
  local pids
  pids="$(ip netns pids "$NS" 2>/dev/null || true)"
  if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; sleep 1; kill -9 $pids 2>/dev/null || true; fi
  ip netns delete "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns exec "$NS" ip link set lo up

echo "run.sh: running e2e.mjs in network namespace $NS (loopback only) with $ANTENNA_BIN"
status=0
ip netns exec "$NS" node "$HERE/e2e.mjs" || status=$?
# The stream-security script runs too, unless only some e2e cases were asked for.
if [ -z "${E2E_ONLY:-}" ] && [ -f "$HERE/security.mjs" ]; then
  echo "run.sh: running security.mjs in network namespace $NS"
  ip netns exec "$NS" node "$HERE/security.mjs" || status=$?
fi
exit "$status"
