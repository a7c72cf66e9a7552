#!/usr/bin/env bash
#
# build.sh [DIR [cmake args...]] - configures and builds clusterd in DIR
# (default build/).  Quiet unless something fails.
#
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
log=$(mktemp)
if ! { cmake -S . -B "$dir" "$@" && cmake --build "$dir" -j"$(nproc)"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
fi
rm -f "$log"
