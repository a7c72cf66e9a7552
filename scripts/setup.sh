#!/usr/bin/env bash
#
# setup.sh - installs what clusterd needs to build, run and test, when it is
# missing: Debian packages (apt-get), FerretDB (go install, see ferretdb.sh)
# and the npm packages of the tests.  Idempotent, and quiet when everything
# is already there.  Needs root (or sudo) only when something is missing.
#
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config libev-dev libmongoc-dev libbson-dev libnanomsg-dev
      libcriterion-dev node-llhttp libinih-dev libsystemd-dev libwslay-dev libjwt-dev libssl-dev zlib1g-dev curl
      clang-14 libclang-rt-14-dev    # libFuzzer targets (scripts/fuzz.sh)
      wrk                            # load for the chaos tests (tests/integration/test_chaos.c)
      chromium                       # the headless-browser Socket.IO test (tests/socketio/browser.js)
      debhelper dpkg-dev fakeroot lintian scdoc bash-completion)  # .deb, man pages, completion (debian/, docs/man/)
# Node.js runs the Socket.IO tests; the machine may carry its own build of it
# (which brings npm), so ask apt only when the commands are missing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

scripts/ferretdb.sh install
scripts/npm-setup.sh
