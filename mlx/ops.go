package mlx

/*
#include "shim.h"
*/
import "C"

// call runs one shim op that produces one array, after checking its inputs.
func call(op string, f func(out *C.gk_array) C.int, inputs ...*Array) (*Array, error) {
	for _, a := range inputs {
		if !a.valid() {
			return nil, errNil(op)
		}
	}
	var out C.gk_array
	if err := check(op, f(&out)); err != nil {
		return nil, err
	}
	return wrap(out), nil
}

func unary(op string, code C.int, a *Array) (*Array, error) {
	return call(op, func(o *C.gk_array) C.int { return C.gk_unary(o, a.c, code) }, a)
}

func binary(op string, code C.int, a, b *Array) (*Array, error) {
	return call(op, func(o *C.gk_array) C.int { return C.gk_binary(o, a.c, b.c, code) }, a, b)
}

// Negative is -a.
func Negative(a *Array) (*Array, error) { return unary("negative", C.GK_NEGATIVE, a) }

// Exp is e^a element-wise.
func Exp(a *Array) (*Array, error) { return unary("exp", C.GK_EXP, a) }

// Log is the natural logarithm element-wise.
func Log(a *Array) (*Array, error) { return unary("log", C.GK_LOG, a) }

// Log1p is log(1+a) element-wise.
func Log1p(a *Array) (*Array, error) { return unary("log1p", C.GK_LOG1P, a) }

// Sigmoid is 1/(1+e^-a) element-wise.
func Sigmoid(a *Array) (*Array, error) { return unary("sigmoid", C.GK_SIGMOID, a) }

// Sqrt is the square root element-wise.
func Sqrt(a *Array) (*Array, error) { return unary("sqrt", C.GK_SQRT, a) }

// Rsqrt is 1/sqrt(a) element-wise.
func Rsqrt(a *Array) (*Array, error) { return unary("rsqrt", C.GK_RSQRT, a) }

// Abs is |a| element-wise.
func Abs(a *Array) (*Array, error) { return unary("abs", C.GK_ABS, a) }

// Tanh is the hyperbolic tangent element-wise.
func Tanh(a *Array) (*Array, error) { return unary("tanh", C.GK_TANH, a) }

// Square is a*a element-wise.
func Square(a *Array) (*Array, error) { return unary("square", C.GK_SQUARE, a) }

// Floor rounds down element-wise.
func Floor(a *Array) (*Array, error) { return unary("floor", C.GK_FLOOR, a) }

// IsNaN marks NaN elements.
func IsNaN(a *Array) (*Array, error) { return unary("isnan", C.GK_ISNAN, a) }

// IsInf marks infinite elements.
func IsInf(a *Array) (*Array, error) { return unary("isinf", C.GK_ISINF, a) }

// IsFinite marks elements that are neither NaN nor infinite.
func IsFinite(a *Array) (*Array, error) { return unary("isfinite", C.GK_ISFINITE, a) }

// LogicalNot negates a boolean array.
func LogicalNot(a *Array) (*Array, error) { return unary("logical_not", C.GK_LOGICAL_NOT, a) }

// Add is a+b with broadcasting.
func Add(a, b *Array) (*Array, error) { return binary("add", C.GK_ADD, a, b) }

// Subtract is a-b with broadcasting.
func Subtract(a, b *Array) (*Array, error) { return binary("subtract", C.GK_SUBTRACT, a, b) }

// Multiply is a*b with broadcasting.
func Multiply(a, b *Array) (*Array, error) { return binary("multiply", C.GK_MULTIPLY, a, b) }

// Divide is a/b with broadcasting.
func Divide(a, b *Array) (*Array, error) { return binary("divide", C.GK_DIVIDE, a, b) }

// Maximum is the element-wise maximum.
func Maximum(a, b *Array) (*Array, error) { return binary("maximum", C.GK_MAXIMUM, a, b) }

// Minimum is the element-wise minimum.
func Minimum(a, b *Array) (*Array, error) { return binary("minimum", C.GK_MINIMUM, a, b) }

// Power is a^b element-wise.
func Power(a, b *Array) (*Array, error) { return binary("power", C.GK_POWER, a, b) }

// Equal is a==b element-wise.
func Equal(a, b *Array) (*Array, error) { return binary("equal", C.GK_EQUAL, a, b) }

// NotEqual is a!=b element-wise.
func NotEqual(a, b *Array) (*Array, error) { return binary("not_equal", C.GK_NOT_EQUAL, a, b) }

// Less is a<b element-wise.
func Less(a, b *Array) (*Array, error) { return binary("less", C.GK_LESS, a, b) }

// LessEqual is a<=b element-wise.
func LessEqual(a, b *Array) (*Array, error) { return binary("less_equal", C.GK_LESS_EQUAL, a, b) }

// Greater is a>b element-wise.
func Greater(a, b *Array) (*Array, error) { return binary("greater", C.GK_GREATER, a, b) }

// GreaterEqual is a>=b element-wise.
func GreaterEqual(a, b *Array) (*Array, error) {
	return binary("greater_equal", C.GK_GREATER_EQUAL, a, b)
}

// LogicalAnd is a&&b element-wise.
func LogicalAnd(a, b *Array) (*Array, error) { return binary("logical_and", C.GK_LOGICAL_AND, a, b) }

// LogicalOr is a||b element-wise.
func LogicalOr(a, b *Array) (*Array, error) { return binary("logical_or", C.GK_LOGICAL_OR, a, b) }

// Matmul is the matrix product a@b (batched over leading axes).
func Matmul(a, b *Array) (*Array, error) { return binary("matmul", C.GK_MATMUL, a, b) }

// Addmm is alpha*(a@b) + beta*c.
func Addmm(c, a, b *Array, alpha, beta float32) (*Array, error) {
	return call("addmm", func(o *C.gk_array) C.int {
		return C.gk_addmm(o, c.c, a.c, b.c, C.float(alpha), C.float(beta))
	}, c, a, b)
}

// Where picks x where cond is true and y elsewhere.
func Where(cond, x, y *Array) (*Array, error) {
	return call("where", func(o *C.gk_array) C.int { return C.gk_where(o, cond.c, x.c, y.c) }, cond, x, y)
}

// AsType converts a to dtype dt.
func AsType(a *Array, dt Dtype) (*Array, error) {
	return call("astype", func(o *C.gk_array) C.int { return C.gk_astype(o, a.c, C.int(dt)) }, a)
}

func reduce(op string, code C.int, a *Array, keepDims bool, axes []int) (*Array, error) {
	ap, n := cints(axes)
	return call(op, func(o *C.gk_array) C.int { return C.gk_reduce(o, a.c, ap, n, cbool(keepDims), code) }, a)
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Sum adds over the given axes (all axes when none are given).
func Sum(a *Array, keepDims bool, axes ...int) (*Array, error) {
	return reduce("sum", C.GK_SUM, a, keepDims, axes)
}

// Mean averages over the given axes (all when none).
func Mean(a *Array, keepDims bool, axes ...int) (*Array, error) {
	return reduce("mean", C.GK_MEAN, a, keepDims, axes)
}

// Max is the maximum over the given axes (all when none).
func Max(a *Array, keepDims bool, axes ...int) (*Array, error) {
	return reduce("max", C.GK_MAX, a, keepDims, axes)
}

// Min is the minimum over the given axes (all when none).
func Min(a *Array, keepDims bool, axes ...int) (*Array, error) {
	return reduce("min", C.GK_MIN, a, keepDims, axes)
}

// Var is the (population) variance over the given axes (all when none).
func Var(a *Array, keepDims bool, axes ...int) (*Array, error) {
	return reduce("var", C.GK_VAR, a, keepDims, axes)
}

// LogSumExp is log(sum(exp(a))) over the given axes, computed stably.
func LogSumExp(a *Array, keepDims bool, axes ...int) (*Array, error) {
	return reduce("logsumexp", C.GK_LOGSUMEXP, a, keepDims, axes)
}

// Any is true where any element over the axes is true (all axes when none).
func Any(a *Array, keepDims bool, axes ...int) (*Array, error) {
	return reduce("any", C.GK_ANY, a, keepDims, axes)
}

// All is true where every element over the axes is true (all axes when none).
func All(a *Array, keepDims bool, axes ...int) (*Array, error) {
	return reduce("all", C.GK_ALL, a, keepDims, axes)
}

// Argmax is the index of the largest element along axis.
func Argmax(a *Array, axis int, keepDims bool) (*Array, error) {
	return call("argmax", func(o *C.gk_array) C.int { return C.gk_argmax(o, a.c, C.int(axis), cbool(keepDims)) }, a)
}

// Argsort gives the indices that sort a along axis (ascending).
func Argsort(a *Array, axis int) (*Array, error) {
	return call("argsort", func(o *C.gk_array) C.int { return C.gk_argsort(o, a.c, C.int(axis)) }, a)
}

// Sort sorts a along axis (ascending).
func Sort(a *Array, axis int) (*Array, error) {
	return call("sort", func(o *C.gk_array) C.int { return C.gk_sort(o, a.c, C.int(axis)) }, a)
}

// Argpartition gives indices such that the kth element is in sorted position.
func Argpartition(a *Array, kth, axis int) (*Array, error) {
	return call("argpartition", func(o *C.gk_array) C.int { return C.gk_argpartition(o, a.c, C.int(kth), C.int(axis)) }, a)
}

// TopK returns the k largest values along axis (unordered).
func TopK(a *Array, k, axis int) (*Array, error) {
	return call("topk", func(o *C.gk_array) C.int { return C.gk_topk(o, a.c, C.int(k), C.int(axis)) }, a)
}

// Cumsum is the cumulative sum along axis.
func Cumsum(a *Array, axis int, reverse, inclusive bool) (*Array, error) {
	return call("cumsum", func(o *C.gk_array) C.int {
		return C.gk_cumsum(o, a.c, C.int(axis), cbool(reverse), cbool(inclusive))
	}, a)
}

// Softmax is exp(a)/sum(exp(a)) along axis; precise computes in float32 for
// half-precision inputs.
func Softmax(a *Array, axis int, precise bool) (*Array, error) {
	return call("softmax", func(o *C.gk_array) C.int { return C.gk_softmax(o, a.c, C.int(axis), cbool(precise)) }, a)
}

// RowProduct is Matmul(x, wT) for float32 x [..., K] and wT [K, N] computed
// on the CPU with one BLAS matrix-vector product per row of x: for the few
// rows of a decode step this reads the weights once, where a GEMM may pack
// them first. It needs RowProductAvailable.
func RowProduct(x, wT *Array) (*Array, error) {
	return call("row_product", func(o *C.gk_array) C.int { return C.gk_row_product(o, x.c, wT.c) }, x, wT)
}

// RowProductAvailable reports whether the process has a BLAS with
// cblas_sgemv for RowProduct.
func RowProductAvailable() bool { return C.gk_row_product_available() != 0 }

// QRowProduct is QuantizedMatmul(x, q, true) for 4- or 8-bit affine weights
// on the CPU, reading the packed weights once per row of x with SIMD (AVX2)
// where the processor has it. x is float32 [..., K].
func QRowProduct(x *Array, q *Quantized) (*Array, error) {
	if q == nil || (q.Bits != 4 && q.Bits != 8) {
		return nil, &Error{Op: "q_row_product", Msg: "needs 4- or 8-bit weights"}
	}
	return call("q_row_product", func(o *C.gk_array) C.int {
		return C.gk_q_row_product(o, x.c, q.Weight.c, q.Scales.c, q.Biases.c, C.int(q.GroupSize), C.int(q.Bits))
	}, x, q.Weight, q.Scales, q.Biases)
}
