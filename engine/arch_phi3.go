package engine

import "fmt"

// Phi-3: a Llama block whose checkpoints fuse q|k|v (qkv_proj) and
// gate|up (gate_up_proj) into one matrix each, with a sliding window and
// optionally partial RoPE (partial_rotary_factor). The fused tensors are
// split into the shared names before loading (genkit fuses them again for
// its own products).
func init() {
	Register(Arch{Name: "phi3", Class: "Phi3ForCausalLM", Prepare: preparePhi3})
}

func preparePhi3(src *tensorSource, c *Config, gguf bool) error {
	qOut, kvOut := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	F := c.IntermediateSize
	for i := 0; i < c.NumLayers; i++ {
		var qkv, gateUp string
		var n layerNames
		if gguf {
			n = ggufNames(registry["phi3"]).layer(i)
			qkv, gateUp = fmt.Sprintf("blk.%d.attn_qkv", i), n.up
		} else {
			n = hfNames(registry["phi3"]).layer(i)
			qkv = fmt.Sprintf("model.layers.%d.self_attn.qkv_proj", i)
			gateUp = fmt.Sprintf("model.layers.%d.mlp.gate_up_proj", i)
		}
		if src.has(qkv + ".weight") {
			if err := src.splitRows(qkv, []string{n.q, n.k, n.v}, []int{qOut, kvOut, kvOut}); err != nil {
				return err
			}
		}
		if src.has(gateUp+".weight") && !src.has(n.gate+".weight") {
			if err := src.splitRows(gateUp, []string{n.gate, n.up}, []int{F, F}); err != nil {
				return err
			}
		}
	}
	return nil
}
