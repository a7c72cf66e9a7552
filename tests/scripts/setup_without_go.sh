#!/usr/bin/env bash
#
# setup_without_go.sh SRC READMONGO_TEST - the set-up on a machine whose Go
# cannot build FerretDB (Debian 12's golang is 1.19), with FerretDB not
# installed (FERRETDB_BIN names a file that does not exist) and a fake `go`
# first on PATH that answers `go version` only and records every call:
#   - scripts/ferretdb.sh check and install exit 3 with the message: what
#     is missing (Go >= 1.24, and which go is there) and what it costs (the
#     demo database and readmongo's integration tests, nothing else), and
#     never ask that go to build anything;
#   - scripts/setup.sh's FerretDB step says it once and goes on (exit 0);
#   - with no go at all, the message says so;
#   - with Go 1.24 the check passes, saying nothing (nothing changes there);
#   - readmongo's integration tests exit 77 (ctest: skipped) printing why.
#
set -euo pipefail
src=$1
rmtest=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sys=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export FERRETDB_BIN=$tmp/nowhere/ferretdb

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# fake_go DIR VERSION: a go that knows only `go version`.
fake_go() {
    mkdir -p "$1"
    cat >"$1/go" <<EOF
#!/bin/sh
echo "\$*" >>"$tmp/go-calls"
[ "\$1" = version ] || { echo "fake go: \$*" >&2; exit 1; }
echo "go version $2 linux/amd64"
EOF
    chmod +x "$1/go"
}
fake_go "$tmp/old" go1.19.8
fake_go "$tmp/new" go1.24.0
mkdir -p "$tmp/none"

# run PATHDIR CMD...: runs CMD with PATHDIR first on PATH; sets out and rc.
run() {
    local dir=$1
    shift
    rc=0
    out=$(PATH="$dir:$sys" "$@" 2>&1) || rc=$?
}

run "$tmp/old" "$src/scripts/ferretdb.sh" check
[ "$rc" -eq 3 ] || fail "ferretdb.sh check with go1.19.8 exited $rc (want 3): $out"
for want in "FerretDB v1.24.2 (the demo database) is not installed" "needs Go >= 1.24" "$tmp/old/go is go1.19.8" \
    "Only the demo database and readmongo's integration tests need FerretDB" "scripts/run.sh starts clusterd without it" \
    "/healthz/ready names it degraded" "reports integ_test_readmongo as skipped" "https://go.dev/dl/"; do
    grep -qF -- "$want" <<<"$out" || fail "the message lacks \"$want\": $out"
done

run "$tmp/old" "$src/scripts/ferretdb.sh" install
[ "$rc" -eq 3 ] || fail "ferretdb.sh install with go1.19.8 exited $rc (want 3): $out"
grep -qF "needs Go >= 1.24" <<<"$out" || fail "install does not say why: $out"
if grep -qv '^version$' "$tmp/go-calls"; then
    fail "go was asked for more than its version: $(cat "$tmp/go-calls")"
fi

run "$tmp/old" "$src/scripts/setup.sh" ferretdb
[ "$rc" -eq 0 ] || fail "setup.sh's FerretDB step exited $rc (want 0, going on): $out"
[ "$(grep -c "needs Go >= 1.24" <<<"$out")" -eq 1 ] || fail "setup.sh should say it once: $out"

if PATH="$tmp/none:$sys" command -v go >/dev/null; then
    echo "note: $(PATH="$tmp/none:$sys" command -v go) is on the system PATH: the no-go case is not checked"
else
    run "$tmp/none" "$src/scripts/ferretdb.sh" check
    [ "$rc" -eq 3 ] || fail "check without go exited $rc (want 3): $out"
    grep -qF "but there is no go command" <<<"$out" || fail "without go: $out"
fi

run "$tmp/new" "$src/scripts/ferretdb.sh" check
[ "$rc" -eq 0 ] && [ -z "$out" ] || fail "with go1.24.0 check should pass quietly (rc $rc): $out"

run "$tmp/old" env CLUSTERD_SRC="$src" "$rmtest"
[ "$rc" -eq 77 ] || fail "readmongo's tests exited $rc (want 77, skipped): $out"
grep -qF "SKIPPED: readmongo's integration tests need FerretDB" <<<"$out" || fail "no reason printed: $out"
grep -qF "go1.19.8" <<<"$out" || fail "the reason does not name the go found: $out"
echo "ok: without Go >= 1.24 the set-up says why and goes on; readmongo's tests are skipped with the reason"
