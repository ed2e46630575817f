package mlx

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// SetPrecompiledKernelDir sets the directory where genkit's CUDA kernels are kept
// once compiled (mlx/shim_ptx.cpp); the engine passes its cache dir's
// "kernels". With a directory set, NVRTC loaded (the CUDA backend) and
// GENKIT_KERNEL_CACHE not 0, each kernel variant is compiled once and
// launched precompiled in later processes; otherwise the kernels run through
// MLX's fast::cuda_kernel, which compiles them in every process.
// GENKIT_KERNEL_CACHE=DIR overrides dir. It needs no MLX thread.
func SetPrecompiledKernelDir(dir string) {
	cs := C.CString(dir)
	defer C.free(unsafe.Pointer(cs))
	C.gk_kernel_cache_set_dir(cs)
}

// PrecompiledKernelStats is what the kernel cache has done in this process.
type PrecompiledKernelStats struct {
	On        bool   // kernels run precompiled
	Why       string // "on", or why not
	Compiled  int    // variants compiled with NVRTC
	Loaded    int    // variants read from the cache directory
	Fallbacks int    // kernel calls run through MLX's cuda_kernel
}

// PrecompiledKernels reports the kernel cache's decision and counters.
func PrecompiledKernels() PrecompiledKernelStats {
	var why *C.char
	var compiled, loaded, fallbacks C.long
	on := C.gk_kernel_cache_status(&why, &compiled, &loaded, &fallbacks)
	defer C.free(unsafe.Pointer(why))
	return PrecompiledKernelStats{On: on == 1, Why: C.GoString(why), Compiled: int(compiled), Loaded: int(loaded), Fallbacks: int(fallbacks)}
}

// Kernel kinds for KernelSource.
const (
	KernelProduct   = 0 // dense product: vals M, NORM, GLU, HASBIAS, RES
	KernelQProduct  = 1 // quantized product: those and BITS
	KernelAttention = 2 // attention: HD, NH, NKV, QKNORM, TRAD
	// KernelTileProduct is the tiled dense product: M, NORM, GLU, HASBIAS,
	// RES, R (output rows a warp), XS (M * K).
	KernelTileProduct = 3
	// KernelTileQProduct is the tiled quantized product: those and BITS.
	KernelTileQProduct = 4
	// KernelBlock is the decoder block as one kernel: M, HD, NH, NKV,
	// QKNORM, TRAD, XS, QB, OB, DB (biases of q/k/v, output, down), R1, R3,
	// R5 (rows a warp of the q/k/v, output and down products).
	KernelBlock = 5
	// KernelQBlock is the quantized block kernel: those and BITS.
	KernelQBlock = 6
)

// KernelSource is the standalone CUDA source genkit compiles for one kernel
// variant (booleans as 0/1 in vals); nameless names its function
// genkit_kernel instead of the hashed name the cache uses.
func KernelSource(kind int, dt Dtype, vals []int, nameless bool) (string, error) {
	cv := make([]C.int, len(vals)+1)
	for i, v := range vals {
		cv[i] = C.int(v)
	}
	var out *C.char
	nl := C.int(0)
	if nameless {
		nl = 1
	}
	rc := C.gk_kernel_source(&out, C.int(kind), C.int(dt), &cv[0], C.int(len(vals)), nl)
	defer C.free(unsafe.Pointer(out))
	if rc != 0 {
		return "", &Error{Op: "kernel_source", Msg: C.GoString(out)}
	}
	return C.GoString(out), nil
}

// kernelCacheDecide is the cache's decision for the given findings (env
// nil: GENKIT_KERNEL_CACHE unset). For tests.
func kernelCacheDecide(env *string, dir string, nvrtc, cc, dirOK bool) (bool, string) {
	var ce *C.char
	if env != nil {
		ce = C.CString(*env)
		defer C.free(unsafe.Pointer(ce))
	}
	cd := C.CString(dir)
	defer C.free(unsafe.Pointer(cd))
	b := func(v bool) C.int {
		if v {
			return 1
		}
		return 0
	}
	var why *C.char
	on := C.gk_kernel_cache_decide(ce, cd, b(nvrtc), b(cc), b(dirOK), &why)
	defer C.free(unsafe.Pointer(why))
	return on == 1, C.GoString(why)
}

// kernelCacheStore writes a cache file. For tests.
func kernelCacheStore(dir, key string, data []byte) error {
	cd, ck := C.CString(dir), C.CString(key)
	defer C.free(unsafe.Pointer(cd))
	defer C.free(unsafe.Pointer(ck))
	var msg *C.char
	p := C.CBytes(data)
	defer C.free(p)
	if C.gk_kernel_cache_store(cd, ck, p, C.size_t(len(data)), &msg) != 0 {
		defer C.free(unsafe.Pointer(msg))
		return fmt.Errorf("kernel cache store %s: %s", key, C.GoString(msg))
	}
	return nil
}

// kernelCacheLoad reads a cache file; ok is false when it is missing or
// damaged. For tests.
func kernelCacheLoad(dir, key string) ([]byte, bool) {
	cd, ck := C.CString(dir), C.CString(key)
	defer C.free(unsafe.Pointer(cd))
	defer C.free(unsafe.Pointer(ck))
	var data *C.char
	var n C.size_t
	if C.gk_kernel_cache_load(cd, ck, &data, &n) != 1 {
		return nil, false
	}
	defer C.free(unsafe.Pointer(data))
	return C.GoBytes(unsafe.Pointer(data), C.int(n)), true
}

// kernelCacheObtainFake loads source's kernel from dir or "compiles" it
// with a fake compiler (that fails when fail is set); a fake driver refuses
// binaries that contain refuse (when not ""). For tests.
func kernelCacheObtainFake(dir, key, source string, fail bool, refuse string) (bin string, compiled bool, err error) {
	cd, ck, cs, cr := C.CString(dir), C.CString(key), C.CString(source), C.CString(refuse)
	defer C.free(unsafe.Pointer(cd))
	defer C.free(unsafe.Pointer(ck))
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(cr))
	f := C.int(0)
	if fail {
		f = 1
	}
	var c C.int
	var cb, msg *C.char
	rc := C.gk_kernel_cache_obtain_fake(cd, ck, cs, f, cr, &c, &cb, &msg)
	defer C.free(unsafe.Pointer(cb))
	defer C.free(unsafe.Pointer(msg))
	if rc != 0 {
		return "", false, errors.New(C.GoString(msg))
	}
	return C.GoString(cb), c == 1, nil
}

// sha256Hex is the shim's SHA-256 of data in hex. For tests.
func sha256Hex(data []byte) string {
	var out [65]C.char
	p := C.CBytes(data)
	defer C.free(p)
	C.gk_sha256_hex(p, C.size_t(len(data)), &out[0])
	return C.GoString(&out[0])
}
