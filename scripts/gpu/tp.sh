#!/usr/bin/env bash
# Tensor parallelism on a machine with two NVIDIA GPUs, after
# `bash scripts/gpu/suite.sh none` has laid out the pack: the two-process
# parity test over NCCL (one GPU a rank), genkit launch with NCCL (dist-check
# and a steered generate against one process), and the decode benchmark of a
# random-weight model too large for one GPU: Llama 3 70B's shape deepened
# until its bfloat16 weights exceed one GPU's memory (TP_LAYERS=auto, the
# default; TP_LAYERS=N sets the depth), decoded with and without steering.
#   OUT=... bash scripts/gpu/tp.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
export NCCL_NVLS_ENABLE=0
R=$OUT/tp.txt
say() { echo "$*" | tee -a "$R"; }
say "# tensor parallelism, $(date -u +%FT%H:%MZ), $(nvidia-smi -L | tr '\n' ';')"
(cd "$ROOT/engine" && GENKIT_TEST_TP_BACKEND=nccl timeout 300 "$S/tests/engine.test" -test.v -test.count=1 -test.run 'TestTensorParallelMatchesOneProcess|TestShardMLPTwoProcesses') > "$OUT/tp-parity.log" 2>&1
say "parity over NCCL: rc=$? $(grep -c -- '--- PASS' "$OUT/tp-parity.log") passed, $(grep -c -- '--- FAIL' "$OUT/tp-parity.log") failed"
grep -A5 -- '--- FAIL\|--- SKIP' "$OUT/tp-parity.log" | head -30 | tee -a "$R"
# The terminal UI's model work led by rank 0 and followed by rank 1 (the
# runner, cancels, max_time, a sweep, vectors), over NCCL.
(cd "$ROOT/tui" && GENKIT_TEST_TP_BACKEND=nccl timeout 300 "$S/tests/tui.test" -test.v -test.count=1 -test.run 'TestRunnerLockstepTwoProcesses') > "$OUT/tp-lockstep.log" 2>&1
say "UI lockstep over NCCL: rc=$? $(grep -c -- '--- PASS' "$OUT/tp-lockstep.log") passed, $(grep -c -- '--- FAIL' "$OUT/tp-lockstep.log") failed"
grep -E -- '--- FAIL|lockstep_test.go:2[0-9][0-9]: (the cancelled|cancel on|time on)' "$OUT/tp-lockstep.log" | head -10 | sed 's/^/    /' | tee -a "$R"
say "launch dist-check: $(timeout 200 "$S/bin/genkit" launch -n 2 --backend nccl -- dist-check --iters 200 2>&1 | tail -3 | tr '\n' ' ')"
# The CLI: one process against two ranks on a tiny model (the default
# SmolLM2's 9 heads and 3 key/value heads do not split over two ranks: that
# is refused, and said so).
T=$ROOT/engine/testdata/hf/qwen3_headdim
args=(generate --model "$T" --tokens 17,3,99,42,7,250 --max-new-tokens 24 --ignore-eos --json)
one=$(timeout 200 "$S/bin/genkit" "${args[@]}" 2>/dev/null)
two=$(timeout 200 "$S/bin/genkit" launch -n 2 --backend nccl -- "${args[@]}" 2>"$OUT/tp-generate.err")
python3 - "$one" "$two" <<'PY' | tee -a "$R"
import json, sys
def toks(s):
    try:
        return json.loads(s)["base"]["tokens"]
    except Exception:
        return None
a, b = toks(sys.argv[1]), toks(sys.argv[2])
print("genkit generate (qwen3_headdim, greedy 24 tokens), one GPU vs genkit launch -n 2 over NCCL:",
      "identical" if a and a == b else f"DIFFER one={a} two={b}")
PY
say "default model under launch -n 2: $(timeout 200 "$S/bin/genkit" launch -n 2 --backend nccl -- generate --tokens 1,2,3 --max-new-tokens 2 2>&1 | grep -m1 'tensor parallelism' | sed 's/.*genkit: //')"
# The big model: two ranks, one GPU each (no launch needed: the test binary is the program).
# TP_BENCH=0 leaves it out.
[ "${TP_BENCH:-1}" = 0 ] && exit 0
port=$((29500 + RANDOM % 400))
pids=()
for r in 0 1; do
  (cd "$ROOT/engine" && MLX_RANK=$r MLX_WORLD_SIZE=2 NCCL_HOST_IP=127.0.0.1 NCCL_PORT=$port CUDA_VISIBLE_DEVICES=$r \
    GENKIT_DIST_BACKEND=nccl GENKIT_BENCH_LAYERS=${TP_LAYERS:-auto} timeout ${TP_TIMEOUT:-400} "$S/tests/engine.test" -test.run '^$' -test.bench 'TensorParallelDecode' -test.benchtime 2x) > "$OUT/tp-bench$r.log" 2>&1 &
  pids+=($!)
done
# What the GPUs hold while it runs (a stall shows here and in the ranks' progress lines).
( for i in $(seq 1 40); do sleep 10; echo "$(date -u +%T) $(nvidia-smi --query-gpu=index,memory.used,utilization.gpu --format=csv,noheader | tr '\n' ';')"; done ) > "$OUT/tp-bench-gpus.log" 2>&1 &
mon=$!
wait "${pids[@]}"
kill $mon 2>/dev/null
for r in 0 1; do
  say "  rank $r:"; grep -E '^\[rank|^Benchmark|FAIL|rror|--- ' "$OUT/tp-bench$r.log" | sed 's/^/    /' | tee -a "$R"
done
nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader | sed 's/^/    after: /' | tee -a "$R"
