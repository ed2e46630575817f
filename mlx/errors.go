package mlx

/*
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Error is an error raised inside MLX (a C++ exception) or by the binding.
type Error struct {
	Op  string // the operation that failed, e.g. "matmul"
	Msg string // MLX's message
}

func (e *Error) Error() string { return fmt.Sprintf("mlx %s: %s", e.Op, e.Msg) }

// ErrNotOnThread is returned by ops called outside Do.
var ErrNotOnThread = errors.New("mlx: called outside the MLX thread (use mlx.Do)")

// errNil is returned when an op receives a nil or freed array.
func errNil(op string) error { return &Error{Op: op, Msg: "nil or freed array argument"} }

// check turns a shim status into an error.
func check(op string, rc C.int) error {
	switch rc {
	case 0:
		return nil
	case 2:
		return fmt.Errorf("%s: %w", op, ErrNotOnThread)
	default:
		return &Error{Op: op, Msg: C.GoString(C.gk_error())}
	}
}
