package mlx

import (
	"fmt"

	"github.com/mlx-genkit/genkit/engine/gguf"
)

// needsGoLoader says whether a GGUF file holds a tensor type MLX's reader
// does not load with ggml's exact values (K-quants, Q5_0, Q5_1, BF16).
func needsGoLoader(h *gguf.Header) bool {
	for _, t := range h.Tensors {
		if !gguf.MLXNative(t.Type) {
			return true
		}
	}
	return false
}

// loadGGUFGo reads a GGUF file without MLX's reader: every tensor is
// dequantized by engine/gguf (bit-identical to ggml's reference
// dequantization) into a float32 array, and the metadata comes from the
// header. MLX's reader rounds Q2_K/Q6_K/BF16 to float16, gets Q4_K wrong
// and fails on Q3_K, Q5_K, Q5_0 and Q5_1, so files with such tensors never
// reach it.
func loadGGUFGo(path string, h *gguf.Header) (map[string]*Array, map[string]MetaValue, error) {
	arrays := make(map[string]*Array, len(h.Tensors))
	for _, t := range h.Tensors {
		vals, err := h.ReadTensor(path, t)
		if err != nil {
			Free(values(arrays)...)
			return nil, nil, fmt.Errorf("load %s: %w", path, err)
		}
		// GGUF dims run fastest first; MLX shapes slowest first.
		shape := make([]int, len(t.Dims))
		for i, d := range t.Dims {
			shape[len(shape)-1-i] = int(d)
		}
		a, err := FromFloat32s(vals, shape...)
		if err != nil {
			Free(values(arrays)...)
			return nil, nil, fmt.Errorf("load %s: tensor %s: %w", path, t.Name, err)
		}
		arrays[t.Name] = a
	}
	meta := make(map[string]MetaValue, len(h.Meta))
	for k, v := range h.Meta {
		switch {
		case v.Type == gguf.TypeString:
			meta[k] = MetaValue{Kind: MetaString, String: v.Str}
		case v.Type == gguf.TypeArray && v.ElemType == gguf.TypeString:
			meta[k] = MetaValue{Kind: MetaStrings, Strings: v.Strings}
		case v.Type == gguf.TypeArray && v.Numbers != nil:
			meta[k] = MetaValue{Kind: MetaNumbers, Numbers: v.Numbers}
		default:
			if f, ok := v.Float(); ok {
				meta[k] = MetaValue{Kind: MetaNumbers, Numbers: []float64{f}}
			} else {
				meta[k] = MetaValue{Kind: MetaNone}
			}
		}
	}
	return arrays, meta, nil
}
