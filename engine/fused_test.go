package engine_test

import (
	"context"
	"math"
	"os"
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
	// The families whose blocks the fused kernels compute; the others (a
	// window, soft-caps, multipliers, post-norms, experts) must run op by op.
	fusable := map[string]bool{"llama_tied": true, "llama3_rope": true, "qwen2_bias": true, "qwen3_headdim": true}
	for _, name := range tinyModels {
		if !fusable[name] {
			t.Run(name+"_unfused", func(t *testing.T) {
				if m := load(t, hfDir(name), engine.LoadOptions{}); m.FusedDecode() {
					t.Errorf("%s: decode steps run fused (%s), but its blocks are not the fused kernels' blocks", name, m.WeightsDescription())
				}
			})
			continue
		}
		t.Run(name, func(t *testing.T) { compareFused(t, hfDir(name), tol, true) })
		if dev == mlx.GPU {
			// The same blocks as five kernels each (GENKIT_BLOCK_KERNEL=0).
			t.Run(name+"_five_kernels", func(t *testing.T) {
				t.Setenv("GENKIT_BLOCK_KERNEL", "0")
				compareFused(t, hfDir(name), tol, false)
			})
		}
	}
	t.Run("default_gguf", func(t *testing.T) { compareFused(t, defaultModel(t), tol16, false) })
}

// compareFused compares the fused decode of path's model with its op-by-op
// decode. On a CUDA GPU, oneKernel asks that every fused block ran as one
// kernel (mlx.GPUBlockKernels counts them), and GENKIT_BLOCK_KERNEL=0 that
// none did.
func compareFused(t *testing.T, path string, tol float64, oneKernel bool) {
	fused := load(t, path, engine.LoadOptions{})
	if !fused.FusedDecode() {
		t.Fatalf("%s: the fused decode block is not in use (%s)", path, fused.WeightsDescription())
	}
	var gpu bool
	if err := mlx.Do(context.Background(), func() error {
		d, err := mlx.DefaultDevice()
		gpu = d == mlx.GPU
		return err
	}); err != nil {
		t.Fatal(err)
	}
	off := os.Getenv("GENKIT_BLOCK_KERNEL") == "0"
	t.Setenv("GENKIT_FUSED_BLOCKS", "0")
	plain := load(t, path, engine.LoadOptions{})
	if plain.FusedDecode() {
		t.Fatal("GENKIT_FUSED_BLOCKS=0 left the fused block on")
	}
	prompts := [][]int{{5, 17, 42, 9, 33, 8, 21}, {7, 3, 11}, {12, 4}, {9, 9, 9, 9}, {30, 2, 8, 14, 6}}
	// Contexts long enough that the CPU block splits its attention over
	// the cores (and the GPU block kernel over several runs a head).
	long := [][]int{make([]int, 150), make([]int, 110)}
	for i := range long {
		for j := range long[i] {
			long[i][j] = (j*7 + i*3 + 1) % 60
		}
	}
	// Two padded lanes, one lane, five (fused with quantized weights: a
	// four-row kernel pass and a one-row pass), and two long ones.
	for _, lanes := range [][][]int{prompts[:2], prompts[:1], prompts, long} {
		before := mlx.GPUBlockKernels()
		a := decodeSteps(t, fused, lanes, 12)
		ran := mlx.GPUBlockKernels() - before
		steps := int64(12 * fused.NumLayers())
		switch {
		case gpu && off && ran != 0:
			t.Fatalf("%d lanes: GENKIT_BLOCK_KERNEL=0, yet %d blocks ran as one kernel", len(lanes), ran)
		case gpu && oneKernel && ran != steps:
			t.Fatalf("%d lanes: %d of %d fused blocks ran as one kernel", len(lanes), ran, steps)
		case gpu:
			t.Logf("%d lanes: %d of %d fused blocks ran as one kernel", len(lanes), ran, steps)
		}
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
