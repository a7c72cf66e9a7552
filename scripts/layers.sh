#!/usr/bin/env bash
#
# layers.sh [SRC] - fails when a source file includes a header from a layer
# it may not use.  CMake runs it before compiling anything, so a wrong-way
# include breaks the build.  The layers (one folder = one static library):
#
#   core <- conf, ipc <- http <- services <- worker
#   master and ctl use only core, conf and ipc
#
# clusterd.c (the binary's entry), tests/, bench/ and tools/ may use any.
#
set -euo pipefail
src=${1:-$(dirname "$0")/..}
cd "$src"

allowed() { # layer -> the layers it may include (itself first)
    case $1 in
    core) echo "core" ;;
    conf) echo "conf core" ;;
    ipc) echo "ipc core" ;;
    http) echo "http ipc conf core" ;;
    services) echo "services http ipc conf core" ;;
    worker) echo "worker services http ipc conf core" ;;
    master) echo "master ipc conf core" ;;
    ctl) echo "ctl ipc conf core" ;;
    esac
}

# During a restructuring, known wrong-way includes may be listed in
# scripts/layers.todo as "file include" lines; each is reported as a warning
# only.  The list is meant to be empty.
todo=""
[ -f scripts/layers.todo ] && todo=$(grep -v '^#' scripts/layers.todo || true)

bad=0
for layer in core conf ipc http services worker master ctl; do
    [ -d "$layer" ] || continue
    ok=" $(allowed "$layer") "
    while IFS=: read -r file line inc; do
        dep=${inc%%/*}
        case "$ok" in *" $dep "*) continue ;; esac
        if printf '%s\n' "$todo" | grep -qxF "$file $inc"; then
            echo "$file:$line: warning: \"$inc\" is a known wrong-way include (scripts/layers.todo)" >&2
            continue
        fi
        echo "$file:$line: layer '$layer' may not include \"$inc\" (it may use: $(allowed "$layer"))" >&2
        bad=1
    done < <(grep -rnoE --include='*.c' --include='*.h' '^#include "[a-z]+/[^"]+"' "$layer" |
             sed -E 's/:#include "/:/; s/"$//')
done
exit $bad
