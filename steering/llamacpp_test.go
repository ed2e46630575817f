package steering_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/steering"
)

func vec(n int, base float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = base + float32(i)/8
	}
	return v
}

// writeRawGGUF writes a control-vector GGUF the way another tool (or an
// older genkit) might: tensors named as given, F32 unless f16, the
// metadata given (numbers as the dtype given).
func writeRawGGUF(t *testing.T, path string, tensors map[string][]float32, f16 bool, strs map[string]string, nums map[string]float64, numType mlx.Dtype) {
	t.Helper()
	err := mlx.Do(context.Background(), func() error {
		arrays := map[string]*mlx.Array{}
		meta := map[string]*mlx.Array{}
		defer func() {
			for _, a := range arrays {
				a.Free()
			}
			for _, a := range meta {
				a.Free()
			}
		}()
		for name, v := range tensors {
			a, err := mlx.FromFloat32s(v)
			if err != nil {
				return err
			}
			if f16 {
				h, err := mlx.AsType(a, mlx.Float16)
				a.Free()
				if err != nil {
					return err
				}
				a = h
			}
			arrays[name] = a
		}
		for k, v := range nums {
			a, err := mlx.Scalar(v, numType)
			if err != nil {
				return err
			}
			meta[k] = a
		}
		return mlx.SaveGGUF(path, arrays, strs, meta)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLlamaCppDirectionMapping(t *testing.T) {
	for _, b := range []int{1, 7, 29} {
		if n, err := steering.LlamaCppDirection(b); err != nil || n != b {
			t.Errorf("block %d: direction.%d, %v (want direction.%d)", b, n, err, b)
		}
		if back, err := steering.BlockOfLlamaCppDirection(b); err != nil || back != b {
			t.Errorf("direction.%d: block %d, %v", b, back, err)
		}
	}
	if _, err := steering.LlamaCppDirection(0); err == nil || !strings.Contains(err.Error(), "block 0") {
		t.Errorf("block 0: %v", err)
	}
	if _, err := steering.BlockOfLlamaCppDirection(0); err == nil {
		t.Error("direction.0 was accepted")
	}
	if s, e, err := steering.LlamaCppRange([]int{9, 3, 5}); err != nil || s != 3 || e != 9 {
		t.Errorf("range %d..%d, %v", s, e, err)
	}
	if _, _, err := steering.LlamaCppRange([]int{0, 3}); err == nil {
		t.Error("a range from block 0 was accepted")
	}
}

// TestControlVectorFiles: genkit writes what llama.cpp's loader accepts and
// reads back the same blocks; older genkit files (direction.0 included)
// are still read; the checker refuses each thing llama.cpp refuses.
func TestControlVectorFiles(t *testing.T) {
	dir := t.TempDir()
	const hidden = 16
	vs := &steering.VectorSet{Vectors: map[int][]float32{0: vec(hidden, -1), 3: vec(hidden, 2), 7: vec(hidden, 5)}, ModelHint: "llama"}
	kept, dropped := vs.LlamaCppBlocks()
	if len(kept) != 2 || len(dropped) != 1 || dropped[0] != 0 {
		t.Fatalf("kept %v dropped %v", kept, dropped)
	}
	good := filepath.Join(dir, "good.gguf")
	if err := vs.Save(good); err != nil {
		t.Fatal(err)
	}
	blocks, err := steering.CheckLlamaCppControlVector(good, hidden, 8)
	if err != nil || len(blocks) != 2 || blocks[0] != 3 || blocks[1] != 7 {
		t.Fatalf("genkit's file: %v, %v", blocks, err)
	}
	back, err := steering.LoadVectors(good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Vectors) != 2 || back.Vectors[7][3] != vs.Vectors[7][3] || back.Vectors[3][0] != vs.Vectors[3][0] || back.ModelHint != "llama" {
		t.Fatalf("read back %v", back.Layers())
	}
	if err := (&steering.VectorSet{Vectors: map[int][]float32{0: vec(hidden, 0)}, ModelHint: "llama"}).Save(filepath.Join(dir, "zero.gguf")); err == nil {
		t.Fatal("a .gguf of block 0 alone was written")
	}
	st := filepath.Join(dir, "all.safetensors")
	if err := vs.Save(st); err != nil {
		t.Fatal(err)
	}
	if all, err := steering.LoadVectors(st, 0); err != nil || len(all.Vectors) != 3 {
		t.Fatalf(".safetensors keeps block 0: %v %v", all, err)
	}

	cv := map[string]string{"general.architecture": "controlvector", "controlvector.model_hint": "llama"}
	// llama.cpp's cvector-generator's form: int32 layer_count, direction.1..
	llama := filepath.Join(dir, "llamacpp.gguf")
	writeRawGGUF(t, llama, map[string][]float32{"direction.1": vec(hidden, 0), "direction.2": vec(hidden, 1)}, false, cv,
		map[string]float64{"controlvector.layer_count": 2}, mlx.Int32)
	if blocks, err := steering.CheckLlamaCppControlVector(llama, hidden, 8); err != nil || len(blocks) != 2 || blocks[0] != 1 {
		t.Fatalf("llama.cpp's file: %v %v", blocks, err)
	}
	if got, err := steering.LoadVectors(llama, 0); err != nil || len(got.Vectors[1]) != hidden || len(got.Vectors[2]) != hidden {
		t.Fatalf("genkit reads llama.cpp's file: %v", err)
	}
	// An older genkit file: direction.0 and a uint32 layer_count, no version.
	old := filepath.Join(dir, "old.gguf")
	writeRawGGUF(t, old, map[string][]float32{"direction.0": vec(hidden, 0), "direction.5": vec(hidden, 3)}, false, cv,
		map[string]float64{"controlvector.layer_count": 2}, mlx.Uint32)
	if got, err := steering.LoadVectors(old, 0); err != nil || len(got.Vectors[0]) != hidden || len(got.Vectors[5]) != hidden {
		t.Fatalf("genkit reads its older file: %v", err)
	}
	for name, c := range map[string]struct {
		tensors map[string][]float32
		f16     bool
		nums    map[string]float64
		want    string
	}{
		"old":      {map[string][]float32{"direction.0": vec(hidden, 0)}, false, map[string]float64{"controlvector.layer_count": 1}, "below 1"},
		"name":     {map[string][]float32{"layer.3": vec(hidden, 0)}, false, map[string]float64{"controlvector.layer_count": 1}, "not named direction.N"},
		"f16":      {map[string][]float32{"direction.3": vec(hidden, 0)}, true, map[string]float64{"controlvector.layer_count": 1}, "F32"},
		"lengths":  {map[string][]float32{"direction.3": vec(hidden, 0), "direction.4": vec(hidden+1, 0)}, false, map[string]float64{"controlvector.layer_count": 2}, "values"},
		"count":    {map[string][]float32{"direction.3": vec(hidden, 0)}, false, map[string]float64{"controlvector.layer_count": 4}, "layer_count"},
		"toodeep":  {map[string][]float32{"direction.8": vec(hidden, 0)}, false, map[string]float64{"controlvector.layer_count": 1}, "8 blocks"},
		"versions": {map[string][]float32{"direction.3": vec(hidden, 0)}, false, map[string]float64{"controlvector.layer_count": 1, "genkit.control_vector_version": 3}, ""},
	} {
		p := filepath.Join(dir, name+".gguf")
		writeRawGGUF(t, p, c.tensors, c.f16, cv, c.nums, mlx.Int32)
		_, err := steering.CheckLlamaCppControlVector(p, hidden, 8)
		if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
		if name == "versions" {
			if _, err := steering.LoadVectors(p, 0); err == nil || !strings.Contains(err.Error(), "up to version 2") {
				t.Errorf("a newer genkit file: %v", err)
			}
		}
	}
}
