"""Token ids of varied strings from llama.cpp (llama-cpp-python), for the
GGUF-built tokenizer's parity test. Runs where llama-cpp-python is installed
(it compiles llama.cpp from source, minutes on 2 cores): recorded once and
committed, never run in CI.

    python3 make_tokenizer_refs.py --gguf MODEL.gguf --out engine/tokenizer/testdata/llamacpp_smollm2.json
"""
import argparse
import json
import random

import llama_cpp

BASE = [
    "Hello world", "Hello, world!", " leading space", "trailing space ", "  two leading",
    "tabs\tand\ttabs", "new\nline", "many\n\n\nnewlines", "\n", " ", "   ", "\t\t", "\r\n",
    "12345", "3.14159", "1,000,000", "call 555-0199 now", "year 2024 and 1999", "0x1F",
    "x=10; y=20", "a1b2c3", "v1.2.3-rc4", "1st 2nd 3rd 4th", "100%", "$9.99", "-42", "+7",
    "café", "naïve résumé", "Zürich", "Ελληνικά", "Русский текст", "日本語のテキスト", "中文字符",
    "한국어", "العربية", "עברית", "हिन्दी", "emoji 😀🎉", "👍🏽", "🇫🇷 flag", "math ∑∫√∞", "→ ← ↑ ↓",
    "def f(x):\n    return x * 2\n", "if (a && b) { return; }", "for i in range(10):\n\tprint(i)",
    "<html><body>Hi</body></html>", "SELECT * FROM t WHERE id = 3;", "const x = () => {};",
    "#include <stdio.h>", "// comment", "/* block */", "x += 1", "a->b", "std::vector<int>",
    "don't", "I'm", "we'll", "they've", "she'd", "it's", "DON'T", "O'Neil", "rock'n'roll",
    "<|im_start|>user\nHi<|im_end|>\n", "<|endoftext|>", "text<|im_end|>more",
    "UPPER lower MiXeD", "hyphen-ated words", "under_score", "camelCaseWord", "snake_case_word",
    "a.b.c", "...", "!!!", "???", "?!", "--", "—em dash—", "“quotes”", "‘single’", "«guillemets»",
    "mail@example.com", "https://example.org/path?q=1&r=2", "C:\\path\\to\\file", "~/dir/file.txt",
]

ALPHABET = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            " \t\n.,;:!?'\"-_()[]{}<>/\\@#$%^&*+=|~`éüñßøåçæœ€£¥©®™°±µ¶§•…–—中文日本한국😀🎉")


def random_strings(n, seed=7):
    r = random.Random(seed)
    out = []
    for _ in range(n):
        k = r.randint(1, 40)
        out.append("".join(r.choice(ALPHABET) for _ in range(k)))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    llm = llama_cpp.Llama(model_path=args.gguf, vocab_only=True, verbose=False)
    strings = BASE + random_strings(220)
    cases = []
    for s in strings:
        ids = llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)
        cases.append({"text": s, "ids": ids})
    with open(args.out, "w") as f:
        json.dump({"llama_cpp_python": llama_cpp.__version__, "cases": cases}, f, ensure_ascii=False, indent=0)
    print(len(cases), "cases written")
