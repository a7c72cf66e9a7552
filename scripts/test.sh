#!/usr/bin/env bash
#
# test.sh - sets up, builds, and runs every test twice: in a normal build and
# in an AddressSanitizer + UndefinedBehaviorSanitizer build.  Without
# FerretDB (it needs Go >= 1.24 to build; setup.sh says what is missing),
# readmongo's integration tests report themselves skipped, with the reason,
# and everything else runs.
#
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Debian's libmongoc creates /dev/shm/mongoc-PID in every process that links
# it (tests included); killed test processes would leave them behind.
export MONGOC_DISABLE_SHM=1

# The reason, in one line: the first two of ferretdb.sh's message.
skipped=""
if ! why=$(scripts/ferretdb.sh check 2>&1); then
    skipped="integ_test_readmongo: $(echo "$why" | head -n 2 | sed 's/^ferretdb.sh: //' | tr -s ' \n' ' ')"
    echo "== note: skipping $skipped" >&2
fi

run() {
    local dir=$1
    shift
    echo "== $dir: building" >&2
    scripts/build.sh "$dir" -DCD_TESTS=ON "$@"
    echo "== $dir: testing" >&2
    (cd "$dir" && ctest --output-on-failure --timeout 900)
}

# On CI (CI=true, root) the normal build's ctest also builds, installs and
# purges the Debian packages (ctest package, scripts/package-test.sh).
CD_PACKAGE_TEST=${CD_PACKAGE_TEST:-${CI:+1}} run build -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    run build-asan -DCMAKE_BUILD_TYPE=Debug -DCD_SANITIZE=ON

echo "== build-fuzz: fuzzing every target for ${CD_FUZZ_SECONDS:-60}s" >&2
scripts/fuzz.sh --all "${CD_FUZZ_SECONDS:-60}"
[ -z "$skipped" ] || echo "== done, but skipped: $skipped" >&2
