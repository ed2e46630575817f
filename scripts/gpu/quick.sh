#!/usr/bin/env bash
# A focused GPU pass for kernel work, after `bash scripts/gpu/suite.sh none`
# has laid out the pack: selected tests of the mlx and engine packages, then
# `genkit bench` (genkit's own rows, no python peers) with the fused GPU
# decode blocks on and off, in one lease so the numbers compare.
#   OUT=... bash scripts/gpu/quick.sh [TEST_PATTERN]
set -uo pipefail
source "$(dirname "$0")/env.sh"
PAT=${1:-GEMV|Fused|TinyModels|Greedy|Parity}
for pkg in mlx engine; do
  (cd "$ROOT/$pkg" && timeout 400 "$S/tests/$pkg.test" -test.v -test.count=1 -test.run "$PAT") > "$OUT/quick-$pkg.log" 2>&1
  echo "$pkg: rc=$? $(grep -c -- '--- PASS' "$OUT/quick-$pkg.log") passed, $(grep -c -- '--- FAIL' "$OUT/quick-$pkg.log") failed"
  grep -B2 -A12 -- '--- FAIL' "$OUT/quick-$pkg.log" | head -60
done
for fused in 1 0; do
  GENKIT_FUSED_BLOCKS=$fused timeout 300 "$S/bin/genkit" bench --json --python /bin/false > "$OUT/bench-fused$fused.json" 2> "$OUT/bench-fused$fused.err"
  echo "bench GENKIT_FUSED_BLOCKS=$fused: rc=$?"
  python3 - "$OUT/bench-fused$fused.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("  unreadable:", e); sys.exit()
for name, e in d.items():
    if isinstance(e, dict) and "decode_steps_per_s" in e:
        print("  ", name, round(e.get("prefill_tps", 0)), e["decode_steps_per_s"], e.get("weights", ""))
PY
done
tail -n 5 "$OUT"/bench-fused*.err
