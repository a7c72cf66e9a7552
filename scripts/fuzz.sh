#!/usr/bin/env bash
#
# fuzz.sh TARGET [SECONDS]  - runs one libFuzzer target (tests/fuzz/fuzz_TARGET.c)
# fuzz.sh --all [SECONDS]   - runs every target, two at a time (the test command)
# fuzz.sh --list            - lists the targets
#
# Builds build-fuzz/ with clang-14 (-fsanitize=fuzzer,address,undefined)
# when needed.  Each run starts from the target's seed corpus
# (tests/fuzz/corpus/TARGET) and its regressions, and works in a scratch
# copy, so a run never changes the repository.  New inputs worth keeping are
# copied to build-fuzz/new-corpus/TARGET; a crash is kept in
# build-fuzz/crashes/TARGET/ and fails the run: add it to
# tests/fuzz/regressions/TARGET/ with the fix (the ordinary test suites then
# replay it forever).  Default: 60 seconds per target.
#
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
dir=${CD_FUZZ_BUILD:-build-fuzz}

targets() { for f in tests/fuzz/fuzz_*.c; do f=${f##*/fuzz_}; echo "${f%.c}"; done; }

# build TARGET...: configures build-fuzz and builds only these fuzz_TARGETs
# (and what they link), so one target does not wait for the whole tree.
build() {
    local log; log=$(mktemp)
    local tg=(); for t in "$@"; do tg+=(--target "fuzz_$t"); done
    if ! { CC=${CC_FUZZ:-clang-14} cmake -S . -B "$dir" -DCD_FUZZ=ON -DCD_TESTS=OFF \
               -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
           cmake --build "$dir" -j"$(nproc)" "${tg[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
}

# run_one TARGET SECONDS: prints one summary line; returns non-zero on a finding.
run_one() {
    local t=$1 secs=$2
    local work; work=$(mktemp -d)
    local crashes="$src/$dir/crashes/$t"
    mkdir -p "$work/corpus" "$crashes" "$src/$dir/new-corpus/$t"
    cp -r "tests/fuzz/corpus/$t/." "$work/corpus/" 2>/dev/null || true
    cp -r "tests/fuzz/regressions/$t/." "$work/corpus/" 2>/dev/null || true
    local dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    local rc=0
    # detect_leaks: a leak is a finding like a crash.  -rss_limit_mb: the
    # machine is shared with the rest of the tests.
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$dir/fuzz_$t" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" \
        "$work/corpus" >"$work/log" 2>&1 || rc=$?
    local execs; execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    local cov; cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 || true)
    if [ $rc -ne 0 ]; then
        echo "fuzz $t: FAILED after ${execs:-?} executions (exit $rc); input kept in $crashes" >&2
        grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$work/log" | head -40 >&2
    else
        echo "fuzz $t: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, corpus $(ls "$work/corpus" | wc -l) inputs"
        cp -n "$work/corpus/"* "$src/$dir/new-corpus/$t/" 2>/dev/null || true
    fi
    rm -rf "$work"
    return $rc
}

case "${1:-}" in
--list) targets ;;
--all)
    secs=${2:-60}
    # shellcheck disable=SC2046
    build $(targets)
    export -f run_one
    export dir src
    # Two at a time: the machine has two CPUs; each target gets its own.
    targets | xargs -P "${CD_FUZZ_JOBS:-2}" -I{} bash -c 'run_one "$1" "$2"' _ {} "$secs"
    ;;
""|-h|--help) sed -n '3,15p' "$0" | sed 's/^# \{0,1\}//' ; exit 2 ;;
*)
    t=$1
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target '$t' (try --list)" >&2; exit 2; }
    build "$t"
    run_one "$t" "${2:-60}"
    ;;
esac
