package engine_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// defaultModel is the GGUF file `make deps` puts in the model cache.
func defaultModel(t testing.TB) string {
	t.Helper()
	p, err := engine.DefaultModelPath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("default model missing (run `make deps`): %v", err)
	}
	return p
}

// load loads a model on the MLX thread and frees it when the test ends.
func load(t testing.TB, path string, opts engine.LoadOptions) *engine.Model {
	t.Helper()
	var m *engine.Model
	if err := mlx.Do(context.Background(), func() error {
		var err error
		m, err = engine.LoadModel(path, opts)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mlx.Do(context.Background(), func() error { m.Free(); return nil }) })
	return m
}

// forward runs ids (one lane) and returns logits [L][V] and captured blocks.
func forward(t testing.TB, m *engine.Model, ids []int, capture []int) ([][]float32, map[int][][]float32) {
	t.Helper()
	var logits [][]float32
	hidden := map[int][][]float32{}
	err := mlx.Do(context.Background(), func() error {
		tok := make([]int32, len(ids))
		for i, id := range ids {
			tok[i] = int32(id)
		}
		x, err := mlx.FromInt32s(tok, 1, len(ids))
		if err != nil {
			return err
		}
		defer x.Free()
		cache := m.NewCache(1)
		defer cache.Free()
		res, err := m.Forward(x, cache, engine.ForwardOptions{Capture: capture})
		if err != nil {
			return err
		}
		defer res.Free()
		flat, err := res.Logits.Float32s()
		if err != nil {
			return err
		}
		logits = split(flat, m.Config.VocabSize)
		for l, h := range res.Hidden {
			v, err := h.Float32s()
			if err != nil {
				return err
			}
			hidden[l] = split(v, m.Config.HiddenSize)
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	return logits, hidden
}

func split(flat []float32, n int) [][]float32 {
	var out [][]float32
	for i := 0; i+n <= len(flat); i += n {
		out = append(out, flat[i:i+n])
	}
	return out
}

// maxAbsDiff is max |a-b| over two equally shaped matrices.
func maxAbsDiff(t testing.TB, a [][]float32, b [][]float64) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d rows, want %d", len(a), len(b))
	}
	var m float64
	for i := range a {
		if len(a[i]) != len(b[i]) {
			t.Fatalf("row %d has %d values, want %d", i, len(a[i]), len(b[i]))
		}
		for j := range a[i] {
			d := math.Abs(float64(a[i][j]) - b[i][j])
			if math.IsNaN(d) {
				return math.Inf(1)
			}
			m = math.Max(m, d)
		}
	}
	return m
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func hfDir(name string) string { return filepath.Join("testdata", "hf", name) }

// leftPad lays prompts of different lengths out as one [len(prompts), L]
// batch, left-padded with id 0, with each lane's count of padded positions.
func leftPad(prompts [][]int) (ids []int32, pads []int, L int) {
	for _, p := range prompts {
		L = max(L, len(p))
	}
	for _, p := range prompts {
		pads = append(pads, L-len(p))
		for i := 0; i < L-len(p); i++ {
			ids = append(ids, 0)
		}
		for _, id := range p {
			ids = append(ids, int32(id))
		}
	}
	return ids, pads, L
}
