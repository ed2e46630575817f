package mlx

/*
#include <stdlib.h>
*/
import "C"

import "unsafe"

// CUDAOpsPerGraph is how many operations genkit lets MLX's CUDA backend
// record into one CUDA graph before it launches the graph (MLX reads it from
// MLX_MAX_OPS_PER_BUFFER; MLX's own default on CUDA is 20). A decode step of
// the default model is about 165 operations with the fused GPU blocks, so
// MLX's default launches about nine graphs a step; measured on an H200 in
// docs/benchmarks.md. A value the user set is kept.
const CUDAOpsPerGraph = "80"

// EnvOpsPerGraph is MLX's variable for the operations per command buffer
// (Metal) or CUDA graph (CUDA).
const EnvOpsPerGraph = "MLX_MAX_OPS_PER_BUFFER"

// applyBackendDefaults sets genkit's defaults for MLX's CUDA backend on the
// MLX thread, before anything is evaluated (MLX reads its variables once, at
// first use). They go into the C environment only, which MLX reads: Go's
// copy of the environment, which os/exec hands to child processes, stays as
// the user set it, so the peers `genkit bench` starts (mlx-lm, llama.cpp)
// run with their own defaults.
func applyBackendDefaults() {
	if GPUBackend() != "cuda" {
		return
	}
	name, value := C.CString(EnvOpsPerGraph), C.CString(CUDAOpsPerGraph)
	defer C.free(unsafe.Pointer(name))
	defer C.free(unsafe.Pointer(value))
	C.setenv(name, value, 0) // 0: a value already set (by the user) wins
}

// OpsPerGraph is the MLX_MAX_OPS_PER_BUFFER value MLX sees in this process
// ("" when unset, as on the CPU).
func OpsPerGraph() string {
	name := C.CString(EnvOpsPerGraph)
	defer C.free(unsafe.Pointer(name))
	if v := C.getenv(name); v != nil {
		return C.GoString(v)
	}
	return ""
}
