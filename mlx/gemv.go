package mlx

/*
#include "shim.h"
*/
import "C"

// GEMVMaxRows is the most rows of x the CUDA matrix-vector kernels take.
const GEMVMaxRows = 8

// GEMV computes x W^T for w dense [N, K] (row-major) and x [..., K] of at
// most GEMVMaxRows rows with genkit's CUDA kernel. ok is false (and the
// result nil, with no error) when the kernel does not apply: not on a CUDA
// GPU, more rows, other dtypes, or w not a materialised row-contiguous
// array; the caller then uses Matmul.
func GEMV(x, w *Array) (y *Array, ok bool, err error) {
	var used C.int
	y, err = call("gemv", func(o *C.gk_array) C.int { return C.gk_gemv(o, &used, x.c, w.c) }, x, w)
	if err != nil || used == 0 {
		return nil, false, err
	}
	return y, true, nil
}

// QGEMV is GEMV for weights q quantized (MLX affine, 4 or 8 bits): x
// dequantize(q)^T. ok is false when the kernel does not apply (as GEMV's);
// the caller then uses QuantizedMatmul.
func QGEMV(x *Array, q *Quantized) (y *Array, ok bool, err error) {
	if q == nil {
		return nil, false, errNil("qgemv")
	}
	var used C.int
	y, err = call("qgemv", func(o *C.gk_array) C.int {
		return C.gk_qgemv(o, &used, x.c, q.Weight.c, q.Scales.c, q.Biases.c, C.int(q.GroupSize), C.int(q.Bits))
	}, x, q.Weight, q.Scales, q.Biases)
	if err != nil || used == 0 {
		return nil, false, err
	}
	return y, true, nil
}

// qgemvDecline is why QGEMV's kernel would decline x and q on a CUDA GPU, ""
// where it would take them: its checks of shapes, dtypes, layout and
// quantization, on any device (the tests run them on the CPU too).
func qgemvDecline(x *Array, q *Quantized) (string, error) {
	if q == nil || !x.valid() || !q.Weight.valid() || !q.Scales.valid() || !q.Biases.valid() {
		return "", errNil("qgemv check")
	}
	var why *C.char
	if err := check("qgemv check", C.gk_qgemv_decline(&why, x.c, q.Weight.c, q.Scales.c, q.Biases.c,
		C.int(q.GroupSize), C.int(q.Bits))); err != nil {
		return "", err
	}
	return C.GoString(why), nil
}
