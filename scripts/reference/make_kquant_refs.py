"""Tiny quantized GGUFs made by llama.cpp's own quantizer, and their values
as ggml's reference C code dequantizes them, for genkit's GGUF type tests.

1. Writes a seeded random-weight tiny llama (hidden 256, so every row is a
   whole number of 256-weight K-quant blocks) as an F32 GGUF with gguf-py,
   with a 258-token byte-level BPE vocabulary.
2. Runs `llama-quantize --pure` on it for each type (every tensor of the
   type, 1-D norms stay F32).
3. Reads each quantized tensor's raw blocks (gguf-py) and dequantizes them
   with ggml's `dequantize_row_<type>` from libggml-base.so (ctypes), writing
   per tensor: the SHA-256 of the fp32 little-endian values, their count,
   sum and sum of squares (float64), and 64 sampled values (fixed indices);
   and per file the logits at every position of a short prompt from an
   independent float64 numpy forward pass over those dequantized weights.
4. Dequantizes 16 blocks of random bytes (random finite float16 scales) of
   every supported quantized type, and 512 random F16 and BF16 values, with
   ggml's functions, recording the bytes and the SHA-256 of the values.

Runs once on the developer machine (never in CI), in `make interop`'s venv:

    build/interop-venv/bin/python scripts/reference/make_kquant_refs.py \
        --llama-bin build/peers/b/bin --out engine/testdata/gguf_types
"""
import argparse
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import llamacpp_tiny


HIDDEN, HEADS, KV_HEADS, FFN, LAYERS = 256, 4, 2, 256, 1
HEAD_DIM = HIDDEN // HEADS


def write_f32(path, gguf):
    rng = np.random.default_rng(20260127)
    byte_chars = llamacpp_tiny.byte_chars()
    tokens = [byte_chars[b] for b in range(256)] + ["\u0120t", "<|endoftext|>"]
    types = [1] * 257 + [3]
    vocab = len(tokens)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("genkit-tiny-kquant")
    w.add_context_length(256)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["\u0120 t"])
    w.add_bos_token_id(257)
    w.add_eos_token_id(257)
    w.add_add_bos_token(False)

    def mat(rows, cols, std=0.05):
        # Heavy-ish tails so the quantizers' scale searches see outliers.
        x = rng.standard_normal((rows, cols)).astype(np.float32) * std
        x[rng.random((rows, cols)) < 0.01] *= 8
        return x

    w.add_tensor("token_embd.weight", mat(vocab, HIDDEN, 0.5))
    for i in range(LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
        w.add_tensor(p + "attn_q.weight", mat(HIDDEN, HIDDEN))
        w.add_tensor(p + "attn_k.weight", mat(KV_HEADS * HEAD_DIM, HIDDEN))
        w.add_tensor(p + "attn_v.weight", mat(KV_HEADS * HEAD_DIM, HIDDEN))
        w.add_tensor(p + "attn_output.weight", mat(HIDDEN, HIDDEN))
        w.add_tensor(p + "ffn_norm.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
        w.add_tensor(p + "ffn_gate.weight", mat(FFN, HIDDEN))
        w.add_tensor(p + "ffn_up.weight", mat(FFN, HIDDEN))
        w.add_tensor(p + "ffn_down.weight", mat(HIDDEN, FFN))
    w.add_tensor("output_norm.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


TYPES = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q5_1", "Q4_0", "IQ4_XS"]
SAMPLES = 64
PROMPT = [257, 72, 101, 108, 108, 111, 256, 33]


def rms_norm(x, w, eps=1e-5):
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope_adjacent(x, base=10000.0):
    # x: [T, H, D]; GGUF llama q/k rows are permuted so RoPE rotates
    # adjacent pairs (2i, 2i+1) by pos * base^(-2i/D).
    T, _, D = x.shape
    inv = base ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def forward(W, ids):
    """float64 forward pass of the tiny llama (tied embeddings) over ids."""
    h = W["token_embd.weight"][ids].astype(np.float64)
    T = len(ids)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(LAYERS):
        p = f"blk.{i}."
        x = rms_norm(h, W[p + "attn_norm.weight"])
        q = (x @ W[p + "attn_q.weight"].T).reshape(T, HEADS, HEAD_DIM)
        k = (x @ W[p + "attn_k.weight"].T).reshape(T, KV_HEADS, HEAD_DIM)
        v = (x @ W[p + "attn_v.weight"].T).reshape(T, KV_HEADS, HEAD_DIM)
        q, k = rope_adjacent(q), rope_adjacent(k)
        rep = HEADS // KV_HEADS
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(HEAD_DIM) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, HEADS * HEAD_DIM)
        h = h + o @ W[p + "attn_output.weight"].T
        x = rms_norm(h, W[p + "ffn_norm.weight"])
        g, u = x @ W[p + "ffn_gate.weight"].T, x @ W[p + "ffn_up.weight"].T
        h = h + (g / (1 + np.exp(-g)) * u) @ W[p + "ffn_down.weight"].T
    h = rms_norm(h, W["output_norm.weight"])
    return h @ W["token_embd.weight"].T.astype(np.float64)


def dequantize(lib, tensor, gguf):
    name = gguf.GGMLQuantizationType(tensor.tensor_type).name
    n = int(np.prod([int(d) for d in tensor.shape]))
    raw = np.ascontiguousarray(tensor.data).view(np.uint8).reshape(-1)
    if name == "F32":
        return raw.view(np.float32).copy()
    sym = name.lower()
    if sym.endswith("_k"):
        sym = sym[:-2] + "_K"
    fn = getattr(lib, "dequantize_row_" + sym)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    out = np.zeros(n, dtype=np.float32)
    fn(raw.ctypes.data, out.ctypes.data, n)
    return out


# Random blocks: every byte random except the float16 scale fields, which
# get random finite halves (offsets per block), so bit patterns the tiny
# model's quantizer never writes are covered too.
BLOCKS = {  # type: (block elements, block bytes, float16 field offsets)
    "Q4_0": (32, 18, [0]), "Q4_1": (32, 20, [0, 2]), "Q5_0": (32, 22, [0]), "Q5_1": (32, 24, [0, 2]),
    "Q8_0": (32, 34, [0]), "Q2_K": (256, 84, [80, 82]), "Q3_K": (256, 110, [108]),
    "Q4_K": (256, 144, [0, 2]), "Q5_K": (256, 176, [0, 2]), "Q6_K": (256, 210, [208]),
    "IQ4_NL": (32, 18, [0]), "IQ4_XS": (256, 136, [0]),
}


def random_blocks(lib):
    import base64
    rng = np.random.default_rng(7)
    out = {}
    halves = lambda n: (rng.standard_normal(n) * 0.05).astype(np.float16).view(np.uint8)
    for name, (per, size, offs) in BLOCKS.items():
        nb = 16
        raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
        for o in offs:
            raw[:, o:o + 2] = halves(nb).reshape(nb, 2)
        raw = np.ascontiguousarray(raw.reshape(-1))
        sym = name.lower()
        if sym.endswith("_k"):
            sym = sym[:-2] + "_K"
        fn = getattr(lib, "dequantize_row_" + sym)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        vals = np.zeros(nb * per, dtype=np.float32)
        fn(raw.ctypes.data, vals.ctypes.data, nb * per)
        out[name] = {"raw": base64.b64encode(raw.tobytes()).decode(), "count": nb * per,
                     "sha256": hashlib.sha256(vals.astype("<f4").tobytes()).hexdigest(), "first": vals[:8].tolist()}
    for name, fn_name, raw in [
        ("F16", "ggml_fp16_to_fp32_row", (rng.standard_normal(512) * 3).astype(np.float16).view(np.uint8)),
        ("BF16", "ggml_bf16_to_fp32_row", (rng.standard_normal(512).astype(np.float32) * 3).view(np.uint32).__rshift__(16).astype("<u2").view(np.uint8)),
    ]:
        raw = np.ascontiguousarray(raw)
        fn = getattr(lib, fn_name)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        vals = np.zeros(512, dtype=np.float32)
        fn(raw.ctypes.data, vals.ctypes.data, 512)
        out[name] = {"raw": base64.b64encode(raw.tobytes()).decode(), "count": 512,
                     "sha256": hashlib.sha256(vals.astype("<f4").tobytes()).hexdigest(), "first": vals[:8].tolist()}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--llama-src", default="build/peers/src/vendor/llama.cpp")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.llama_src, "gguf-py"))
    import gguf

    os.makedirs(args.out, exist_ok=True)
    f32 = os.path.join(tempfile.mkdtemp(), "tiny_f32.gguf")
    write_f32(f32, gguf)
    lib = ctypes.CDLL(os.path.join(args.llama_bin, "libggml-base.so"))
    refs = {"ggml_library": "libggml-base.so (dequantize_row_<type>)", "samples": SAMPLES,
            "prompt": PROMPT, "files": {}}
    for t in TYPES:
        out = os.path.join(args.out, f"tiny_{t.lower()}.gguf")
        subprocess.run([os.path.join(args.llama_bin, "llama-quantize"), "--pure", f32, out, t],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        reader = gguf.GGUFReader(out)
        tensors, weights = {}, {}
        for tensor in reader.tensors:
            vals = dequantize(lib, tensor, gguf)
            dims = [int(d) for d in tensor.shape]
            weights[tensor.name] = vals.reshape(dims[::-1]).astype(np.float64)
            idx = np.linspace(0, len(vals) - 1, SAMPLES).astype(np.int64)
            tensors[tensor.name] = {
                "type": gguf.GGMLQuantizationType(tensor.tensor_type).name,
                "dims": [int(d) for d in tensor.shape],
                "count": int(len(vals)),
                "sha256": hashlib.sha256(vals.astype("<f4").tobytes()).hexdigest(),
                "sum": float(vals.astype(np.float64).sum()),
                "sumsq": float((vals.astype(np.float64) ** 2).sum()),
                "sample_index": idx.tolist(),
                "sample": [float(v) for v in vals[idx]],
            }
        logits = forward(weights, PROMPT)
        refs["files"][os.path.basename(out)] = {"tensors": tensors, "logits": logits.astype(np.float32).tolist()}
        print(t, os.path.getsize(out), "bytes,", len(tensors), "tensors")
    refs["random_blocks"] = random_blocks(lib)
    with open(os.path.join(args.out, "ggml_dequant.json"), "w") as f:
        json.dump(refs, f, indent=0)


if __name__ == "__main__":
    main()
