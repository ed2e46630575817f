#!/usr/bin/env bash
# fuzz-one.sh PKG:Target — runs one Go fuzz target for $FUZZTIME with one
# worker and writes $FUZZ_LOGS/Target.log (go test's output) and
# $FUZZ_LOGS/Target.result (one line: target, package, status, wall seconds,
# the last progress line). Minimizing a new input is capped at 5 s so large
# seeds do not eat the run. Used by `make fuzz`.
set -u
spec=$1
pkg=${spec%%:*}
target=${spec##*:}
logs=${FUZZ_LOGS:?FUZZ_LOGS is not set}
fuzztime=${FUZZTIME:?FUZZTIME is not set}
log=$logs/$target.log
start=$(date +%s)
echo "$(date -u +%FT%TZ) start $pkg $target for $fuzztime" >"$log"
go test "./$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s -parallel 1 -v >>"$log" 2>&1
rc=$?
end=$(date +%s)
echo "$(date -u +%FT%TZ) end rc=$rc" >>"$log"
status=ok
[ $rc -eq 0 ] || status="FAIL(rc=$rc)"
last=$(grep -E '^fuzz: elapsed' "$log" | tail -1)
echo "$target $pkg $status wall=$((end - start))s ${last:-no progress line}" >"$logs/$target.result"
echo "$target: $status, $((end - start)) s; ${last:-no progress line}"
