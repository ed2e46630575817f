package engine

import (
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// TestPlanKernels: the rule for genkit's CUDA kernels gives the fused blocks
// to a model the size of the default one (measured faster with them) and
// takes them from Qwen3-4B's shape (measured slower), in both weight kinds,
// with the settings that turn the kernels off and on for every size.
func TestPlanKernels(t *testing.T) {
	const gb = 1e9
	all := kernelPlan{rows: mlx.GEMVMaxRows, fused: true}
	for _, c := range []struct {
		name      string
		bytes     float64
		quantized bool
		setting   string
		want      kernelPlan
	}{
		{"SmolLM2-135M float32", 0.54 * gb, false, "", all},
		{"SmolLM2-135M 4-bit", 0.10 * gb, true, "", all},
		{"Qwen3-4B bfloat16", 8.0 * gb, false, "", kernelPlan{rows: bandwidthBoundDenseRows}},
		{"Qwen3-4B 4-bit", 2.3 * gb, true, "", kernelPlan{}},
		{"at the bound", launchBoundBytes, true, "", all},
		{"one byte over the bound, dense", launchBoundBytes + 1, false, "", kernelPlan{rows: bandwidthBoundDenseRows}},
		{"one byte over the bound, 4-bit", launchBoundBytes + 1, true, "", kernelPlan{}},
		{"GENKIT_GEMV=0 on a small model", 0.10 * gb, true, "0", kernelPlan{}},
		{"GENKIT_GEMV=all on a large one", 8.0 * gb, false, "all", all},
		{"an unknown setting is the default", 8.0 * gb, true, "1", kernelPlan{}},
	} {
		if got := planKernels(int64(c.bytes), c.quantized, c.setting); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestStepBytes: the bytes a decode step reads, counted by hand from tiny
// models' configs: llama_tied (3 layers, hidden 64, 4 heads and 2
// key/value heads of 16, MLP 160, a tied vocabulary of 256) and qwen3_moe
// (3 layers, hidden 64, 4 and 2 heads of 32; layer 1 a dense MLP of 128,
// layers 0 and 2 a router over 8 experts of 32 with 2 chosen a token, so a
// step reads 2/8 of the experts' weights; an untied head of 256), float32.
func TestStepBytes(t *testing.T) {
	llama := 3*(64*64+2*64*32+64*64+3*64*160) + 256*64
	attn := 64*128 + 2*64*64 + 128*64
	moe := 3*attn + 3*64*128 + 2*(64*8+3*64*32*8*2/8) + 256*64
	for _, c := range []struct {
		dir     string
		weights int
	}{{"llama_tied", llama}, {"qwen3_moe", moe}} {
		m, err := Load(t.Context(), "testdata/hf/"+c.dir, LoadOptions{DType: mlx.Float32})
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		var quantized bool
		err = mlx.Do(t.Context(), func() error { got, quantized = m.stepBytes(); return nil })
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(c.weights) * 4; got != want || quantized {
			t.Errorf("%s float32: %d bytes (quantized %v), want %d and false", c.dir, got, quantized, want)
		}
	}
}
