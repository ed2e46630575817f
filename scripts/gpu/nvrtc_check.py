#!/usr/bin/env python3
"""Compile genkit's CUDA kernel bodies (mlx/shim.cpp) with NVRTC, without a GPU.

MLX's fast::cuda_kernel wraps each body in a __global__ function whose
parameters are the inputs (with <name>_shape where the body uses it), the
outputs and the template values as constexprs. This script builds the same
wrapper for every instantiation the engine uses and compiles it for sm_90,
so syntax and type errors show up here instead of on the GPU machine.

Usage: python3 scripts/gpu/nvrtc_check.py NVRTC_DIR
NVRTC_DIR holds the unpacked nvidia-cuda-nvrtc, -runtime and -cccl wheels
(x/nvidia/...); pip download them once. Not part of CI.
"""
import ctypes, os, re, sys

root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/nvrtc/x/nvidia"
src = open(os.path.join(os.path.dirname(__file__), "..", "..", "mlx", "shim.cpp")).read()
raw = dict(re.findall(r'const char\* (k\w+) = R"\((.*?)\)";', src, re.S))

header = r'''
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda/std/array>
#include <cuda/std/limits>
#include <cuda/std/cstdint>
using cuda::std::uint32_t; using cuda::std::int32_t;

namespace mlx { namespace core { namespace cu {
using Shape = cuda::std::array<int32_t, 8>;
'''

def kernel(name, inputs, body, targs):
    p = []
    for n, t in inputs:
        p.append(f"const {t}* {n}")
        if n + "_shape" in body:
            p.append(f"const __grid_constant__ Shape {n}_shape")
    out_t = dict(targs).get("T", "float")
    p.append(f"{out_t}* y")
    consts = "".join(
        f"  using {k} = {v};\n" if isinstance(v, str) else
        f"  constexpr {'bool' if isinstance(v, bool) else 'int'} {k} = {str(v).lower()};\n"
        for k, v in targs)
    return f"__global__ void {name}({', '.join(p)}) {{\n{consts}{body}\n}}\n"

prod_dense = raw["kDenseKDim"] + raw["kProductPrologue"] + raw["kDenseBody"] + raw["kProductEpilogue"]
prod_quant = raw["kQuantKDim"] + raw["kProductPrologue"] + raw["kQuantBody"] + raw["kProductEpilogue"]
kernels = []
i = 0
for T in ["float", "__half", "__nv_bfloat16"]:
    for M in [1, 2, 8]:
        for norm, glu, hb, res in [(0, 0, 0, 0), (1, 0, 1, 0), (0, 0, 0, 1), (1, 1, 0, 0)]:
            t = [("T", T), ("M", M), ("NORM", bool(norm)), ("GLU", bool(glu)), ("HASBIAS", bool(hb)), ("RES", bool(res))]
            kernels.append(kernel(f"k{i}", [("x", T), ("prm", "float"), ("nw", "float"), ("w", T), ("bias", T), ("r", T)], prod_dense, t)); i += 1
            for bits in [4, 8]:
                kernels.append(kernel(f"k{i}", [("x", T), ("prm", "float"), ("nw", "float"), ("w", "uint32_t"), ("scales", T), ("biases", T), ("bias", T), ("r", T)], prod_quant, t + [("BITS", bits)])); i += 1
    for hd, qk, trad in [(64, False, False), (128, True, True), (8, False, True), (16, True, False)]:
        t = [("T", T), ("HD", hd), ("NH", 9), ("NKV", 3), ("QKNORM", qk), ("TRAD", trad)]
        kernels.append(kernel(f"k{i}", [("qkv", T), ("prm", "float"), ("qn", "float"), ("kn", "float"), ("invf", "float"), ("meta", "int32_t"), ("kc", T), ("vc", T)], raw["kAttnSource"], t)); i += 1
code = header + "".join(kernels) + "}}}\n"

lib = ctypes.CDLL(os.path.join(root, "cuda_nvrtc/lib/libnvrtc.so.12"))
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), code.encode(), b"genkit.cu", 0, None, None) == 0
opts = [b"--gpu-architecture=compute_90", b"-std=c++17", b"-default-device",
        b"-I" + os.path.join(root, "cuda_runtime/include").encode(), b"-I" + os.path.join(root, "cuda_cccl/include").encode()]
arr = (ctypes.c_char_p * len(opts))(*opts)
rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
n = ctypes.c_size_t()
lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
log = ctypes.create_string_buffer(n.value)
lib.nvrtcGetProgramLog(prog, log)
print(log.value.decode()[-6000:])
print(f"{len(kernels)} kernels:", "compiled" if rc == 0 else f"FAILED (nvrtc {rc})")
sys.exit(0 if rc == 0 else 1)
