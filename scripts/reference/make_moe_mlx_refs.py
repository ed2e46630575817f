#!/usr/bin/env python3
"""Write the tiny Qwen3-MoE test model in mlx-lm's quantized layout (stacked
experts, model.layers.N.mlp.switch_mlp.{gate,up,down}_proj with .scales and
.biases) and mlx-lm's logits for it, for genkit's stacked-expert tests.

Run with the project venv's Python (mlx and mlx-lm installed; no torch):

    .venv/bin/python scripts/reference/make_moe_mlx_refs.py \
        --model engine/testdata/hf/qwen3_moe --out engine/testdata/hf/qwen3_moe_mlx4

mlx-lm's own qwen3_moe model stacks the per-expert tensors (sanitize) and
is quantized with nn.quantize: 4 bits, group 32 (the experts' down
projection has only 32 inputs), and the router at 8 bits / group 64 as
mlx-lm's quant_predicate asks. The file and config.json "quantization"
follow mlx-lm's save format. reference.json holds mlx-lm's logits (float32
activations) at every position of the prompts of make_engine_refs.py.
"""
import argparse
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.models import qwen3_moe

PROMPTS = [[5], [17, 3, 99, 42, 7, 250, 1], [(i * 37 + 11) % 256 for i in range(24)]]
GROUP, BITS = 32, 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    src, out = Path(args.model), Path(args.out)
    cfg = json.loads((src / "config.json").read_text())
    margs = qwen3_moe.ModelArgs(
        model_type="qwen3_moe", hidden_size=cfg["hidden_size"], num_hidden_layers=cfg["num_hidden_layers"],
        intermediate_size=cfg["intermediate_size"], num_attention_heads=cfg["num_attention_heads"],
        num_experts=cfg.get("num_experts", cfg.get("num_local_experts")),
        num_experts_per_tok=cfg["num_experts_per_tok"], decoder_sparse_step=cfg["decoder_sparse_step"],
        mlp_only_layers=cfg["mlp_only_layers"], moe_intermediate_size=cfg["moe_intermediate_size"],
        rms_norm_eps=cfg["rms_norm_eps"], vocab_size=cfg["vocab_size"],
        num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"],
        rope_theta=cfg["rope_parameters"]["rope_theta"], tie_word_embeddings=cfg["tie_word_embeddings"],
        max_position_embeddings=cfg["max_position_embeddings"], norm_topk_prob=cfg["norm_topk_prob"])
    model = qwen3_moe.Model(margs)
    weights = model.sanitize(mx.load(str(src / "model.safetensors")))
    model.load_weights(list(weights.items()), strict=True)

    per_layer = {}

    def predicate(path, module):
        if not hasattr(module, "to_quantized"):
            return False
        if path.endswith("mlp.gate"):
            per_layer[path] = {"group_size": 64, "bits": 8}
            return {"group_size": 64, "bits": 8}
        return True

    nn.quantize(model, group_size=GROUP, bits=BITS, class_predicate=predicate)
    out.mkdir(parents=True, exist_ok=True)
    flat = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out / "model.safetensors"), flat, metadata={"format": "mlx"})
    qcfg = dict(cfg)
    qcfg["quantization"] = {"group_size": GROUP, "bits": BITS, "mode": "affine", **per_layer}
    (out / "config.json").write_text(json.dumps(qcfg, indent=2) + "\n")
    ref = {"mlx": mx.__version__, "prompts": []}
    for p in PROMPTS:
        logits = model(mx.array([p]))[0].astype(mx.float32)
        ref["prompts"].append({"tokens": p, "logits": logits.tolist()})
    (out / "reference.json").write_text(json.dumps(ref) + "\n")
    print("wrote", out, sorted(k for k in flat if "layers.0.mlp" in k))


if __name__ == "__main__":
    main()
