#!/usr/bin/env python3
"""Write the tiny Qwen3-MoE test model (engine/testdata/hf/qwen3_moe) as GGUF
files with llama.cpp's own converter, for genkit's GGUF expert-stack test.

Run with a Python that has torch and transformers (the converter imports
them), from the repository root:

    /tmp/refvenv/bin/python scripts/reference/make_moe_gguf.py \
        --llama-src build/peers/src/vendor/llama.cpp \
        --model engine/testdata/hf/qwen3_moe --out engine/testdata/hf/qwen3_moe

It writes model.f32.gguf (--outtype f32) and model.q8_0.gguf (--outtype
q8_0), and reference_q8_0.json: transformers' logits (fp32, eager
attention) at every position of make_engine_refs.py's prompts for the
Q8_0 file's weights dequantized by gguf-py (gguf.quants.dequantize) and
written back under Hugging Face's names (the stacked experts split per
expert).

The one patch: the tiny model has no tokenizer files, and the converter's
vocabulary step reads them; it is replaced, in this process only, by
llamacpp_tiny.minimal_vocab (GPT-2's byte characters for bytes 0-254 and one
merged token "ĠĠ"), so that genkit's GGUF tokenizer builds. The model's
weights and every other step are the converter's own.
"""
import argparse
import json
from pathlib import Path

import llamacpp_tiny


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    conv = llamacpp_tiny.converter(args.llama_src)
    import gguf  # noqa: E402 (on the path the converter's import put it)

    vocab = json.loads((Path(args.model) / "config.json").read_text())["vocab_size"]
    assert vocab == 256, vocab
    for outtype in ["f32", "q8_0"]:
        out = Path(args.out) / f"model.{outtype}.gguf"
        llamacpp_tiny.convert(conv, args.model, out, outtype)
        print("wrote", out)
    reference_q8_0(gguf, Path(args.model), Path(args.out))


PROMPTS = [[5], [17, 3, 99, 42, 7, 250, 1], [(i * 37 + 11) % 256 for i in range(24)]]


def reference_q8_0(gguf, model_dir, out):
    import tempfile
    import shutil
    import numpy as np
    import torch
    from safetensors.numpy import save_file
    from transformers import AutoModelForCausalLM

    reader = gguf.GGUFReader(str(out / "model.q8_0.gguf"))
    hf = {}
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
             "attn_k_norm": "self_attn.k_norm", "ffn_gate_inp": "mlp.gate"}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(d) for d in reversed(t.shape)])
        name = t.name.removesuffix(".weight")
        if name == "token_embd":
            hf["model.embed_tokens.weight"] = w
        elif name == "output":
            hf["lm_head.weight"] = w
        elif name == "output_norm":
            hf["model.norm.weight"] = w
        else:
            _, b, part = name.split(".")
            if part.endswith("_exps"):
                proj = part.removeprefix("ffn_").removesuffix("_exps")
                for e in range(w.shape[0]):
                    hf[f"model.layers.{b}.mlp.experts.{e}.{proj}_proj.weight"] = np.ascontiguousarray(w[e])
            else:
                hf[f"model.layers.{b}.{names[part]}.weight"] = w
    tmp = Path(tempfile.mkdtemp())
    try:
        shutil.copy(model_dir / "config.json", tmp / "config.json")
        save_file(hf, str(tmp / "model.safetensors"))
        model = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        ref = {"note": "HF logits for model.q8_0.gguf's weights dequantized by gguf-py", "prompts": []}
        with torch.no_grad():
            for p in PROMPTS:
                logits = model(torch.tensor([p])).logits[0].float()
                ref["prompts"].append({"tokens": p, "logits": logits.tolist()})
        (out / "reference_q8_0.json").write_text(json.dumps(ref) + "\n")
        print("wrote", out / "reference_q8_0.json")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
