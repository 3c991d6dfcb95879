# Shared by the bench scripts (sourced, not run): the private network namespace, commands in
# it, and waiting for a server's port. Set NS before sourcing.

# The namespace $NS with loopback up; with an IP argument, also the veth pair antv0/antv1
# holding that address (Janus gathers no ICE candidate on loopback). Creates what is missing.
bench_namespace() {
  ip netns exec "$NS" true 2>/dev/null || ip netns add "$NS" || return 1
  ip netns exec "$NS" ip link set lo up
  if [ -n "${1:-}" ]; then
    if ! ip netns exec "$NS" ip link show antv0 >/dev/null 2>&1; then
      ip netns exec "$NS" ip link add antv0 type veth peer name antv1
      ip netns exec "$NS" ip addr add "$1/24" dev antv0
    fi
    ip netns exec "$NS" ip link set antv0 up
    ip netns exec "$NS" ip link set antv1 up
  fi
}

# A command inside $NS.
inns() { ip netns exec "$NS" "$@"; }

# Waits until 127.0.0.1:PORT accepts inside $NS, every 0.1 s, at most TRIES times (100).
wait_port() {
  for _ in $(seq "${2:-100}"); do
    inns bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 did not open" >&2
  return 1
}
