#!/usr/bin/env bash
# Checks genkit's kernel cache (mlx/shim_ptx.cpp) on the GPU machine, after
# `bash scripts/gpu/suite.sh none` has laid out the pack:
#  1. the mlx tests of the GPU kernels, precompiled (TestGEMVMatchesMatmul
#     against MLX's matmul; TestPrecompiledKernelsGPU compiles a kernel into
#     a fresh directory and a child process loads it) and the engine's
#     fused-block and tiny-model tests (the engine's cache dir);
#  2. `genkit generate` (greedy, 128 tokens, fused blocks on) with the cache
#     off (GENKIT_KERNEL_CACHE=0), then twice with an empty cache directory:
#     the first run compiles every variant, the second must compile none
#     (GENKIT_DEBUG=1 prints one "compiled" or "loaded" line per variant)
#     and must print the same text;
#  3. BenchmarkStepBuildAndEval with the cache off and on (the host cost of
#     building a step's graph).
#   OUT=... bash scripts/gpu/kcache.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
R=$OUT/kcache.txt
: > "$R"
run_tests() { # pkg pattern [VAR=value...]
  (cd "$ROOT/$1" && env "${@:3}" GENKIT_DEBUG=1 timeout 400 "$S/tests/$1.test" -test.v -test.count=1 -test.run "$2") > "$OUT/kcache-$1.log" 2>&1
  echo "$1: rc=$? $(grep -c -- '--- PASS' "$OUT/kcache-$1.log") passed, $(grep -c -- '--- FAIL' "$OUT/kcache-$1.log") failed" | tee -a "$R"
  grep -B2 -A12 -- '--- FAIL' "$OUT/kcache-$1.log" | head -60 | tee -a "$R"
}
# GEMV against MLX's matmul through the precompiled kernels (every dtype, row
# count and bit width), in a directory of their own.
rm -rf "$GK/cache/kernels-mlx"
run_tests mlx 'GEMV|PrecompiledKernels|KernelCache|KernelSource' GENKIT_KERNEL_CACHE="$GK/cache/kernels-mlx"
grep 'child:' "$OUT/kcache-mlx.log" | head -4 | tee -a "$R"
echo "mlx: $(grep -c 'kernel cache: compiled' "$OUT/kcache-mlx.log") variants compiled, $(grep -c 'runs through MLX' "$OUT/kcache-mlx.log") fallback notes" | tee -a "$R"
grep 'runs through MLX' "$OUT/kcache-mlx.log" | head -3 | tee -a "$R"
run_tests engine 'Fused|TinyModels'

P="Tell me a story about a lighthouse keeper."
rm -rf "$GENKIT_CACHE_DIR/kernels"
for run in off first second; do
  env=(GENKIT_FUSED_BLOCKS=1 GENKIT_DEBUG=1)
  [ "$run" = off ] && env+=(GENKIT_KERNEL_CACHE=0)
  start=$(date +%s%N)
  env "${env[@]}" timeout 300 "$S/bin/genkit" generate --prompt "$P" --chat --max-new-tokens 128 --ignore-eos --greedy \
    --dtype float32 --weights dense > "$OUT/kcache-gen-$run.out" 2> "$OUT/kcache-gen-$run.err"
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  e=$OUT/kcache-gen-$run.err
  echo "generate, cache $run: rc=$rc, $(grep -o '[0-9.]* tokens/s' "$e" | tail -1) (whole command $ms ms);" \
    "kernel cache lines: $(grep -c 'kernel cache: compiled' "$e") compiled, $(grep -c 'kernel cache: loaded' "$e") loaded;" \
    "$(grep 'kernel cache: \(on\|off\)' "$e" | head -1)" | tee -a "$R"
  grep 'kernel cache:' "$e" | grep -v 'compiled\|loaded' | head -5 | tee -a "$R"
done
echo "cache files: $(ls "$GENKIT_CACHE_DIR"/kernels/*.gkc 2>/dev/null | wc -l)" | tee -a "$R"
for run in first second; do
  cmp -s "$OUT/kcache-gen-off.out" "$OUT/kcache-gen-$run.out" && echo "text, cache $run: same as cache off" ||
    echo "text, cache $run: DIFFERS from cache off" | tee -a "$R"
done | tee -a "$R"
for kc in 0 1; do
  (cd "$ROOT/engine" && GENKIT_KERNEL_CACHE=$kc timeout 200 "$S/tests/engine.test" -test.run '^$' -test.bench 'StepBuildAndEval|Decode1Lane$' -test.benchtime 3x) > "$OUT/kcache-bench$kc.log" 2>&1
  grep -E '^Benchmark' "$OUT/kcache-bench$kc.log" | sed "s/^/GENKIT_KERNEL_CACHE=$kc /" | tee -a "$R"
done
