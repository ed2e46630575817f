#!/usr/bin/env bash
# Where a GPU decode step's time goes, after `bash scripts/gpu/suite.sh none`
# has laid out the pack: genkit alone (no peers) on Qwen3-4B-shaped random
# weights and on the default model, `genkit bench --json` printing each
# lane count's decode steps/s beside its host split (decode_host_share:
# building the step's graph, async_eval, waiting for the token), each with
# the size rule's choice (engine/gemvpolicy.go: the 4B's blocks as five
# kernels, the default model's as one) and with the other one
# (GENKIT_BLOCK_KERNEL=1 or 0). With HOSTSHARE_EXTRA=1 also the 4B run with MLX's
# CUDA graphs off. Kernels' own times: blockprof.sh. Results:
# $OUT/hostshare.txt and one JSON a run.
#   OUT=... bash scripts/gpu/hostshare.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
R=$OUT/hostshare.txt
echo "# decode host share, $(date -u +%FT%H:%MZ), $(nvidia-smi -L | head -1)" | tee -a "$R"
show() { # show LABEL FILE
  python3 "$(dirname "$0")/benchrow.py" --host-share "$1" "$2" | tee -a "$R"
}
bench() { # bench LABEL FILE ARGS...
  local label=$1 f=$2
  shift 2
  timeout 400 "$@" --python /nonexistent --json --repeat 1 > "$f" 2> "$f.err"
  show "$label" "$f"
}
bench "4B" "$OUT/hs-4b.json" "$S/bin/genkit" bench --synthetic qwen3-4b
bench "4B, one kernel" "$OUT/hs-4b-one.json" env GENKIT_BLOCK_KERNEL=1 "$S/bin/genkit" bench --synthetic qwen3-4b
bench "default model" "$OUT/hs-default.json" "$S/bin/genkit" bench
bench "default, five kernels" "$OUT/hs-default-five.json" env GENKIT_BLOCK_KERNEL=0 "$S/bin/genkit" bench
[ -n "${HOSTSHARE_EXTRA:-}" ] || exit 0
bench "4B, no CUDA graphs" "$OUT/hs-4b-nographs.json" env MLX_USE_CUDA_GRAPHS=0 "$S/bin/genkit" bench --synthetic qwen3-4b
