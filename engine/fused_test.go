package engine_test

import (
	"context"
	"math"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// TestFusedDecodeMatchesOpByOp decodes a left-padded batch of two prompts
// of different lengths (and one lane alone) with the fused CPU decode block
// and with the op-by-op graph (GENKIT_FUSED_BLOCKS=0), feeding both the same
// tokens, and compares every step's logits. The models cover tied and
// untied heads, llama3 RoPE scaling, q/k/v biases, per-head q/k norms and
// the GGUF's adjacent-pair RoPE with quantized row kernels.
func TestFusedDecodeMatchesOpByOp(t *testing.T) {
	var dev mlx.Device
	var backend string
	if err := mlx.Do(context.Background(), func() error {
		var err error
		dev, err = mlx.DefaultDevice()
		backend = mlx.GPUBackend()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Tolerances, relative to the largest logit: float32 on the CPU sums in
	// another order; on a GPU the unfused graph's attention and norms are
	// MLX's kernels, and the default GGUF computes in float16 there.
	tol, tol16 := 1e-4, 1e-4
	if dev == mlx.GPU {
		if backend != "cuda" {
			t.Skip("the fused GPU decode block is genkit's CUDA kernels")
		}
		tol, tol16 = 1e-3, 2e-2
	}
	// The fused block computes the plain pre-norm SwiGLU block: the other
	// families (windows, multipliers, sandwich norms, experts) must run
	// op by op.
	fusable := map[string]bool{"llama_tied": true, "llama3_rope": true, "qwen2_bias": true, "qwen3_headdim": true}
	for _, name := range tinyModels {
		if !fusable[name] {
			t.Run(name, func(t *testing.T) {
				if m := load(t, hfDir(name), engine.LoadOptions{}); m.FusedDecode() {
					t.Fatalf("%s: decode steps run the fused block, which does not compute this family", name)
				}
			})
			continue
		}
		t.Run(name, func(t *testing.T) { compareFused(t, hfDir(name), tol) })
	}
	t.Run("default_gguf", func(t *testing.T) { compareFused(t, defaultModel(t), tol16) })
}

func compareFused(t *testing.T, path string, tol float64) {
	fused := load(t, path, engine.LoadOptions{})
	if !fused.FusedDecode() {
		t.Fatalf("%s: the fused decode block is not in use (%s)", path, fused.WeightsDescription())
	}
	t.Setenv("GENKIT_FUSED_BLOCKS", "0")
	plain := load(t, path, engine.LoadOptions{})
	if plain.FusedDecode() {
		t.Fatal("GENKIT_FUSED_BLOCKS=0 left the fused block on")
	}
	prompts := [][]int{{5, 17, 42, 9, 33, 8, 21}, {7, 3, 11}, {12, 4}, {9, 9, 9, 9}, {30, 2, 8, 14, 6}}
	// Two padded lanes, one lane, and five (fused with quantized weights:
	// a four-row kernel pass and a one-row pass).
	for _, lanes := range [][][]int{prompts[:2], prompts[:1], prompts} {
		a := decodeSteps(t, fused, lanes, 12)
		b := decodeSteps(t, plain, lanes, 12)
		for step := range a {
			scale := 0.0
			for _, v := range b[step] {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			d := 0.0
			for i := range a[step] {
				d = math.Max(d, math.Abs(float64(a[step][i]-b[step][i])))
			}
			if d > tol*math.Max(1, scale) {
				t.Fatalf("%d lanes, step %d: fused logits differ by %g (largest logit %g)", len(lanes), step, d, scale)
			}
		}
	}
}

// decodeSteps prefills the left-padded prompts, then feeds n tokens (each
// lane's own argmax from the op-by-op model would differ by rounding, so a
// fixed sequence) one position at a time, returning every step's logits
// (lanes concatenated).
func decodeSteps(t *testing.T, m *engine.Model, prompts [][]int, n int) [][]float32 {
	ids, pads, L := leftPad(prompts)
	var out [][]float32
	err := mlx.Do(context.Background(), func() error {
		cache := m.NewCache(len(prompts))
		defer cache.Free()
		x, err := mlx.FromInt32s(ids, len(prompts), L)
		if err != nil {
			return err
		}
		res, err := m.Forward(x, cache, engine.ForwardOptions{Padding: pads, LastOnly: true})
		x.Free()
		if err != nil {
			return err
		}
		res.Free()
		for step := 0; step < n; step++ {
			tok := make([]int32, len(prompts))
			for i := range tok {
				tok[i] = int32((step*13 + i*5 + 1) % 60)
			}
			x, err := mlx.FromInt32s(tok, len(prompts), 1)
			if err != nil {
				return err
			}
			res, err := m.Forward(x, cache, engine.ForwardOptions{Padding: pads})
			x.Free()
			if err != nil {
				return err
			}
			if err := m.Eval(res, cache); err != nil {
				return err
			}
			v, err := res.Logits.Float32s()
			res.Free()
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	return out
}
