package engine

// Qwen3: a Llama with RMSNorm on each query and key head before RoPE and an
// explicit head_dim that may differ from hidden_size / heads.
func init() {
	Register(Arch{Name: "qwen3", Class: "Qwen3ForCausalLM", QKNorm: true, Fusable: true})
}
