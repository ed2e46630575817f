#!/usr/bin/env bash
# Where a GPU decode step's time goes, after `bash scripts/gpu/suite.sh none`
# has laid out the pack: genkit alone (no peers) on Qwen3-4B-shaped random
# weights and on the default model, `genkit bench --json` printing each
# lane count's decode steps/s beside its host split (decode_host_share:
# building the step's graph, async_eval, waiting for the token), each with
# the size rule's choice (engine/gemvpolicy.go: the 4B's blocks as five
# kernels, the default model's as one) and with the other one
# (GENKIT_BLOCK_KERNEL=1 or 0). With HOSTSHARE_EXTRA=1 also the 4B run with MLX's
# CUDA graphs off and, with Nsight Compute (ncu), each kernel's own time in
# a window of launches, or with Nsight Systems a trace whose summaries go to
# $OUT/nsys-*.txt. Results: $OUT/hostshare.txt and one JSON a run.
#   OUT=... bash scripts/gpu/hostshare.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
R=$OUT/hostshare.txt
echo "# decode host share, $(date -u +%FT%H:%MZ), $(nvidia-smi -L | head -1)" | tee -a "$R"
echo "tools: nsys=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1) ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)" | tee -a "$R"
show() { # show LABEL FILE
  python3 - "$1" "$2" <<'PY' | tee -a "$R"
import json, sys
label, path = sys.argv[1], sys.argv[2]
try:
    d = json.load(open(path))
except Exception as e:
    print(f"{label}: no result ({e})"); sys.exit()
for k, v in sorted(d.items()):
    if isinstance(v, dict) and k.startswith("genkit") and "decode_steps_per_s" in v:
        s, h = v["decode_steps_per_s"], v.get("decode_host_share", {})
        parts = []
        for n in ("1", "2", "8"):
            x = h.get(n, {})
            parts.append(f"{n}: {s.get(n, 0):6.1f} steps/s build {x.get('build', 0):.2f} queue {x.get('queue', 0):.2f} wait {x.get('wait', 0):.2f}")
        print(f"{label:22s} {k:12s} " + " | ".join(parts))
PY
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
# Nsight Compute (the machine has no Nsight Systems): each kernel's own time
# for a window of launches inside the bf16 one-lane decode of a short run
# (16-token prompt: its prefill is a few hundred launches).
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ -n "$NCU" ]; then
  timeout 240 "$NCU" --launch-skip ${NCU_SKIP:-2500} --launch-count ${NCU_COUNT:-400} --metrics gpu__time_duration.sum --csv \
    "$S/bin/genkit" bench --synthetic qwen3-4b --python /nonexistent --json --repeat 1 --prompt-tokens 16 --decode-tokens 32 > "$OUT/ncu-4b.csv" 2> "$OUT/ncu-4b.err"
  python3 - "$OUT/ncu-4b.csv" <<'PY' | tee -a "$R"
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows:
    print("ncu: no rows"); sys.exit()
h = rows[0]
ki, mi, vi = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
t = collections.defaultdict(list)
for r in rows[1:]:
    if r[mi] == "gpu__time_duration.sum":
        t[r[ki][:90]].append(float(r[vi].replace(",", "")))
tot = sum(sum(v) for v in t.values())
print(f"ncu: {sum(len(v) for v in t.values())} launches, {tot/1e3:.1f} us of kernel time (unit as ncu prints: ns)")
for k, v in sorted(t.items(), key=lambda kv: -sum(kv[1]))[:20]:
    print(f"  {len(v):4d} x {sum(v)/len(v)/1e3:8.2f} us  {sum(v)/tot*100:5.1f}%  {k}")
PY
fi
