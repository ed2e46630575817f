package engine_test

import (
	"context"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
)

// benchDecode generates 32 tokens per iteration in `lanes` batched lanes and
// reports decode tokens/s (all lanes counted) and per-lane steps/s.
func benchDecode(b *testing.B, lanes int, mode engine.WeightMode) {
	m := load(b, defaultModel(b), engine.LoadOptions{Weights: mode})
	prompt, err := m.Tokenizer.Encode("<|im_start|>user\nTell me a story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n", false)
	if err != nil {
		b.Fatal(err)
	}
	const steps = 32
	var decodeSec, prefillSec float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, st, err := m.Generate(context.Background(), engine.Request{Prompt: prompt, Lanes: lanes, MaxNewTokens: steps, IgnoreEOS: true})
		if err != nil {
			b.Fatal(err)
		}
		decodeSec += st.Decode.Seconds()
		prefillSec += st.Prefill.Seconds()
	}
	// steps tokens per lane; the first comes from the prefill logits.
	b.ReportMetric(float64(b.N*(steps-1)*lanes)/decodeSec, "tokens/s")
	b.ReportMetric(float64(b.N*(steps-1))/decodeSec, "steps/s")
	b.ReportMetric(float64(b.N*len(prompt))/prefillSec, "prefill-tokens/s")
}

func BenchmarkDecode1Lane(b *testing.B)           { benchDecode(b, 1, engine.WeightsAuto) }
func BenchmarkDecode2Lanes(b *testing.B)          { benchDecode(b, 2, engine.WeightsAuto) }
func BenchmarkDecode8Lanes(b *testing.B)          { benchDecode(b, 8, engine.WeightsAuto) }
func BenchmarkDecode1LaneQuantized(b *testing.B)  { benchDecode(b, 1, engine.WeightsQuantized) }
func BenchmarkDecode2LanesQuantized(b *testing.B) { benchDecode(b, 2, engine.WeightsQuantized) }
