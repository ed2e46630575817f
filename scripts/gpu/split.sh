#!/usr/bin/env bash
# The GPU suite's tests on a machine with two GPUs, after `bash
# scripts/gpu/suite.sh none` has laid out the pack: the packages matching
# SPLIT (default engine|mlx, the longest) on GPU 0 and the others on GPU 1,
# at once, each in its own results folder ($OUT/g0, $OUT/g1); then both
# summaries, and the logs of failing packages are kept (the others dropped,
# since a run returns few files).
#   OUT=... bash scripts/gpu/split.sh            (about 6 minutes on 2x H200)
set -uo pipefail
cd "$(dirname "$0")/../.."
SPLIT=${SPLIT:-engine|mlx}
(CUDA_VISIBLE_DEVICES=0 OUT=$OUT/g0 SUITE_ONLY="$SPLIT" timeout 570 bash scripts/gpu/suite.sh tests > /dev/null 2>&1) &
(CUDA_VISIBLE_DEVICES=1 OUT=$OUT/g1 SUITE_SKIP="$SPLIT" timeout 570 bash scripts/gpu/suite.sh tests > /dev/null 2>&1) &
wait
grep -hv "skip reason" "$OUT/g0/summary.txt" "$OUT/g1/summary.txt" | grep -v '^ *$'
rm -f "$OUT"/g*/gpu-results.tgz
for f in "$OUT"/g*/test-*.log; do grep -q -- '--- FAIL' "$f" || rm -f "$f"; done
