package engine

import "fmt"

// tensorNames maps the decoder's parts to tensor names of one file format:
// the component resolver for embeddings, blocks, final norm and head.
type tensorNames struct {
	embed, norm, lmHead string
	layer               func(i int) layerNames
}

// layerNames are one block's tensor names; an empty name is a part the
// family does not have.
type layerNames struct {
	attnNorm, ffnNorm, postAttnNorm, postFFNNorm string
	q, k, v, o, gate, up, down, qNorm, kNorm     string
	// router and experts of a sparse MLP: stacks names the stacked
	// tensors ([experts, out, in]) of the gate, up and down projections
	// (MLX's switch_mlp, llama.cpp's ffn_*_exps); experts, when not nil,
	// names expert e's own tensors (Hugging Face).
	router  string
	stacks  [3]string
	experts func(e int) (gate, up, down string)
}

// hfNames are the names of Hugging Face (and MLX) checkpoints of family a;
// weights are prefix.weight, quantized ones add prefix.scales and
// prefix.biases.
func hfNames(a Arch) tensorNames {
	return tensorNames{
		embed: "model.embed_tokens", norm: "model.norm.weight", lmHead: "lm_head",
		layer: func(i int) layerNames {
			p := fmt.Sprintf("model.layers.%d.", i)
			n := layerNames{
				q: p + "self_attn.q_proj", k: p + "self_attn.k_proj", v: p + "self_attn.v_proj", o: p + "self_attn.o_proj",
				gate: p + "mlp.gate_proj", up: p + "mlp.up_proj", down: p + "mlp.down_proj",
				qNorm: p + "self_attn.q_norm.weight", kNorm: p + "self_attn.k_norm.weight",
				router: p + "mlp.gate",
				stacks: [3]string{p + "mlp.switch_mlp.gate_proj", p + "mlp.switch_mlp.up_proj", p + "mlp.switch_mlp.down_proj"},
				experts: func(e int) (string, string, string) {
					x := fmt.Sprintf("%smlp.experts.%d.", p, e)
					return x + "gate_proj", x + "up_proj", x + "down_proj"
				},
			}
			switch {
			case !a.Norms.post:
				n.attnNorm, n.ffnNorm = p+"input_layernorm.weight", p+"post_attention_layernorm.weight"
			case a.Norms.noPre:
				n.postAttnNorm, n.postFFNNorm = p+"post_attention_layernorm.weight", p+"post_feedforward_layernorm.weight"
			default:
				n.attnNorm, n.postAttnNorm = p+"input_layernorm.weight", p+"post_attention_layernorm.weight"
				n.ffnNorm, n.postFFNNorm = p+"pre_feedforward_layernorm.weight", p+"post_feedforward_layernorm.weight"
			}
			return n
		},
	}
}

// ggufNames are llama.cpp's tensor names for family a.
func ggufNames(a Arch) tensorNames {
	return tensorNames{
		embed: "token_embd", norm: "output_norm.weight", lmHead: "output",
		layer: func(i int) layerNames {
			p := fmt.Sprintf("blk.%d.", i)
			n := layerNames{
				q: p + "attn_q", k: p + "attn_k", v: p + "attn_v", o: p + "attn_output",
				gate: p + "ffn_gate", up: p + "ffn_up", down: p + "ffn_down",
				qNorm: p + "attn_q_norm.weight", kNorm: p + "attn_k_norm.weight",
				router: p + "ffn_gate_inp",
				stacks: [3]string{p + "ffn_gate_exps", p + "ffn_up_exps", p + "ffn_down_exps"},
			}
			if !a.Norms.noPre {
				n.attnNorm, n.ffnNorm = p+"attn_norm.weight", p+"ffn_norm.weight"
			}
			if a.Norms.post {
				n.postAttnNorm, n.postFFNNorm = p+"post_attention_norm.weight", p+"post_ffw_norm.weight"
			}
			return n
		},
	}
}
