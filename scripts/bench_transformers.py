"""HF transformers' side of `genkit bench`: prefill and greedy decode speed of
transformers on the converted directory (float32 weights, the GPU when torch
sees one), printed as JSON like scripts/bench_mlx_lm.py.

    python3 scripts/bench_transformers.py --model DIR --prompt-ids 1,2,3 --short-ids 4,5 --decode-tokens 64 --repeat 3

Decode is measured --repeat times; the median is reported, every run in
decode_steps_runs (as genkit does).
"""
import argparse
import json
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--short-ids", required=True)
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(dev).eval()
    long_ids = torch.tensor([[int(x) for x in args.prompt_ids.split(",")]], device=dev)
    short_ids = torch.tensor([[int(x) for x in args.short_ids.split(",")]], device=dev)

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    def gen(ids, n):
        return model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                              attention_mask=torch.ones_like(ids), pad_token_id=0)

    with torch.inference_mode():
        gen(short_ids, 4)  # warm up, the long prompt's shape too
        model(long_ids)
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(); t0 = time.perf_counter()
        model(long_ids)
        sync(); prefill = long_ids.shape[1] / (time.perf_counter() - t0)
        # Decode rate: time n tokens minus time 1 token (the prefill).
        runs = []
        for _ in range(max(args.repeat, 1)):
            sync(); t0 = time.perf_counter(); gen(short_ids, 1); sync(); t1 = time.perf_counter() - t0
            sync(); t0 = time.perf_counter(); gen(short_ids, args.decode_tokens); sync(); tn = time.perf_counter() - t0
            runs.append((args.decode_tokens - 1) / max(tn - t1, 1e-9))
        decode = statistics.median(runs)
    peak = torch.cuda.max_memory_allocated() / 1e6 if dev == "cuda" else 0
    json.dump({"prefill_tps": prefill, "decode_tps": decode, "decode_steps_per_s": {"1": decode},
               "decode_steps_runs": {"1": runs},
               "peak_memory_mb": peak, "decode_tokens": args.decode_tokens,
               "weights": f"float32 eager on {dev} (transformers {__import__('transformers').__version__}, torch {torch.__version__})"},
              sys.stdout)


if __name__ == "__main__":
    main()
