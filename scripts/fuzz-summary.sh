#!/usr/bin/env bash
# fuzz-summary.sh DIR — the per-target results `make fuzz` left in DIR, one
# line each: target, package, status, wall time, the last progress line
# (elapsed fuzzing time and execs).
set -u
dir=${1:?usage: fuzz-summary.sh DIR}
echo "fuzz results ($(date -u +%FT%TZ)):"
cat "$dir"/*.result 2>/dev/null || echo "no results in $dir"
