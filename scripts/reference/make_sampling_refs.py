"""Reference vectors for genkit's sampler, made with transformers' generate().

For each generation config, generate() runs on a tiny seeded model with
output_logits and output_scores, so every step records the raw logits, the
token history HF's processors saw, and the scores after HF's whole processor
chain (built by generate() itself, in HF's order). Beam search outputs are
recorded too. See README.md beside this file.

    python3 make_sampling_refs.py --out sampling/testdata
"""
import argparse
import inspect
import json
import math
import os

import torch
import transformers

torch.backends.cuda.matmul.allow_tf32 = False
DEV = "cuda" if torch.cuda.is_available() else "cpu"
V = 512
EOS = [3, 4]

CONFIGS = {
    "greedy": dict(do_sample=False),
    "temperature": dict(do_sample=True, temperature=0.7),
    "top_k": dict(do_sample=True, top_k=10, temperature=1.3),
    "top_p": dict(do_sample=True, top_k=0, top_p=0.9),
    "min_p": dict(do_sample=True, top_k=0, min_p=0.1, temperature=0.8),
    "typical_p": dict(do_sample=True, top_k=0, typical_p=0.9),
    "epsilon": dict(do_sample=True, top_k=0, epsilon_cutoff=3e-3),
    "eta": dict(do_sample=True, top_k=0, eta_cutoff=2e-3),
    "repetition": dict(do_sample=False, repetition_penalty=1.3),
    "no_repeat_ngram": dict(do_sample=False, no_repeat_ngram_size=2),
    "bad_words_bias": dict(do_sample=True, top_k=0, bad_words_ids=[[5], [7, 8], [3]],
                           sequence_bias=[[[9], 2.5], [[10, 11], -3.0]]),
    "min_new_suppress": dict(do_sample=True, top_k=20, min_new_tokens=5, suppress_tokens=[12, 13],
                             begin_suppress_tokens=[14, 15]),
    "decay_penalty": dict(do_sample=False, exponential_decay_length_penalty=[2, 1.5]),
    "forced": dict(do_sample=False, forced_bos_token_id=1, forced_eos_token_id=4, max_length=12),
    "chain_renorm": dict(do_sample=True, temperature=0.9, top_k=40, top_p=0.95, min_p=0.05,
                         repetition_penalty=1.1, no_repeat_ngram_size=3, renormalize_logits=True),
    "invalid_values": dict(do_sample=False, remove_invalid_values=True, min_new_tokens=3),
}

PROMPTS = [[1, 20, 21, 20, 21, 22], [2, 40, 41, 42, 43, 44, 45, 46, 47, 48]]


def config(cls_name, kw):
    cls = getattr(transformers, cls_name)
    kw = dict(kw)
    if "rope_parameters" in inspect.signature(cls.__init__).parameters:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": kw.pop("rope_theta", 10000.0)}
    return cls(**kw)


def tiny_model():
    cfg = config("LlamaConfig", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, vocab_size=V,
                                     max_position_embeddings=256, tie_word_embeddings=False,
                                     rope_theta=10000.0, bos_token_id=1, eos_token_id=EOS, pad_token_id=0))
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * noise)
            elif name == "lm_head.weight":
                p.copy_(0.35 * noise)  # peaky distributions, so the warpers have work
            else:
                p.copy_(0.08 * noise)
    return model.to(DEV).eval()


def num(x):
    """JSON number, with non-finite values as strings."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def record(model, name, kw, max_new=8):
    out = []
    for pi, prompt in enumerate(PROMPTS):
        torch.manual_seed(1000 + pi)
        x = torch.tensor([prompt], device=DEV)
        args = dict(max_new_tokens=max_new, return_dict_in_generate=True, output_scores=True,
                    output_logits=True, pad_token_id=0, eos_token_id=EOS, bos_token_id=1)
        args.update(kw)
        if "max_length" in kw:
            args.pop("max_new_tokens")
        if "sequence_bias" in kw:
            args["sequence_bias"] = {tuple(k): v for k, v in kw["sequence_bias"]}
        gen = model.generate(x, attention_mask=torch.ones_like(x), **args)
        seq = gen.sequences[0].tolist()
        steps = []
        for s, (lg, sc) in enumerate(zip(gen.logits, gen.scores)):
            steps.append({"input_ids": seq[:len(prompt) + s],
                          "logits": [num(v) for v in lg[0].float().cpu().tolist()],
                          "scores": [num(v) for v in sc[0].float().cpu().tolist()]})
        out.append({"prompt": prompt, "sequence": seq, "steps": steps})
    return out


def beams(model):
    res = []
    for kw in (dict(num_beams=3, length_penalty=1.0, early_stopping=True, num_return_sequences=2),
               dict(num_beams=4, length_penalty=0.6, early_stopping=False, num_return_sequences=3),
               dict(num_beams=2, length_penalty=2.0, early_stopping="never", num_return_sequences=1)):
        for prompt in PROMPTS:
            x = torch.tensor([prompt], device=DEV)
            gen = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=10,
                                 return_dict_in_generate=True, output_scores=True, pad_token_id=0,
                                 eos_token_id=EOS, **kw)
            res.append({"config": {k: v for k, v in kw.items()}, "prompt": prompt,
                        "sequences": gen.sequences.tolist(),
                        "sequences_scores": [float(v) for v in gen.sequences_scores.tolist()]})
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = tiny_model()
    model.save_pretrained(os.path.join(args.out, "tiny_sampler"), safe_serialization=True)
    gc = os.path.join(args.out, "tiny_sampler", "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    ref = {"transformers": transformers.__version__, "torch": torch.__version__, "eos": EOS, "configs": {}}
    for name, kw in CONFIGS.items():
        ref["configs"][name] = {"config": kw, "runs": record(model, name, kw)}
        print(name, flush=True)
    ref["beams"] = beams(model)
    with open(os.path.join(args.out, "hf_sampling.json"), "w") as f:
        json.dump(ref, f)
    print("written", flush=True)
