package mlx

/*
#include "shim_moe.h"
*/
import "C"

// optIndices is an optional index array for the gather products.
func optIndices(a *Array) (C.gk_array, C.int) {
	if a == nil {
		return C.gk_array{}, 0
	}
	return a.c, 1
}

// GatherMM multiplies each batch position of a ([..., M, K]) by the matrix
// of b ([E, K, N]) its index in rhs names: out[i] = a[lhs[i]] @ b[rhs[i]],
// with lhs and rhs (integer arrays, nil for "every position in order")
// broadcast against a's batch axes. sorted promises rhs is ascending, so
// rows of one expert are contiguous (faster for many rows). This is MLX's
// gather_mm, the product a mixture of experts runs for its chosen experts.
func GatherMM(a, b, lhs, rhs *Array, sorted bool) (*Array, error) {
	if (lhs != nil && !lhs.valid()) || (rhs != nil && !rhs.valid()) {
		return nil, errNil("gather_mm")
	}
	l, hl := optIndices(lhs)
	r, hr := optIndices(rhs)
	return call("gather_mm", func(o *C.gk_array) C.int {
		return C.gk_gather_mm(o, a.c, b.c, l, hl, r, hr, cbool(sorted))
	}, a, b)
}

// GatherQMM is GatherMM for a stack of experts quantized with MLX's affine
// mode: q.Weight [E, N, K*bits/32], q.Scales and q.Biases [E, N, K/group].
// With transpose it computes x @ dequantize(q[rhs])^T (weights stored
// [out, in], as Linear layers hold them).
func GatherQMM(x *Array, q *Quantized, lhs, rhs *Array, transpose, sorted bool) (*Array, error) {
	if q == nil {
		return nil, errNil("gather_qmm")
	}
	if (lhs != nil && !lhs.valid()) || (rhs != nil && !rhs.valid()) {
		return nil, errNil("gather_qmm")
	}
	l, hl := optIndices(lhs)
	r, hr := optIndices(rhs)
	return call("gather_qmm", func(o *C.gk_array) C.int {
		return C.gk_gather_qmm(o, x.c, q.Weight.c, q.Scales.c, q.Biases.c, l, hl, r, hr,
			cbool(transpose), C.int(q.GroupSize), C.int(q.Bits), cbool(sorted))
	}, x, q.Weight, q.Scales, q.Biases)
}

// MoESort groups the rows of x ([N, 1, D]) by the experts idx ([N, k])
// chose for them: xs ([N*k, 1, D]) holds row n once per chosen expert, the
// rows ordered by expert; experts ([N*k]) is that ascending expert order;
// and taking rows of a result by inv (axis 0) restores the order of idx
// flattened (row n's k experts at n*k ... n*k+k-1).
func MoESort(x, idx *Array) (xs, experts, inv *Array, err error) {
	if !x.valid() || !idx.valid() {
		return nil, nil, nil, errNil("moe_sort")
	}
	var a, b, c C.gk_array
	if err := check("moe_sort", C.gk_moe_sort(&a, &b, &c, x.c, idx.c)); err != nil {
		return nil, nil, nil, err
	}
	return wrap(a), wrap(b), wrap(c), nil
}
