"""mlx-lm's side of `genkit bench`: prefill and decode speed of mlx_lm's
stream_generate on a converted MLX directory, printed as JSON.

    python3 scripts/bench_mlx_lm.py --model DIR --prompt-tokens 512 --decode-tokens 64 --repeat 3

Decode is measured --repeat times; the median is reported, every run in
decode_steps_runs (as genkit does).
"""
import argparse
import json
import statistics
import sys

import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_sampler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--prompt-ids", required=True, help="comma-separated ids of the long prompt")
    ap.add_argument("--short-ids", required=True, help="comma-separated ids of the decode prompt")
    args = ap.parse_args()
    model, tok = load(args.model)
    greedy = make_sampler(temp=0.0)
    long_ids = [int(x) for x in args.prompt_ids.split(",")]
    short_ids = [int(x) for x in args.short_ids.split(",")]
    # Warm up (the long prompt too: GPU kernels compile per shape), then measure.
    for ids, n in ((short_ids, 4), (long_ids, 1)):
        for r in stream_generate(model, tok, ids, max_tokens=n, sampler=greedy):
            pass
    mx.reset_peak_memory()
    last = None
    for r in stream_generate(model, tok, long_ids, max_tokens=1, sampler=greedy):
        last = r
    prefill = last.prompt_tps
    runs = []
    for _ in range(max(args.repeat, 1)):
        for r in stream_generate(model, tok, short_ids, max_tokens=args.decode_tokens, sampler=greedy):
            last = r
        runs.append(last.generation_tps)
    decode = statistics.median(runs)
    json.dump({"prefill_tps": prefill, "decode_tps": decode,
               "decode_steps_per_s": {"1": decode}, "decode_steps_runs": {"1": runs},
               "weights": "mlx-lm " + __import__("mlx_lm").__version__,
               "peak_memory_mb": mx.get_peak_memory() / 1e6, "decode_tokens": last.generation_tokens}, sys.stdout)


if __name__ == "__main__":
    main()
