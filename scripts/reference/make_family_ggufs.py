"""GGUF files of the tiny families, written by llama.cpp's own converter.

For each tiny model of make_engine_refs.py, runs the vendored llama.cpp
convert_hf_to_gguf.py (F32, so no rounding) and writes NAME.gguf. The tiny
models have no tokenizer; the converter's vocabulary step is replaced by a
minimal one (llamacpp_tiny.minimal_vocab) so that everything else - tensor
names, permutations, the (1 + w) of gemma norms, fused tensors and metadata -
is the converter's own. (gemma3's GGUF is not made: llama.cpp fixes its layer
pattern and scale, which the tiny model's do not follow; docs/models.md.) genkit's test loads
each file and compares its logits with the HF reference of the same model.

    /tmp/refvenv/bin/python scripts/reference/make_family_ggufs.py \
        --llama-src build/peers/src/vendor/llama.cpp --models engine/testdata/hf \
        --out engine/testdata/gguf_families
"""
import argparse
import os

import llamacpp_tiny

NAMES = ["llama_tied", "mistral_window", "granite_mult", "olmo2_post", "phi3_fused",
         "gemma2_caps"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only")
    args = ap.parse_args()
    conv = llamacpp_tiny.converter(args.llama_src)
    os.makedirs(args.out, exist_ok=True)
    for name in NAMES:
        if args.only and name not in args.only.split(","):
            continue
        out = os.path.join(os.path.abspath(args.out), name + ".gguf")
        model = os.path.join(args.models, name)
        try:
            llamacpp_tiny.convert(conv, model, out)
            print(name, "written", flush=True)
        except SystemExit as e:
            print(name, "not converted: exit", e.code, flush=True)
        except Exception as e:  # the converter refuses some configs
            print(name, "not converted:", type(e).__name__, e, flush=True)
