#!/usr/bin/env bash
# Real-browser end-to-end tests of Antenna (see README.md).
#
# Installs Debian's chromium if missing, the npm packages if missing, builds the antenna binary
# (release profile; ANTENNA_PROFILE=debug for a debug build, ANTENNA_BIN=<path> to skip the
# build), then runs e2e.mjs and security.mjs inside a new loopback-only network namespace. Needs
# root (apt-get, ip netns). Then samples.mjs runs AMS's own sample pages unchanged, and whip.mjs
# WHIP/WHEP clients that are not Antenna's (AMS's whip.html, @eyevinn/webrtc-player). Extra
# environment: E2E_ONLY=0,1,7 runs only those e2e cases, SAMPLES_ONLY=0,4 only those sample
# cases and WHIP_ONLY=1,2 only those whip.mjs cases; setting any runs only what is selected
# (security.mjs runs only when none is set).
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
# A checkout whose lock file gained packages since the last install installs again.
if [ ! -d node_modules ] || [ ! -d node_modules/@eyevinn/webrtc-player ]; then
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

status=0
# E2E_ONLY / SAMPLES_ONLY: setting one selects cases of that script and skips the others.
run_e2e=1; run_security=1; run_samples=1; run_whip=1
if [ -n "${E2E_ONLY:-}" ] || [ -n "${SAMPLES_ONLY:-}" ] || [ -n "${WHIP_ONLY:-}" ]; then
  run_security=0
  [ -n "${E2E_ONLY:-}" ] || run_e2e=0
  [ -n "${SAMPLES_ONLY:-}" ] || run_samples=0
  [ -n "${WHIP_ONLY:-}" ] || run_whip=0
fi
if [ "$run_e2e" = 1 ]; then
  echo "run.sh: running e2e.mjs in network namespace $NS (loopback only) with $ANTENNA_BIN"
  ip netns exec "$NS" node "$HERE/e2e.mjs" || status=$?
fi
if [ "$run_security" = 1 ] && [ -f "$HERE/security.mjs" ]; then
  echo "run.sh: running security.mjs in network namespace $NS"
  ip netns exec "$NS" node "$HERE/security.mjs" || status=$?
fi
if [ "$run_samples" = 1 ]; then
  echo "run.sh: running samples.mjs (AMS's own sample pages) in network namespace $NS"
  ip netns exec "$NS" node "$HERE/samples.mjs" || status=$?
fi
if [ "$run_whip" = 1 ]; then
  echo "run.sh: running whip.mjs (WHIP/WHEP clients that are not Antenna's) in network namespace $NS"
  ip netns exec "$NS" node "$HERE/whip.mjs" || status=$?
fi
exit "$status"
