"""The tiny llama3-RoPE model (engine/testdata/hf/llama3_rope) as a GGUF the
way llama.cpp's converter writes Llama 3.1+ models: F32 tensors, q_proj and
k_proj rows permuted per head, and the llama3 frequency scaling carried only
as the `rope_freqs.weight` tensor (one divisor per rotated pair, computed
with the formula of llama.cpp's conversion/llama.py), no rope.scaling keys.
The model has no tokenizer of its own: a 256-token byte-level BPE
vocabulary is written so the file is complete.

llama.cpp's convert_hf_to_gguf.py itself cannot convert this model (it
needs the model's tokenizer files), so gguf-py writes the file directly.
Runs once on the developer machine, in `make interop`'s venv:

    build/interop-venv/bin/python scripts/reference/make_rope_freqs_gguf.py \
        --model engine/testdata/hf/llama3_rope --out engine/testdata/hf/llama3_rope/rope_freqs.gguf
"""
import argparse
import json
import math
import os
import sys

import numpy as np


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


def permute(w, heads):
    # llama.cpp's converter: rows (heads, 2, head_dim/2) -> (heads, head_dim/2, 2).
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_factors(cfg):
    rp = cfg.get("rope_parameters") or cfg["rope_scaling"]
    base = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    factor = rp["factor"]
    low, high = rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    low_wave, high_wave = old / low, old / high
    out = []
    for i in range(0, dim, 2):
        freq = 1.0 / base ** (i / dim)
        wave = 2 * math.pi / freq
        if wave < high_wave:
            out.append(1.0)
        elif wave > low_wave:
            out.append(factor)
        else:
            smooth = (old / wave - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return base, dim, np.array(out, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--llama-src", default="build/peers/src/vendor/llama.cpp")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.llama_src, "gguf-py"))
    import gguf
    from safetensors.numpy import load_file

    cfg = json.load(open(os.path.join(args.model, "config.json")))
    t = load_file(os.path.join(args.model, "model.safetensors"))
    base, dim, factors = rope_factors(cfg)
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w = gguf.GGUFWriter(args.out, "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_rope_dimension_count(dim)
    w.add_rope_freq_base(base)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(0)
    chars = bytes_to_unicode()
    tokens = [chars[b] for b in range(255)] + ["\u0120t"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * len(tokens))
    w.add_token_merges(["\u0120 t"])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_tensor("rope_freqs.weight", factors)
    w.add_tensor("token_embd.weight", t["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", t[p + "input_layernorm.weight"])
        w.add_tensor(b + "attn_q.weight", permute(t[p + "self_attn.q_proj.weight"], H))
        w.add_tensor(b + "attn_k.weight", permute(t[p + "self_attn.k_proj.weight"], KV))
        w.add_tensor(b + "attn_v.weight", t[p + "self_attn.v_proj.weight"])
        w.add_tensor(b + "attn_output.weight", t[p + "self_attn.o_proj.weight"])
        w.add_tensor(b + "ffn_norm.weight", t[p + "post_attention_layernorm.weight"])
        w.add_tensor(b + "ffn_gate.weight", t[p + "mlp.gate_proj.weight"])
        w.add_tensor(b + "ffn_up.weight", t[p + "mlp.up_proj.weight"])
        w.add_tensor(b + "ffn_down.weight", t[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", t["model.norm.weight"])
    w.add_tensor("output.weight", t["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(args.out, os.path.getsize(args.out), "bytes; rope_freqs", factors.tolist())


if __name__ == "__main__":
    main()
