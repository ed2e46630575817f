package steering_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// TestCheckAlpha: NaN, infinities and |alpha| > MaxAlpha are refused;
// finite values up to MaxAlpha pass. ClampAlpha lands every value, NaN and
// 1e300 included, inside the range CheckAlpha accepts.
func TestCheckAlpha(t *testing.T) {
	for _, a := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e300, -steering.MaxAlpha - 1} {
		if err := steering.CheckAlpha(a); err == nil {
			t.Errorf("CheckAlpha(%v) accepted", a)
		}
	}
	for _, a := range []float64{0, 2.5, -3, steering.MaxAlpha, -steering.MaxAlpha} {
		if err := steering.CheckAlpha(a); err != nil {
			t.Errorf("CheckAlpha(%v): %v", a, err)
		}
	}
	cases := map[float64]float64{math.NaN(): 0, 1e300: steering.MaxAlpha, math.Inf(-1): -steering.MaxAlpha, 1.5: 1.5}
	for in, want := range cases {
		got := steering.ClampAlpha(in)
		if got != want || steering.CheckAlpha(got) != nil {
			t.Errorf("ClampAlpha(%v) = %v, want %v", in, got, want)
		}
	}
}

// TestPlanValidateAlpha: a plan's alpha and ramp end points follow
// CheckAlpha, and the error names the field.
func TestPlanValidateAlpha(t *testing.T) {
	p := steering.DefaultPlan()
	for _, a := range []float64{math.NaN(), 1e300} {
		p.Alpha = &a
		if err := p.Validate(); err == nil || !strings.HasPrefix(err.Error(), "steering.alpha:") {
			t.Errorf("alpha %v: %v", a, err)
		}
	}
	ok := 2.0
	p.Alpha = &ok
	if err := p.Validate(); err != nil {
		t.Fatalf("alpha 2: %v", err)
	}
	p.Schedule = steering.Schedule{Kind: "ramp", From: 0, To: 1e9, Steps: 4}
	if err := p.Validate(); err == nil || !strings.HasPrefix(err.Error(), "steering.schedule:") {
		t.Errorf("ramp to 1e9: %v", err)
	}
	p.Schedule = steering.Schedule{Kind: "ramp", From: 0, To: 3, Steps: 4}
	if err := p.Validate(); err != nil {
		t.Errorf("ramp to 3: %v", err)
	}
}

// TestDecodeChecksTheContext: Decode (the run every front end makes)
// refuses a prompt plus max_new_tokens beyond the model's context (256 for
// the tiny model) before decoding, and runs one that fits.
func TestDecodeChecksTheContext(t *testing.T) {
	m := loadModel(t, filepath.Join("..", "engine", "testdata", "hf", "llama_tied"))
	ids := make([]int, 10)
	for i := range ids {
		ids[i] = 3 + i
	}
	run := func(maxNew int, ids []int) error {
		return mlx.Do(context.Background(), func() error {
			_, err := steering.Decode(context.Background(), m, steering.Run{Prompt: engine.Prompt{IDs: ids},
				Gen: &sampling.GenerationConfig{MaxNewTokens: sampling.Ptr(maxNew)}}, steering.Observers{})
			return err
		})
	}
	if err := run(100000, ids); err == nil || !strings.Contains(err.Error(), "100000") || !strings.Contains(err.Error(), "256") {
		t.Errorf("max_new_tokens 100000: %v", err)
	}
	long := make([]int, 300)
	if err := run(1, long); err == nil || !strings.Contains(err.Error(), "300 tokens") {
		t.Errorf("a 300-token prompt: %v", err)
	}
	if err := run(4, ids); err != nil {
		t.Errorf("10 + 4 tokens: %v", err)
	}
}

// TestExtractRefusesIdenticalSides: pairs whose positive and negative
// texts are the same make no vector, and the error names the separation;
// different texts make one.
func TestExtractRefusesIdenticalSides(t *testing.T) {
	m := loadModel(t, filepath.Join("..", "engine", "testdata", "hf", "llama_tied"))
	extract := func(pairs []steering.Pair) error {
		return mlx.Do(context.Background(), func() error {
			_, err := steering.Extract(context.Background(), m, pairs, steering.ExtractOptions{})
			return err
		})
	}
	same := []steering.Pair{{Positive: []int{5, 6, 7}, Negative: []int{5, 6, 7}}, {Positive: []int{9, 10}, Negative: []int{9, 10}}}
	err := extract(same)
	if err == nil || !strings.Contains(err.Error(), "do not separate") || !strings.Contains(err.Error(), "separation") {
		t.Fatalf("identical sides: %v", err)
	}
	for _, method := range []steering.Method{steering.MethodPCA} {
		if err := mlx.Do(context.Background(), func() error {
			_, err := steering.Extract(context.Background(), m, same, steering.ExtractOptions{Method: method})
			return err
		}); err == nil {
			t.Errorf("identical sides with %s accepted", method)
		}
	}
	if err := extract([]steering.Pair{{Positive: []int{5, 6, 7}, Negative: []int{40, 41, 42}}, {Positive: []int{9, 10}, Negative: []int{90, 91}}}); err != nil {
		t.Fatalf("different sides: %v", err)
	}
}

// TestLoadVectorsRefusesBadValues: a vector file holding NaN, vectors of
// different lengths or a negative layer is refused naming the problem; a
// good file of each format loads.
func TestLoadVectorsRefusesBadValues(t *testing.T) {
	dir := t.TempDir()
	save := func(name string, vs *steering.VectorSet) string {
		p := filepath.Join(dir, name)
		if err := vs.Save(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, ext := range []string{".gguf", ".safetensors", ".npy"} {
		good := &steering.VectorSet{ModelHint: "llama", Vectors: map[int][]float32{2: {1, 2, 3}}}
		if _, err := steering.LoadVectors(save("good"+ext, good), 0); err != nil {
			t.Errorf("good %s: %v", ext, err)
		}
		nan := &steering.VectorSet{ModelHint: "llama", Vectors: map[int][]float32{2: {1, float32(math.NaN()), 3}}}
		if _, err := steering.LoadVectors(save("nan"+ext, nan), 0); err == nil || !strings.Contains(err.Error(), "NaN") {
			t.Errorf("NaN %s: %v", ext, err)
		}
	}
	ragged := &steering.VectorSet{ModelHint: "llama", Vectors: map[int][]float32{1: {1, 2, 3}, 2: {1, 2}}}
	if _, err := steering.LoadVectors(save("ragged.safetensors", ragged), 0); err == nil || !strings.Contains(err.Error(), "layer 2") {
		t.Errorf("ragged: %v", err)
	}
	err := mlx.Do(context.Background(), func() error {
		a, err := mlx.FromFloat32s([]float32{1, 2})
		if err != nil {
			return err
		}
		defer a.Free()
		b, err := mlx.FromFloat32s([]float32{1, 2})
		if err != nil {
			return err
		}
		defer b.Free()
		return mlx.SaveSafetensors(filepath.Join(dir, "neg.safetensors"), map[string]*mlx.Array{"direction.-1": a, "direction.1": b}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := steering.LoadVectors(filepath.Join(dir, "neg.safetensors"), 0); err == nil || !strings.Contains(err.Error(), "direction.-1") {
		t.Errorf("negative layer: %v", err)
	}
}

// TestLoadVectorsRefusesEmptyRows: a 2-D vector file of shape [N, 0] holds
// no data whatever N is, so the file's size does not bound N; it is refused
// at once naming the shape, instead of making N empty layers (FuzzVectorNpy's
// crasher read as [400000000, 0] and took the worker down building them).
func TestLoadVectorsRefusesEmptyRows(t *testing.T) {
	hdr := "{'descr': '<f4', 'fortran_order': False, 'shape': (2000000, 0), }"
	for (10+len(hdr)+1)%64 != 0 {
		hdr += " "
	}
	hdr += "\n"
	data := append([]byte("\x93NUMPY\x01\x00"), byte(len(hdr)), byte(len(hdr)>>8))
	p := filepath.Join(t.TempDir(), "rows.npy")
	if err := os.WriteFile(p, append(data, hdr...), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := steering.LoadVectors(p, 0)
	if err == nil || !strings.Contains(err.Error(), "shape [2000000 0]: its vectors are empty") {
		t.Errorf("got %v, want the shape refused", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("took %v", d)
	}
}
