#!/usr/bin/env bash
# Which products genkit's CUDA kernels take (engine/gemvpolicy.go), measured:
# after `bash scripts/gpu/suite.sh none` has laid out the pack, genkit alone
# (no peers) decodes random weights of Qwen3-0.6B's and Qwen3-4B's shapes in
# bfloat16 and 4 bits with the size rule (GENKIT_GEMV unset), with the
# kernels on every product (all), the same with the one-warp-a-row product
# kernel instead of the tiled one (warp: GENKIT_PRODUCT=warp) and with them
# off (0), one run each, in that order per shape (POLICY_SETTINGS picks).
# (The default model is under the size bound: the rule gives it every
# kernel, as before; docs/benchmarks.md has it on and off.)
# POLICY_SHAPES picks the shapes. Results: $OUT/policy.txt and one JSON a run.
#   OUT=... bash scripts/gpu/policy.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
R=$OUT/policy.txt
echo "# kernel policy, $(date -u +%FT%H:%MZ), $(nvidia-smi -L | head -1), CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-all}" | tee -a "$R"
row() { # row LABEL FILE: one line of decode steps/s at 1/2/8 lanes per engine
  python3 "$(dirname "$0")/benchrow.py" "$1" "$2" | tee -a "$R"
}
for shape in ${POLICY_SHAPES:-qwen3-0.6b qwen3-4b}; do
  for setting in ${POLICY_SETTINGS:-rule all warp 0}; do
    f=$OUT/policy-$shape-$setting.json
    run=(env GENKIT_GEMV="$setting") label="GENKIT_GEMV=$setting"
    [ "$setting" = rule ] && run=(env -u GENKIT_GEMV) label="rule (GENKIT_GEMV unset)"
    [ "$setting" = warp ] && run=(env GENKIT_GEMV=all GENKIT_PRODUCT=warp) label="all, one-warp-a-row kernel"
    "${run[@]}" timeout 300 "$S/bin/genkit" bench --synthetic "$shape" --python /nonexistent --json > "$f" 2> "$f.err"
    row "$shape $label" "$f"
  done
done
