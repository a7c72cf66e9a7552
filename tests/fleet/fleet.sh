#!/usr/bin/env bash
#
# fleet.sh BUILD_DIR SRC_DIR - a fleet of clusterd hosts behind HAProxy,
# on this machine (ctest `fleet`, issue 14).  Root only: Linux network
# namespaces, one per machine of the fleet, named after this script's pid
# and joined by a bridge (in a namespace of its own) and veth pairs:
#
#   fl<pid>h1..h3  10.213.0.11-13  clusterd -w 2 (listen :8080, drain_delay 3s)
#   fl<pid>lb      10.213.0.2      haproxy -f deploy/haproxy.cfg (addresses replaced)
#   fl<pid>rd      10.213.0.3      redis-server (the events service's adapter = redis)
#   fl<pid>cl      10.213.0.100    the clients: wrk, node (tests/socketio/fleet.js), curl
#   fl<pid>sw      the bridge
#
# Nothing is addressed outside those namespaces; all of them go at the end
# (trap), with every process this script started.
#
# Under a paced load through HAProxy (wrk, 4 connections, a request every
# 5 ms on each), and with Socket.IO clients connected through HAProxy
# receiving what a backend publishes on host 3 every 200 ms, it:
#   1. kills host 1 (SIGKILL, master and workers at once);
#   2. drains host 2 (clusterctl drain) and waits for HAProxy to take it out,
#      stops it (SIGTERM: drain_delay, then the listeners close), starts it
#      again and waits for HAProxy to take it back;
#   3. starts host 1 again; restarts host 2 with SIGTERM alone, as
#      `systemctl restart` would (drain_delay is what takes it out);
# then checks: in step 3, HAProxy took host 2 out before its listeners
# stopped (what drain_delay is for: with 0 it fails; the failed-request
# count alone would not show it, as HAProxy retries a refused connect);
# the failed requests (wrk's errors and non-2xx answers) are
# counted and printed, and must be at most the load's connections (a
# request in flight on a host as it dies; with retries 3, option
# redispatch 1 and retry-on all-retryable-errors in haproxy.cfg a GET is
# sent again elsewhere, so the expected count is 0); every Socket.IO client
# gets every tick published once the fleet has settled, once.  The
# Socket.IO part needs the events service's adapter = redis: without it
# (clusterd -t refuses the key) only the HTTP part runs, and it says so.
#
# Exit 0 pass, 1 fail, 77 skip (not root, no ip/haproxy/redis-server/wrk/
# node, namespaces cannot be made).  Bounded: about 55 s, at most 2 minutes.
# It also checks deploy/clusterd.ini with `clusterd -t`, and fails on a
# sanitizer report in a host's log (run it with an ASan build's dir).
#
set -u
build=${1:?usage: fleet.sh BUILD_DIR SRC_DIR}
src=${2:?usage: fleet.sh BUILD_DIR SRC_DIR}
build=$(cd "$build" && pwd)
src=$(cd "$src" && pwd)

skip() {
    echo "fleet: SKIP: $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (it creates network namespaces)"
for c in ip haproxy redis-server wrk node curl; do
    command -v "$c" >/dev/null || skip "no $c in PATH (scripts/setup.sh installs it)"
done
[ -d "$src/tests/socketio/node_modules/socket.io-client" ] || skip "npm packages missing (scripts/npm-setup.sh)"

id=$$
P=fl$id
NETS=(sw h1 h2 h3 lb rd cl)
tmp=$(mktemp -d /tmp/fleet.XXXXXX)
chmod 700 "$tmp"
declare -A PID=()
ok=1

say() { echo "fleet: $*"; }
fail() {
    echo "fleet: FAIL: $*"
    ok=0
}
# (A process to keep, kill or wait for is started with `ip netns exec`
# itself, not this function, so that $! is its pid: ip execs it.)
in_ns() {
    local n=$1
    shift
    ip netns exec "$P$n" "$@"
}

# Every process of ours, by pid (children of clusterd masters first), then
# the namespaces.
cleanup() {
    local n p
    for n in "${!PID[@]}"; do
        p=${PID[$n]}
        [ -n "$p" ] || continue
        kill -KILL $(cat /proc/"$p"/task/*/children 2>/dev/null) "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for n in "${NETS[@]}"; do
        ip netns del "$P$n" 2>/dev/null
    done
    if [ $ok -eq 1 ]; then
        rm -rf "$tmp"
    else
        say "logs kept in $tmp"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the network ----
ip netns add "${P}sw" 2>/dev/null || skip "cannot create a network namespace (ip netns add)"
ip -n "${P}sw" link add br0 type bridge && ip -n "${P}sw" link set br0 up || skip "cannot create a bridge"
addr() {
    case $1 in
    h1) echo 10.213.0.11 ;; h2) echo 10.213.0.12 ;; h3) echo 10.213.0.13 ;;
    lb) echo 10.213.0.2 ;; rd) echo 10.213.0.3 ;; cl) echo 10.213.0.100 ;;
    esac
}
for n in h1 h2 h3 lb rd cl; do
    ip netns add "$P$n" || skip "cannot create namespace $P$n"
    ip link add eth0 netns "$P$n" type veth peer name "$n" netns "${P}sw" || skip "cannot create a veth pair"
    ip -n "$P$n" addr add "$(addr $n)/24" dev eth0
    ip -n "$P$n" link set lo up
    ip -n "$P$n" link set eth0 up
    ip -n "${P}sw" link set dev "$n" master br0 up
done
# Reachable: a connection to a closed port is refused (curl: 7), not lost.
in_ns cl curl -s -m 3 "http://$(addr lb):1/" >/dev/null 2>&1
[ $? -eq 7 ] || skip "the namespaces do not reach each other"

# ---- redis ----
ip netns exec "${P}rd" redis-server --bind "$(addr rd)" --port 6379 --save "" --appendonly no --protected-mode no \
    --daemonize no >"$tmp/redis.log" 2>&1 &
PID[redis]=$!

# ---- the clusterd hosts ----
# The Socket.IO part needs the Redis adapter (issue 14's "redis" work).
cat >"$tmp/probe.ini" <<EOF
[cluster]
listen = 127.0.0.1:8080
runtime_dir = $tmp/probe
[events]
type = events
adapter = redis
EOF
sio=1
if ! probe=$("$build/clusterd" -t -c "$tmp/probe.ini" 2>&1); then
    sio=0
    say "the events service has no adapter = redis here ($probe): HTTP part only, no Socket.IO check"
fi

# The recipe's own config is a valid one (its secrets file made up).
if [ $sio -eq 1 ]; then
    mkdir -p "$tmp/recipe"
    cp "$src/deploy/clusterd.ini" "$tmp/recipe/services.ini"
    echo "made-up-token" >"$tmp/recipe/publish.token"
    out=$("$build/clusterd" -t -c "$tmp/recipe/services.ini" 2>&1) || fail "deploy/clusterd.ini: $out"
fi

write_conf() {
    local n=$1
    mkdir -p "$tmp/$n"
    cat >"$tmp/$n/services.ini" <<EOF
[cluster]
listen = $(addr "$n"):8080
runtime_dir = $tmp/$n/run
drain_delay = 3s
graceful_timeout = 5s
heartbeat_interval = 200ms
[dummy]
[healthz]
type = health
route = /healthz
EOF
    [ $sio -eq 1 ] && cat >>"$tmp/$n/services.ini" <<EOF
[events]
type = events
route = /socket.io
transports = polling, websocket
adapter = redis
redis_uri = redis://$(addr rd):6379/0
redis_timeout = 1s
EOF
    return 0
}

start_host() {
    local n=$1
    ip netns exec "$P$n" "$build/clusterd" -c "$tmp/$n/services.ini" -w 2 >>"$tmp/$n/clusterd.log" 2>&1 &
    PID[$n]=$!
}

# GET url from the clients' namespace: the status code (000: none).
code() { in_ns cl curl -s -o /dev/null -m 2 -w '%{http_code}' "$1"; }

# Waits (at most $2 s) until host $1 answers readiness without draining.
wait_host() {
    local n=$1 i body
    for ((i = 0; i < $2 * 10; i++)); do
        body=$(in_ns cl curl -s -m 1 "http://$(addr "$n"):8080/healthz/ready")
        [[ $body == *'"draining":false'* ]] && [[ $sio -eq 0 || $body == *'"ready":true'* ]] && return 0
        sleep 0.1
    done
    fail "host $n not ready after $2 s (last answer: $body)"
    return 1
}

# HAProxy's view of server clusterdN: UP, DOWN, MAINT, ... (its stats CSV).
lb_state() {
    in_ns cl curl -s -m 1 "http://$(addr lb):8404/stats;csv" |
        awk -F, -v s="clusterd${1#h}" '$1 == "clusterd" && $2 == s { print $18 }'
}
# Waits (at most $3 s) until HAProxy says server $1 is $2 (a prefix: UP, DOWN).
wait_lb() {
    local i st
    for ((i = 0; i < $3 * 10; i++)); do
        st=$(lb_state "$1")
        [[ $st == "$2"* ]] && return 0
        sleep 0.1
    done
    fail "HAProxy did not see $1 $2 within $3 s (it says '$st')"
    return 1
}

# Stops host $1 with SIGTERM (exit 0 within 15 s: drain_delay 3 s, then
# the drain), starts it again and waits until HAProxy has it back.
restart_host() {
    local n=$1 p=${PID[$1]} i rc
    kill -TERM "$p"
    if [ "${2:-}" = out-first ]; then
        # HAProxy takes it out during drain_delay, before its listeners stop
        # (the master logs "graceful stop: finishing in-flight requests" then).
        wait_lb "$n" DOWN 10
        ! grep -q "finishing in-flight requests" "$tmp/$n/clusterd.log" ||
            fail "host $n stopped accepting before HAProxy took it out"
    fi
    for ((i = 0; i < 150; i++)); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    wait "$p"
    rc=$?
    PID[$n]=
    [ $rc -eq 0 ] || fail "host $n exited with $rc after SIGTERM"
    start_host "$n"
    wait_host "$n" 20 && wait_lb "$n" UP 15
}

for n in h1 h2 h3; do
    write_conf $n
    start_host $n
done
for n in h1 h2 h3; do
    wait_host $n 20 || exit 1
done

# ---- haproxy: the recipe's own config ----
sed -e 's/10\.0\.0\.1\([123]\):8080/10.213.0.1\1:8080/' -e '/^ *log /d' -e '/option httplog/d' \
    -e "s#/run/haproxy/admin.sock#$tmp/haproxy.sock#" -e "s/^\( *maxconn\) [0-9]*/\1 4000/" \
    "$src/deploy/haproxy.cfg" >"$tmp/haproxy.cfg"
ip netns exec "${P}lb" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
PID[haproxy]=$!
for n in h1 h2 h3; do
    wait_lb $n UP 15 || exit 1
done
say "3 hosts up behind HAProxy$([ $sio -eq 1 ] && echo ", Socket.IO rooms through Redis")"

# ---- load and clients ----
cat >"$tmp/pace.lua" <<'EOF'
-- a request every 5 ms on each connection; the counts at the end
function delay() return 5 end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("FLEETLOAD requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
conns=4
ip netns exec "${P}cl" wrk -t1 -c$conns -d40s --timeout 5s -s "$tmp/pace.lua" "http://$(addr lb)/dummy" >"$tmp/wrk.log" 2>&1 &
PID[wrk]=$!
if [ $sio -eq 1 ]; then
    mkdir -p "$tmp/flags"
    ip netns exec "${P}cl" node "$src/tests/socketio/fleet.js" "http://$(addr lb)" "http://$(addr h3):8080" 6 "$tmp/flags" \
        >"$tmp/node.log" 2>&1 &
    PID[node]=$!
    for ((i = 0; i < 150; i++)); do
        grep -qs "FLEET connected" "$tmp/node.log" && break
        kill -0 "${PID[node]}" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "FLEET connected" "$tmp/node.log" || fail "the Socket.IO clients did not connect: $(tail -5 "$tmp/node.log")"
fi
sleep 3

# ---- 1. host 1 dies ----
say "killing host 1 (SIGKILL, master and workers)"
p=${PID[h1]}
kill -KILL $(cat /proc/"$p"/task/*/children 2>/dev/null) "$p" 2>/dev/null
wait "$p" 2>/dev/null
PID[h1]=
wait_lb h1 DOWN 10
sleep 2

# ---- 2. host 2 drains, stops, comes back ----
say "draining host 2"
in_ns h2 "$build/clusterctl" -c "$tmp/h2/services.ini" drain >>"$tmp/h2/clusterctl.log" 2>&1 || fail "clusterctl drain"
[ "$(code "http://$(addr h2):8080/healthz/ready")" = 503 ] || fail "host 2's readiness is not 503 once drained"
[ "$(code "http://$(addr h2):8080/dummy")" = 200 ] || fail "host 2 does not serve /dummy while drained"
wait_lb h2 DOWN 10
say "HAProxy took host 2 out; stopping it (SIGTERM) and starting it again"
restart_host h2 || exit 1
say "host 2 is back"

# ---- 3. host 1 comes back; host 2 restarts as systemctl restart would ----
start_host h1
wait_host h1 20
wait_lb h1 UP 15
say "host 1 is back; restarting host 2 with SIGTERM alone (drain_delay takes it out)"
: >"$tmp/h2/clusterd.log"
restart_host h2 out-first || exit 1
say "host 2 is back again"
touch "$tmp/flags/settled" 2>/dev/null

# ---- the counts ----
if [ $sio -eq 1 ]; then
    wait "${PID[node]}"
    rc=$?
    PID[node]=
    grep FLEETSIO "$tmp/node.log" | sed 's/^/fleet: /'
    [ $rc -eq 0 ] || fail "Socket.IO clients (node exited $rc): $(grep -E 'FAIL' "$tmp/node.log" | head -3)"
    line=$(grep FLEETSIO "$tmp/node.log")
    [[ $line =~ \"reconnects\":([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] ||
        fail "no Socket.IO client reconnected (host 1 and 2 had none?)"
fi
wait "${PID[wrk]}"
PID[wrk]=
load=$(grep FLEETLOAD "$tmp/wrk.log")
say "$load"
grep -E "Non-2xx|Socket errors" "$tmp/wrk.log" | sed 's/^/fleet: wrk: /'
if [[ $load =~ requests=([0-9]+)\ connect=([0-9]+)\ read=([0-9]+)\ write=([0-9]+)\ status=([0-9]+)\ timeout=([0-9]+) ]]; then
    total=${BASH_REMATCH[1]}
    failed=$((BASH_REMATCH[2] + BASH_REMATCH[3] + BASH_REMATCH[4] + BASH_REMATCH[5] + BASH_REMATCH[6]))
    say "requests through HAProxy: $total, failed: $failed (bound: $conns, one in flight per connection)"
    [ "$total" -ge 1000 ] || fail "only $total requests: the load did not run"
    [ "$failed" -le $conns ] || fail "$failed failed requests, more than $conns"
else
    fail "no counts from wrk: $(tail -5 "$tmp/wrk.log")"
fi
# A sanitizer build's reports.
if grep -l -E "Sanitizer|runtime error:" "$tmp"/h*/clusterd.log 2>/dev/null; then
    fail "sanitizer report in a host's log (above)"
fi
if [ $ok -eq 1 ]; then
    say "PASS"
    exit 0
fi
for f in "$tmp"/h2/clusterd.log "$tmp"/haproxy.log "$tmp"/node.log; do
    echo "---- $f (last 30 lines)"
    tail -30 "$f"
done
exit 1
