package engine

import "fmt"

// tensorNames maps the decoder's parts to tensor names of one file format.
type tensorNames struct {
	embed, norm, lmHead string
	layer               func(i int) layerNames
}

type layerNames struct {
	attnNorm, ffnNorm, q, k, v, o, gate, up, down, qNorm, kNorm string
}

// hfNames are the names of Hugging Face (and MLX) checkpoints; weights are
// prefix.weight, quantized ones add prefix.scales and prefix.biases.
var hfNames = tensorNames{
	embed: "model.embed_tokens", norm: "model.norm.weight", lmHead: "lm_head",
	layer: func(i int) layerNames {
		p := fmt.Sprintf("model.layers.%d.", i)
		return layerNames{
			attnNorm: p + "input_layernorm.weight", ffnNorm: p + "post_attention_layernorm.weight",
			q: p + "self_attn.q_proj", k: p + "self_attn.k_proj", v: p + "self_attn.v_proj", o: p + "self_attn.o_proj",
			gate: p + "mlp.gate_proj", up: p + "mlp.up_proj", down: p + "mlp.down_proj",
			qNorm: p + "self_attn.q_norm.weight", kNorm: p + "self_attn.k_norm.weight",
		}
	},
}

// ggufNames are llama.cpp's tensor names.
var ggufNames = tensorNames{
	embed: "token_embd", norm: "output_norm.weight", lmHead: "output",
	layer: func(i int) layerNames {
		p := fmt.Sprintf("blk.%d.", i)
		return layerNames{
			attnNorm: p + "attn_norm.weight", ffnNorm: p + "ffn_norm.weight",
			q: p + "attn_q", k: p + "attn_k", v: p + "attn_v", o: p + "attn_output",
			gate: p + "ffn_gate", up: p + "ffn_up", down: p + "ffn_down",
			qNorm: p + "attn_q_norm.weight", kNorm: p + "attn_k_norm.weight",
		}
	},
}
