#!/usr/bin/env bash
# One environment variable at several values, after `bash scripts/gpu/suite.sh
# none` has laid out the pack: `genkit bench` (genkit's rows only: no python
# or llama.cpp peers) once per value, in one lease so the numbers compare,
# then a table of decode steps/s at 1, 2 and 8 lanes per engine row. Values
# alternate ROUNDS times (default 2: a b c a b c) so drift on the machine
# shows as spread.
#   OUT=... bash scripts/gpu/envsweep.sh MLX_MAX_OPS_PER_BUFFER 20 60 120 240
set -uo pipefail
source "$(dirname "$0")/env.sh"
VAR=$1; shift
for round in $(seq 1 "${ROUNDS:-2}"); do
  for v in "$@"; do
    f="$OUT/sweep-$VAR-$v-$round.json"
    env "$VAR=$v" timeout 300 "$S/bin/genkit" bench --json --python /bin/false --llama-bench /bin/false > "$f" 2> "${f%.json}.err"
    echo "$VAR=$v round $round: rc=$?"
  done
done
python3 - "$OUT" "$VAR" "$@" <<'PY'
import glob, json, sys
out, var, vals = sys.argv[1], sys.argv[2], sys.argv[3:]
for v in vals:
    for f in sorted(glob.glob(f"{out}/sweep-{var}-{v}-*.json")):
        try:
            d = json.load(open(f))
        except Exception as e:
            print(f"{var}={v} {f[-6:-5]}: unreadable ({e})"); continue
        cells = []
        for name, e in d.items():
            if isinstance(e, dict) and "decode_steps_per_s" in e:
                s = e["decode_steps_per_s"]
                cells.append(f"{name} " + "/".join(str(round(s.get(k, 0), 1)) for k in ("1", "2", "8")))
        print(f"{var}={v} round {f[-6:-5]}: " + "; ".join(cells))
PY
