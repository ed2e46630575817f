// Package steering pushes a language model toward a persona: residual-stream
// injection (alpha(t) * v added to the output of decoder block L, exactly
// where a PyTorch forward hook on model.model.layers[L] adds it) with alpha
// schedules and position scopes, logit bias (alpha * W_U v added to the
// logits), persona vectors made from contrastive prompts, and control-vector
// files in llama.cpp's GGUF format, .safetensors and .npy.
//
// Layer indices follow Hugging Face: layer L is model.layers[L], counted
// from 0; negative L counts from the end. llama.cpp's control vectors use
// the same index (direction.L is added after block L).
package steering
