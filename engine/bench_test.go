package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
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

// The dense float32 path (a safetensors model on the CPU: BLAS products).
func BenchmarkDecode1LaneDense(b *testing.B)  { benchDecode(b, 1, engine.WeightsDense) }
func BenchmarkDecode2LanesDense(b *testing.B) { benchDecode(b, 2, engine.WeightsDense) }
func BenchmarkDecode8LanesDense(b *testing.B) { benchDecode(b, 8, engine.WeightsDense) }

// BenchmarkStepBuildAndEval splits a one-lane decode step into its host
// side (building the graph: Forward, which makes every node) and the rest
// (Eval: scheduling, launching and waiting for the device), reported as
// µs per step each. Where the host side is most of a step, fewer or cheaper
// nodes are the lever; where Eval is, the kernels or the launches are.
func BenchmarkStepBuildAndEval(b *testing.B) {
	m := load(b, defaultModel(b), engine.LoadOptions{Weights: engine.WeightsAuto})
	prompt, err := m.Tokenizer.Encode("<|im_start|>user\nTell me a story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n", false)
	if err != nil {
		b.Fatal(err)
	}
	var build, eval time.Duration
	steps := 0
	err = mlx.Do(context.Background(), func() error {
		for i := 0; i < b.N; i++ {
			cache := m.NewCache(1)
			ids := make([]int32, len(prompt))
			for j, t := range prompt {
				ids[j] = int32(t)
			}
			x, err := mlx.FromInt32s(ids, 1, len(ids))
			if err != nil {
				return err
			}
			res, err := m.Forward(x, cache, engine.ForwardOptions{LastOnly: true})
			x.Free()
			if err != nil {
				return err
			}
			if err := m.Eval(res, cache); err != nil {
				return err
			}
			res.Free()
			for s := 0; s < 64; s++ {
				x, err := mlx.FromInt32s([]int32{int32(prompt[s%len(prompt)])}, 1, 1)
				if err != nil {
					return err
				}
				t0 := time.Now()
				res, err := m.Forward(x, cache, engine.ForwardOptions{LastOnly: true})
				t1 := time.Now()
				if err != nil {
					return err
				}
				if err := m.Eval(res, cache); err != nil {
					return err
				}
				build += t1.Sub(t0)
				eval += time.Since(t1)
				steps++
				res.Free()
				x.Free()
			}
			cache.Free()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(build.Microseconds())/float64(steps), "build-µs/step")
	b.ReportMetric(float64(eval.Microseconds())/float64(steps), "eval-µs/step")
}
