#!/bin/bash
#
# bench/run.sh [--quick] [bench.py options]
#
# One command for the clusterd benchmark: installs what the peers need when it
# is missing (Debian's nginx-light, wrk, gnuplot-nox, libmongoc-dev,
# linux-perf; express and mongodb from the npm registry into bench/node),
# builds clusterd in release mode, the raw mongoc loop and the no-parse
# ceiling answerer (bench/ceiling.c), then runs bench/bench.py, which starts
# clusterd, nginx, Node.js cluster + Express and the ceiling on their own
# 127.0.0.1 ports with 2 worker processes each, drives them with wrk in
# alternation, adds the growth table (-w 1, readmongo limit 1/20/1000 and
# bench/idle.py's memory per idle connection), and writes
# bench/results/latest.md, latest.json and latest.png.  bench/README.md says
# what every figure means.
#
#   bench/run.sh            the full run (about 15 minutes)
#   bench/run.sh --quick    a few minutes (1 s runs: a smoke test, not numbers to quote)
#   bench/run.sh --out DIR  results elsewhere (smoke tests that must not touch latest.*)
#   bench/run.sh --help     bench.py's options (--rounds, --duration, --only, --pin ...)
#
# Environment: BENCH_NO_INSTALL=1 skips apt-get/npm; BENCH_NO_BUILD=1 uses the
# existing build; BENCH_BUILD_DIR=DIR builds (or, with BENCH_NO_BUILD, takes)
# clusterd and cd-seed in DIR instead of build-release/; BENCH_KEEP=1 keeps
# the scratch directory (configs and logs of every process) even when the run
# succeeds.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo" || exit 1

for a in "$@"; do
    case "$a" in -h | --help) exec python3 "$here/bench.py" --help ;; esac
done

say() { echo "[run.sh] $*" >&2; }

work=$(mktemp -d /tmp/clusterd-bench.XXXXXX) || exit 1
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # bench.py first (it stops what it started: the idle.py servers too),
    # then every process group it recorded, whatever happened, then FerretDB.
    if [ -n "${bench_pid:-}" ] && kill -0 "$bench_pid" 2>/dev/null; then
        kill -TERM "$bench_pid" 2>/dev/null
        wait "$bench_pid" 2>/dev/null
    fi
    if [ -f "$work/pgids" ]; then
        while read -r pg; do
            [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null
        done <"$work/pgids"
    fi
    if [ -d "$work/ferretdb" ] && [ -x "$repo/scripts/ferretdb.sh" ]; then
        "$repo/scripts/ferretdb.sh" stop "$work/ferretdb" >/dev/null 2>&1
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

# ---- peers and tools ------------------------------------------------------
if [ -z "${BENCH_NO_INSTALL:-}" ]; then
    need=()
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
    command -v wrk >/dev/null || need+=(wrk)
    command -v gnuplot >/dev/null || need+=(gnuplot-nox)
    command -v pkg-config >/dev/null || need+=(pkg-config)
    pkg-config --exists libmongoc-1.0 2>/dev/null || need+=(libmongoc-dev)
    command -v node >/dev/null || need+=(nodejs)
    command -v npm >/dev/null || need+=(npm)
    command -v cmake >/dev/null || need+=(cmake)
    command -v perf >/dev/null || need+=(linux-perf)
    command -v taskset >/dev/null || need+=(util-linux)
    if [ ${#need[@]} -gt 0 ]; then
        if [ "$(id -u)" -eq 0 ]; then
            say "installing: ${need[*]}"
            export DEBIAN_FRONTEND=noninteractive
            timeout 600 apt-get update -qq >&2 || say "apt-get update failed"
            if ! timeout 900 apt-get install -y -qq "${need[@]}" >&2; then
                # nginx-light is gone in newer Debian: plain nginx then.
                need=("${need[@]/nginx-light/nginx}")
                timeout 900 apt-get install -y -qq "${need[@]}" >&2 || say "apt-get install failed: some targets will be unavailable"
            fi
        else
            say "missing ${need[*]} and not root: those targets will be unavailable"
        fi
    fi
    if command -v npm >/dev/null && { [ ! -d "$here/node/node_modules/express" ] ||
        [ ! -d "$here/node/node_modules/mongodb" ] ||
        [ "$here/node/package-lock.json" -nt "$here/node/node_modules/.package-lock.json" ]; }; then
        say "npm ci in bench/node"
        (cd "$here/node" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >&2) ||
            say "npm ci failed: the Node target will be unavailable"
    fi
fi

# ---- clusterd, release build ----------------------------------------------
# The work tree first (what you are changing).  If it does not build (say,
# mid-edit), the last commit, exported into the scratch directory, so the run
# still measures a clusterd and says exactly which one.
extra=()
bdir=${BENCH_BUILD_DIR:-$repo/build-release}
case "$bdir" in /*) ;; *) bdir=$repo/$bdir ;; esac
if [ -n "${BENCH_BUILD_DIR:-}" ]; then
    extra+=(--clusterd "$bdir/clusterd" --seed "$bdir/cd-seed")
fi
build_release() { # SRC BUILD LOG
    timeout 900 cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release >"$3" 2>&1 &&
        timeout 1200 cmake --build "$2" -j2 >>"$3" 2>&1
}
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    if [ -f "$repo/CMakeLists.txt" ]; then
        say "building clusterd (Release) in ${bdir#"$repo"/}/"
        if ! build_release "$repo" "$bdir" "$work/build.log"; then
            tail -n 15 "$work/build.log" >&2
            rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null)
            say "the work tree does not build; trying the last commit ${rev:-?}"
            mkdir -p "$work/src"
            if [ -n "$rev" ] && git -C "$repo" archive HEAD | tar -x -C "$work/src" &&
                build_release "$work/src" "$work/build-head" "$work/build-head.log" &&
                [ -x "$work/build-head/clusterd" ]; then
                extra+=(--clusterd "$work/build-head/clusterd" --clusterd-note "commit $rev: the work tree did not build")
                [ -x "$work/build-head/cd-seed" ] && extra+=(--seed "$work/build-head/cd-seed")
            elif [ -x "$bdir/clusterd" ]; then
                tail -n 15 "$work/build-head.log" >&2 2>/dev/null
                note="stale binary built $(date -r "$bdir/clusterd" '+%F %T'): neither the work tree nor HEAD built"
                say "measuring the existing ${bdir#"$repo"/}/clusterd ($note)"
                extra+=(--clusterd-note "$note")
            else
                say "clusterd build FAILED: clusterd will be reported unavailable"
            fi
        fi
    else
        say "no CMakeLists.txt: clusterd will be reported unavailable"
    fi
fi

# ---- the raw mongoc loop ----------------------------------------------------
if pkg-config --exists libmongoc-1.0 2>/dev/null; then
    # shellcheck disable=SC2046
    gcc -O2 -Wall -pthread -D_GNU_SOURCE -I"$here/.." -I"$here/../include" -I/usr/share/include/llhttp -o "$work/mongoc_loop" "$here/mongoc_loop.c" \
        "$here/../services/readmongo/readmongo_json.c" "$here/../core/buf.c" "$here/../core/util.c" \
        $(pkg-config --cflags --libs libmongoc-1.0) >&2 || say "mongoc_loop build failed"
else
    say "libmongoc-1.0 not found: the raw mongoc loop will be unavailable"
fi

# ---- the no-parse ceiling answerer -------------------------------------------
if cc -O2 -Wall -Wextra -o "$work/ceiling" "$here/ceiling.c" >&2; then
    extra+=(--ceiling "$work/ceiling")
else
    say "ceiling build failed: the ceiling target will be unavailable"
fi

# ---- run -------------------------------------------------------------------
quick=0
for a in "$@"; do [ "$a" = --quick ] && quick=1; done
limit=1800
[ $quick -eq 1 ] && limit=600
cmdline="bench/run.sh${*:+ $*}"
# In the background and waited for, so a SIGTERM to this script runs the
# cleanup at once (bash defers traps until a foreground child ends).
timeout --kill-after=15 "$limit" python3 "$here/bench.py" --work "$work" \
    --mongoc-loop "$work/mongoc_loop" --command "$cmdline" ${extra[@]+"${extra[@]}"} "$@" &
bench_pid=$!
wait "$bench_pid"
