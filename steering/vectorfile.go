package steering

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mlx-genkit/genkit/mlx"
)

// VectorSet is a set of per-layer steering directions, as stored in a
// control-vector file. Layer L's direction is added to the output of block L
// (Hugging Face's model.layers[L]; llama.cpp's direction.L).
type VectorSet struct {
	Vectors map[int][]float32
	// ModelHint names the model family (controlvector.model_hint).
	ModelHint string
}

// Layers lists the layers, ascending.
func (vs *VectorSet) Layers() []int {
	var out []int
	for l := range vs.Vectors {
		out = append(out, l)
	}
	sort.Ints(out)
	return out
}

// Check refuses vectors of the wrong size or with NaN/Inf, naming the layer.
func (vs *VectorSet) Check(hidden int) error {
	if len(vs.Vectors) == 0 {
		return fmt.Errorf("no steering vectors")
	}
	for _, l := range vs.Layers() {
		if err := CheckVector(vs.Vectors[l], hidden); err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
	}
	return nil
}

// loadVectors reads a control-vector file: llama.cpp GGUF (direction.N
// tensors), .safetensors (direction.N, or a single tensor) or .npy (1-D for
// one layer, 2-D [layers, hidden] for each). A file holding one vector
// without a layer gets layer `layer`. Runs on the MLX thread.
func loadVectors(path string, layer int) (*VectorSet, error) {
	vs := &VectorSet{Vectors: map[int][]float32{}}
	var arrays map[string]*mlx.Array
	var err error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gguf":
		var meta map[string]mlx.MetaValue
		arrays, meta, err = mlx.LoadGGUF(path)
		if err == nil {
			if a := meta["general.architecture"].String; a != "controlvector" {
				freeAll(arrays)
				return nil, fmt.Errorf("%s: general.architecture is %q, not controlvector", path, a)
			}
			vs.ModelHint = meta["controlvector.model_hint"].String
		}
	case ".safetensors":
		arrays, _, err = mlx.LoadSafetensors(path)
	case ".npy":
		var a *mlx.Array
		if a, err = mlx.LoadNpy(path); err == nil {
			arrays = map[string]*mlx.Array{"": a}
		}
	default:
		return nil, fmt.Errorf("%s: unknown vector file type (want .gguf, .safetensors or .npy)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("load steering vector: %w", err)
	}
	defer freeAll(arrays)
	for name, a := range arrays {
		vals, err := a.Float32s()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		sh := a.Shape()
		switch {
		case len(sh) == 2 && len(arrays) == 1:
			for l := 0; l < sh[0]; l++ {
				vs.Vectors[l] = vals[l*sh[1] : (l+1)*sh[1]]
			}
		case len(sh) == 1:
			l, ok := layerOf(name)
			if !ok {
				if len(arrays) != 1 {
					return nil, fmt.Errorf("%s: tensor %q has no layer index (want direction.N)", path, name)
				}
				l = layer
			}
			vs.Vectors[l] = vals
		default:
			return nil, fmt.Errorf("%s: tensor %q has shape %v (want 1-D, or one 2-D [layers, hidden])", path, name, sh)
		}
	}
	if len(vs.Vectors) == 0 {
		return nil, fmt.Errorf("%s: no steering vectors", path)
	}
	return vs, nil
}

func layerOf(name string) (int, bool) {
	for _, p := range []string{"direction.", "layer.", "layers."} {
		if strings.HasPrefix(name, p) {
			if l, err := strconv.Atoi(strings.TrimPrefix(name, p)); err == nil {
				return l, true
			}
		}
	}
	return 0, false
}

func freeAll(m map[string]*mlx.Array) {
	for _, a := range m {
		a.Free()
	}
}

// save writes the set: .gguf as a llama.cpp control vector, .safetensors
// with direction.N tensors, .npy as one vector (one layer only). Writes are
// atomic. Runs on the MLX thread.
func (vs *VectorSet) save(path string) error {
	if len(vs.Vectors) == 0 {
		return fmt.Errorf("save %s: no vectors", path)
	}
	arrays := map[string]*mlx.Array{}
	defer freeAll(arrays)
	for _, l := range vs.Layers() {
		if l < 0 {
			return fmt.Errorf("save %s: layer %d is negative; resolve it against the model first", path, l)
		}
		a, err := mlx.FromFloat32s(vs.Vectors[l])
		if err != nil {
			return err
		}
		arrays["direction."+strconv.Itoa(l)] = a
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gguf":
		n, err := mlx.Scalar(float64(len(vs.Vectors)), mlx.Uint32)
		if err != nil {
			return err
		}
		defer n.Free()
		hint := vs.ModelHint
		if hint == "" {
			hint = "llama"
		}
		return mlx.SaveGGUF(path, arrays, map[string]string{"general.architecture": "controlvector", "controlvector.model_hint": hint},
			map[string]*mlx.Array{"controlvector.layer_count": n})
	case ".safetensors":
		return mlx.SaveSafetensors(path, arrays, map[string]string{"format": "genkit-steering"})
	case ".npy":
		if len(arrays) != 1 {
			return fmt.Errorf("save %s: .npy holds one vector, the set has %d layers", path, len(arrays))
		}
		for _, a := range arrays {
			return mlx.SaveNpy(path, a)
		}
	}
	return fmt.Errorf("save %s: unknown vector file type (want .gguf, .safetensors or .npy)", path)
}

// LoadVectors reads a vector file as loadVectors says, entering the MLX
// thread itself.
func LoadVectors(path string, layer int) (*VectorSet, error) {
	return mlx.Call(context.Background(), func() (*VectorSet, error) { return loadVectors(path, layer) })
}

// Save writes the set as save says (the format follows the extension),
// entering the MLX thread itself.
func (vs *VectorSet) Save(path string) error {
	return mlx.Do(context.Background(), func() error { return vs.save(path) })
}
