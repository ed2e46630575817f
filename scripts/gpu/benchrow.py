#!/usr/bin/env python3
"""One line per genkit engine of a `genkit bench --json` result, for the GPU
scripts (policy.sh, hostshare.sh): decode steps/s at 1 / 2 / 8 lanes, then
either the weights (default) or, with --host-share, each lane count's
decode_host_share (build, queue, wait).

Usage: benchrow.py [--host-share] LABEL FILE
"""
import json, sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
share = "--host-share" in sys.argv
label, path = args
try:
    d = json.load(open(path))
except Exception as e:
    print(f"{label}: no result ({e})")
    sys.exit()
for k, v in sorted(d.items()):
    if not (isinstance(v, dict) and k.startswith("genkit") and "decode_steps_per_s" in v):
        continue
    s = v["decode_steps_per_s"]
    if share:
        h = v.get("decode_host_share", {})
        cols = []
        for n in ("1", "2", "8"):
            x = h.get(n, {})
            cols.append(f"{n}: {s.get(n, 0):6.1f} steps/s build {x.get('build', 0):.2f} "
                        f"queue {x.get('queue', 0):.2f} wait {x.get('wait', 0):.2f}")
        print(f"{label:22s} {k:12s} " + " | ".join(cols))
    else:
        print(f"{label:28s} {k:12s} " + " / ".join(f"{s.get(n, 0):6.1f}" for n in ("1", "2", "8"))
              + f"   [{v.get('weights', '')}]")
