package engine

// Mistral: a Llama whose attention may look back a sliding window of
// sliding_window keys (null in later releases: then it is a Llama).
// llama.cpp writes Mistral GGUFs as "llama".
func init() {
	Register(Arch{Name: "mistral", Class: "MistralForCausalLM", Fusable: true})
}
