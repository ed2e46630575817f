package mlx

import (
	"fmt"
	"strings"

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

// q4kArrays adds a Q4_K matrix to arrays as the MLX affine triple MLX's
// reader makes of Q4_0 (name.weight packed uint32, name.scales and
// name.biases float32, group 32, 4 bits): exactly ggml's values (see
// gguf.Q4KAffine), at a sixth of the float32 size, usable by
// quantized_matmul.
func q4kArrays(path string, h *gguf.Header, t gguf.TensorInfo, arrays map[string]*Array) error {
	raw, err := h.ReadRaw(path, t)
	if err != nil {
		return err
	}
	packed, scales, biases, err := gguf.Q4KAffine(raw, int(t.Elements()))
	if err != nil {
		return err
	}
	out, in := int(t.Dims[1]), int(t.Dims[0])
	base := strings.TrimSuffix(t.Name, ".weight")
	w, err := FromUint32s(packed, out, in/8)
	if err != nil {
		return err
	}
	arrays[t.Name] = w
	s, err := FromFloat32s(scales, out, in/32)
	if err != nil {
		return err
	}
	arrays[base+".scales"] = s
	b, err := FromFloat32s(biases, out, in/32)
	if err != nil {
		return err
	}
	arrays[base+".biases"] = b
	return nil
}

// loadGGUFGo reads a GGUF file without MLX's reader: every tensor is
// dequantized by engine/gguf (bit-identical to ggml's reference
// dequantization) into a float32 array, except Q4_K matrices, which become
// exact MLX affine 4-bit triples (q4kArrays); the metadata comes from the
// header. MLX's reader rounds Q2_K/Q6_K/BF16 to float16, gets Q4_K wrong
// and fails on Q3_K, Q5_K, Q5_0, Q5_1 and IQ4_XS, so files with such tensors never
// reach it.
func loadGGUFGo(path string, h *gguf.Header) (map[string]*Array, map[string]MetaValue, error) {
	arrays := make(map[string]*Array, len(h.Tensors))
	for _, t := range h.Tensors {
		if t.Type == gguf.TypeQ4_K && len(t.Dims) == 2 && strings.HasSuffix(t.Name, ".weight") {
			if err := q4kArrays(path, h, t, arrays); err != nil {
				Free(values(arrays)...)
				return nil, nil, fmt.Errorf("load %s: tensor %s: %w", path, t.Name, err)
			}
			continue
		}
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
	return arrays, metaFromHeader(h), nil
}

// metaFromHeader converts engine/gguf metadata to MetaValues as MLX's
// reader gives them (scalars and numeric arrays as numbers, bools as 0/1).
func metaFromHeader(h *gguf.Header) map[string]MetaValue {
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
	return meta
}
