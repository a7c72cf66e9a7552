#!/bin/bash
#
# bench/events/run.sh [--quick] [bench.js options]
#
# The Socket.IO fan-out benchmark (issue 6): clusterd's events service
# against Node.js cluster + socket.io + @socket.io/cluster-adapter, both with
# 2 worker processes on 127.0.0.1, the same clients and the same load.
# Builds clusterd (Release) in build-release/ and the C load driver
# (bench/events/driver.c, plain cc, into the scratch directory), installs the
# npm packages into bench/events/node (npm ci from the committed lock file),
# then runs bench/events/node/bench.js, which alternates the two servers
# (A B A B, 3 rounds) and writes bench/events/results/latest.md (and
# latest.json, every run's raw numbers), which it also prints.
#
# The clients are the C driver's by default (one epoll loop speaking
# Engine.IO v4 over WebSocket; it uses a fraction of the servers' CPU);
# --driver node uses driver.js (socket.io-client, a whole core at
# saturation), --driver both runs each and reports both side by side.
# --pin puts the driver on CPU 0 and the servers on the other CPUs.
#
#   bench/events/run.sh            200 clients, 3 rounds (about 3-5 minutes)
#   bench/events/run.sh --quick    50 clients, short phases (about a minute;
#                                  a smoke test, not numbers to quote)
#   bench/events/run.sh --transport polling
#                                  the polling row (issue 12): the same load
#                                  with every client on HTTP long-polling, Node
#                                  with @socket.io/sticky; writes
#                                  results/latest-polling.md
#   bench/events/run.sh --driver both --pin
#                                  both drivers, driver and servers on
#                                  separate CPUs (taskset)
#   bench/events/run.sh --help     bench.js's options (--rounds, --clients,
#                                  --rate, --window, --only, --driver ...)
#
# Environment: BENCH_NO_INSTALL=1 skips npm; BENCH_NO_BUILD=1 uses the
# existing build-release/clusterd; BENCH_BUILD_DIR=DIR builds (or, with
# BENCH_NO_BUILD, takes) clusterd there instead; BENCH_KEEP=1 keeps the
# scratch directory (configs and logs of every process) even when the run
# succeeds.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo" || exit 1

say() { echo "[events/run.sh] $*" >&2; }

command -v node >/dev/null || { say "node is required (Debian: apt-get install nodejs npm)"; exit 1; }
for a in "$@"; do
    case "$a" in -h | --help) exec node "$here/node/bench.js" --help ;; esac
done

work=$(mktemp -d /tmp/clusterd-bench-events.XXXXXX) || exit 1
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Every process group bench.js started (it records them), whatever
    # happened to bench.js itself.
    if [ -n "${bench_pid:-}" ]; then
        kill -TERM "$bench_pid" 2>/dev/null
        wait "$bench_pid" 2>/dev/null
    fi
    if [ -f "$work/pgids" ]; then
        while read -r pg; do
            [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null
        done <"$work/pgids"
    fi
    if [ "$rc" -eq 0 ] && [ -z "${BENCH_KEEP:-}" ]; then
        rm -rf "$work"
    else
        say "scratch directory kept: $work (configs and logs)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- npm packages -------------------------------------------------------------
if [ -z "${BENCH_NO_INSTALL:-}" ]; then
    if ! command -v npm >/dev/null; then
        say "npm is required (Debian: apt-get install npm)"
        exit 1
    fi
    # npm ci unless node_modules was installed from this very lock file.
    if [ ! -f "$here/node/node_modules/.package-lock.json" ] ||
        [ "$here/node/package-lock.json" -nt "$here/node/node_modules/.package-lock.json" ]; then
        say "installing socket.io, @socket.io/cluster-adapter, @socket.io/sticky, socket.io-client (npm ci)"
        if ! (cd "$here/node" && timeout 300 npm ci --no-audit --no-fund >"$work/npm.log" 2>&1); then
            tail -n 20 "$work/npm.log" >&2
            say "npm ci failed"
            exit 1
        fi
    fi
fi

# ---- clusterd, release build --------------------------------------------------
# In build-release/, or BENCH_BUILD_DIR (a helper's own directory on a shared
# checkout).  Serialized (flock) against another run of this script; when the
# build fails, the existing binary is measured and the run says so.
bdir=${BENCH_BUILD_DIR:-$repo/build-release}
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    say "building clusterd (Release) in $bdir"
    mkdir -p "$bdir"
    if ! (
        flock -w 600 9 || exit 1
        timeout 900 cmake -S "$repo" -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DCD_TESTS=OFF &&
            timeout 1200 cmake --build "$bdir" -j2
    ) 9>"$bdir/.events-build-lock" >"$work/build.log" 2>&1; then
        tail -n 20 "$work/build.log" >&2
        if [ -x "$bdir/clusterd" ]; then
            say "the build FAILED; measuring the existing $bdir/clusterd from $(date -r "$bdir/clusterd" '+%F %T')"
        else
            say "the build FAILED and there is no $bdir/clusterd"
            exit 1
        fi
    fi
fi
[ -x "$bdir/clusterd" ] || { say "no $bdir/clusterd (unset BENCH_NO_BUILD)"; exit 1; }

# ---- the C load driver ----------------------------------------------------------
say "building the C load driver (bench/events/driver.c)"
if ! timeout 120 cc -O2 -Wall -Wextra -o "$work/cdriver" "$here/driver.c" "$here/driver_run.c" -lm >"$work/cdriver.log" 2>&1; then
    cat "$work/cdriver.log" >&2
    say "the C driver did not build (cc is in build-essential)"
    exit 1
fi

# ---- the benchmark ------------------------------------------------------------
cmd="bench/events/run.sh${*:+ $*}"
node "$here/node/bench.js" --clusterd "$bdir/clusterd" --cdriver "$work/cdriver" --work "$work" \
    --command "$cmd" "$@" &
bench_pid=$!
wait "$bench_pid"
rc=$?
bench_pid=
exit "$rc"
