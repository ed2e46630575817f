#!/usr/bin/env bash
# A decoder block's own GPU time, one kernel against five, after
# `bash scripts/gpu/suite.sh none` has laid out the pack: Nsight Compute
# (ncu) times the first launches of genkit's kernels in a short 4-bit
# Qwen3-4B-shaped decode (--synthetic qwen3-4b; its bf16 half runs first, so
# the kernels are picked by name): the block kernel (genkit_qblock, as
# GENKIT_BLOCK_KERNEL=1 runs it, at each GENKIT_BLOCK_GRID in $GRIDS), then
# the five kernels (genkit_tqproduct: the four products; attention: the
# bf16 half's, the same work). Results: $OUT/blockprof.txt.
#   OUT=... GRIDS="4 2 1" bash scripts/gpu/blockprof.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
R=$OUT/blockprof.txt
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "no ncu" | tee -a "$R"; exit 0; }
echo "# block kernel time, $(date -u +%FT%H:%MZ), $(nvidia-smi -L | head -1)" | tee -a "$R"
prof() { # prof LABEL REGEX COUNT ENV...
  local label=$1 re=$2 count=$3
  shift 3
  env "$@" timeout 200 "$NCU" --kernel-name "regex:$re" --launch-skip 8 --launch-count "$count" \
    --metrics gpu__time_duration.sum --csv "$S/bin/genkit" bench --synthetic qwen3-4b --python /nonexistent \
    --json --repeat 1 --prompt-tokens 16 --decode-tokens 8 > "$OUT/ncu-$label.csv" 2> "$OUT/ncu-$label.err"
  python3 - "$label" "$OUT/ncu-$label.csv" <<'PY' | tee -a "$R"
import csv, sys, collections
label, path = sys.argv[1], sys.argv[2]
rows = [r for r in csv.reader(l for l in open(path) if l.startswith('"'))]
if not rows:
    print(f"{label}: no rows"); sys.exit()
h = rows[0]
ki, mi, vi = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
gi, bi = h.index("Grid Size") if "Grid Size" in h else None, h.index("Block Size") if "Block Size" in h else None
t = collections.defaultdict(list)
for r in rows[1:]:
    if r[mi] == "gpu__time_duration.sum":
        key = r[ki][:40] + (f" grid {r[gi]}" if gi is not None else "")
        t[key].append(float(r[vi].replace(",", "")) / 1e3)
for k, v in sorted(t.items()):
    v.sort()
    print(f"{label:10s} {len(v):3d} x median {v[len(v)//2]:8.2f} us  min {v[0]:8.2f}  {k}")
PY
}
for g in ${GRIDS:-4 2 1}; do
  prof "one-g$g" "genkit_qblock" 12 GENKIT_BLOCK_KERNEL=1 GENKIT_BLOCK_GRID=$g
done
prof five-prod "genkit_tqproduct" 24 GENKIT_BLOCK_KERNEL=0
prof five-attn "genkit_decode_attention" 12 GENKIT_BLOCK_KERNEL=0
