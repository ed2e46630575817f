package engine

// Llama: RMSNorm, rotary attention with grouped KV heads, SwiGLU MLP;
// optional attention/MLP biases; llama3 RoPE scaling. SmolLM2 is a Llama.
func init() {
	Register(Arch{Name: "llama", Class: "LlamaForCausalLM", GGUFPermutedQK: true, Fusable: true})
}
