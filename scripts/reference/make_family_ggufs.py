"""GGUF files of the tiny families, written by llama.cpp's own converter.

For each tiny model of make_engine_refs.py, runs the vendored llama.cpp
convert_hf_to_gguf.py (F32, so no rounding) and writes NAME.gguf. The tiny
models have no tokenizer; the converter's vocabulary step is replaced by a
minimal one (255 single-byte tokens and one merge, "gpt2" model) so that
everything else - tensor names, permutations, the (1 + w) of gemma norms,
fused tensors and metadata - is the converter's own. genkit's test loads
each file and compares its logits with the HF reference of the same model.

    /tmp/refvenv/bin/python scripts/reference/make_family_ggufs.py \
        --llama-src build/peers/src/vendor/llama.cpp --models engine/testdata/hf \
        --out engine/testdata/gguf_families
"""
import argparse
import json
import os
import sys
import tempfile

NAMES = ["llama_tied", "mistral_window", "granite_mult", "olmo2_post", "phi3_fused",
         "gemma2_caps"]


def minimal_vocab(self):
    import gguf
    n = self.hparams["vocab_size"]
    tokens = [bytes([i]).decode("latin-1") for i in range(n - 1)] + ["ab"]
    self.gguf_writer.add_tokenizer_model("gpt2")
    self.gguf_writer.add_tokenizer_pre("default")
    self.gguf_writer.add_token_list(tokens)
    self.gguf_writer.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
    self.gguf_writer.add_token_merges(["a b"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only")
    args = ap.parse_args()
    src = os.path.abspath(args.llama_src)
    sys.path[:0] = [src, os.path.join(src, "gguf-py")]
    import convert_hf_to_gguf as conv
    real = conv.get_model_class

    def with_minimal_vocab(*a, **kw):
        cls = real(*a, **kw)
        return type(cls.__name__, (cls,), {"set_vocab": minimal_vocab, "model_arch": cls.model_arch})
    conv.get_model_class = with_minimal_vocab
    os.makedirs(args.out, exist_ok=True)
    for name in NAMES:
        if args.only and name not in args.only.split(","):
            continue
        out = os.path.join(os.path.abspath(args.out), name + ".gguf")
        model = os.path.join(args.models, name)
        if name.startswith("gemma3"):
            # Its converter trims the embedding to tokenizer.json's vocabulary.
            tmp = tempfile.mkdtemp()
            for f in os.listdir(model):
                os.symlink(os.path.abspath(os.path.join(model, f)), os.path.join(tmp, f))
            with open(os.path.join(tmp, "tokenizer.json"), "w") as f:
                json.dump({"model": {"vocab": {chr(0x100 + i): i for i in range(256)}}, "added_tokens": []}, f)
            model = tmp
        sys.argv = ["convert_hf_to_gguf.py", model, "--outtype", "f32", "--outfile", out]
        try:
            conv.main()
            print(name, "written", flush=True)
        except SystemExit as e:
            print(name, "not converted: exit", e.code, flush=True)
        except Exception as e:  # the converter refuses some configs
            print(name, "not converted:", type(e).__name__, e, flush=True)
