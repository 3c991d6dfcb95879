#!/usr/bin/env bash
# The one command that runs Antenna's whole test suite:  ./test.sh
#
# Needs only the Rust toolchain (cargo, rustfmt, clippy), gcc, Python and Node; installs
# cargo-fuzz (from the Rust package registry) when it is missing. Steps, in order, stopping at the first failure:
#   fmt      cargo fmt --all --check
#   clippy   cargo clippy --workspace --all-targets --release -- -D warnings (release, so the
#            C build of aws-lc-sys it needs is the one the release tests reuse)
#   test     cargo test --workspace --release (release: the browser step builds the release
#            antenna binary anyway, so both share one release build of str0m/aws-lc-rs, and
#            the simulation and property tests run much faster; overflow checks are covered
#            by the fuzz step, whose builds keep debug assertions)
#   sim      the simulation tests once more with --nocapture, to print their figures
#   load     bench/smoke.sh: the 20-second smoke of the fan-out benchmark (antenna-load against
#            the release antenna on loopback; checks delivery and loss accounting, not speed)
#   fuzz     every cargo-fuzz target: replay the committed corpus (fuzz/corpus/<target>),
#            then fuzz it for FUZZ_SECONDS (default 30 for each of the five targets) seconds.
#            Built without a sanitizer (debug assertions and overflow checks stay on): the
#            fuzzed crates forbid unsafe
#            code, and AddressSanitizer cut throughput 5-9x and made RSS 14x (signalling:
#            ~800 vs ~3900 inputs/s, 510 vs 37 MB; client_message: 3.8k vs 35k inputs/s)
#   cluster  scripts/local-cluster.sh with CHECK=1: Redis and three nodes start, are ready, stop
#   browser  bash tests/browser/run.sh (the real AMS JS SDK in headless Chromium)
# A timing summary is printed at the end (also on failure).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
export CARGO_TERM_PROGRESS_WHEN=never

STEP_NAMES=()
STEP_TIMES=()
STEP_RESULTS=()
T_START=$SECONDS

summary() {
    local i passed=0 failed=0
    echo
    echo "==== test.sh summary ===="
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-8s %6ss  %s\n' "${STEP_NAMES[$i]}" "${STEP_TIMES[$i]}" "${STEP_RESULTS[$i]}"
        if [ "${STEP_RESULTS[$i]}" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    printf '  %-8s %6ss\n' total "$((SECONDS - T_START))"
    echo "steps: $passed passed, $failed failed"
}

# step NAME COMMAND...: runs COMMAND with errexit in force, records its time and result, and
# stops the whole run on failure.
step() {
    local name=$1 t0=$SECONDS rc=0
    shift
    echo
    echo "==== [$name] $* ===="
    set +e
    (set -euo pipefail; "$@")
    rc=$?
    set -e
    STEP_NAMES+=("$name")
    STEP_TIMES+=("$((SECONDS - t0))")
    if [ "$rc" -eq 0 ]; then
        STEP_RESULTS+=(ok)
    else
        STEP_RESULTS+=("FAILED (exit $rc)")
        summary
        exit "$rc"
    fi
}

fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "cargo-fuzz missing: installing it from the Rust package registry"
        cargo install cargo-fuzz --locked
    fi
    # cargo-fuzz needs nightly-only rustc flags (sanitizers); the stable toolchain accepts
    # them with RUSTC_BOOTSTRAP=1.
    export RUSTC_BOOTSTRAP=1
    local targets t work
    targets=$(cargo fuzz list)
    [ -n "$targets" ] || { echo "no fuzz targets found"; return 1; }
    work=$(mktemp -d)
    # Expanded now: the trap runs when the step's subshell exits, after this function's
    # locals are gone.
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    for t in $targets; do
        [ -d "fuzz/corpus/$t" ] || { echo "no committed corpus fuzz/corpus/$t"; return 1; }
        echo "---- $t: replay $(find "fuzz/corpus/$t" -type f | wc -l) committed inputs"
        cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- -runs=0
        # New inputs go to a scratch directory (first corpus dir), so the committed corpus
        # stays as it is.
        echo "---- $t: fuzz for ${FUZZ_SECONDS}s"
        mkdir -p "$work/$t"
        cargo fuzz run --sanitizer none "$t" "$work/$t" "fuzz/corpus/$t" -- \
            -max_total_time="$FUZZ_SECONDS" -print_final_stats=1
    done
}

# Python's Prometheus text-format parser, for the metrics test (server-mio/tests/observability.rs).
python_deps() {
    if /usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
        echo "python3-prometheus-client present"
        return 0
    fi
    echo "installing python3-prometheus-client from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-prometheus-client \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-prometheus-client; }
    /usr/bin/python3 -c 'import prometheus_client.openmetrics.parser'
}

# Debian's Redis, for the cluster test (server-mio/tests/cluster.rs starts its own on 127.0.0.1).
redis_deps() {
    if command -v redis-server >/dev/null; then
        echo "redis-server present"
        return 0
    fi
    echo "installing redis-server from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; }
    command -v redis-server
}

step deps python_deps
step deps-redis redis_deps
step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets --release -- -D warnings
step test cargo test --workspace --release
# The simulation tests again, with their output: how many scenarios and steps ran, and the
# media figures (frames received, loss) they measured.
step sim cargo test --release --workspace --test sim_random --test sim_media -- --nocapture
step load bash bench/smoke.sh
# The one-line local cluster (Redis and three nodes on loopback) starts, every node is ready and
# registered, and it stops.
step cluster env CHECK=1 ANTENNA_BIN=target/release/antenna REDIS_PORT=6391 BASE_HTTP=5380 BASE_UDP=50300 bash scripts/local-cluster.sh 3
step fuzz fuzz
step browser bash tests/browser/run.sh
summary
