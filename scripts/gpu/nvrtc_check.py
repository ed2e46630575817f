#!/usr/bin/env python3
"""Compile genkit's CUDA kernel bodies (mlx/shim.cpp) with NVRTC, without a GPU.

MLX's fast::cuda_kernel wraps each body in a __global__ function whose
parameters are the inputs (with <name>_shape where the body uses it), the
outputs and the template values as constexprs. This script builds the same
wrapper for every instantiation the engine uses and compiles it for sm_90,
so syntax and type errors show up here instead of on the GPU machine.

It then checks the standalone sources genkit compiles itself at run time
(mlx/shim_ptx.cpp: the same bodies with the shapes as int arguments, run
through mx::fast::precompiled_cuda_kernel): the same instantiations are
written out by the mlx package's TestKernelSourceDump (go test, so the CGO
environment of the MLX wheel must be set: source /tmp/env.sh) and each is
compiled on its own to an sm_90 cubin with the options shim_ptx.cpp passes
(the architecture and include paths only), with the CUDA runtime headers
and without CCCL's.

Usage: python3 scripts/gpu/nvrtc_check.py [NVRTC_DIR] [--no-standalone]
NVRTC_DIR holds the unpacked nvidia-cuda-nvrtc, -runtime and -cccl wheels
(x/nvidia/...); pip download them once. Not part of CI.
"""
import ctypes, json, os, re, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor

args = [a for a in sys.argv[1:] if not a.startswith("--")]
standalone = "--no-standalone" not in sys.argv

root = args[0] if args else "/tmp/nvrtc/x/nvidia"
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
tile_head = raw["kTileHead"] + raw["kTileShared"] + raw["kTilePrologue"]
tile_dense = raw["kDenseKDim"] + tile_head + raw["kTileDenseBody"] + raw["kTileEpilogue"]
tile_quant = raw["kQuantKDim"] + tile_head + raw["kTileQuantBody"] + raw["kTileEpilogue"]
attention = raw["kAttnConsts"] + raw["kAttnItem"] + raw["kAttnBody"]
kernels = []
spec = []  # the same instantiations for TestKernelSourceDump: kind 0 dense, 1 quantized, 2 attention
i = 0
for T, dt in [("float", "float32"), ("__half", "float16"), ("__nv_bfloat16", "bfloat16")]:
    for M in [1, 2, 8]:
        for norm, glu, hb, res in [(0, 0, 0, 0), (1, 0, 1, 0), (0, 0, 0, 1), (1, 1, 0, 0)]:
            t = [("T", T), ("M", M), ("NORM", bool(norm)), ("GLU", bool(glu)), ("HASBIAS", bool(hb)), ("RES", bool(res))]
            kernels.append(kernel(f"k{i}", [("x", T), ("prm", "float"), ("nw", "float"), ("w", T), ("bias", T), ("r", T)], prod_dense, t)); i += 1
            spec.append({"kind": 0, "dtype": dt, "vals": [M, norm, glu, hb, res]})
            for bits in [4, 8]:
                kernels.append(kernel(f"k{i}", [("x", T), ("prm", "float"), ("nw", "float"), ("w", "uint32_t"), ("scales", T), ("biases", T), ("bias", T), ("r", T)], prod_quant, t + [("BITS", bits)])); i += 1
                spec.append({"kind": 1, "dtype": dt, "vals": [M, norm, glu, hb, res, bits]})
            # The tiled kernels: R rows a warp, x of width 576 in shared memory.
            for R in ([1] if glu else [1, 2]):
                tt = t + [("R", R), ("XS", M * 576)]
                kernels.append(kernel(f"k{i}", [("x", T), ("prm", "float"), ("nw", "float"), ("w", T), ("bias", T), ("r", T)], tile_dense, tt)); i += 1
                spec.append({"kind": 3, "dtype": dt, "vals": [M, norm, glu, hb, res, R, M * 576]})
                for bits in [4, 8]:
                    kernels.append(kernel(f"k{i}", [("x", T), ("prm", "float"), ("nw", "float"), ("w", "uint32_t"), ("scales", T), ("biases", T), ("bias", T), ("r", T)], tile_quant, tt + [("BITS", bits)])); i += 1
                    spec.append({"kind": 4, "dtype": dt, "vals": [M, norm, glu, hb, res, R, M * 576, bits]})
    for hd, qk, trad in [(64, False, False), (128, True, True), (8, False, True), (16, True, False)]:
        t = [("T", T), ("HD", hd), ("NH", 9), ("NKV", 3), ("QKNORM", qk), ("TRAD", trad)]
        kernels.append(kernel(f"k{i}", [("qkv", T), ("prm", "float"), ("qn", "float"), ("kn", "float"), ("invf", "float"), ("meta", "int32_t"), ("kc", T), ("vc", T)], attention, t)); i += 1
        spec.append({"kind": 2, "dtype": dt, "vals": [hd, 9, 3, int(qk), int(trad)]})
# The block kernel (kinds 5 and 6) runs only precompiled: its standalone
# sources only. Values: M, HD, NH, NKV, QKNORM, TRAD, XS, QB, OB, DB, R1,
# R3, R5 (then BITS).
for dt in ["float32", "float16", "bfloat16"]:
    for M in [1, 2]:
        for hd, nh, nkv, qk, trad, qb in [(64, 9, 3, 0, 1, 1), (128, 32, 8, 1, 0, 0)]:
            vals = [M, hd, nh, nkv, qk, trad, M * 1536, qb, 0, 0, 1 if qb else 2, 1, 2]
            spec.append({"kind": 5, "dtype": dt, "vals": vals})
            for bits in [4, 8]:
                spec.append({"kind": 6, "dtype": dt, "vals": vals + [bits]})
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
if rc != 0 or not standalone:
    sys.exit(0 if rc == 0 else 1)

# The standalone sources, each compiled on its own as shim_ptx.cpp does.
repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "spec.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, GENKIT_KERNEL_DUMP=path)
    r = subprocess.run(["go", "test", "-p", "1", "-count=1", "./mlx/", "-run", "^TestKernelSourceDump$"],
                       cwd=repo, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:])
        sys.exit("TestKernelSourceDump failed (is the CGO environment set? source /tmp/env.sh)")
    with open(path + ".out.json") as f:
        sources = json.load(f)
assert len(sources) == len(spec), (len(sources), len(spec))
# Only the runtime headers: the standalone sources need no CCCL.
incs = [b"--include-path=" + os.path.join(root, "cuda_runtime/include").encode()]

def compile_one(src):
    name = re.search(r"__global__ void (\w+)\(", src).group(1)
    p = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(p), src.encode(), (name + ".cu").encode(), 0, None, None) == 0
    o = [b"--gpu-architecture=sm_90"] + incs
    rc = lib.nvrtcCompileProgram(p, len(o), (ctypes.c_char_p * len(o))(*o))
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(p, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(p, log)
    size = ctypes.c_size_t()
    if rc == 0:
        lib.nvrtcGetCUBINSize(p, ctypes.byref(size))
    lib.nvrtcDestroyProgram(ctypes.byref(p))
    return name, rc, size.value, log.value.decode()

with ThreadPoolExecutor(max_workers=2) as pool:
    results = list(pool.map(compile_one, sources))
bad = [r for r in results if r[1] != 0 or r[2] == 0]
for name, rc, size, log in bad[:3]:
    print(f"{name}: nvrtc {rc}, cubin {size} bytes\n{log[-3000:]}")
names = {r[0] for r in results}
print(f"{len(results)} standalone sources ({len(names)} distinct names):",
      "compiled to sm_90 cubins" if not bad else f"{len(bad)} FAILED")
sys.exit(0 if not bad and len(names) == len(results) else 1)
