"""Reference vectors for genkit's engine, made with Hugging Face transformers.

Writes tiny seeded random-weight models with HF's outputs on them, and
SmolLM2-135M next-token distributions from the default GGUF dequantized by an
independent numpy decoder. See README.md beside this file.
"""
import argparse
import inspect
import json
import os
import struct

import numpy as np
import torch
import transformers
from safetensors.torch import save_file

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def seeded_init(model, seed):
    """Fill every parameter with seeded noise (biases and norms included), so
    no weight is a trivial zero or one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.08 * noise)


TINY = {
    "llama_tied": dict(cls="LlamaConfig", seed=1, kw=dict(
        hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-5,
        rope_theta=10000.0, tie_word_embeddings=True)),
    "llama3_rope": dict(cls="LlamaConfig", seed=2, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=512, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=16))),
    "qwen2_bias": dict(cls="Qwen2Config", seed=3, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-6,
        rope_theta=1000000.0, tie_word_embeddings=False)),
    "qwen3_headdim": dict(cls="Qwen3Config", seed=4, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, vocab_size=256, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True)),
    # The families of issue 17, each with what sets it apart switched on at
    # a size the tiny prompts reach (windows shorter than the 24-token one).
    "mistral_window": dict(cls="MistralConfig", seed=5, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-5,
        rope_theta=1000000.0, sliding_window=8, tie_word_embeddings=False)),
    "granite_mult": dict(cls="GraniteConfig", seed=6, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-5,
        rope_theta=10000.0, embedding_multiplier=3.0, attention_multiplier=0.07,
        residual_multiplier=0.4, logits_scaling=2.5, tie_word_embeddings=True)),
    "olmo2_post": dict(cls="Olmo2Config", seed=7, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-6,
        rope_theta=500000.0, eos_token_id=2, tie_word_embeddings=False)),
    "phi3_fused": dict(cls="Phi3Config", seed=8, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-5,
        rope_theta=10000.0, sliding_window=10, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        rope_extra=dict(partial_rotary_factor=0.5), tie_word_embeddings=False)),
    "gemma2_caps": dict(cls="Gemma2Config", seed=9, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, vocab_size=256, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_theta=10000.0, query_pre_attn_scalar=32, sliding_window=8,
        attn_logit_softcapping=5.0, final_logit_softcapping=3.0, tie_word_embeddings=True)),
    "gemma3_local": dict(cls="Gemma3TextConfig", seed=10, kw=dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, vocab_size=256, max_position_embeddings=256,
        rms_norm_eps=1e-6, query_pre_attn_scalar=24, sliding_window=8,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"] * 2,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
        tie_word_embeddings=True)),
    "qwen3_moe": dict(cls="Qwen3MoeConfig", seed=11, kw=dict(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_experts=8,
        num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[1],
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=False)),
    # Every layer sparse (llama.cpp's qwen3moe has no dense layers), so
    # llama.cpp's converter can write it as GGUF (make_moe_gguf.py).
    "qwen3_moe_all": dict(cls="Qwen3MoeConfig", seed=12, kw=dict(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_experts=16,
        num_experts_per_tok=4, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=False)),
}

PROMPTS = [[5], [17, 3, 99, 42, 7, 250, 1], [(i * 37 + 11) % 256 for i in range(24)]]
PADDED = [[9, 8, 7, 6, 5], [100, 101, 102, 103, 104, 105, 106, 107, 108]]


def capture_blocks(model):
    """Forward hooks on model.model.layers[i]: the post-block residual."""
    out, handles = {}, []
    for i, layer in enumerate(model.model.layers):
        def hook(mod, inp, output, i=i):
            h = output[0] if isinstance(output, tuple) else output
            out[i] = h.detach().float().cpu()
        handles.append(layer.register_forward_hook(hook))
    return out, handles


def rows(t):
    return [[float(x) for x in r] for r in t.tolist()]


def config(cls_name, kw):
    """Build a config, moving rope_theta/rope_scaling into rope_parameters
    where the installed transformers (5.x) wants that."""
    cls = getattr(transformers, cls_name)
    kw = dict(kw)
    extra = kw.pop("rope_extra", {})
    if "rope_parameters" in kw:
        pass  # given per layer type (gemma3)
    elif "rope_parameters" in inspect.signature(cls.__init__).parameters or hasattr(cls, "__dataclass_fields__") and "rope_parameters" in cls.__dataclass_fields__:
        rp = dict(kw.pop("rope_scaling", None) or {"rope_type": "default"})
        rp["rope_theta"] = kw.pop("rope_theta", 10000.0)
        rp.update(extra)
        kw["rope_parameters"] = rp
    else:
        kw.update(extra)
    return cls(**kw)


def make_tiny(name, spec, out_dir):
    cfg = config(spec["cls"], spec["kw"])
    cfg._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
    seeded_init(model, spec["seed"])
    model.to(DEV).eval()
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    ref = {"transformers": transformers.__version__, "torch": torch.__version__, "prompts": []}
    blocks, handles = capture_blocks(model)
    with torch.no_grad():
        for ids in PROMPTS:
            x = torch.tensor([ids], device=DEV)
            blocks.clear()
            logits = model(x).logits[0].float().cpu()
            hidden = {str(i): rows(blocks[i][0]) for i in sorted(blocks)}
            gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=12, do_sample=False,
                                 eos_token_id=None, pad_token_id=0, min_new_tokens=12)
            ref["prompts"].append({"tokens": ids, "logits": rows(logits), "hidden": hidden,
                                   "greedy": gen[0, len(ids):].tolist()})
        for h in handles:
            h.remove()
        # A left-padded batch, positions as generate() computes them.
        L = max(len(p) for p in PADDED)
        ids = torch.tensor([[0] * (L - len(p)) + p for p in PADDED], device=DEV)
        mask = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in PADDED], device=DEV)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(ids, attention_mask=mask, position_ids=pos).logits[:, -1].float().cpu()
        ref["padded"] = {"prompts": PADDED, "last_logits": rows(logits)}
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(name, "written", flush=True)


# ---- GGUF (independent numpy decoder) ---------------------------------------

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)[0]
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        n = take("<Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def value(t):
        if t in SCALAR:
            return take(SCALAR[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        raise ValueError(f"metadata type {t}")

    assert data[:4] == b"GGUF"
    pos = 4
    take("<I")
    nt, nkv = take("<Q"), take("<Q")
    meta = {}
    for _ in range(nkv):
        k = string()
        meta[k] = value(take("<I"))
    infos = []
    for _ in range(nt):
        name = string()
        nd = take("<I")
        dims = [take("<Q") for _ in range(nd)]
        infos.append((name, dims, take("<I"), take("<Q")))
    align = meta.get("general.alignment", 32)
    start = (pos + align - 1) // align * align
    tensors = {}
    for name, dims, typ, off in infos:
        n = int(np.prod(dims))
        buf = memoryview(data)[start + off:]
        if typ == 0:
            w = np.frombuffer(buf, dtype="<f4", count=n).astype(np.float32)
        elif typ == 1:
            w = np.frombuffer(buf, dtype="<f2", count=n).astype(np.float32)
        elif typ == 3:  # Q4_1: f16 d, f16 m, 16 bytes of nibbles per 32 weights
            blocks = np.frombuffer(buf, dtype=np.uint8, count=n // 32 * 20).reshape(-1, 20)
            d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
            m = blocks[:, 2:4].copy().view("<f2").astype(np.float32)
            qs = blocks[:, 4:20]
            q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32)
            w = (q * d + m).reshape(-1)
        elif typ == 8:  # Q8_0: f16 d, 32 int8
            blocks = np.frombuffer(buf, dtype=np.uint8, count=n // 32 * 34).reshape(-1, 34)
            d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
            q = blocks[:, 2:34].copy().view(np.int8).astype(np.float32)
            w = (q * d).reshape(-1)
        elif typ == 2:  # Q4_0
            blocks = np.frombuffer(buf, dtype=np.uint8, count=n // 32 * 18).reshape(-1, 18)
            d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
            qs = blocks[:, 2:18]
            q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
            w = (q * d).reshape(-1)
        else:
            raise ValueError(f"{name}: ggml type {typ} not handled")
        tensors[name] = w.reshape(list(reversed(dims)))
    return meta, tensors


def unpermute(w, heads):
    """Undo llama.cpp's Q/K row permutation (GGUF row 2j <- HF row j)."""
    out, inp = w.shape
    hd = out // heads
    return w.reshape(heads, hd // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def smollm_from_gguf(path):
    meta, t = read_gguf(path)
    a = meta["general.architecture"]
    H, KV = meta[f"{a}.attention.head_count"], meta[f"{a}.attention.head_count_kv"]
    cfg = config("LlamaConfig", dict(
        hidden_size=meta[f"{a}.embedding_length"], intermediate_size=meta[f"{a}.feed_forward_length"],
        num_hidden_layers=meta[f"{a}.block_count"], num_attention_heads=H, num_key_value_heads=KV,
        vocab_size=t["token_embd.weight"].shape[0], max_position_embeddings=meta[f"{a}.context_length"],
        rms_norm_eps=meta[f"{a}.attention.layer_norm_rms_epsilon"], rope_theta=meta[f"{a}.rope.freq_base"],
        tie_word_embeddings=True))
    sd = {"model.embed_tokens.weight": t["token_embd.weight"], "model.norm.weight": t["output_norm.weight"]}
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    for i in range(cfg.num_hidden_layers):
        for g, h in names.items():
            w = t[f"blk.{i}.{g}.weight"]
            if g == "attn_q":
                w = unpermute(w, H)
            elif g == "attn_k":
                w = unpermute(w, KV)
            sd[f"model.layers.{i}.{h}.weight"] = w
    model = transformers.LlamaForCausalLM(cfg).float()
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
                                                strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    model.tie_weights()
    return model.to(DEV).eval()


def make_smollm(gguf, prompts_file, out_dir, topk=256):
    model = smollm_from_gguf(gguf)
    prompts = json.load(open(prompts_file))
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "topk": topk, "prompts": []}
    with torch.no_grad():
        for p in prompts:
            x = torch.tensor([p["tokens"]], device=DEV)
            logits = model(x).logits[0, -1].float()
            lse = torch.logsumexp(logits, -1)
            lp, idx = torch.topk(logits - lse, topk)
            out["prompts"].append({"text": p["text"], "tokens": p["tokens"], "logsumexp": float(lse),
                                   "top_ids": idx.tolist(), "top_logprobs": [float(v) for v in lp.tolist()]})
    with open(os.path.join(out_dir, "smollm2_dequant_fp32.json"), "w") as f:
        json.dump(out, f)
    print("smollm2 written", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--gguf")
    ap.add_argument("--prompts")
    ap.add_argument("--only", help="comma-separated tiny model names (default: all)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, spec in TINY.items():
        if args.only and name not in args.only.split(","):
            continue
        make_tiny(name, spec, args.out)
    if args.gguf:
        make_smollm(args.gguf, args.prompts, args.out)
