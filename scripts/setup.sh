#!/usr/bin/env bash
#
# setup.sh [STEP...] - installs what clusterd needs to build, run and test,
# when it is missing: Debian packages (step `packages`, apt-get), FerretDB
# (`ferretdb`, go install, see ferretdb.sh) and the npm packages of the tests
# (`npm`); all three when no step is named.  Idempotent, and quiet when
# everything is already there.  Needs root (or sudo) only when something is
# missing.
#
# FerretDB needs Go >= 1.24 to build (Debian 12's own golang is 1.19).
# Without it, ferretdb.sh says what is missing and what that costs (only the
# demo database and readmongo's integration tests need FerretDB) and the
# set-up goes on: everything else builds, runs and is tested.
#
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config libev-dev libmongoc-dev libbson-dev libnanomsg-dev
      libcriterion-dev node-llhttp libinih-dev libsystemd-dev libwslay-dev libjwt-dev libssl-dev zlib1g-dev curl
      libcurl4-openssl-dev           # the events service's HTTP hooks (services/events/hookclient.c)
      clang-14 libclang-rt-14-dev    # libFuzzer targets (scripts/fuzz.sh)
      wrk                            # load for the chaos tests (tests/integration/test_chaos.c)
      openssl                        # a throwaway CA for readmongo's TLS test (tests/integration/test_readmongo_net.c)
      redis-server                   # the Redis of test_redis.c (started by the test on a free loopback port:
                                     # the packaged service on 6379 is neither needed nor used)
      libhiredis-dev libmsgpack-dev  # the events service's Redis adapter (hiredis over libev, msgpack-c)
      haproxy iproute2               # the fleet test (tests/fleet/fleet.sh: HAProxy in front of hosts in network namespaces)
      chromium                       # the headless-browser Socket.IO test (tests/socketio/browser.js)
      debhelper dpkg-dev fakeroot lintian scdoc bash-completion logrotate)  # .deb (package-test.sh), man pages, completion
# Node.js runs the Socket.IO tests; the machine may carry its own build of it
# (which brings npm), so ask apt only when the commands are missing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    PKGS+=(nodejs npm)
fi

# Installs the Debian packages of PKGS that are missing.
packages() {
    local missing=() p SUDO
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
}

# ferretdb.sh exits 3 when Go cannot build FerretDB, having said why.
ferretdb() {
    local rc=0
    scripts/ferretdb.sh install || rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 3 ] || exit $rc
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(packages ferretdb npm)
for step in "${steps[@]}"; do
    case $step in
    packages) packages ;;
    ferretdb) ferretdb ;;
    npm) scripts/npm-setup.sh ;;
    *) echo "usage: setup.sh [packages] [ferretdb] [npm]" >&2; exit 2 ;;
    esac
done
