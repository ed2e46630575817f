"""Reference vectors for genkit's steering, made with a PyTorch forward hook
on model.model.layers[L] (the post-block residual) of the tiny models that
make_engine_refs.py wrote.

    python3 make_steering_refs.py --models engine/testdata/hf --out steering/testdata
"""
import argparse
import json
import os

import torch
import transformers

torch.backends.cuda.matmul.allow_tf32 = False
DEV = "cuda" if torch.cuda.is_available() else "cpu"
PROMPT = [17, 3, 99, 42, 7, 250, 1, 64, 128]
ALPHA = 3.0
NEW = 10


def rows(t):
    return [[float(x) for x in r] for r in t.tolist()]


class Steer:
    """Adds alpha*v to a block's output. scope: all positions; prompt
    positions only; or generated (the last position of every forward: the
    last prompt token, then each new token)."""

    def __init__(self, v, alpha, scope):
        self.v, self.alpha, self.scope = v, alpha, scope

    def __call__(self, mod, inp, output):
        h = output[0] if isinstance(output, tuple) else output
        prefill = h.shape[1] > 1 or self.first
        self.first = False
        add = torch.zeros_like(h)
        if self.scope == "all":
            add[:] = self.alpha * self.v
        elif self.scope == "prompt" and prefill:
            add[:] = self.alpha * self.v
        elif self.scope == "generated":
            add[:, -1] = self.alpha * self.v
        h = h + add
        return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h


def run(model, layer, v, scope):
    hook = Steer(v, ALPHA, scope)
    hook.first = True
    handle = model.model.layers[layer].register_forward_hook(hook)
    with torch.no_grad():
        x = torch.tensor([PROMPT], device=DEV)
        logits = model(x).logits[0].float().cpu()
        hook.first = True
        gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=NEW, do_sample=False,
                             eos_token_id=None, pad_token_id=0, min_new_tokens=NEW)
    handle.remove()
    return logits, gen[0, len(PROMPT):].tolist()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--names", default="llama_tied,qwen2_bias,qwen3_headdim,mistral_window,granite_mult,"
                    "olmo2_post,phi3_fused,gemma2_caps,gemma3_local,qwen3_moe")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = {"transformers": transformers.__version__, "prompt": PROMPT, "alpha": ALPHA, "models": {}}
    for name in args.names.split(","):
        model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(args.models, name),
                                                                  attn_implementation="eager",
                                                                  dtype=torch.float32).to(DEV).eval()
        D, L = model.config.hidden_size, model.config.num_hidden_layers
        g = torch.Generator().manual_seed(5)
        v = torch.randn(D, generator=g)
        v = (v / v.norm()).to(DEV)
        m = {"vector": v.cpu().tolist(), "runs": []}
        with torch.no_grad():
            x = torch.tensor([PROMPT], device=DEV)
            m["base_logits"] = rows(model(x).logits[0].float().cpu())
            m["w_u_v"] = model.lm_head.weight.float().matmul(v).cpu().tolist()
            m["w_u_norm_v"] = model.lm_head.weight.float().matmul(model.model.norm(v[None])[0]).cpu().tolist()
        for layer in sorted({0, L // 2, L - 1}):
            for scope in ("all", "prompt", "generated"):
                logits, greedy = run(model, layer, v, scope)
                m["runs"].append({"layer": layer, "scope": scope, "logits": rows(logits), "greedy": greedy})
        out["models"][name] = m
        print(name, flush=True)
    with open(os.path.join(args.out, "hf_steering.json"), "w") as f:
        json.dump(out, f)
    print("written", flush=True)
