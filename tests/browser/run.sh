#!/usr/bin/env bash
# Real-browser end-to-end tests of Antenna (see README.md).
#
# Installs Debian's chromium if missing, the npm packages if missing, builds the antenna binary
# (release profile; ANTENNA_PROFILE=debug for a debug build, ANTENNA_BIN=<path> to skip the
# build), then runs e2e.mjs and security.mjs inside a new loopback-only network namespace. Needs
# root (apt-get, ip netns). Then samples.mjs runs AMS's own sample pages unchanged, and whip.mjs
# WHIP/WHEP clients that are not Antenna's (AMS's whip.html, @eyevinn/webrtc-player); whip.mjs
# case 3 (GStreamer's webrtcbin, gst_whip.py) runs in a second namespace that also has a veth
# pair with private addresses (10.213.0.1/24 and .2, both ends inside it), since libnice
# gathers no loopback candidates (its default route goes into that pair too). Extra
# environment: E2E_ONLY=0,1,7 runs only those e2e cases, SAMPLES_ONLY=0,4 only those sample
# cases and WHIP_ONLY=1,2 only those whip.mjs cases; setting any runs only what is selected
# (security.mjs runs only when none is set). cluster.mjs (Redis and three nodes: the SDK
# publishes to one and plays from the two others through relays) runs when none is set, or
# alone with CLUSTER_ONLY=1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PROFILE="${ANTENNA_PROFILE:-release}"

# E2E_ONLY / SAMPLES_ONLY: setting one selects cases of that script and skips the others.
run_e2e=1; run_security=1; run_samples=1; run_whip=1; run_cluster=1
if [ -n "${E2E_ONLY:-}" ] || [ -n "${SAMPLES_ONLY:-}" ] || [ -n "${WHIP_ONLY:-}" ] || [ -n "${CLUSTER_ONLY:-}" ]; then
  run_security=0
  [ -n "${CLUSTER_ONLY:-}" ] || run_cluster=0
  [ -n "${E2E_ONLY:-}" ] || run_e2e=0
  [ -n "${SAMPLES_ONLY:-}" ] || run_samples=0
  [ -n "${WHIP_ONLY:-}" ] || run_whip=0
fi
# whip.mjs case 3 (GStreamer) runs when whip.mjs runs and WHIP_ONLY is unset or names 3.
run_gst=0
if [ "$run_whip" = 1 ] && { [ -z "${WHIP_ONLY:-}" ] || [[ ",${WHIP_ONLY}," == *",3,"* ]]; }; then run_gst=1; fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v ip >/dev/null || missing+=(iproute2)
if [ "$run_cluster" = 1 ]; then command -v redis-server >/dev/null || missing+=(redis-server); fi
if [ "$run_gst" = 1 ]; then
  for p in python3-gst-1.0 gir1.2-gst-plugins-bad-1.0 gstreamer1.0-nice gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad python3-cryptography; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
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
NS_GST="antenna-gst-$$"
ip netns add "$NS"
cleanup() {
  # Whatever this run started in the namespaces (server, browser, GStreamer) goes with them.
  local ns pids
  for ns in "$NS" "$NS_GST"; do
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; sleep 1; kill -9 $pids 2>/dev/null || true; fi
    ip netns delete "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT
ip netns exec "$NS" ip link set lo up

status=0
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
if [ "$run_cluster" = 1 ]; then
  echo "run.sh: running cluster.mjs (Redis and three nodes) in network namespace $NS"
  ip netns exec "$NS" node "$HERE/cluster.mjs" || status=$?
fi
if [ "$run_gst" = 1 ]; then
  # Both ends of the veth pair stay inside the new namespace: nothing reaches a real network.
  # libnice skips interfaces whose names start with "veth" (also docker, virbr, vnet).
  ip netns add "$NS_GST"
  ip netns exec "$NS_GST" ip link set lo up
  ip netns exec "$NS_GST" ip link add antgst0 type veth peer name antgst1
  ip netns exec "$NS_GST" ip addr add 10.213.0.1/24 dev antgst0
  ip netns exec "$NS_GST" ip addr add 10.213.0.2/24 dev antgst1
  ip netns exec "$NS_GST" ip link set antgst0 up
  ip netns exec "$NS_GST" ip link set antgst1 up
  # Chromium gathers host candidates only on the interface of the default route; this one
  # leads into the namespace's own veth pair.
  ip netns exec "$NS_GST" ip route add default dev antgst0
  echo "run.sh: running whip.mjs case 3 (GStreamer webrtcbin over WHIP) in network namespace $NS_GST (veth 10.213.0.1)"
  ip netns exec "$NS_GST" env WHIP_ONLY=3 WHIP_HOST=10.213.0.1 node "$HERE/whip.mjs" || status=$?
fi
exit "$status"
