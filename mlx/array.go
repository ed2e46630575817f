package mlx

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"math"
	"unsafe"
)

// Array is a handle to an MLX array: a node of MLX's lazy graph. It must be
// released with Free (or by the Scope that tracks it).
type Array struct {
	c C.gk_array
}

func wrap(c C.gk_array) *Array { return &Array{c: c} }

// valid reports whether a can be passed to an op.
func (a *Array) valid() bool { return a != nil && a.c.ctx != nil }

// Free releases the handle. Freeing nil or an already-freed array is a no-op.
// It may be called from any goroutine.
func (a *Array) Free() {
	if !a.valid() {
		return
	}
	c := a.c
	a.c.ctx = nil
	if OnThread() {
		C.gk_array_free(c)
		return
	}
	_ = Do(context.Background(), func() error { C.gk_array_free(c); return nil })
}

// LiveArrays is the number of array handles not yet freed, in this process.
func LiveArrays() int64 { return int64(C.gk_live_arrays()) }

// Ndim is the number of dimensions.
func (a *Array) Ndim() int {
	if !a.valid() {
		return 0
	}
	return int(C.gk_array_ndim(a.c))
}

// Shape is the array's shape.
func (a *Array) Shape() []int {
	if !a.valid() {
		return nil
	}
	var buf [16]C.int
	n := int(C.gk_array_shape(a.c, &buf[0], 16))
	if n > 16 {
		big := make([]C.int, n)
		C.gk_array_shape(a.c, &big[0], C.int(n))
		out := make([]int, n)
		for i := range out {
			out[i] = int(big[i])
		}
		return out
	}
	out := make([]int, n)
	for i := range out {
		out[i] = int(buf[i])
	}
	return out
}

// Dim is the size of axis i (negative counts from the end).
func (a *Array) Dim(i int) int {
	s := a.Shape()
	if i < 0 {
		i += len(s)
	}
	if i < 0 || i >= len(s) {
		return 0
	}
	return s[i]
}

// Dtype is the element type.
func (a *Array) Dtype() Dtype {
	if !a.valid() {
		return -1
	}
	return Dtype(C.gk_array_dtype(a.c))
}

// Size is the number of elements.
func (a *Array) Size() int {
	if !a.valid() {
		return 0
	}
	return int(C.gk_array_size(a.c))
}

func (a *Array) String() string {
	if !a.valid() {
		return "mlx.Array(freed)"
	}
	return fmt.Sprintf("mlx.Array(%v, %v)", a.Shape(), a.Dtype())
}

func cints(xs []int) (*C.int, C.int) {
	if len(xs) == 0 {
		return nil, 0
	}
	c := make([]C.int, len(xs))
	for i, x := range xs {
		c[i] = C.int(x)
	}
	return &c[0], C.int(len(xs))
}

func fromBytes(op string, p unsafe.Pointer, nbytes int, shape []int, dt Dtype) (*Array, error) {
	var out C.gk_array
	sp, n := cints(shape)
	if err := check(op, C.gk_array_from_data(&out, p, C.size_t(nbytes), sp, n, C.int(dt))); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

func fromSlice[T any](op string, data []T, shape []int, dt Dtype) (*Array, error) {
	if len(shape) == 0 && len(data) != 1 {
		shape = []int{len(data)}
	}
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	var zero T
	return fromBytes(op, p, len(data)*int(unsafe.Sizeof(zero)), shape, dt)
}

// FromFloat32s copies data into a new float32 array of the given shape (a
// 1-D array when shape is empty).
func FromFloat32s(data []float32, shape ...int) (*Array, error) {
	return fromSlice("from_float32s", data, shape, Float32)
}

// FromInt32s copies data into a new int32 array.
func FromInt32s(data []int32, shape ...int) (*Array, error) {
	return fromSlice("from_int32s", data, shape, Int32)
}

// FromUint32s copies data into a new uint32 array.
func FromUint32s(data []uint32, shape ...int) (*Array, error) {
	return fromSlice("from_uint32s", data, shape, Uint32)
}

// FromBytes copies raw little-endian element bytes of type dt into a new array.
func FromBytes(data []byte, dt Dtype, shape ...int) (*Array, error) {
	return fromSlice("from_bytes", data, shape, dt)
}

// Scalar makes a 0-d array holding v converted to dt.
func Scalar(v float64, dt Dtype) (*Array, error) {
	var out C.gk_array
	if err := check("scalar", C.gk_array_scalar(&out, C.double(v), C.int(dt))); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

// Copy returns a new handle to the same array (it must be freed separately).
func (a *Array) Copy() (*Array, error) {
	if !a.valid() {
		return nil, errNil("copy")
	}
	var out C.gk_array
	if err := check("copy", C.gk_array_copy(&out, a.c)); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

func readInto[T any](a *Array, op string, dt Dtype) ([]T, error) {
	if !a.valid() {
		return nil, errNil(op)
	}
	out := make([]T, a.Size())
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	var zero T
	nbytes := len(out) * int(unsafe.Sizeof(zero))
	if err := check(op, C.gk_array_read(a.c, C.int(dt), p, C.size_t(nbytes))); err != nil {
		return nil, err
	}
	return out, nil
}

// Float32s evaluates a and returns its elements, converted to float32, in
// row-major order.
func (a *Array) Float32s() ([]float32, error) { return readInto[float32](a, "read_float32", Float32) }

// Float64s evaluates a and returns its elements converted to float64.
func (a *Array) Float64s() ([]float64, error) { return readInto[float64](a, "read_float64", Float64) }

// Int32s evaluates a and returns its elements converted to int32.
func (a *Array) Int32s() ([]int32, error) { return readInto[int32](a, "read_int32", Int32) }

// Uint32s evaluates a and returns its elements converted to uint32.
func (a *Array) Uint32s() ([]uint32, error) { return readInto[uint32](a, "read_uint32", Uint32) }

// Bools evaluates a and returns its elements as booleans.
func (a *Array) Bools() ([]bool, error) { return readInto[bool](a, "read_bool", Bool) }

// Item evaluates a one-element array and returns its value as float64.
func (a *Array) Item() (float64, error) {
	if a.Size() != 1 {
		return math.NaN(), &Error{Op: "item", Msg: fmt.Sprintf("array of shape %v is not a single element", a.Shape())}
	}
	v, err := a.Float64s()
	if err != nil {
		return math.NaN(), err
	}
	return v[0], nil
}

// Free releases every non-nil array given.
func Free(arrays ...*Array) {
	for _, a := range arrays {
		a.Free()
	}
}

func handles(op string, arrays []*Array) ([]C.gk_array, error) {
	hs := make([]C.gk_array, len(arrays))
	for i, a := range arrays {
		if !a.valid() {
			return nil, errNil(op)
		}
		hs[i] = a.c
	}
	return hs, nil
}

// Eval evaluates the arrays (and everything they depend on).
func Eval(arrays ...*Array) error {
	hs, err := handles("eval", arrays)
	if err != nil || len(hs) == 0 {
		return err
	}
	return check("eval", C.gk_eval(&hs[0], C.int(len(hs))))
}

// AsyncEval starts evaluating the arrays and returns at once.
func AsyncEval(arrays ...*Array) error {
	hs, err := handles("async_eval", arrays)
	if err != nil || len(hs) == 0 {
		return err
	}
	return check("async_eval", C.gk_async_eval(&hs[0], C.int(len(hs))))
}

// Synchronize waits until all scheduled work on the default stream is done.
func Synchronize() error { return check("synchronize", C.gk_synchronize()) }

// Version is the version of the linked MLX library.
func Version() string { return C.GoString(C.gk_version()) }
