#!/usr/bin/env bash
#
# check_keys.sh - clusterd.ini(5) and the code agree on the config keys
# (ctest man_keys).  conf_keys (tests/man/conf_keys.c) prints every key of
# every table with its default; this compares them with the keys the man
# page documents, section by section, both ways, and each documented
# default with the code's.
#
# The page's conventions (docs/man/clusterd.ini.5.scd):
#   ## [cluster]                 the [cluster] section
#   ## Every service section     keys any service section takes
#   ## type = NAME               the keys of service type NAME
#   *key* = _what it takes_      a key, at the start of a line, under those
#   <TAB>Default *VALUE*...      its default, on the next line (optional
#                                only where the code has none to read)
# Usage: check_keys.sh CONF_KEYS_BINARY MAN_PAGE.scd
#
set -euo pipefail
bin=${1:?usage: check_keys.sh CONF_KEYS MAN.scd}
page=${2:?usage: check_keys.sh CONF_KEYS MAN.scd}

code=$("$bin")
doc=$(awk '
    function unesc(s) { gsub(/\\/, "", s); return s }
    /^## / {
        sec = ""
        if ($0 ~ /^## \[cluster\]/) sec = "cluster"
        else if ($0 ~ /^## Every service section/) sec = "service"
        else if (match($0, /^## type = [a-z_]+/)) sec = substr($0, 11, RLENGTH - 10)
        next
    }
    pending != "" {
        d = "-"
        if (match($0, /^\tDefault \*[^*]*\*/)) d = unesc(substr($0, RSTART + 10, RLENGTH - 11))
        gsub(/ /, "_", d)
        print pending, d
        pending = ""
    }
    sec != "" && match($0, /^\*[a-z_]+\* = /) {
        pending = sec " " substr($0, 2, RLENGTH - 5)
    }
    END { if (pending != "") print pending, "-" }
' "$page")

fails=0
names() { awk '{print $1, $2}' | sort; }
missing=$(comm -23 <(names <<<"$code") <(names <<<"$doc"))
extra=$(comm -13 <(names <<<"$code") <(names <<<"$doc"))
if [[ -n $missing ]]; then
    echo "keys in the code but not in $(basename "$page") (section key):"
    sed 's/^/  /' <<<"$missing"
    fails=1
fi
if [[ -n $extra ]]; then
    echo "keys in $(basename "$page") that the code does not have (section key):"
    sed 's/^/  /' <<<"$extra"
    fails=1
fi
# Defaults: wherever the code has one to read, the page must say the same.
while read -r sec key want; do
    [[ $want == - ]] && continue
    got=$(awk -v s="$sec" -v k="$key" '$1 == s && $2 == k {print $3}' <<<"$doc")
    [[ -z $got ]] && continue # reported above
    if [[ $got != "$want" ]]; then
        echo "[$sec] $key: the page says default ${got//_/ }, the code has ${want//_/ }"
        fails=1
    fi
done <<<"$code"
n=$(wc -l <<<"$code")
if [[ $fails -ne 0 ]]; then
    echo "man_keys: FAILED ($n keys in the code)"
    exit 1
fi
echo "man_keys: the $n keys of the code are the page's, defaults agree"
