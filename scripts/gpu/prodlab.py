#!/usr/bin/env python3
"""prodlab: time genkit's tiled product kernels on their own, several builds
of them side by side, on the GPU machine.

Writes a CUDA program (lab.cu) from the standalone sources that
TestKernelSourceDump prints for each build's tree: for every shape below
it launches each build's kernel as mlx/shim.cpp's tile_plan would (rows a
warp, warps a block, blocks), cycles through enough copies of the weights
that they come from memory rather than L2, and prints microseconds a
launch, the weight bytes' rate, and whether each build's output equals the
first build's bit for bit, else how many outputs differ and by how much:
normwise (the largest difference over the largest output) and elementwise
(each difference over its output plus 1e-3). The elementwise figure is
large wherever an output is near zero: weights rounded to bfloat16 once (as
lab/mma-v2 makes them) give about 1-3 elementwise but 0.004 normwise on
these random shapes, float16 0.2-0.8 and 0.0005 (session 12, numpy), so a
wrong kernel shows as a normwise difference near 1.

  python3 scripts/gpu/prodlab.py OUT.cu LABEL=TREE [LABEL=TREE ...]
  nvcc -O3 -std=c++17 -arch=sm_90 -o lab OUT.cu && ./lab

TREE is a checkout (a `git worktree add` of another commit, say) whose mlx
package builds here; the program needs no other file on the GPU machine.
A shape whose grid tile_plan sizes larger than what is resident at once
runs a second time with the resident grid. A build whose source declares
MMAQ (session 11's tensor-core experiment, described in
docs/gpu/prodlab-2026-11-27-h200.txt) is launched a block a tile of 16
weight rows.
"""
import json, os, re, subprocess, sys, tempfile

# (label, kind, dtype, [M, NORM, GLU, HASBIAS, RES, R(, BITS)], N outputs, K); the
# template values TestKernelSourceDump takes add XS = M * K after R.
SHAPES = [
    ("4B qkv 4b", 4, "bfloat16", [1, 1, 0, 0, 0, 2, 4], 6144, 2560),
    ("4B o 4b", 4, "bfloat16", [1, 0, 0, 0, 1, 1, 4], 2560, 4096),
    ("4B gu 4b", 4, "bfloat16", [1, 1, 1, 0, 0, 1, 4], 9728, 2560),
    ("4B down 4b", 4, "bfloat16", [1, 0, 0, 0, 1, 1, 4], 2560, 9728),
    ("4B gu 4b R2", 4, "bfloat16", [1, 1, 1, 0, 0, 2, 4], 9728, 2560),
    ("4B down 4b R2", 4, "bfloat16", [1, 0, 0, 0, 1, 2, 4], 2560, 9728),
    ("4B o 4b R2", 4, "bfloat16", [1, 0, 0, 0, 1, 2, 4], 2560, 4096),
    ("4B qkv 4b R4", 4, "bfloat16", [1, 1, 0, 0, 0, 4, 4], 6144, 2560),
    ("4B qkv 4b M2", 4, "bfloat16", [2, 1, 0, 0, 0, 2, 4], 6144, 2560),
    ("4B gu 4b M2", 4, "bfloat16", [2, 1, 1, 0, 0, 1, 4], 9728, 2560),
    ("4B down 4b M2", 4, "bfloat16", [2, 0, 0, 0, 1, 1, 4], 2560, 9728),
    ("4B qkv 4b M8", 4, "bfloat16", [8, 1, 0, 0, 0, 2, 4], 6144, 2560),
    ("4B qkv 4b f16", 4, "float16", [1, 1, 0, 0, 0, 2, 4], 6144, 2560),
    ("4B qkv bf16", 3, "bfloat16", [1, 1, 0, 0, 0, 2], 6144, 2560),
    ("4B gu bf16", 3, "bfloat16", [1, 1, 1, 0, 0, 1], 9728, 2560),
    ("4B down bf16", 3, "bfloat16", [1, 0, 0, 0, 1, 1], 2560, 9728),
    ("135M qkv 4b f32", 4, "float32", [1, 1, 0, 0, 0, 1, 4], 960, 576),
    ("135M gu 4b f32", 4, "float32", [1, 1, 1, 0, 0, 1, 4], 1536, 576),
    ("135M down 4b f32", 4, "float32", [1, 0, 0, 0, 1, 1, 4], 576, 1536),
    # The default GGUF on the GPU: 4-bit weights, float16 activations.
    ("135M qkv 4b f16", 4, "float16", [1, 1, 0, 0, 0, 1, 4], 960, 576),
    ("135M gu 4b f16", 4, "float16", [1, 1, 1, 0, 0, 1, 4], 1536, 576),
    ("135M down 4b f16", 4, "float16", [1, 0, 0, 0, 1, 1, 4], 576, 1536),
    ("135M gu 4b f16 M2", 4, "float16", [2, 1, 1, 0, 0, 1, 4], 1536, 576),
    ("135M gu 4b f16 M8", 4, "float16", [8, 1, 1, 0, 0, 1, 4], 1536, 576),
]
CT = {"bfloat16": "__nv_bfloat16", "float32": "float", "float16": "__half"}
EL = {"bfloat16": 2, "float32": 4, "float16": 2}


def dump(tree):
    spec = [{"kind": k, "dtype": d, "vals": v[:6] + [v[0] * kk] + v[6:]} for _, k, d, v, _, kk in SHAPES]
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "spec.json")
        json.dump(spec, open(p, "w"))
        env = dict(os.environ, GENKIT_KERNEL_DUMP=p)
        subprocess.run(["go", "test", "./mlx", "-run", "^TestKernelSourceDump$", "-count=1"], cwd=tree, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        return json.load(open(p + ".out.json"))


def main():
    args = sys.argv[1:]
    out, builds = args[0], [a.split("=", 1) for a in args[1:]]
    srcs = {}  # label -> list of sources (per shape)
    for label, tree in builds:
        srcs[label] = dump(tree)
    labels = list(srcs)
    code = []
    for bi, label in enumerate(labels):
        for si, s in enumerate(srcs[label]):
            name = re.search(r'__global__ void (\w+)\(', s).group(1)
            s = s.replace(name, f"lab_{bi}_{si}")
            code.append(s)
    head = ["#include <cstdio>", "#include <cstdlib>", "#include <cstring>", "#include <cmath>", "#include <vector>", "#include <cuda_runtime.h>",
            "#include <cuda_fp16.h>", "#include <cuda_bf16.h>"]

    shp = []
    for si, (name, kind, dt, v, n, k) in enumerate(SHAPES):
        quant = kind == 4
        shp.append('{"%s", %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d}' % (
            name, int(quant), EL[dt], v[0], v[1], v[2], v[4], v[5], n, k, v[6] if quant else 0, int(dt == "float16")))
    launch = []
    # Whether each build's kernel takes the tensor-core path (its grid is a
    # block a tile of 16 weight rows, 8 with GLU).
    mma = [int("MMAQ" in srcs[l][si] and sh[1] == 4 and sh[2] != "float32" and sh[3][0] <= 8 and sh[3][6] == 4)
           for l in labels for si, sh in enumerate(SHAPES)]
    for bi in range(len(labels)):
        for si, (name, kind, dt, v, n, k) in enumerate(SHAPES):
            t = CT[dt]
            if kind == 4:
                call = (f"lab_{bi}_{si}<<<g, b>>>(({t}*)x, prm, nw, (const uint32_t*)w, ({t}*)sc, ({t}*)bi, ({t}*)bias, "
                        f"({t}*)r, ({t}*)y, nw0, nw1, ns0, ns1)")
            else:
                call = f"lab_{bi}_{si}<<<g, b>>>(({t}*)x, prm, nw, ({t}*)w, ({t}*)bias, ({t}*)r, ({t}*)y, nw0, nw1)"
            launch.append(f"    case {bi * len(SHAPES) + si}: {call}; break;")
    kernels = ", ".join(f"(const void*)lab_{bi}_{si}" for bi in range(len(labels)) for si in range(len(SHAPES)))
    labs = ", ".join('"%s"' % l for l in labels)
    main = LAB_MAIN.replace("@NB@", str(len(labels))).replace("@NS@", str(len(SHAPES)))
    body = ("\n".join(head) + "\n" + "\n".join(code) + "\n" + LAB_TABLE % (",\n  ".join(shp), labs, "\n".join(launch), kernels)
            + "static const int mma[] = {%s};\n" % ", ".join(map(str, mma)) + main)
    open(out, "w").write(body)
    print(f"{out}: {len(labels)} builds x {len(SHAPES)} shapes: {', '.join(labels)}")


LAB_TABLE = r"""
struct Shape { const char* name; int quant, elem, M, norm, glu, res, R, N, K, bits, f16; };
static Shape shapes[] = {
  %s
};
static const char* builds[] = {%s};
static void launch(int id, dim3 g, dim3 b, void* x, const float* prm, const float* nw, const void* w, const void* sc,
                   const void* bi, const void* bias, const void* r, void* y, int nw0, int nw1, int ns0, int ns1) {
  switch (id) {
%s
  }
}
// occupancy: blocks of that many threads of kernel id a multiprocessor holds at once.
static const void* kernels[] = {%s};
static int occupancy(int id, int threads) {
  int n = 0;
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernels[id], threads, 0);
  return n;
}
"""

LAB_MAIN = r"""
#define CK(e) do { cudaError_t err_ = (e); if (err_ != cudaSuccess) { printf("CUDA %s at %d: %s\n", #e, __LINE__, cudaGetErrorString(err_)); exit(1); } } while (0)
// Random 32-bit words (packed quantized values).
__global__ void fill(unsigned* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    unsigned v = (unsigned)i * 2654435761u ^ seed; v ^= v >> 13; v *= 0x5bd1e995u; v ^= v >> 15;
    p[i] = v;
  }
}
// Values in [lo, hi) as float32 (elem 4), float16 (elem 3) or bfloat16 (elem 2).
__global__ void fillv(void* p, size_t n, int elem, unsigned seed, float lo, float hi) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    unsigned v = (unsigned)i * 2654435761u ^ seed; v ^= v >> 13; v *= 0x5bd1e995u; v ^= v >> 15;
    float f = lo + (hi - lo) * (v & 0xffffff) / 16777216.f;
    if (elem == 4) ((float*)p)[i] = f; else if (elem == 3) ((__half*)p)[i] = __float2half(f); else ((__nv_bfloat16*)p)[i] = __float2bfloat16(f);
  }
}
int main() {
  const int NB = @NB@, NS = @NS@;
  int sm = 0; CK(cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, 0));
  cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0));
  printf("# prodlab on %s, %d SMs; us a launch (median of 5 runs of 50), weight GB/s, output == %s's\n", prop.name, sm, builds[0]);
  for (int si = 0; si < NS; ++si) {
    const Shape& s = shapes[si];
    const int NW = s.glu ? 2 * s.N : s.N;
    const size_t wbytes = s.quant ? (size_t)NW * s.K * s.bits / 8 : (size_t)NW * s.K * s.elem;
    const int groups = s.quant ? s.K / 64 : 0;
    const size_t sbytes = (size_t)NW * groups * s.elem;
    const size_t per = wbytes + 2 * sbytes;
    int copies = (int)((512ull << 20) / per) + 1; if (copies > 16) copies = 16; if (copies < 2) copies = 2;
    std::vector<void*> W(copies), SC(copies), BI(copies);
    for (int c = 0; c < copies; ++c) {
      CK(cudaMalloc(&W[c], wbytes));
      if (s.quant) fill<<<1024, 256>>>((unsigned*)W[c], wbytes / 4, 17 + c);
      if (s.quant) {
        CK(cudaMalloc(&SC[c], sbytes)); CK(cudaMalloc(&BI[c], sbytes));
        fillv<<<256, 256>>>(SC[c], (size_t)NW * groups, s.f16 ? 3 : s.elem, 5 + c, 0.005f, 0.02f);
        fillv<<<256, 256>>>(BI[c], (size_t)NW * groups, s.f16 ? 3 : s.elem, 9 + c, -0.15f, -0.05f);
      }
    }
    if (!s.quant) for (int c = 0; c < copies; ++c) fillv<<<1024, 256>>>(W[c], wbytes / s.elem, s.f16 ? 3 : s.elem, 31 + c, -0.05f, 0.05f);
    void *x, *bias, *r, *y, *y0; float *prm, *nw;
    CK(cudaMalloc(&x, (size_t)s.M * s.K * s.elem)); fillv<<<64, 256>>>(x, (size_t)s.M * s.K, s.f16 ? 3 : s.elem, 3, -2.f, 2.f);
    CK(cudaMalloc(&nw, s.K * 4)); fillv<<<64, 256>>>(nw, s.K, 4, 4, 0.8f, 1.2f);
    CK(cudaMalloc(&prm, 4)); float eps = 1e-6f; CK(cudaMemcpy(prm, &eps, 4, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&bias, s.N * s.elem)); fillv<<<64, 256>>>(bias, s.N, s.f16 ? 3 : s.elem, 6, -0.1f, 0.1f);
    CK(cudaMalloc(&r, (size_t)s.M * s.N * s.elem)); fillv<<<64, 256>>>(r, (size_t)s.M * s.N, s.f16 ? 3 : s.elem, 7, -1.f, 1.f);
    const size_t ybytes = (size_t)s.M * s.N * s.elem;
    CK(cudaMalloc(&y, ybytes)); CK(cudaMalloc(&y0, ybytes));
    std::vector<char> h0(ybytes), h1(ybytes);
    const int tiles = (s.N + s.R - 1) / s.R;
    const int warps = tiles >= 8 * sm ? 8 : 4;
    int plan = (tiles + warps - 1) / warps; if (plan > sm * (32 / warps)) plan = sm * (32 / warps);
    CK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    for (int run = 0; run < 2 * NB; ++run) {
      const int bi = run / 2, id = bi * NS + si;
      const int occ = occupancy(id, mma[id] ? 256 : warps * 32);
      // run 0: tile_plan's grid; run 1: no more blocks than are resident at once.
      int blocks = plan;
      dim3 b(warps * 32);
      if (mma[id]) { const int mt = (s.N + (s.glu ? 7 : 15)) / (s.glu ? 8 : 16); blocks = mt < 4 * sm ? mt : 4 * sm; b = dim3(256); }
      if (run % 2 == 1) { if (blocks > occ * sm) blocks = occ * sm; else continue; }
      dim3 g(blocks);
      CK(cudaMemset(y, 0, ybytes));
      launch(id, g, b, x, prm, nw, W[0], SC[0], BI[0], bias, r, y, NW, s.quant ? s.K * s.bits / 32 : s.K, NW, groups);
      CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(run == 0 ? h0.data() : h1.data(), y, ybytes, cudaMemcpyDeviceToHost));
      double dmax = 0, amax = 0, dabs = 0;
      size_t ndiff = 0;
      if (run > 0) for (size_t i = 0; i < ybytes / s.elem; ++i) {
        float a, c;
        if (s.elem == 4) { a = ((float*)h0.data())[i]; c = ((float*)h1.data())[i]; }
        else if (s.f16) { a = __half2float(((__half*)h0.data())[i]); c = __half2float(((__half*)h1.data())[i]); }
        else { unsigned ua = ((unsigned short*)h0.data())[i] << 16, uc = ((unsigned short*)h1.data())[i] << 16; memcpy(&a, &ua, 4); memcpy(&c, &uc, 4); }
        const double dd = fabs((double)a - c) / (fabs((double)a) + 1e-3); if (dd > dmax) dmax = dd;
        amax = fmax(amax, fabs((double)a)); dabs = fmax(dabs, fabs((double)a - c)); ndiff += a != c;
      }
      float runs[5];
      for (int rep = 0; rep < 5; ++rep) {
        CK(cudaEventRecord(e0));
        for (int it = 0; it < 50; ++it) {
          const int c = (rep * 50 + it) % copies;
          launch(id, g, b, x, prm, nw, W[c], SC[c], BI[c], bias, r, y, NW, s.quant ? s.K * s.bits / 32 : s.K, NW, groups);
        }
        CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
        float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); runs[rep] = ms * 1000.f / 50;
      }
      for (int i = 0; i < 5; ++i) for (int j = i + 1; j < 5; ++j) if (runs[j] < runs[i]) { float t = runs[i]; runs[i] = runs[j]; runs[j] = t; }
      printf("%-18s %-10s grid %4d x %d warps (%d resident)  %8.2f us  %7.1f GB/s  %s\n", s.name, builds[bi], blocks, warps,
             occ * sm, runs[2], per / (runs[2] * 1e3), dmax == 0 ? "same" : "DIFFERENT");
      if (dmax > 0)
        printf("  %zu of %zu outputs differ: normwise %.3g (largest difference over largest output), elementwise %.3g\n",
               ndiff, ybytes / s.elem, amax > 0 ? dabs / amax : dabs, dmax);
    }
    for (int c = 0; c < copies; ++c) { cudaFree(W[c]); if (s.quant) { cudaFree(SC[c]); cudaFree(BI[c]); } }
    cudaFree(x); cudaFree(nw); cudaFree(prm); cudaFree(bias); cudaFree(r); cudaFree(y); cudaFree(y0);
  }
  return 0;
}
"""

if __name__ == "__main__":
    main()
