#!/usr/bin/env bash
# A short GPU pass after `bash scripts/gpu/suite.sh none` has laid out the
# pack: the families' parity tests (engine, steering) against references
# made on this machine (suite.sh refs), then where a decode step's time goes:
# `genkit generate` run alone with the fused blocks on and off, and
# BenchmarkStepBuildAndEval (graph building vs evaluation per step).
#   OUT=... bash scripts/gpu/probe.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
R=$OUT/probe.txt
for pkg in engine steering; do
  (cd "$ROOT/$pkg" && timeout 300 "$S/tests/$pkg.test" -test.v -test.count=1 -test.run "${PROBE_RUN:-TinyModels|FamilyGGUF|SteeringMatchesHF|Fused}") > "$OUT/probe-$pkg.log" 2>&1
  echo "$pkg: rc=$? $(grep -c -- '--- PASS' "$OUT/probe-$pkg.log") passed, $(grep -c -- '--- FAIL' "$OUT/probe-$pkg.log") failed" | tee -a "$R"
  grep -B2 -A8 -- '--- FAIL' "$OUT/probe-$pkg.log" | head -40 | tee -a "$R"
done
P="Tell me a story about a lighthouse keeper."
for fused in 1 0; do
  for mode in "--dtype float32 --weights dense" "--dtype auto"; do
    start=$(date +%s%N)
    r=$(GENKIT_FUSED_BLOCKS=$fused "$S/bin/genkit" generate --prompt "$P" --chat --max-new-tokens 128 --ignore-eos $mode 2>&1 >/dev/null | tail -1)
    echo "generate alone, GENKIT_FUSED_BLOCKS=$fused $mode: ${r#genkit: } (whole command $(( ($(date +%s%N) - start) / 1000000 )) ms)" | tee -a "$R"
  done
done
for fused in 1 0; do
  (cd "$ROOT/engine" && GENKIT_FUSED_BLOCKS=$fused timeout 200 "$S/tests/engine.test" -test.run '^$' -test.bench 'StepBuildAndEval|Decode1Lane$' -test.benchtime 3x) > "$OUT/probe-bench$fused.log" 2>&1
  grep -E '^Benchmark' "$OUT/probe-bench$fused.log" | sed "s/^/fused=$fused /" | tee -a "$R"
done
