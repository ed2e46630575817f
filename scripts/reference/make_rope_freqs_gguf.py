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
import sys


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def byte_level_vocab(self):
    chars = bytes_to_unicode()
    tokens = [chars[b] for b in range(255)] + ["\u0120t"]
    w = self.gguf_writer
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * len(tokens))
    w.add_token_merges(["\u0120 t"])
    w.add_bos_token_id(self.hparams["bos_token_id"])
    w.add_eos_token_id(self.hparams["eos_token_id"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", default="build/peers/src/vendor/llama.cpp")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.llama_src)
    sys.path.insert(0, os.path.join(args.llama_src, "gguf-py"))
    import convert_hf_to_gguf
    import conversion.llama

    conversion.llama.LlamaModel.set_vocab = byte_level_vocab
    sys.argv = ["convert_hf_to_gguf.py", args.model, "--outfile", args.out, "--outtype", "f32"]
    convert_hf_to_gguf.main()

    import gguf
    r = gguf.GGUFReader(args.out)
    rf = [t for t in r.tensors if t.name == "rope_freqs.weight"]
    assert rf, "the converter wrote no rope_freqs.weight"
    print(args.out, os.path.getsize(args.out), "bytes; rope_freqs", rf[0].data.tolist())


if __name__ == "__main__":
    main()
