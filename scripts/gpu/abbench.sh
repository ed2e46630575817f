#!/usr/bin/env bash
# A/B of two genkit builds in one lease, after `bash scripts/gpu/suite.sh none`
# has laid out the pack: `genkit bench` (genkit's own rows, no python peers)
# with the pack's genkit (A) and another build (B, e.g. an older commit's
# binary carried beside the pack, xz-compressed or not), alternated ROUNDS
# times (A B A B ...) so that drift of the machine falls on both. One JSON a
# run in $OUT, one line a run and engine in $OUT/ab.txt.
#   OUT=... bash scripts/gpu/abbench.sh B_BINARY[.xz] [ROUNDS] [genkit bench flags...]
set -uo pipefail
source "$(dirname "$0")/env.sh"
B=${1:?usage: abbench.sh B_BINARY[.xz] [ROUNDS] [bench flags...]}
ROUNDS=${2:-2}
shift $(($# < 2 ? $# : 2))
if [[ $B == *.xz ]]; then
  xz -dc "$B" > "$GK/genkit-b" && chmod +x "$GK/genkit-b" && B=$GK/genkit-b
fi
R=$OUT/ab.txt
echo "# A: $(tr '\n' ' ' < "$S/bin/COMMIT")($("$S/bin/genkit" version 2>&1 | head -1)); B: $B; $(nvidia-smi -L | head -1)" | tee -a "$R"
for i in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$S/bin/genkit
    [ "$side" = B ] && bin=$B
    f=$OUT/ab-$side$i.json
    timeout 280 "$bin" bench --json --python /nonexistent "$@" > "$f" 2> "$f.err"
    echo "run $i $side: rc=$?" >> "$R"
    python3 "$(dirname "$0")/benchrow.py" "$side$i" "$f" | tee -a "$R"
  done
done
