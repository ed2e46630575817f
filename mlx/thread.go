package mlx

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
)

var (
	startOnce sync.Once
	work      chan func()
)

// errGoexit is returned when work run by Do called runtime.Goexit (for
// example t.Fatal from a test): the MLX thread is replaced and Do returns.
var errGoexit = errors.New("mlx: work on the MLX thread called runtime.Goexit")

func start() {
	startOnce.Do(func() {
		work = make(chan func())
		startWorker()
	})
}

// startWorker starts the goroutine that owns the MLX thread and waits until
// it is bound.
func startWorker() {
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: this thread is MLX's
		C.gk_bind_thread()
		applySelection()
		close(ready)
		for f := range work {
			f()
		}
	}()
	<-ready
}

// OnThread reports whether the caller is running on the MLX thread (inside Do).
func OnThread() bool { return C.gk_is_bound() != 0 }

// Do runs fn on the MLX thread and returns its error. It is safe to call from
// any number of goroutines at once; calls are served one at a time in arrival
// order. While the call waits for the thread (another call is running), a
// cancelled ctx gives up and returns ctx.Err() without running fn; once fn
// runs, it runs to the end (fn itself watches ctx to stop early). Inside fn,
// Do runs nested work directly. A panic in fn is recovered and returned as
// an error, so the MLX thread survives it.
func Do(ctx context.Context, fn func() error) error {
	start()
	if OnThread() {
		return protect(fn)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	job := func() {
		finished := false
		defer func() {
			if !finished {
				// fn called Goexit: this goroutine and its locked thread end.
				done <- errGoexit
				go startWorker()
			}
		}()
		done <- protect(fn)
		finished = true
	}
	select {
	case work <- job:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-done
}

// Call runs fn on the MLX thread as Do does and returns its value.
func Call[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	var out T
	err := Do(ctx, func() error {
		var err error
		out, err = fn()
		return err
	})
	return out, err
}

func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("mlx: panic on the MLX thread: %v\n%s", r, debug.Stack())
		}
	}()
	return fn()
}

func init() {
	// MLX's CUDA backend multiplies float32 matrices in TF32 (10-bit
	// mantissas) unless told otherwise, which puts float32 logits 1e-3 away
	// from the CPU's and from Hugging Face's. genkit's float32 means float32:
	// TF32 stays off unless the user sets MLX_ENABLE_TF32 (it does not affect
	// float16 or bfloat16 models).
	if _, set := os.LookupEnv("MLX_ENABLE_TF32"); !set {
		_ = os.Setenv("MLX_ENABLE_TF32", "0")
	}
}

// childBlockedSignals reports, as a bit set (1<<signo), which of the
// process-directed signals are blocked in a thread started from the calling
// one (see gk_bind_thread); all bits set when no thread could be started.
func childBlockedSignals() uint64 { return uint64(C.gk_child_blocked_signals()) }
