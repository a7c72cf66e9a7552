#!/usr/bin/env bash
#
# run.sh [clusterd args...] - sets up, builds, starts the demo database
# (FerretDB on 127.0.0.1:27017, state in .state/, seeded on first use) and
# runs clusterd in the foreground with conf/services.ini.  Ctrl-C stops both.
# Without FerretDB (it needs Go >= 1.24 to build; setup.sh said so) clusterd
# starts all the same: readmongo answers 503 and /healthz/ready names it
# degraded, every other service works.
#
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build

state=$PWD/.state/ferretdb
if scripts/ferretdb.sh check 2>/dev/null; then
    mkdir -p "$state"
    scripts/ferretdb.sh start "$state" 27017
    trap 'scripts/ferretdb.sh stop "$state"' EXIT
    build/cd-seed "mongodb://127.0.0.1:27017" demo
else
    echo "run.sh: starting without the demo database (FerretDB needs Go >= 1.24, see above):" \
         "readmongo answers 503 and curl localhost:8080/healthz/ready names it degraded" >&2
fi

echo "clusterd: open http://localhost:8080/ (the demo page) and /chat.html (Socket.IO chat; two tabs), or try  curl localhost:8080/dummy  and  curl 'localhost:8080/readmongo/users?limit=2'" >&2
build/clusterd -c conf/services.ini "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM
# wait returns early when a trapped signal arrives: wait again for the exit.
status=0
wait $pid || status=$?
while kill -0 $pid 2>/dev/null; do wait $pid || status=$?; done
exit $status
