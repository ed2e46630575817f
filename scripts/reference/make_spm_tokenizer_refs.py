"""Token ids from llama.cpp's own SentencePiece tokenizer (llama-tokenize,
built by `make peers`) for genkit's GGUF SPM tokenizer test.

The vocabulary is llama.cpp's models/ggml-vocab-llama-spm.gguf (the LLaMA
SentencePiece vocabulary, vocab only), copied next to the output. The
strings are the project's tokenizer test strings
(engine/tokenizer/testdata/llamacpp_smollm2.json), llama.cpp's own test
strings for this vocabulary (models/ggml-vocab-llama-spm.gguf.inp) and a few
with special tokens. Each is tokenized with --no-bos (genkit adds BOS
itself), special tokens parsed, no escape processing.

Runs once on the developer machine (never in CI):

    build/interop-venv/bin/python scripts/reference/make_spm_tokenizer_refs.py \
        --llama-bin build/peers/b/bin --llama-src build/peers/src/vendor/llama.cpp \
        --out engine/tokenizer/testdata
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

EXTRA = ["<s>Hello</s>", "Hi<s> there", "<unk>", "a</s>b", " <s> x", "▁already▁marked", "\u2581", "x\u2581 y",
         "<0x41>", "tab\tafter", "ÿ þ ý", "\u00a0nbsp", "\u3000ideographic space", "zero\u200bwidth"]


def variant(src, dst, key, value=False):
    """A copy of the vocabulary GGUF src with the bool key set to value."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata
    reader = gguf.GGUFReader(src)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    copy_with_new_metadata(reader, writer, {key: MetadataDetails(gguf.GGUFValueType.BOOL, value)}, [])
    return dst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.llama_src, "gguf-py"))
    models = os.path.join(args.llama_src, "models")
    vocab = os.path.join(args.out, "ggml-vocab-llama-spm.gguf")
    shutil.copyfile(os.path.join(models, "ggml-vocab-llama-spm.gguf"), vocab)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "../../engine/tokenizer/testdata/llamacpp_smollm2.json")) as f:
        strings = [c["text"] for c in json.load(f)["cases"]]
    with open(os.path.join(models, "ggml-vocab-llama-spm.gguf.inp"), encoding="utf-8") as f:
        strings += f.read().split("\n__ggml_vocab_test__\n")[:-1]
    strings += EXTRA
    tok = os.path.join(args.llama_bin, "llama-tokenize")

    def run(s, model=vocab, *extra):
        out = subprocess.run([tok, "-m", model, "--stdin", "--ids", "--no-escape", "--log-disable", *extra],
                             input=s.encode("utf-8"), capture_output=True, check=True)
        return json.loads(out.stdout.decode().strip().splitlines()[-1])

    seen, cases = set(), []
    for s in strings:
        if s in seen:
            continue
        seen.add(s)
        cases.append({"text": s, "ids": run(s, vocab, "--no-bos")})
    # The same vocabulary with add_space_prefix = false, and with
    # add_eos_token = true and BOS (llama-tokenize ignores --override-kv, so
    # gguf-py writes the variants).
    tmp = tempfile.mkdtemp()
    no_prefix_vocab = variant(vocab, os.path.join(tmp, "no_prefix.gguf"), "tokenizer.ggml.add_space_prefix")
    eos_vocab = variant(vocab, os.path.join(tmp, "eos.gguf"), "tokenizer.ggml.add_eos_token", True)
    no_prefix = [{"text": s, "ids": run(s, no_prefix_vocab, "--no-bos")} for s in strings[:40] + EXTRA]
    with_bos_eos = [{"text": s, "ids": run(s, eos_vocab)} for s in ["Hello world", "", " x"]]
    version = subprocess.run([tok, "--version"], capture_output=True, text=True)
    with open(os.path.join(args.out, "llamacpp_llama_spm.json"), "w", encoding="utf-8") as f:
        json.dump({"llama_tokenize": (version.stdout + version.stderr).strip().splitlines()[0],
                   "vocab": "ggml-vocab-llama-spm.gguf", "cases": cases, "no_space_prefix": no_prefix,
                   "add_bos_add_eos": with_bos_eos}, f, ensure_ascii=False, indent=0)
    print(len(cases), "cases written")


if __name__ == "__main__":
    main()
