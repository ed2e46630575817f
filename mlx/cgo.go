package mlx

// The include and library directories of the MLX backend wheel and the
// rpath are passed by the Makefile (CGO_CPPFLAGS / CGO_LDFLAGS).

/*
#cgo CXXFLAGS: -std=c++20 -O2
#cgo LDFLAGS: -lmlx -lstdc++ -ldl
#include "shim.h"
*/
import "C"
