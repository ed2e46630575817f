package sampling_test

import (
	"context"
	"math/rand"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
)

// benchChoose measures one sampling step on Qwen's 151,936-token vocabulary:
// reading the logits from MLX, the processor chain and the draw.
func benchChoose(b *testing.B, cfg *sampling.GenerationConfig) {
	const V = 151936
	r := rand.New(rand.NewSource(1))
	logits := make([]float32, V)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	history := make([]int, 200)
	for i := range history {
		history[i] = r.Intn(V)
	}
	s, err := sampling.NewSampler(cfg, 1, sampling.SamplerOptions{EOS: []int{151643, 151645}})
	if err != nil {
		b.Fatal(err)
	}
	err = mlx.Do(context.Background(), func() error {
		x, err := mlx.FromFloat32s(logits, 1, V)
		if err != nil {
			return err
		}
		defer x.Free()
		if err := mlx.Eval(x); err != nil {
			return err
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Choose(x, 1+i, [][]int{history}); err != nil {
				return err
			}
		}
		return nil
	})

	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkSampleGreedy(b *testing.B) { benchChoose(b, &sampling.GenerationConfig{}) }

// HF's defaults when sampling: temperature, top_k 50, plus top_p.
func BenchmarkSampleTopKTopP(b *testing.B) {
	benchChoose(b, &sampling.GenerationConfig{DoSample: sampling.Ptr(true), Temperature: sampling.Ptr(0.7), TopP: sampling.Ptr(0.9)})
}

// A full chain: penalties, temperature, top-k, top-p, min-p.
func BenchmarkSampleFullChain(b *testing.B) {
	benchChoose(b, &sampling.GenerationConfig{DoSample: sampling.Ptr(true), Temperature: sampling.Ptr(0.8), TopP: sampling.Ptr(0.95),
		MinP: sampling.Ptr(0.02), RepetitionPenalty: sampling.Ptr(1.1), NoRepeatNgramSize: sampling.Ptr(3), PresencePenalty: sampling.Ptr(0.2)})
}

// Nucleus sampling over the whole vocabulary (top_k off): the worst case.
func BenchmarkSampleTopPOnly(b *testing.B) {
	benchChoose(b, &sampling.GenerationConfig{DoSample: sampling.Ptr(true), TopK: sampling.Ptr(0), TopP: sampling.Ptr(0.9)})
}
