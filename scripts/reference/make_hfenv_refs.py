"""huggingface_hub's own cache paths and offline switch under many
environments, for engine's hub-cache test (engine/testdata/hfenv.json).

    build/interop-venv/bin/python scripts/reference/make_hfenv_refs.py --out engine/testdata/hfenv.json

Each case runs huggingface_hub.constants in a fresh interpreter whose
environment holds only PATH and the case's variables (HOME is /home/tester
unless the case says otherwise), and records HF_HOME, HF_HUB_CACHE and
HF_HUB_OFFLINE. Needs huggingface_hub (make interop's venv pins it).
"""
import argparse
import json
import os
import subprocess
import sys

HOME = {"HOME": "/home/tester"}
UNSET = None  # a case value that removes the variable

CASES = [
    {},
    {"XDG_CACHE_HOME": "/xdg"},
    {"XDG_CACHE_HOME": ""},
    {"XDG_CACHE_HOME": "~/xdg"},
    {"XDG_CACHE_HOME": "$DATA/xdg", "DATA": "/srv"},
    {"HF_HOME": "/hf"},
    {"HF_HOME": "/hf/"},
    {"HF_HOME": "~/hf"},
    {"HF_HOME": "~"},
    {"HF_HOME": "$MYROOT/hf", "MYROOT": "/data"},
    {"HF_HOME": "${MYROOT}/hf", "MYROOT": "/data"},
    {"HF_HOME": "$UNSET_VAR/hf"},
    {"HF_HOME": "relative/dir"},
    {"HF_HOME": ""},
    {"HF_HOME": "/hf", "XDG_CACHE_HOME": "/xdg"},
    {"HF_HOME": "$A$B", "A": "/a", "B": "/b"},
    {"HF_HOME": "${}/x"},
    {"HF_HOME": "$"},
    {"HF_HOME": "/x/$A", "A": "$B", "B": "/never"},
    {"HUGGINGFACE_HUB_CACHE": "/legacy"},
    {"HUGGINGFACE_HUB_CACHE": "~/legacy"},
    {"HUGGINGFACE_HUB_CACHE": "$MYROOT/legacy", "MYROOT": "/data"},
    {"HUGGINGFACE_HUB_CACHE": "/legacy", "HF_HOME": "/hf"},
    {"HF_HUB_CACHE": "/new", "HUGGINGFACE_HUB_CACHE": "/legacy"},
    {"HF_HUB_CACHE": "/new", "HF_HOME": "/hf", "XDG_CACHE_HOME": "/xdg"},
    {"HF_HUB_CACHE": "$HOME/cache/$WHO", "WHO": "bob"},
    {"HF_HUB_CACHE": "~root/hub"},
    {"HF_HUB_CACHE": "~nosuchuser-genkit/hub"},
    {"HF_HUB_CACHE": ""},
    {"HF_HUB_CACHE": "$MYROOT/x", "MYROOT": "~/data"},
    {"HF_HUB_CACHE": "a//b/../c/"},
    {"HOME": ""},
    {"HOME": "/home/tester/"},
    {"HOME": UNSET},
    {"HOME": UNSET, "HF_HOME": "~/hf"},
    {"HF_HUB_OFFLINE": "1"},
    {"HF_HUB_OFFLINE": "true"},
    {"HF_HUB_OFFLINE": "TRUE"},
    {"HF_HUB_OFFLINE": "Yes"},
    {"HF_HUB_OFFLINE": "on"},
    {"HF_HUB_OFFLINE": "0"},
    {"HF_HUB_OFFLINE": "false"},
    {"HF_HUB_OFFLINE": "2"},
    {"HF_HUB_OFFLINE": " 1"},
    {"TRANSFORMERS_OFFLINE": "1"},
    {"TRANSFORMERS_OFFLINE": "yes"},
    {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "1"},
    {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"},
    {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "0"},
]

PROBE = (
    "import json, huggingface_hub.constants as c; "
    "print(json.dumps({'hf_home': c.HF_HOME, 'hub_cache': c.HF_HUB_CACHE, 'offline': c.HF_HUB_OFFLINE}))"
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import huggingface_hub

    out = []
    for case in CASES:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update(HOME)
        for k, v in case.items():
            if v is UNSET:
                env.pop(k, None)
            else:
                env[k] = v
        res = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
        got = json.loads(res.stdout)
        out.append({"env": {k: v for k, v in env.items() if k != "PATH"}, "unset": [k for k, v in case.items() if v is UNSET],
                    **got})
    with open(args.out, "w") as f:
        json.dump({"huggingface_hub": huggingface_hub.__version__, "cases": out}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} cases to {args.out}")


if __name__ == "__main__":
    main()
