#!/usr/bin/env bash
#
# npm-setup.sh - installs the npm packages the events tests drive clusterd
# with (socket.io-client, pinned by tests/socketio/package-lock.json) into
# tests/socketio/node_modules, when they are missing or older than the lock
# file.  Idempotent, and quiet when they are already there.  Called by
# scripts/setup.sh; needs node and npm (Debian's nodejs and npm).
#
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tests/socketio
stamp=$dir/node_modules/.package-lock.json   # written by npm after an install
if [ -f "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "npm-setup: npm is missing (apt-get install nodejs npm)" >&2
    exit 1
fi
echo "npm-setup: installing $dir/node_modules" >&2
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
