package engine_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// TestConvertGGUF converts the default GGUF to an MLX directory: dense fp32
// gives the same logits (so the Q/K rows were un-permuted right: the
// directory uses HF's half-split RoPE), and an 8-bit/64 quantized one stays
// close; the tokenizer and chat template travel along.
func TestConvertGGUF(t *testing.T) {
	src := defaultModel(t)
	ref := load(t, src, engine.LoadOptions{Weights: engine.WeightsDense})
	ids, _ := ref.Tokenizer.Encode("<|im_start|>user\nWhat is the tallest mountain?<|im_end|>\n<|im_start|>assistant\n", false)
	want, _ := forward(t, ref, ids, nil)
	for _, tc := range []struct {
		name  string
		opts  engine.ConvertOptions
		bound float64 // on mean KL over positions
	}{
		{"fp32", engine.ConvertOptions{DType: mlx.Float32}, 1e-6},
		{"q8g64", engine.ConvertOptions{QBits: 8, QGroup: 64}, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "mlx")
			if err := engine.Convert(context.Background(), src, dir, tc.opts); err != nil {
				t.Fatal(err)
			}
			m := load(t, dir, engine.LoadOptions{Weights: engine.WeightsQuantized})
			if m.Config.TraditionalRoPE {
				t.Fatal("the converted model still rotates adjacent pairs")
			}
			gotIDs, _ := m.Tokenizer.Encode("<|im_start|>user\nWhat is the tallest mountain?<|im_end|>\n<|im_start|>assistant\n", false)
			if len(gotIDs) != len(ids) {
				t.Fatalf("converted tokenizer gives %d ids, GGUF %d", len(gotIDs), len(ids))
			}
			if m.Tokenizer.ChatTemplate == "" || len(m.Tokenizer.EOS) == 0 {
				t.Fatal("chat template or EOS lost")
			}
			got, _ := forward(t, m, ids, nil)
			var kl float64
			for p := range got {
				kl += klRows(want[p], got[p])
			}
			kl /= float64(len(got))
			t.Logf("%s: mean KL(GGUF || converted) over %d positions = %.3g", tc.name, len(got), kl)
			if kl > tc.bound || math.IsNaN(kl) {
				t.Fatalf("mean KL %g > %g", kl, tc.bound)
			}
		})
	}
}

func klRows(p, q []float32) float64 {
	lp, lq := logSoftmax(p), logSoftmax(q)
	var kl float64
	for i := range lp {
		kl += math.Exp(lp[i]) * (lp[i] - lq[i])
	}
	return kl
}

func logSoftmax(x []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var z float64
	for _, v := range x {
		z += math.Exp(float64(v) - m)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - m - math.Log(z)
	}
	return out
}
