package mlx

/*
#include "shim.h"
*/
import "C"

// Zeros makes an array of zeros.
func Zeros(dt Dtype, shape ...int) (*Array, error) {
	sp, n := cints(shape)
	return call("zeros", func(o *C.gk_array) C.int { return C.gk_zeros(o, sp, n, C.int(dt)) })
}

// Full makes an array filled with v.
func Full(v float64, dt Dtype, shape ...int) (*Array, error) {
	sp, n := cints(shape)
	return call("full", func(o *C.gk_array) C.int { return C.gk_full(o, sp, n, C.double(v), C.int(dt)) })
}

// Arange makes [start, start+step, ...) up to stop.
func Arange(start, stop, step float64, dt Dtype) (*Array, error) {
	return call("arange", func(o *C.gk_array) C.int {
		return C.gk_arange(o, C.double(start), C.double(stop), C.double(step), C.int(dt))
	})
}

// Tril zeroes the elements above the k-th diagonal.
func Tril(a *Array, k int) (*Array, error) {
	return call("tril", func(o *C.gk_array) C.int { return C.gk_tri(o, a.c, C.int(k), 0) }, a)
}

// Triu zeroes the elements below the k-th diagonal.
func Triu(a *Array, k int) (*Array, error) {
	return call("triu", func(o *C.gk_array) C.int { return C.gk_tri(o, a.c, C.int(k), 1) }, a)
}

// Reshape gives a a new shape with the same number of elements (one -1 allowed).
func Reshape(a *Array, shape ...int) (*Array, error) {
	sp, n := cints(shape)
	return call("reshape", func(o *C.gk_array) C.int { return C.gk_reshape(o, a.c, sp, n) }, a)
}

// Transpose permutes the axes (reverses them when none are given).
func Transpose(a *Array, axes ...int) (*Array, error) {
	ap, n := cints(axes)
	return call("transpose", func(o *C.gk_array) C.int { return C.gk_transpose(o, a.c, ap, n) }, a)
}

// SwapAxes exchanges two axes.
func SwapAxes(a *Array, a1, a2 int) (*Array, error) {
	return call("swapaxes", func(o *C.gk_array) C.int { return C.gk_swapaxes(o, a.c, C.int(a1), C.int(a2)) }, a)
}

// ExpandDims inserts an axis of size 1.
func ExpandDims(a *Array, axis int) (*Array, error) {
	return call("expand_dims", func(o *C.gk_array) C.int { return C.gk_expand_dims(o, a.c, C.int(axis)) }, a)
}

// Squeeze removes an axis of size 1.
func Squeeze(a *Array, axis int) (*Array, error) {
	return call("squeeze", func(o *C.gk_array) C.int { return C.gk_squeeze(o, a.c, C.int(axis)) }, a)
}

// BroadcastTo broadcasts a to shape.
func BroadcastTo(a *Array, shape ...int) (*Array, error) {
	sp, n := cints(shape)
	return call("broadcast_to", func(o *C.gk_array) C.int { return C.gk_broadcast_to(o, a.c, sp, n) }, a)
}

// Contiguous returns a row-major copy when a is not already one.
func Contiguous(a *Array) (*Array, error) {
	return call("contiguous", func(o *C.gk_array) C.int { return C.gk_contiguous(o, a.c) }, a)
}

// Take gathers the entries of a at idx along axis.
func Take(a, idx *Array, axis int) (*Array, error) {
	return call("take", func(o *C.gk_array) C.int { return C.gk_take(o, a.c, idx.c, C.int(axis)) }, a, idx)
}

// TakeAlongAxis gathers with an index array shaped like a.
func TakeAlongAxis(a, idx *Array, axis int) (*Array, error) {
	return call("take_along_axis", func(o *C.gk_array) C.int { return C.gk_take_along_axis(o, a.c, idx.c, C.int(axis)) }, a, idx)
}

// PutAlongAxis scatters values into a copy of a at idx along axis.
func PutAlongAxis(a, idx, values *Array, axis int) (*Array, error) {
	return call("put_along_axis", func(o *C.gk_array) C.int {
		return C.gk_put_along_axis(o, a.c, idx.c, values.c, C.int(axis))
	}, a, idx, values)
}

// Concatenate joins arrays along axis.
func Concatenate(axis int, arrays ...*Array) (*Array, error) {
	hs, err := handles("concatenate", arrays)
	if err != nil {
		return nil, err
	}
	if len(hs) == 0 {
		return nil, &Error{Op: "concatenate", Msg: "no arrays"}
	}
	return call("concatenate", func(o *C.gk_array) C.int { return C.gk_concatenate(o, &hs[0], C.int(len(hs)), C.int(axis)) })
}

func sliceArgs(op string, a *Array, start, stop, strides []int) error {
	if len(start) != len(stop) || (strides != nil && len(strides) != len(start)) {
		return &Error{Op: op, Msg: "start, stop and strides must have one entry per axis"}
	}
	return nil
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

// Slice takes a[start:stop:strides] (one entry per axis; nil strides mean 1).
func Slice(a *Array, start, stop, strides []int) (*Array, error) {
	if err := sliceArgs("slice", a, start, stop, strides); err != nil {
		return nil, err
	}
	if strides == nil {
		strides = ones(len(start))
	}
	s0, n := cints(start)
	s1, _ := cints(stop)
	s2, _ := cints(strides)
	return call("slice", func(o *C.gk_array) C.int { return C.gk_slice(o, a.c, s0, s1, s2, n) }, a)
}

// SliceUpdate returns a copy of src with src[start:stop:strides] = update.
func SliceUpdate(src, update *Array, start, stop, strides []int) (*Array, error) {
	if err := sliceArgs("slice_update", src, start, stop, strides); err != nil {
		return nil, err
	}
	if strides == nil {
		strides = ones(len(start))
	}
	s0, n := cints(start)
	s1, _ := cints(stop)
	s2, _ := cints(strides)
	return call("slice_update", func(o *C.gk_array) C.int {
		return C.gk_slice_update(o, src.c, update.c, s0, s1, s2, n)
	}, src, update)
}

// SliceDynamic takes a slice of the given size whose start along axes is read
// from the array start (so the graph need not change as the offset moves).
func SliceDynamic(a, start *Array, axes []int, size []int) (*Array, error) {
	ap, na := cints(axes)
	sp, ns := cints(size)
	return call("slice_dynamic", func(o *C.gk_array) C.int { return C.gk_slice_dynamic(o, a.c, start.c, ap, na, sp, ns) }, a, start)
}

// SliceUpdateDynamic writes update into a copy of src at offsets read from start.
func SliceUpdateDynamic(src, update, start *Array, axes []int) (*Array, error) {
	ap, na := cints(axes)
	return call("slice_update_dynamic", func(o *C.gk_array) C.int {
		return C.gk_slice_update_dynamic(o, src.c, update.c, start.c, ap, na)
	}, src, update, start)
}
