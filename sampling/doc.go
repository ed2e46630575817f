// Package sampling chooses next tokens the way Hugging Face transformers'
// generate() does: the same GenerationConfig fields and effective defaults,
// the same logits processors in the same order with the same semantics
// (temperature before top-k, top-p and min-p; repetition penalty over the
// whole sequence, prompt included), greedy decoding, sampling and beam
// search. It adds frequency_penalty, presence_penalty (OpenAI semantics over
// generated tokens) and seed, with one random stream per lane derived from
// (seed, lane), and an optional shared-draws mode in which every lane uses
// the same uniform number at each step, so that base and steered lanes
// differ only through steering.
//
// Scores are float32 with stable softmax, computed on the CPU from the
// logits the engine hands out.
package sampling
