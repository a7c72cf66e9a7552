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
# The public API, include/clusterd/*.h (installed for users' modules), may be
# included from every layer as "clusterd/NAME.h"; those headers themselves
# may include only other clusterd/ headers and system headers (<...> that
# is not a layer's folder), so nothing private leaks into what is installed.
# The link half of the check is CMake's layercheck_LAYER executables.
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

bad=0
for layer in core conf ipc http services worker master ctl; do
    [ -d "$layer" ] || continue
    ok=" $(allowed "$layer") "
    while IFS=: read -r file line inc; do
        dep=${inc%%/*}
        case "$ok" in *" $dep "*) continue ;; esac
        [ "$dep" = clusterd ] && continue
        echo "$file:$line: layer '$layer' may not include \"$inc\" (it may use: $(allowed "$layer"))" >&2
        bad=1
    done < <(grep -rnoE --include='*.c' --include='*.h' '^#include "[a-z]+/[^"]+"' "$layer" |
             sed -E 's/:#include "/:/; s/"$//')
done
# The public headers: only "clusterd/..." (or <clusterd/...>) and system
# headers; a quoted include of anything else, or <LAYER/...>, is private.
if [ -d include/clusterd ]; then
    while IFS=: read -r file line inc; do
        case "$inc" in
        '"clusterd/'* | '<clusterd/'*) continue ;;
        '"'*) ;;
        '<'*)
            dep=${inc#<}
            dep=${dep%%/*}
            case " core conf ipc http services worker master ctl " in *" $dep "*) ;; *) continue ;; esac
            ;;
        esac
        echo "$file:$line: public header may not include $inc (only clusterd/ and system headers)" >&2
        bad=1
    done < <(grep -rnoE --include='*.h' '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"][^>"]+[>"]' include/clusterd |
             sed -E 's/:[[:space:]]*#[[:space:]]*include[[:space:]]*/:/')
fi
# Service modules (services/NAME/, built as clusterd-NAME.so) are built on
# the public API alone, as a user's module is: they may include only
# clusterd/ headers, their own folder's and system headers.  So is
# http/websocket.c and ws_frame.c, which are compiled into the modules that use them.
for dir in services/*/ http/websocket.c http/ws_frame.c http/ws_frame.h; do
    [ -e "$dir" ] || continue
    mod=${dir%/}
    mod=${mod#services/}
    while IFS=: read -r file line inc; do
        case "$inc" in
        '"clusterd/'* | '<clusterd/'* | "\"services/$mod/"*) continue ;;
        '"'*) case "$inc" in */*) ;; *) continue ;; esac ;; # "x.h": its own folder
        '<'*)
            dep=${inc#<}
            dep=${dep%%/*}
            case " core conf ipc http services worker master ctl " in *" $dep "*) ;; *) continue ;; esac
            ;;
        esac
        echo "$file:$line: module code may include only clusterd/, its own folder and system headers, not $inc" >&2
        bad=1
    done < <(grep -rHnoE --include='*.c' --include='*.h' '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"][^>"]+[>"]' "$dir" |
             sed -E 's/:[[:space:]]*#[[:space:]]*include[[:space:]]*/:/')
done
exit $bad
