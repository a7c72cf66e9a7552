#!/usr/bin/env bash
#
# package-test.sh - the Debian packages, end to end (ctest `package`):
# builds them with dpkg-buildpackage in a copy of the committed tree,
# checks them with lintian (no errors), installs clusterd alone (its config
# must pass clusterd -t without the module packages), then all four with
# dpkg -i (apt-get -f install for what they depend on), checks a config
# naming both modules and a module built against libclusterd-dev, starts
# the installed binary as clusterd.service would (user clusterd,
# RUNTIME_DIRECTORY=/run/clusterd), serves requests, rotates the access
# log, reloads (clusterctl reload as ExecReload does, then SIGHUP), stops
# it (SIGTERM), purges the packages and checks that nothing is left (the
# clusterd user stays, as Debian leaves system users).
#
# It changes the machine (as root), so it runs only with CD_PACKAGE_TEST=1
# (scripts/test.sh sets it on CI); otherwise it exits 77, which ctest
# reports as skipped.  About 2-3 minutes on 2 CPUs, most of it the build.
#
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
if [[ ${CD_PACKAGE_TEST:-} != 1 ]]; then
    echo "package: skipped: set CD_PACKAGE_TEST=1 to build, install and purge the .debs (as root)"
    exit 77
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "package: skipped: must run as root (it installs packages)"
    exit 77
fi
CONF=/etc/clusterd/services.ini
PKGS=(clusterd-events clusterd-readmongo libclusterd-dev clusterd)
work=$(mktemp -d /tmp/clusterd-package.XXXXXX)
master=
policy_made=

step() { echo "package: $*"; }
fail() {
    echo "package: FAILED: $*"
    [[ -f $work/master.log ]] && tail -n 30 "$work/master.log"
    exit 1
}
cleanup() {
    if [[ -n $master ]] && kill -0 "$master" 2>/dev/null; then
        kill -QUIT "$master" 2>/dev/null || true
        sleep 1
    fi
    dpkg --purge "${PKGS[@]/%/-dbgsym}" "${PKGS[@]}" >/dev/null 2>&1 || true
    rm -rf "$work" /run/clusterd
    [[ -n $policy_made ]] && rm -f /usr/sbin/policy-rc.d
    return 0
}
trap cleanup EXIT

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds.
wait_for() {
    local n=$(($1 * 10))
    shift
    for ((i = 0; i < n; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# A clean clone's files: the committed tree (what CI checks out), never a
# work tree's half-done edits or build directories.
step "copying the committed tree (git archive HEAD)"
mkdir "$work/clusterd"
git -C "$src" archive HEAD | tar -xf - -C "$work/clusterd"

step "dpkg-buildpackage -b -us -uc"
if ! (cd "$work/clusterd" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -b -us -uc) \
    >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log"
    fail "dpkg-buildpackage"
fi
debs=()
for p in "${PKGS[@]}"; do debs+=("$work/${p}_"*.deb); done # not the -dbgsym ones
for p in "${PKGS[@]}"; do
    ls "$work/${p}_"*.deb >/dev/null 2>&1 || fail "no ${p} package was built"
done
# What the core package must not pull in: the modules' libraries.
deps=$(dpkg-deb -f "$work"/clusterd_*.deb Depends)
for lib in libmongoc libwslay libjwt libssl; do
    [[ $deps == *"$lib"* ]] && fail "clusterd depends on $lib: $deps"
done
step "clusterd depends on: $deps"

step "lintian"
if command -v lintian >/dev/null; then
    lintian --fail-on error "$work"/*.changes || fail "lintian reports errors"
else
    echo "package: lintian is not installed: not checked"
fi

# On a host run by systemd, installing would start clusterd.service (on
# 8080, in /run/clusterd); the test starts its own, so services are not
# started while it installs (policy-rc.d(8), as in containers).
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# package-test.sh: no service starts while it runs\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    policy_made=1
fi

# First clusterd alone, as on a host that serves only built-in services:
# the installed config must not need a module package.
step "installing clusterd alone"
dpkg -i "$work"/clusterd_*.deb || DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq
/usr/sbin/clusterd -t -c "$CONF" || fail "the installed config needs more than the clusterd package"
step "installing ${debs[*]##*/}"
dpkg -i "${debs[@]}" || DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq
for p in "${PKGS[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p") == installed ]] || fail "$p is not installed"
done
getent passwd clusterd >/dev/null || fail "no clusterd user"
for f in /usr/sbin/clusterd /usr/sbin/clusterctl /lib/systemd/system/clusterd.service \
    /usr/lib/sysusers.d/clusterd.conf /usr/lib/tmpfiles.d/clusterd.conf /etc/logrotate.d/clusterd \
    /usr/share/bash-completion/completions/clusterctl /usr/share/man/man8/clusterd.8.gz \
    /usr/share/man/man5/clusterd.ini.5.gz /etc/clusterd/www/index.html; do
    [[ -e $f ]] || fail "$f is not installed"
done
dpkg-query -W -f='${Conffiles}\n' clusterd | grep -q " $CONF " || fail "$CONF is not a conffile"

step "clusterd -t on the installed config and on one naming both modules"
/usr/sbin/clusterd -t -c "$CONF" || fail "clusterd -t -c $CONF"
mods="$work/modules.ini"
{
    sed -n '/^\[cluster\]/,/^\[dummy\]/p' "$CONF" | sed '$d'
    printf '[readmongo]\ncollections = users\n[events]\n'
} >"$mods"
/usr/sbin/clusterd -t -c "$mods" || fail "the installed modules do not load"

step "a module built against libclusterd-dev loads"
cc $(pkg-config --cflags clusterd) -shared -fPIC "$src/examples/hello/hello.c" -o "$work/hello.so" ||
    fail "examples/hello does not build against the installed headers"
printf '[cluster]\nlisten = 127.0.0.1:8080\n[hello]\nmodule = %s\ntype = hello\n' "$work/hello.so" >"$work/hello.ini"
/usr/sbin/clusterd -t -c "$work/hello.ini" || fail "the module built out of tree is refused"

# The installed config, on a port of the test's own (CD_PACKAGE_PORT,
# default 18480: a developer's clusterd may hold 8080), its root absolute.
step "starting it as the unit does (user clusterd, RuntimeDirectory /run/clusterd)"
ADDR=127.0.0.1:${CD_PACKAGE_PORT:-18480}
run_conf="$work/services.ini"
sed -e "s|^listen = .*|listen = $ADDR|" -e 's|^root = www|root = /etc/clusterd/www|' "$CONF" >"$run_conf"
chmod 0644 "$run_conf"
chmod 0755 "$work"
/usr/sbin/clusterd -t -c "$run_conf" || fail "clusterd -t -c $run_conf"
if wait_for 1 curl -s -o /dev/null "http://$ADDR/"; then
    fail "something already listens on $ADDR"
fi
install -d -o clusterd -g clusterd -m 0750 /run/clusterd
RUNTIME_DIRECTORY=/run/clusterd setpriv --reuid=clusterd --regid=clusterd --init-groups --no-new-privs \
    /usr/sbin/clusterd -c "$run_conf" -w 2 2>>"$work/master.log" &
master=$!
wait_for 20 curl -sf http://$ADDR/healthz/ready || fail "not ready within 20 s"
[[ $(ps -o user= -p "$master") == clusterd ]] || fail "the master does not run as clusterd"
[[ -S /run/clusterd/control ]] || fail "no control socket in /run/clusterd"

step "serving"
# (Answers are read whole before grep: grep -q would close the pipe early.)
body=$(curl -sf http://$ADDR/dummy) && [[ $body == *'"service":"dummy"'* ]] || fail "GET /dummy: $body"
body=$(curl -sf http://$ADDR/) && [[ $body == *'<html'* ]] || fail "GET / (the demo page)"
# (/metrics answers 503 until the master's first cluster snapshot.)
metrics_ok() { local m; m=$(curl -sf "http://$ADDR/metrics") && grep -q '^clusterd_requests_total' <<<"$m"; }
wait_for 10 metrics_ok ||
    fail "GET /metrics: $(curl -s -i http://$ADDR/metrics | head -c 600)"
body=$(/usr/sbin/clusterctl -c "$run_conf" status) && [[ $body == *ready* ]] || fail "clusterctl status: $body"
wait_for 10 grep -q 'GET /dummy' /var/log/clusterd/access.log || fail "no access log line"

if command -v logrotate >/dev/null; then
    step "logrotate: the access log is rotated and reopened"
    logrotate -f /etc/logrotate.d/clusterd || fail "logrotate"
    [[ -e /var/log/clusterd/access.log.1 ]] || fail "access.log was not rotated"
    curl -sf http://$ADDR/dummy?after=rotate >/dev/null
    wait_for 10 grep -q 'after=rotate' /var/log/clusterd/access.log ||
        fail "the workers did not reopen the access log"
else
    echo "package: logrotate is not installed: rotation not checked"
fi

step "reload: clusterctl reload (ExecReload), then SIGHUP"
old=$(pgrep -P "$master" | sort)
/usr/sbin/clusterctl -c "$run_conf" reload || fail "clusterctl reload"
new=$(pgrep -P "$master" | sort)
[[ -n $new && -z $(comm -12 <(echo "$old") <(echo "$new")) ]] || fail "reload did not replace the workers"
kill -HUP "$master"
replaced() {
    local now
    now=$(pgrep -P "$master" | sort)
    [[ $(wc -l <<<"$now") -eq 2 && -z $(comm -12 <(echo "$new") <(echo "$now")) ]]
}
wait_for 30 replaced || fail "SIGHUP did not replace the workers"
curl -sf http://$ADDR/dummy >/dev/null || fail "GET /dummy after the reloads"

step "stop (SIGTERM)"
kill -TERM "$master"
rc=0
wait "$master" || rc=$?
master=
[[ $rc -eq 0 ]] || fail "clusterd exited $rc on SIGTERM"
rm -rf /run/clusterd # systemd removes the RuntimeDirectory

step "purge"
dpkg --purge "${PKGS[@]}" || fail "dpkg --purge"
for p in "${PKGS[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ -z $st || $st == not-installed ]] || fail "$p is still $st"
done
left=$(ls -d /etc/clusterd /var/log/clusterd /usr/sbin/clusterd /usr/sbin/clusterctl \
    /usr/lib/*/clusterd /usr/include/clusterd /etc/logrotate.d/clusterd \
    /lib/systemd/system/clusterd.service 2>/dev/null || true)
[[ -z $left ]] || fail "left after purge: $left"
getent passwd clusterd >/dev/null && step "the clusterd user stays (Debian leaves system users)"
echo "package: 1 passed, 0 failed"
