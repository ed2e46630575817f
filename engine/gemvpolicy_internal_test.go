package engine

import (
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// TestPlanKernels: the rule for genkit's CUDA kernels gives every lane
// count to the sizes measured no slower with them at eight lanes (the
// default model in both kinds, Qwen3-0.6B in bfloat16 and 4 bits) and only
// one or two lanes to those measured slower at eight (Qwen3-4B in both
// kinds), on both sides of the bound, with the settings that turn them off
// and on for every size.
func TestPlanKernels(t *testing.T) {
	const gb = 1e9
	all := kernelPlan{rows: mlx.GEMVMaxRows, oneKernel: true}
	twoRows := kernelPlan{rows: bandwidthBoundRows}
	for _, c := range []struct {
		name    string
		bytes   float64
		setting string
		want    kernelPlan
	}{
		{"SmolLM2-135M float32", 0.54 * gb, "", all},
		{"SmolLM2-135M 4-bit", 0.10 * gb, "", all},
		{"Qwen3-0.6B bfloat16", 1.19 * gb, "", all},
		{"Qwen3-0.6B 4-bit", 0.35 * gb, "", all},
		{"Qwen3-4B bfloat16", 8.0 * gb, "", twoRows},
		{"Qwen3-4B 4-bit", 2.3 * gb, "", twoRows},
		{"at the bound", launchBoundBytes, "", all},
		{"one byte over the bound", launchBoundBytes + 1, "", twoRows},
		{"GENKIT_GEMV=0 on a small model", 0.10 * gb, "0", kernelPlan{}},
		{"GENKIT_GEMV=0 on a large one", 8.0 * gb, "0", kernelPlan{}},
		{"GENKIT_GEMV=all on a large one", 8.0 * gb, "all", all},
		{"an unknown setting is the rule, not off", 0.10 * gb, "1", all},
		{"an unknown setting is the rule, not all", 8.0 * gb, "1", twoRows},
	} {
		if got := planKernels(int64(c.bytes), c.setting); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		plan kernelPlan
		want string
	}{
		{kernelPlan{}, "MLX's products"},
		{all, "genkit's CUDA kernels up to 8 lanes"},
		{twoRows, "genkit's CUDA kernels up to 2 lanes, MLX's products above"},
	} {
		if got := c.plan.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.plan, got, c.want)
		}
	}
}

// TestStepBytes: the bytes a decode step reads, counted by hand from tiny
// models' configs: llama_tied (3 layers, hidden 64, 4 heads and 2
// key/value heads of 16, MLP 160, a tied vocabulary of 256) and qwen3_moe
// (3 layers, hidden 64, 4 and 2 heads of 32; layer 1 a dense MLP of 128,
// layers 0 and 2 a router over 8 experts of 32 with 2 chosen a token, so a
// step reads 2/8 of the experts' weights; an untied head of 256), float32,
// and the latter's 4-bit twin.
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
		err = mlx.Do(t.Context(), func() error { got = m.stepBytes(); return nil })
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(c.weights) * 4; got != want {
			t.Errorf("%s float32: %d bytes, want %d", c.dir, got, want)
		}
	}
	// Its 4-bit twin (groups of 32, float32 scales and biases: a row of 64
	// inputs is 32 bytes and two pairs of 4-byte scale and bias) with its
	// 8-bit router (groups of 64: 64 bytes and one pair a row), counted by
	// hand: q 128 rows, k and v 64, o 64 rows of 128 inputs; layer 1's
	// gate and up 128 rows, down 64 of 128; each expert's gate and up 32
	// rows, down 64 rows of 32 inputs (16 bytes, one pair), 2 of 8 read; the
	// head 256 rows. On CUDA the router, one group a row, is expanded to
	// float32 (qmmOneGroupBroken): 8 rows of 256 bytes.
	row := func(in, group, bits int) int { return in*bits/8 + in/group*8 }
	attn4 := 128*row(64, 32, 4) + 2*64*row(64, 32, 4) + 64*row(128, 32, 4)
	experts := 8 * (2*32*row(64, 32, 4) + 64*row(32, 32, 4)) * 2 / 8
	router := 8 * row(64, 64, 8)
	m, err := Load(t.Context(), "testdata/hf/qwen3_moe_mlx4", LoadOptions{DType: mlx.Float32, Weights: WeightsQuantized})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.layers[0].moe.router.q == nil {
		router = 8 * 64 * 4
	}
	want := int64(3*attn4 + 2*128*row(64, 32, 4) + 64*row(128, 32, 4) + 2*(router+experts) + 256*row(64, 32, 4))
	var got int64
	if err := mlx.Do(t.Context(), func() error { got = m.stepBytes(); return nil }); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("qwen3_moe_mlx4: %d bytes, want %d", got, want)
	}
}
