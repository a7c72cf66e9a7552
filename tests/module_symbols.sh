#!/usr/bin/env bash
#
# module_symbols.sh SRC BINARY MODULE.so... - the link half of "modules use
# the public API alone" (ctest: module_symbols).
#
# A module is dlopen'ed by a worker and resolves clusterd's functions from
# the executable, which exports them (ENABLE_EXPORTS).  scripts/layers.sh
# makes sure a module's files include only clusterd/ headers; this checks
# what the built modules actually call:
#   1. every cd_* function a module leaves undefined is declared in a header
#      of include/clusterd/ (nothing private reached by a hand-written
#      prototype) and exported by the binary (it would fail at dlopen);
#   2. every function the public headers declare is exported by the binary,
#      under that name, except clusterd/websocket.h's, which the binary
#      does not link (wslay): those must be defined by a module that uses
#      them instead.
# Exits 1 naming each symbol that breaks a rule.
#
set -euo pipefail
src=$1
bin=$2
shift 2

# Functions the public headers declare: the preprocessor drops comments
# and macros; a declared function is a cd_ name followed by '(' (a pointer
# to function is "(*cd_name)(").
public=$(for h in "$src"/include/clusterd/*.h; do ${CC:-cc} -E -P -I"$src"/include "$h"; done |
         grep -oE '\bcd_[a-z0-9_]+[[:space:]]*\(' | tr -d '( ' | sort -u)
ws=$(grep -oE '\bcd_ws_[a-z0-9_]+\(' "$src"/include/clusterd/websocket.h | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$bin" | awk '{print $3}' | grep '^cd_' | sort -u)
[ -n "$public" ] && [ -n "$exported" ] || { echo "module_symbols: nothing to compare" >&2; exit 1; }

bad=0
has() { grep -qx "$1" <<<"$2"; }
inmods=""
for so in "$@"; do
    inmods+=$'\n'$(nm -D --defined-only "$so" | awk '{print $3}' | grep '^cd_' || true)
    for sym in $(nm -D --undefined-only "$so" | awk '{print $2}' | grep '^cd_' || true); do
        has "$sym" "$public" || { echo "$(basename "$so"): calls $sym, which no clusterd/ header declares" >&2; bad=1; }
        has "$sym" "$exported" || { echo "$(basename "$so"): calls $sym, which $(basename "$bin") does not export" >&2; bad=1; }
    done
done
for sym in $public; do
    if has "$sym" "$ws"; then
        has "$sym" "$inmods" || { echo "$sym (clusterd/websocket.h) is defined by none of the modules" >&2; bad=1; }
    else
        has "$sym" "$exported" || { echo "$sym is declared in include/clusterd/ but $(basename "$bin") does not export it" >&2; bad=1; }
    fi
done
echo "module_symbols: $(wc -w <<<"$public") public functions, $# modules checked"
exit $bad
