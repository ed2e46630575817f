package engine

// OLMo 2: no input norms; each sublayer's output is RMS-normalised before
// the residual add (post_attention_layernorm, post_feedforward_layernorm),
// and q and k are RMS-normalised across all heads before RoPE.
func init() {
	Register(Arch{Name: "olmo2", Class: "Olmo2ForCausalLM", QKNorm: true, QKNormFull: true,
		Norms: blockNorms{noPre: true, post: true}, Block: sandwichBlock})
}
