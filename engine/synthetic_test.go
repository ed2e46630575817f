package engine_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// TestSyntheticSpecsMatchPublishedSizes checks the shapes against the
// parameter counts their model cards publish (Qwen3-4B: 4.0B, 3.6B without
// the embedding; Qwen3-0.6B: 0.6B, 0.44B), so a typo in a dimension fails.
func TestSyntheticSpecsMatchPublishedSizes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		total, nonEmb float64 // billions, as published (rounded)
		tol           float64
	}{
		{"qwen3-4b", 4.0, 3.6, 0.05},
		{"qwen3-0.6b", 0.6, 0.44, 0.01},
	} {
		s, err := engine.LookupSynthetic(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		total := float64(s.Params()) / 1e9
		nonEmb := total - float64(s.Vocab*s.Hidden)/1e9
		if math.Abs(total-tc.total) > tc.tol || math.Abs(nonEmb-tc.nonEmb) > tc.tol {
			t.Errorf("%s: %.3fB weights (%.3fB without the embedding), published %.2fB (%.2fB)", tc.name, total, nonEmb, tc.total, tc.nonEmb)
		}
	}
	if _, err := engine.LookupSynthetic("qwen3-5b"); err == nil {
		t.Error("an unknown shape was accepted")
	}
}

// TestDeepenPast checks the layer count the tensor-parallel benchmark uses
// to make a model larger than one GPU: the result exceeds the size and one
// layer fewer does not (an H100's and an H200's memory as MLX reports them),
// and a size below the layerless model still gives one layer.
func TestDeepenPast(t *testing.T) {
	s, err := engine.LookupSynthetic("llama3-70b-56l")
	if err != nil {
		t.Fatal(err)
	}
	for _, gpu := range []int64{85_000_000_000, 150_754_820_096} {
		d := s.DeepenPast(gpu, 2)
		if got := d.Params() * 2; got <= gpu {
			t.Errorf("%d bytes: %d layers make %d bytes, not more", gpu, d.Layers, got)
		}
		fewer := d
		fewer.Layers--
		if fewer.Params()*2 > gpu {
			t.Errorf("%d bytes: %d layers already exceed it, %d is not the fewest", gpu, fewer.Layers, d.Layers)
		}
		if want := fmt.Sprintf("llama3-70b-56l-%dl", d.Layers); d.Name != want {
			t.Errorf("name %q, want %q", d.Name, want)
		}
	}
	if d := s.DeepenPast(1000, 2); d.Layers != 1 {
		t.Errorf("a tiny size gave %d layers, want 1", d.Layers)
	}
}

// TestWriteSynthetic writes the test shape: the same seed gives the same
// bytes and another seed other values; the directory loads and decodes; the
// tokenizer round-trips text; every weight survives bfloat16 -> float16 ->
// bfloat16 unchanged (what lets llama.cpp's F16 file hold the same values).
func TestWriteSynthetic(t *testing.T) {
	spec, err := engine.LookupSynthetic("qwen3-test")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write := func(name string, seed uint64) string {
		dir := filepath.Join(root, name)
		if err := engine.WriteSynthetic(context.Background(), dir, spec, seed); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	a, b, c := write("a", 1), write("b", 1), write("c", 2)
	// MLX lays the tensors out in hash order, so compare values, not bytes.
	read := func(dir string) map[string][]float32 {
		out := map[string][]float32{}
		if err := mlx.Do(context.Background(), func() error {
			arrays, _, err := mlx.LoadSafetensors(filepath.Join(dir, "model.safetensors"))
			if err != nil {
				return err
			}
			for name, x := range arrays {
				out[name], err = x.Float32s()
				x.Free()
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	same := func(x, y map[string][]float32) bool {
		if len(x) != len(y) {
			return false
		}
		for name, v := range x {
			if !slices.Equal(v, y[name]) {
				return false
			}
		}
		return true
	}
	wa := read(a)
	if !same(wa, read(b)) {
		t.Error("the same seed wrote different weights")
	}
	if same(wa, read(c)) {
		t.Error("seeds 1 and 2 wrote the same weights")
	}

	m := load(t, a, engine.LoadOptions{})
	if m.NumLayers() != spec.Layers || m.HiddenSize() != spec.Hidden || !m.Config.QKNorm {
		t.Fatalf("loaded %d layers, hidden %d, qk-norm %v", m.NumLayers(), m.HiddenSize(), m.Config.QKNorm)
	}
	text := "Hello, world! 123 héllo"
	ids, err := m.Tokenizer.Encode(text, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Tokenizer.Decode(ids, false); got != text {
		t.Errorf("tokenizer round trip: %q -> %v -> %q", text, ids, got)
	}
	if len(ids) >= len(text) {
		t.Errorf("no merges applied: %d ids for %d bytes", len(ids), len(text))
	}
	logits, _ := forward(t, m, ids, nil)
	for _, v := range logits[len(logits)-1] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite logits from the synthetic model")
		}
	}

	err = mlx.Do(context.Background(), func() error {
		arrays, _, err := mlx.LoadSafetensors(filepath.Join(a, "model.safetensors"))
		if err != nil {
			return err
		}
		defer func() {
			for _, x := range arrays {
				x.Free()
			}
		}()
		if len(arrays) != 2+spec.Layers*11 {
			t.Errorf("%d tensors, want %d", len(arrays), 2+spec.Layers*11)
		}
		var n int64
		for name, x := range arrays {
			n += int64(x.Size())
			if x.Dtype() != mlx.Bfloat16 {
				t.Errorf("%s is %v, want bfloat16", name, x.Dtype())
			}
			h, err := mlx.AsType(x, mlx.Float16)
			if err != nil {
				return err
			}
			back, err := mlx.AsType(h, mlx.Bfloat16)
			h.Free()
			if err != nil {
				return err
			}
			v1, err := x.Float32s()
			if err != nil {
				return err
			}
			v2, err := back.Float32s()
			back.Free()
			if err != nil {
				return err
			}
			for i := range v1 {
				if v1[i] != v2[i] {
					t.Errorf("%s[%d] = %g changes through float16 (%g)", name, i, v1[i], v2[i])
					break
				}
			}
		}
		if n != spec.Params() {
			t.Errorf("%d weights written, Params says %d", n, spec.Params())
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
}
