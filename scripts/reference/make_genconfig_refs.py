"""transformers' GenerationConfig.validate(strict=True) verdicts on a table
of generation_config.json contents, for sampling's export test
(sampling/testdata/hf_strict.json).

    build/interop-venv/bin/python scripts/reference/make_genconfig_refs.py --out sampling/testdata/hf_strict.json

Each case records the config and the fields transformers names: the minor
issues strict mode raises on ("- `field`: ..."), or the field of a hard
error. Needs transformers (no torch).
"""
import argparse
import json
import re

CASES = [
    {},
    {"do_sample": False, "max_new_tokens": 32},
    {"do_sample": False, "temperature": 0.7},
    {"do_sample": False, "temperature": 1.0},
    {"temperature": 0.7},
    {"do_sample": False, "top_p": 0.9},
    {"do_sample": False, "top_p": 1.0},
    {"do_sample": False, "top_k": 40},
    {"do_sample": False, "top_k": 50},
    {"do_sample": False, "min_p": 0.05},
    {"do_sample": False, "min_p": 0.0},
    {"do_sample": False, "typical_p": 0.9},
    {"do_sample": False, "epsilon_cutoff": 0.001},
    {"do_sample": False, "eta_cutoff": 0.001},
    {"do_sample": False, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "min_p": 0.1, "repetition_penalty": 1.1},
    {"do_sample": True, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "min_p": 0.1, "typical_p": 0.9,
     "epsilon_cutoff": 0.001, "eta_cutoff": 0.001},
    {"do_sample": True, "length_penalty": 2.0},
    {"num_beams": 1, "early_stopping": True},
    {"num_beams": 1, "early_stopping": False},
    {"num_beams": 1, "early_stopping": "never"},
    {"num_beams": 4, "early_stopping": True, "length_penalty": 2.0, "num_return_sequences": 2},
    {"max_new_tokens": 0},
    {"do_sample": False, "num_return_sequences": 2},
    {"do_sample": True, "num_return_sequences": 2},
    {"num_beams": 2, "num_return_sequences": 3},
    {"pad_token_id": -1},
    {"do_sample": False, "repetition_penalty": 1.3, "no_repeat_ngram_size": 3, "max_new_tokens": 16,
     "eos_token_id": [2, 3], "stop_strings": ["END"], "max_time": 5.0},
    {"suppress_tokens": [5], "forced_eos_token_id": 5},
]


def fields_of(msg):
    issues = re.findall(r"^- `([a-z_]+)`:", msg, flags=re.M)
    if issues:
        return sorted(issues)
    m = re.search(r"`([a-z_]+)`", msg)
    return [m.group(1)] if m else ["?"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import transformers
    from transformers import GenerationConfig

    out = []
    for cfg in CASES:
        try:
            GenerationConfig(**cfg).validate(strict=True)
            out.append({"config": cfg, "ok": True, "fields": []})
        except ValueError as e:
            out.append({"config": cfg, "ok": False, "fields": fields_of(str(e)), "message": str(e).splitlines()[0]})
    with open(args.out, "w") as f:
        json.dump({"transformers": transformers.__version__, "cases": out}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} cases to {args.out}")


if __name__ == "__main__":
    main()
