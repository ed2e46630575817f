package mlx

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import "unsafe"

func optHandle(a *Array) (C.gk_array, C.int) {
	if a.valid() {
		return a.c, 1
	}
	return C.gk_array{}, 0
}

// RMSNorm is x / sqrt(mean(x^2) + eps) * weight over the last axis; weight
// may be nil.
func RMSNorm(x, weight *Array, eps float32) (*Array, error) {
	w, hw := optHandle(weight)
	return call("rms_norm", func(o *C.gk_array) C.int { return C.gk_rms_norm(o, x.c, w, hw, C.float(eps)) }, x)
}

// LayerNorm normalizes over the last axis; weight and bias may be nil.
func LayerNorm(x, weight, bias *Array, eps float32) (*Array, error) {
	w, hw := optHandle(weight)
	b, hb := optHandle(bias)
	return call("layer_norm", func(o *C.gk_array) C.int { return C.gk_layer_norm(o, x.c, w, hw, b, hb, C.float(eps)) }, x)
}

// RoPE applies rotary position embeddings to the first dims features of the
// last axis of x (shape [..., seq, head_dim]), positions starting at offset.
// traditional rotates adjacent pairs (GPT-J style) instead of the two halves.
// When freqs is non-nil it gives the per-pair frequencies and base is unused.
func RoPE(x *Array, dims int, traditional bool, base, scale float32, offset int, freqs *Array) (*Array, error) {
	f, hf := optHandle(freqs)
	return call("rope", func(o *C.gk_array) C.int {
		return C.gk_rope(o, x.c, C.int(dims), cbool(traditional), C.float(base), 1-hf, C.float(scale), C.int(offset), f, hf)
	}, x)
}

// RoPEOffsets is RoPE with the starting position read from an array: a
// scalar, or one offset per batch row.
func RoPEOffsets(x *Array, dims int, traditional bool, base, scale float32, offset, freqs *Array) (*Array, error) {
	f, hf := optHandle(freqs)
	return call("rope", func(o *C.gk_array) C.int {
		return C.gk_rope_dyn(o, x.c, C.int(dims), cbool(traditional), C.float(base), 1-hf, C.float(scale), offset.c, f, hf)
	}, x, offset)
}

// Attention mask modes for ScaledDotProductAttention.
const (
	MaskNone   = ""
	MaskCausal = "causal"
	MaskArray  = "array"
)

// ScaledDotProductAttention is softmax(q k^T * scale + mask) v for q of shape
// [B, H, Lq, D] and k, v of shape [B, Hkv, Lk, D] (grouped-query attention
// when Hkv divides H). mode is MaskNone, MaskCausal or MaskArray; mask is an
// additive or boolean array used with MaskArray.
func ScaledDotProductAttention(q, k, v *Array, scale float32, mode string, mask *Array) (*Array, error) {
	m, hm := optHandle(mask)
	cmode := C.CString(mode)
	defer C.free(unsafe.Pointer(cmode))
	return call("scaled_dot_product_attention", func(o *C.gk_array) C.int {
		return C.gk_sdpa(o, q.c, k.c, v.c, C.float(scale), cmode, m, hm)
	}, q, k, v)
}

// SiLU is x * sigmoid(x).
func SiLU(x *Array) (*Array, error) {
	s, err := Sigmoid(x)
	if err != nil {
		return nil, err
	}
	defer s.Free()
	return Multiply(x, s)
}

// Quantized holds an affine-quantized matrix: packed uint32 weights and one
// scale and bias per group of GroupSize values along the last axis.
type Quantized struct {
	Weight, Scales, Biases *Array
	GroupSize, Bits        int
}

// Free releases the three arrays.
func (q *Quantized) Free() { Free(q.Weight, q.Scales, q.Biases) }

// Quantize quantizes w (last axis a multiple of groupSize) with affine mode.
func Quantize(w *Array, groupSize, bits int) (*Quantized, error) {
	if !w.valid() {
		return nil, errNil("quantize")
	}
	var a, s, b C.gk_array
	if err := check("quantize", C.gk_quantize(&a, &s, &b, w.c, C.int(groupSize), C.int(bits))); err != nil {
		return nil, err
	}
	return &Quantized{Weight: wrap(a), Scales: wrap(s), Biases: wrap(b), GroupSize: groupSize, Bits: bits}, nil
}

// Dequantize expands q back to a dense matrix of dtype dt (dt < 0 keeps the
// scales' type).
func Dequantize(q *Quantized, dt Dtype) (*Array, error) {
	return call("dequantize", func(o *C.gk_array) C.int {
		return C.gk_dequantize(o, q.Weight.c, q.Scales.c, q.Biases.c, C.int(q.GroupSize), C.int(q.Bits), C.int(dt))
	}, q.Weight, q.Scales, q.Biases)
}

// QuantizedMatmul is x @ W^T (transpose) or x @ W with W given quantized.
func QuantizedMatmul(x *Array, q *Quantized, transpose bool) (*Array, error) {
	return call("quantized_matmul", func(o *C.gk_array) C.int {
		return C.gk_quantized_matmul(o, x.c, q.Weight.c, q.Scales.c, q.Biases.c, cbool(transpose), C.int(q.GroupSize), C.int(q.Bits))
	}, x, q.Weight, q.Scales, q.Biases)
}
