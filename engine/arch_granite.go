package engine

// Granite: a Llama with four scalars: embeddings times
// embedding_multiplier, attention scale attention_multiplier, each
// sublayer's output times residual_multiplier before the residual add,
// and logits divided by logits_scaling. llama.cpp's converter permutes its
// Q/K rows as for Llama.
func init() {
	Register(Arch{Name: "granite", Class: "GraniteForCausalLM", GGUFPermutedQK: true})
}
