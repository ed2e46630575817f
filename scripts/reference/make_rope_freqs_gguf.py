"""The tiny llama3-RoPE model (engine/testdata/hf/llama3_rope) converted to
GGUF by llama.cpp's own convert_hf_to_gguf.py (vendored source, F32): q/k
rows permuted per head and the llama3 frequency scaling carried only as the
`rope_freqs.weight` tensor, exactly as Llama 3.1+ GGUFs are made.

The model has no tokenizer files, which the converter needs, so only its
set_vocab step is replaced: a 256-token byte-level BPE vocabulary is written
instead (the model's vocab_size). Everything else (hyperparameters, tensor
names and permutation, rope_freqs) is the converter's. It needs torch (the
interop venv has it). Runs once on the developer machine:

    build/interop-venv/bin/python scripts/reference/make_rope_freqs_gguf.py \
        --llama-src build/peers/src/vendor/llama.cpp \
        --model engine/testdata/hf/llama3_rope --out engine/testdata/hf/llama3_rope/rope_freqs.gguf
"""
import argparse
import os

import llamacpp_tiny


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", default="build/peers/src/vendor/llama.cpp")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    conv = llamacpp_tiny.converter(args.llama_src)
    llamacpp_tiny.convert(conv, args.model, args.out)

    import gguf
    r = gguf.GGUFReader(args.out)
    rf = [t for t in r.tensors if t.name == "rope_freqs.weight"]
    assert rf, "the converter wrote no rope_freqs.weight"
    print(args.out, os.path.getsize(args.out), "bytes; rope_freqs", rf[0].data.tolist())


if __name__ == "__main__":
    main()
