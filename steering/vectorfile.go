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
// (Hugging Face's model.model.layers[L]; llama.cpp's direction.L, see
// LlamaCppDirection).
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
// tensors, N the block as LlamaCppDirection says; genkit's own files of
// every version use the same numbering), .safetensors (direction.N, or a
// single tensor) or .npy (1-D for one layer, 2-D [layers, hidden] for each).
// A file holding one vector without a layer gets layer `layer`. Runs on the
// MLX thread.
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
			if err = checkGGUFNames(path, arrays, meta); err != nil {
				freeAll(arrays)
				return nil, err
			}
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
			// Refused before the loop: with no values per row, the row
			// count is not bounded by the file's size (a 64-byte .npy
			// can say [2147483647, 0]) and each row would be a layer.
			if sh[1] == 0 {
				return nil, fmt.Errorf("%s: tensor %q has shape %v: its vectors are empty", path, name, sh)
			}
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
	// Every vector as long as the lowest layer's, non-empty, with finite values.
	if hidden := len(vs.Vectors[vs.Layers()[0]]); hidden == 0 {
		return nil, fmt.Errorf("%s: layer %d's steering vector is empty", path, vs.Layers()[0])
	}
	if err := vs.Check(len(vs.Vectors[vs.Layers()[0]])); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vs, nil
}

// checkGGUFNames applies llama.cpp's naming rule to a .gguf control vector:
// every tensor is direction.N, N >= 1, except that files without genkit's
// version key (an older genkit's) may hold direction.0 (block 0). A version
// newer than ControlVectorVersion is refused.
func checkGGUFNames(path string, arrays map[string]*mlx.Array, meta map[string]mlx.MetaValue) error {
	version := 0
	if v, ok := meta[controlVectorVersionKey].Int(); ok {
		version = v
	}
	if version > ControlVectorVersion {
		return fmt.Errorf("%s: %s is %d; this genkit reads control vectors up to version %d", path, controlVectorVersionKey, version, ControlVectorVersion)
	}
	for name := range arrays {
		n, ok := parseDirection(name)
		if !ok {
			return fmt.Errorf("%s: tensor %q is not named direction.N", path, name)
		}
		if n == 0 && version == 0 {
			continue // an older genkit file: direction.0 is block 0
		}
		if _, err := BlockOfLlamaCppDirection(n); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

func layerOf(name string) (int, bool) {
	for _, p := range []string{"direction.", "layer.", "layers."} {
		if strings.HasPrefix(name, p) {
			if l, err := strconv.Atoi(strings.TrimPrefix(name, p)); err == nil && l >= 0 {
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

// save writes the set: .gguf as a llama.cpp control vector (direction.N as
// LlamaCppDirection names block N; llama.cpp has no slot for block 0, so
// block 0 is left out of a set holding other blocks and a set of block 0
// alone is refused;
// controlvector.layer_count an int32 count of the tensors and
// controlvector.model_hint the model's architecture, as llama.cpp's
// cvector-generator writes them; genkit.control_vector_version), .safetensors
// with direction.N tensors (block 0 included), .npy as one vector (one layer
// only). Writes are atomic. Runs on the MLX thread.
func (vs *VectorSet) save(path string) error {
	if len(vs.Vectors) == 0 {
		return fmt.Errorf("save %s: no vectors", path)
	}
	gguf := strings.EqualFold(filepath.Ext(path), ".gguf")
	arrays := map[string]*mlx.Array{}
	defer freeAll(arrays)
	layers := vs.Layers()
	if gguf {
		layers, _ = vs.LlamaCppBlocks()
	}
	for _, l := range layers {
		if l < 0 {
			return fmt.Errorf("save %s: layer %d is negative; resolve it against the model first", path, l)
		}
		n := l
		if gguf {
			var err error
			if n, err = LlamaCppDirection(l); err != nil {
				return fmt.Errorf("save %s: %w", path, err)
			}
		}
		a, err := mlx.FromFloat32s(vs.Vectors[l])
		if err != nil {
			return err
		}
		arrays["direction."+strconv.Itoa(n)] = a
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gguf":
		if vs.ModelHint == "" {
			return fmt.Errorf("save %s: the model hint (controlvector.model_hint, the model's architecture) is empty", path)
		}
		n, err := mlx.Scalar(float64(len(arrays)), mlx.Int32)
		if err != nil {
			return err
		}
		defer n.Free()
		ver, err := mlx.Scalar(ControlVectorVersion, mlx.Uint32)
		if err != nil {
			return err
		}
		defer ver.Free()
		return mlx.SaveGGUF(path, arrays, map[string]string{"general.architecture": "controlvector", "controlvector.model_hint": vs.ModelHint},
			map[string]*mlx.Array{"controlvector.layer_count": n, controlVectorVersionKey: ver})
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

// LlamaCppBlocks are the blocks of the set a .gguf file holds: every block
// but 0 (llama.cpp has no slot for it), or block 0 alone, which Save then
// refuses.
func (vs *VectorSet) LlamaCppBlocks() (kept []int, dropped []int) {
	for _, l := range vs.Layers() {
		if l == 0 && len(vs.Vectors) > 1 {
			dropped = append(dropped, l)
			continue
		}
		kept = append(kept, l)
	}
	return kept, dropped
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
