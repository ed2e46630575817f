package engine_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// TestRowProductsMatchDense decodes the default GGUF with --weights auto,
// where (on the CPU) decode steps read the 4- and 8-bit weights through the
// quantized row kernels and the dense float32 ones through BLAS row products,
// and with --weights dense with the row products off (the path that matches
// HF to KL 6e-11): every step's logits agree within float32 rounding and the
// greedy tokens are identical.
func TestRowProductsMatchDense(t *testing.T) {
	path := defaultModel(t)
	var dev mlx.Device
	_ = mlx.Do(context.Background(), func() error { var err error; dev, err = mlx.DefaultDevice(); return err })
	if dev != mlx.CPU {
		t.Skip("the row products are the CPU's decode path")
	}
	t.Setenv("GENKIT_ROW_PRODUCT", "0")
	ref := load(t, path, engine.LoadOptions{Weights: engine.WeightsDense})
	t.Setenv("GENKIT_ROW_PRODUCT", "")
	rows := load(t, path, engine.LoadOptions{})
	if d := rows.WeightsDescription(); d != "dense float32 for prefill, 4-bit row kernels (group 32), fused CPU blocks for decode" {
		t.Fatalf("auto on the CPU: %s", d)
	}
	run := func(m *engine.Model, prompt []int) ([]int, [][]float32) {
		var steps [][]float32
		res, _, err := m.Generate(context.Background(), engine.Request{Prompt: prompt, MaxNewTokens: 24, IgnoreEOS: true,
			OnStep: func(_ int, logits *mlx.Array) error {
				v, err := logits.Float32s()
				steps = append(steps, v)
				return err
			}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Tokens, steps
	}
	for _, prompt := range [][]int{{1, 504, 3426, 314}, {1, 9690, 198, 2683, 359, 253}} {
		wantTok, wantLog := run(ref, prompt)
		gotTok, gotLog := run(rows, prompt)
		if fmt.Sprint(gotTok) != fmt.Sprint(wantTok) {
			t.Errorf("prompt %v: greedy %v with row products, %v dense", prompt, gotTok, wantTok)
		}
		worst := 0.0
		for s := range min(len(gotLog), len(wantLog)) {
			scale := 0.0
			for _, v := range wantLog[s] {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			for i, v := range gotLog[s] {
				worst = math.Max(worst, math.Abs(float64(v-wantLog[s][i]))/scale)
			}
		}
		t.Logf("prompt %v: worst logit difference %.2g of the largest logit", prompt, worst)
		if worst > 1e-4 {
			t.Errorf("prompt %v: logits differ by %.3g of the largest", prompt, worst)
		}
	}
}
