#!/usr/bin/env bash
#
# completion.sh - sources clusterctl's bash completion
# (dist/clusterctl.bash-completion) in this bash and checks COMPREPLY for a
# few command lines: commands, options, config paths, per-command words.
# Usage: completion.sh PATH_TO_COMPLETION_SCRIPT (ctest `completion`).
#
set -u
src=${1:?usage: completion.sh COMPLETION_FILE}
# shellcheck source=/dev/null
. "$src"
fails=0 passes=0

# complete LINE: COMPREPLY for the command line LINE (the cursor at its end),
# sorted, one line.
complete_line()
{
    local line=$1
    read -r -a COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line
    COMP_POINT=${#line}
    COMPREPLY=()
    _clusterctl clusterctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

expect()
{
    local line=$1 want=$2 got
    got=$(complete_line "$line")
    if [[ $got == "$want" ]]; then
        passes=$((passes + 1))
    else
        echo "FAIL: '$line' completes to '$got', expected '$want'"
        fails=$((fails + 1))
    fi
}

[[ $(complete -p clusterctl) == "complete -F _clusterctl clusterctl" ]] ||
    { echo "FAIL: no completion registered for clusterctl"; fails=$((fails + 1)); }

expect "clusterctl " "drain events reload reopen-logs scale status stop top undrain upgrade"
expect "clusterctl re" "reload reopen-logs"
expect "clusterctl st" "status stop"
expect "clusterctl --j" "--json"
expect "clusterctl -" "--help --json -c -s -t"
expect "clusterctl stop " "--now"
expect "clusterctl -c x.ini stop --" "--now"
expect "clusterctl -s /run/clusterd sta" "status"
expect "clusterctl -t 5 --json st" "status stop"
expect "clusterctl reload " ""
expect "clusterctl scale " ""

# Config paths: *.ini files and directories, nothing else.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/conf.d"
touch "$tmp/services.ini" "$tmp/notes.txt" "$tmp/other.ini"
expect "clusterctl -c $tmp/" "$tmp/conf.d $tmp/other.ini $tmp/services.ini"
expect "clusterctl -c $tmp/s" "$tmp/services.ini"
expect "clusterctl -c $tmp/n" ""
expect "clusterctl status -c $tmp/o" "$tmp/other.ini"
expect "clusterctl -s $tmp/" "$tmp/conf.d"

echo "completion: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
