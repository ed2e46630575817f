package engine

// Qwen2 (and Qwen2.5): a Llama with biases on the q, k and v projections.
func init() {
	Register(Arch{Name: "qwen2", Class: "Qwen2ForCausalLM", QKVBias: true, Fusable: true})
}
