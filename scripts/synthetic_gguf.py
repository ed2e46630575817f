"""llama.cpp's side of `genkit bench --synthetic`: converts a synthetic
Hugging Face directory (written by genkit, random weights of a published
shape) to GGUF with llama.cpp's own converter, convert_hf_to_gguf.py.

    python3 scripts/synthetic_gguf.py --llama-src DIR --model HFDIR --outfile OUT.gguf [--outtype f16]

The converter identifies a BPE tokenizer by hashing how it splits a test
string and refuses tokenizers it does not know. The synthetic tokenizer has
the Qwen family's pre-tokenizer but made-up merges, so its hash is new; this
script tells the converter it is "qwen2" (the pre-tokenizer llama.cpp uses
for Qwen2 and Qwen3) and changes nothing else. Needs torch, transformers and
numpy (the converter's own requirements).
"""
import argparse
import os
import runpy
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", required=True, help="llama.cpp source tree (holds convert_hf_to_gguf.py)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--outfile", required=True)
    ap.add_argument("--outtype", default="f16")
    args = ap.parse_args()
    script = os.path.join(args.llama_src, "convert_hf_to_gguf.py")
    if not os.path.exists(script):
        sys.exit(f"{script} not found: pass the llama.cpp source tree (make peers unpacks it)")
    sys.path.insert(0, args.llama_src)
    sys.path.insert(1, os.path.join(args.llama_src, "gguf-py"))
    import conversion.base as base  # llama.cpp's converter package

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    sys.argv = [script, args.model, "--outfile", args.outfile, "--outtype", args.outtype]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
