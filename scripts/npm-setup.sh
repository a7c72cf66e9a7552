#!/usr/bin/env bash
#
# npm-setup.sh - installs the npm packages the events tests drive clusterd
# with, each folder's pinned by its package-lock.json, into its
# node_modules when they are missing or older than the lock file:
# tests/socketio (socket.io-client; socket.io with @socket.io/redis-adapter,
# @socket.io/redis-emitter and node-redis for test_redis.c) and tests/sio-protocol (the
# socket.io-protocol test suite's mocha, chai, ws, node-fetch).
# Idempotent, and quiet when they are already there.  Called by
# scripts/setup.sh; needs node and npm (Debian's nodejs and npm).
#
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in tests/socketio tests/sio-protocol; do
    stamp=$dir/node_modules/.package-lock.json   # written by npm after an install
    if [ -f "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ]; then
        continue
    fi
    if ! command -v npm >/dev/null; then
        echo "npm-setup: npm is missing (apt-get install nodejs npm)" >&2
        exit 1
    fi
    echo "npm-setup: installing $dir/node_modules" >&2
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
done
