"""Qwen3 chat-template reference: transformers' token ids for conversations
with and without enable_thinking, for engine's chat test.

No hub access is needed: the tokenizer is assembled from local files that
`make peers` unpacks from PyPI's llama-cpp-python sdist (vendor/llama.cpp):
  - models/ggml-vocab-qwen2.gguf: the Qwen byte-level BPE vocabulary and
    merges (ids 0..151642 are the same in Qwen1.5, Qwen2, Qwen2.5 and Qwen3);
  - models/templates/Qwen-Qwen3-0.6B.jinja: Qwen3's chat template.
Qwen3's added tokens (ids 151643..151668) and its tokenizer settings (NFC
normalizer, the Qwen2 split regex, byte-level BPE) are written here as facts
of that tokenizer.

    build/interop-venv/bin/python scripts/reference/make_chat_refs.py \
        --llama-src build/peers/src/vendor/llama.cpp --out engine/testdata/qwen3_chat

Writes tokenizer.json.gz, tokenizer_config.json and reference.json (each
conversation, its chat kwargs, the text transformers renders and the ids).
Needs transformers and gguf (make interop's venv has both).
"""
import argparse
import gzip
import json
import os
import sys

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen3's added tokens: (id, text, special).
ADDED = [
    (151643, "<|endoftext|>", True),
    (151644, "<|im_start|>", True),
    (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True),
    (151647, "<|object_ref_end|>", True),
    (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
    (151665, "<tool_response>", False),
    (151666, "</tool_response>", False),
    (151667, "<think>", False),
    (151668, "</think>", False),
]
N_BPE = 151643

SYS = "You are a concise assistant."
CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": SYS}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Name three rivers."}, {"role": "assistant", "content": "Nile, Amazon, Danube."},
     {"role": "user", "content": "Which is longest?"}],
    [{"role": "system", "content": SYS}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\n\nHello! How can I help?"},
     {"role": "user", "content": "Tell me a joke."}],
    [{"role": "user", "content": "First question"},
     {"role": "assistant", "content": "<think>\nreasoning one\n</think>\n\nAnswer one"},
     {"role": "user", "content": "Second question"},
     {"role": "assistant", "content": "<think>reasoning two</think>Answer two"},
     {"role": "user", "content": "Third"}],
    [{"role": "user", "content": "Café, naïve, 日本語, emoji 😀 and tabs\tinside."}],
    [{"role": "user", "content": "  leading and trailing spaces  "}],
    [{"role": "user", "content": "Line one\nLine two\n\nLine four\n"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "Empty system turn."}],
    [{"role": "user", "content": "Write code: `for i in range(3): print(i)`"}],
    [{"role": "user", "content": "Numbers 1234567 and 3.14159 and -42."}],
    [{"role": "user", "content": "Quote \"this\" and 'that' and <tags>."}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
     {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}],
    [{"role": "user", "content": "What does <think> mean in your output?"}],
    [{"role": "user", "content": "Summarise: The quick brown fox jumps over the lazy dog."}],
    [{"role": "system", "content": "Reply in French.\nBe brief."}, {"role": "user", "content": "Good morning"}],
    [{"role": "user", "content": "Explain"}, {"role": "assistant", "content": "\n\nLeading newlines in a reply."},
     {"role": "user", "content": "Again"}],
    [{"role": "user", "content": "Ünïcödé façade — em dash… ellipsis"}],
    [{"role": "user", "content": "<|im_start|> inside text"}],
    [{"role": "user", "content": "Last one: thanks!"}],
]
KWARGS = [None, {"enable_thinking": True}, {"enable_thinking": False}]


def build_tokenizer(llama_src, out):
    sys.path.insert(0, os.path.join(llama_src, "gguf-py"))
    from gguf import GGUFReader

    r = GGUFReader(os.path.join(llama_src, "models", "ggml-vocab-qwen2.gguf"))
    toks = r.fields["tokenizer.ggml.tokens"]
    merges = r.fields["tokenizer.ggml.merges"]
    vocab = {toks.contents(i): i for i in range(N_BPE)}
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
             "special": sp}
            for i, t, sp in ADDED
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        ]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [merges.contents(i) for i in range(len(merges.data))]},
    }
    data = json.dumps(spec, ensure_ascii=False).encode()
    with open(os.path.join(out, "tokenizer.json"), "wb") as f:
        f.write(data)
    with gzip.GzipFile(os.path.join(out, "tokenizer.json.gz"), "wb", mtime=0) as f:
        f.write(data)
    with open(os.path.join(llama_src, "models", "templates", "Qwen-Qwen3-0.6B.jinja")) as f:
        template = f.read()
    cfg = {
        "tokenizer_class": "Qwen2Tokenizer",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "split_special_tokens": False,
        "added_tokens_decoder": {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": sp} for i, t, sp in ADDED},
        "chat_template": template,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    build_tokenizer(args.llama_src, args.out)

    import transformers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.out)
    os.remove(os.path.join(args.out, "tokenizer.json"))  # the test reads the .gz
    cases = []
    for conv in CONVERSATIONS:
        for kw in KWARGS:
            extra = kw or {}
            text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True, **extra)
            enc = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=True, return_dict=True, **extra)
            cases.append({"messages": conv, "chat_kwargs": kw, "text": text, "ids": list(enc["input_ids"])})
    ref = {"transformers": transformers.__version__, "template": "llama.cpp models/templates/Qwen-Qwen3-0.6B.jinja",
           "cases": cases}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
