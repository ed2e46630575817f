package mlx

import "fmt"

// Dtype is an MLX element type.
type Dtype int

// The element types MLX supports; values match the C layer's codes.
const (
	Bool Dtype = iota
	Uint8
	Uint16
	Uint32
	Uint64
	Int8
	Int16
	Int32
	Int64
	Float16
	Float32
	Float64
	Bfloat16
	Complex64
)

var dtypeNames = [...]string{"bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
	"int32", "int64", "float16", "float32", "float64", "bfloat16", "complex64"}

var dtypeSizes = [...]int{1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 2, 8}

func (d Dtype) String() string {
	if d < 0 || int(d) >= len(dtypeNames) {
		return "invalid"
	}
	return dtypeNames[d]
}

// Size is the number of bytes of one element.
func (d Dtype) Size() int {
	if d < 0 || int(d) >= len(dtypeSizes) {
		return 0
	}
	return dtypeSizes[d]
}

// IsFloat reports whether d is a floating-point type.
func (d Dtype) IsFloat() bool { return d == Float16 || d == Float32 || d == Float64 || d == Bfloat16 }

// ParseFloatDtype reads the name of a floating-point type a model can compute
// in: float32, float16 or bfloat16 (also fp32, f32, fp16, f16, bf16).
func ParseFloatDtype(s string) (Dtype, error) {
	switch s {
	case "float32", "fp32", "f32":
		return Float32, nil
	case "float16", "fp16", "f16":
		return Float16, nil
	case "bfloat16", "bf16":
		return Bfloat16, nil
	}
	return 0, fmt.Errorf("dtype %q: want float32, float16 or bfloat16", s)
}
