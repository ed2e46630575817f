// shim.cpp implements shim.h over MLX's C++ API. Every entry point catches
// every C++ exception and turns it into a status code plus a message.
#include "shim.h"
#include "kernels.h"
#include "shim_try.h"

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <cstring>
#include <algorithm>
#include <immintrin.h>
#include <pthread.h>
#include <signal.h>
#include <exception>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/fast.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace {

thread_local bool g_bound = false;
thread_local std::string g_error;
std::atomic<int64_t> g_live{0};

inline mx::array& A(gk_array a) {
  if (a.ctx == nullptr) throw std::invalid_argument("mlx: nil array");
  return *static_cast<mx::array*>(a.ctx);
}

inline void put(gk_array* out, mx::array r) {
  out->ctx = new mx::array(std::move(r));
  g_live.fetch_add(1, std::memory_order_relaxed);
}

mx::Dtype to_dtype(int d) {
  switch (d) {
    case GK_BOOL: return mx::bool_;
    case GK_UINT8: return mx::uint8;
    case GK_UINT16: return mx::uint16;
    case GK_UINT32: return mx::uint32;
    case GK_UINT64: return mx::uint64;
    case GK_INT8: return mx::int8;
    case GK_INT16: return mx::int16;
    case GK_INT32: return mx::int32;
    case GK_INT64: return mx::int64;
    case GK_FLOAT16: return mx::float16;
    case GK_FLOAT32: return mx::float32;
    case GK_FLOAT64: return mx::float64;
    case GK_BFLOAT16: return mx::bfloat16;
    case GK_COMPLEX64: return mx::complex64;
  }
  throw std::invalid_argument("mlx: unknown dtype code " + std::to_string(d));
}

int from_dtype(mx::Dtype d) {
  switch (d.val()) {
    case mx::Dtype::Val::bool_: return GK_BOOL;
    case mx::Dtype::Val::uint8: return GK_UINT8;
    case mx::Dtype::Val::uint16: return GK_UINT16;
    case mx::Dtype::Val::uint32: return GK_UINT32;
    case mx::Dtype::Val::uint64: return GK_UINT64;
    case mx::Dtype::Val::int8: return GK_INT8;
    case mx::Dtype::Val::int16: return GK_INT16;
    case mx::Dtype::Val::int32: return GK_INT32;
    case mx::Dtype::Val::int64: return GK_INT64;
    case mx::Dtype::Val::float16: return GK_FLOAT16;
    case mx::Dtype::Val::float32: return GK_FLOAT32;
    case mx::Dtype::Val::float64: return GK_FLOAT64;
    case mx::Dtype::Val::bfloat16: return GK_BFLOAT16;
    case mx::Dtype::Val::complex64: return GK_COMPLEX64;
  }
  return -1;
}

mx::Shape shape_of(const int* s, int n) {
  mx::Shape out;
  for (int i = 0; i < n; i++) out.push_back(s[i]);
  return out;
}

std::vector<int> ints(const int* s, int n) { return std::vector<int>(s, s + n); }

std::optional<mx::array> opt(gk_array a, int has) {
  if (!has) return std::nullopt;
  return A(a);
}

using Meta = mx::GGUFMetaData;

struct Map {
  std::vector<std::string> keys;
  std::vector<std::optional<mx::array>> arrays;
  std::vector<std::string> meta_keys;
  std::vector<Meta> meta;
};

inline Map& M(gk_map m) {
  if (m.ctx == nullptr) throw std::invalid_argument("mlx: nil map");
  return *static_cast<Map*>(m.ctx);
}

// Quantized row kernels: y[n] = sum_g s[n,g] * (q[n,g,:] . x[g,:]) +
// b[n,g] * sum(x[g,:]) for MLX's affine layout (32/BITS values a uint32,
// lowest bits first), float32 scales and biases. An AVX2+FMA version is
// chosen at run time.
//
// The AVX2 kernel reads eight words (a block of 8*32/BITS weights) with one
// load; lane i holds word i, and value j of every lane is (v >> BITS*j) &
// mask: weights blk*B + (32/BITS)*i + j. x is permuted once per call into
// that order (xperm), so each value vector meets its eight x values with
// one load. NB output rows are computed together (NB*R independent FMA
// chains, each x load shared): one chain per row is bound by FMA latency.
constexpr int qblock(int bits) { return 8 * (32 / bits); }

// permute_x writes x [M, K] in the kernel's block order, and in lanes
// [M, K/B, 8] the sum of the x values each lane meets in a block (what the
// lane's bias multiplies).
template <int BITS>
void permute_x(const float* x, int M, int K, float* out, float* lanes) {
  constexpr int per = 32 / BITS, B = qblock(BITS);
  for (int m = 0; m < M; m++)
    for (int blk = 0; blk < K / B; blk++) {
      const float* xb = x + (size_t)m * K + (size_t)blk * B;
      float* ob = out + (size_t)m * K + (size_t)blk * B;
      float* lb = lanes + ((size_t)m * (K / B) + blk) * 8;
      for (int i = 0; i < 8; i++) {
        float t = 0;
        for (int j = 0; j < per; j++) {
          ob[j * 8 + i] = xb[per * i + j];
          t += xb[per * i + j];
        }
        lb[i] = t;
      }
    }
}

// qrows_avx2 computes y[r, n] for n in [n0, n1) and R rows of x (already
// permuted, with their lane sums xl). gs is 32, 64 or 128 and K a multiple
// of the block. Per block and lane: total += scale * (q . x) + bias * sum(x).
template <int BITS, int R, int NB>
__attribute__((target("avx2,fma"))) void qrows_avx2(
    const float* xp, const float* xl, int K, const uint32_t* w, const float* sc,
    const float* bi, int gs, float* y, int N, int n0, int n1) {
  constexpr int per = 32 / BITS, B = qblock(BITS);
  const int G = K / gs, words = K / per, blocks = K / B;
  const __m256i mask = _mm256_set1_epi32((1 << BITS) - 1);
  // With 4 bits and groups of 32 a block spans two groups: lanes 0-3 the
  // first, lanes 4-7 the second.
  const bool split = B > gs;
  int n = n0;
  for (; n + NB <= n1; n += NB) {
    __m256 total[R][NB];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 16
      for (int b = 0; b < NB; b++) total[r][b] = _mm256_setzero_ps();
    for (int blk = 0; blk < blocks; blk++) {
      __m256 acc[R][NB];
      __m256i v[NB];
#pragma GCC unroll 16
      for (int b = 0; b < NB; b++)
        v[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (size_t)(n + b) * words + (size_t)blk * 8));
#pragma GCC unroll 16
      for (int r = 0; r < R; r++)
#pragma GCC unroll 16
        for (int b = 0; b < NB; b++) acc[r][b] = _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int j = 0; j < per; j++) {
        __m256 xv[R];
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) xv[r] = _mm256_loadu_ps(xp + (size_t)r * K + (size_t)blk * B + j * 8);
#pragma GCC unroll 16
        for (int b = 0; b < NB; b++) {
          __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v[b], BITS * j), mask));
  #pragma GCC unroll 16
          for (int r = 0; r < R; r++) acc[r][b] = _mm256_fmadd_ps(q, xv[r], acc[r][b]);
        }
      }
      const int g = blk * B / gs;
      __m256 lv[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; r++) lv[r] = _mm256_loadu_ps(xl + ((size_t)r * blocks + blk) * 8);
#pragma GCC unroll 16
      for (int b = 0; b < NB; b++) {
        const float* sr = sc + (size_t)(n + b) * G;
        const float* br = bi + (size_t)(n + b) * G;
        __m256 sv = split ? _mm256_set_m128(_mm_set1_ps(sr[g + 1]), _mm_set1_ps(sr[g])) : _mm256_set1_ps(sr[g]);
        __m256 bv = split ? _mm256_set_m128(_mm_set1_ps(br[g + 1]), _mm_set1_ps(br[g])) : _mm256_set1_ps(br[g]);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
          total[r][b] = _mm256_fmadd_ps(acc[r][b], sv, total[r][b]);
          total[r][b] = _mm256_fmadd_ps(lv[r], bv, total[r][b]);
        }
      }
    }
#pragma GCC unroll 16
    for (int b = 0; b < NB; b++) {
#pragma GCC unroll 16
      for (int r = 0; r < R; r++) {
        __m128 lo = _mm256_castps256_ps128(total[r][b]), hi = _mm256_extractf128_ps(total[r][b], 1);
        lo = _mm_add_ps(lo, hi);
        lo = _mm_hadd_ps(lo, lo);
        lo = _mm_hadd_ps(lo, lo);
        y[(size_t)r * N + n + b] = _mm_cvtss_f32(lo);
      }
    }
  }
  if constexpr (NB > 1) {
    if (n < n1) qrows_avx2<BITS, R, 1>(xp, xl, K, w, sc, bi, gs, y, N, n, n1);
  }
}

template <int BITS>
void qrows_scalar(const float* x, const float* xs, int K, const uint32_t* w,
                  const float* sc, const float* bi, int gs, float* y, int n0, int n1) {
  constexpr int per = 32 / BITS;
  const int G = K / gs, words = K / per;
  for (int n = n0; n < n1; n++) {
    const uint32_t* wr = w + (size_t)n * words;
    float out = 0;
    for (int g = 0; g < G; g++) {
      float acc = 0;
      for (int k = g * gs; k < (g + 1) * gs; k++)
        acc += (float)((wr[k / per] >> (BITS * (k % per))) & ((1u << BITS) - 1)) * x[k];
      out += sc[(size_t)n * G + g] * acc + bi[(size_t)n * G + g] * xs[g];
    }
    y[n] = out;
  }
}

// dense_rows gives x's values in row-major order: x's own buffer when it is
// row-contiguous, else a copy into tmp (x is small: the rows of a decode
// step). Lets the row kernels take x without a Contiguous node in front.
const float* dense_rows(const mx::array& x, std::vector<float>& tmp) {
  if (x.flags().row_contiguous) return x.data<float>();
  tmp.resize(x.size());
  const float* base = x.data<float>();
  const int nd = x.ndim();
  std::vector<int> idx(nd, 0);
  for (size_t i = 0; i < x.size(); i++) {
    int64_t off = 0;
    for (int d = 0; d < nd; d++) off += (int64_t)idx[d] * x.strides(d);
    tmp[i] = base[off];
    for (int d = nd - 1; d >= 0; d--) {
      if (++idx[d] < x.shape(d)) break;
      idx[d] = 0;
    }
  }
  return tmp.data();
}

// Pool runs the parts of a CPU kernel on several cores: part 0 on the
// calling thread (MLX's CPU stream), the others on helper threads that spin
// briefly between calls (a decode step issues its kernels back to back) and
// then sleep. Size: GENKIT_CPU_THREADS, else the hardware's threads, at
// most 8 (a decode step of a small model is bandwidth-bound well before).
class Pool {
 public:
  static Pool& get() {
    static Pool* p = new Pool();  // never destroyed: helpers outlive main
    return *p;
  }
  int size() const { return (int)helpers_.size() + 1; }
  // run calls fn(part) for part in [0, parts), parts <= size(), and returns
  // when all are done.
  void run(int parts, const std::function<void(int)>& fn) {
    parts = std::min(parts, size());
    if (parts <= 1) {
      fn(0);
      return;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      fn_ = &fn;
      parts_ = parts;
      left_.store(parts - 1, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    fn(0);
    while (left_.load(std::memory_order_acquire) > 0) _mm_pause();
  }

 private:
  Pool() {
    int n = (int)std::thread::hardware_concurrency();
    if (const char* e = std::getenv("GENKIT_CPU_THREADS")) n = std::atoi(e);
    n = std::max(1, std::min(n, 8));
    for (int i = 1; i < n; i++) helpers_.emplace_back([this, i] { loop(i); });
    for (auto& t : helpers_) t.detach();
  }
  void loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g = gen_.load(std::memory_order_acquire);
      for (int spin = 0; g == seen && spin < 20000; spin++) {
        _mm_pause();
        g = gen_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return gen_.load(std::memory_order_acquire) != seen; });
        g = gen_.load(std::memory_order_acquire);
      }
      seen = g;
      const std::function<void(int)>* fn;
      int parts;
      {
        std::lock_guard<std::mutex> l(mu_);
        fn = fn_;
        parts = parts_;
      }
      if (id < parts) {
        (*fn)(id);
        left_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }
  std::vector<std::thread> helpers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> left_{0};
  const std::function<void(int)>* fn_ = nullptr;
  int parts_ = 0;
};

// split gives part p of [0, n) in parts pieces, boundaries multiples of 4.
inline std::pair<int, int> split(int n, int parts, int p) {
  int step = ((n + parts - 1) / parts + 3) / 4 * 4;
  return {std::min(n, p * step), std::min(n, (p + 1) * step)};
}

// parallel_parts is how many parts a kernel over n outputs of k inputs is
// worth splitting into.
inline int parallel_parts(int n, int k) { return (size_t)n * k >= (1 << 18) ? Pool::get().size() : 1; }

// qrow_compute is y [M, N] = x [M, K] @ dequantize(w)^T (see QRowProduct).
void qrow_compute(const float* xp, int M, int K, const uint32_t* wp, const float* sp, const float* bp, int gs,
                  int bits, int N, float* yp) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const int G = K / gs;
  const bool fast = avx2 && (gs == 32 || gs == 64 || gs == 128) && K % qblock(bits) == 0;
  // The scalar path's per-group sums of x (the AVX2 path sums per lane, xl).
  std::vector<float> xs;
  if (!fast) {
    xs.resize((size_t)M * G);
    for (int m = 0; m < M; m++)
      for (int g = 0; g < G; g++) {
        float t = 0;
        for (int k = g * gs; k < (g + 1) * gs; k++) t += xp[(size_t)m * K + k];
        xs[(size_t)m * G + g] = t;
      }
  }
  std::vector<float> xperm, xl;
  if (fast) {
    xperm.resize((size_t)M * K);
    xl.resize((size_t)M * (K / qblock(bits)) * 8);
    if (bits == 4) permute_x<4>(xp, M, K, xperm.data(), xl.data());
    else permute_x<8>(xp, M, K, xperm.data(), xl.data());
  }
  const int parts = parallel_parts(N, K);
  Pool::get().run(parts, [&](int part) {
    auto [n0, n1] = split(N, parts, part);
    for (int m = 0; m < M;) {
      const float* xr = xp + (size_t)m * K;
      const float* pr = fast ? xperm.data() + (size_t)m * K : nullptr;
      const float* lr = fast ? xl.data() + (size_t)m * (K / qblock(bits)) * 8 : nullptr;
      float* yr = yp + (size_t)m * N;
      const float* xsr = fast ? nullptr : xs.data() + (size_t)m * G;
      if (fast && m + 3 < M) {  // four rows share each unpacked block
        if (bits == 4) qrows_avx2<4, 4, 1>(pr, lr, K, wp, sp, bp, gs, yr, N, n0, n1);
        else qrows_avx2<8, 4, 1>(pr, lr, K, wp, sp, bp, gs, yr, N, n0, n1);
        m += 4;
      } else if (fast && m + 1 < M) {  // two rows share each unpacked block
        // Two outputs at a time for 4 bits; the 8-bit head streams best one
        // output at a time here too (BenchmarkQRowHead2: 2.40 ms a call with
        // two outputs, 1.47 with one; one row takes 1.12-1.47).
        if (bits == 4) qrows_avx2<4, 2, 2>(pr, lr, K, wp, sp, bp, gs, yr, N, n0, n1);
        else qrows_avx2<8, 2, 1>(pr, lr, K, wp, sp, bp, gs, yr, N, n0, n1);
        m += 2;
      } else if (fast) {
        // One row: four outputs at a time keep four FMA chains busy; the
        // 8-bit head streams from memory and runs best one output at a time.
        if (bits == 4) qrows_avx2<4, 1, 4>(pr, lr, K, wp, sp, bp, gs, yr, N, n0, n1);
        else qrows_avx2<8, 1, 1>(pr, lr, K, wp, sp, bp, gs, yr, N, n0, n1);
        m += 1;
      } else {
        if (bits == 4) qrows_scalar<4>(xr, xsr, K, wp, sp, bp, gs, yr, n0, n1);
        else qrows_scalar<8>(xr, xsr, K, wp, sp, bp, gs, yr, n0, n1);
        m += 1;
      }
    }
  });
}

// QRowProduct is x @ dequantize(w, scales, biases)^T for a few rows of x,
// on the CPU, reading the 4- or 8-bit weights once (MLX's CPU quantized
// matmul has no x86 SIMD). x [..., K] float32; w [N, K*bits/32] uint32;
// scales and biases [N, K/group] float32.
class QRowProduct : public mx::UnaryPrimitive {
 public:
  QRowProduct(mx::Stream s, int group, int bits) : mx::UnaryPrimitive(s), group_(group), bits_(bits) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    auto &x = in[0], &w = in[1], &sc = in[2], &bi = in[3];
    for (auto* a : {&w, &sc, &bi})
      if (!a->flags().row_contiguous) throw std::runtime_error("mlx: q4 row product needs contiguous weights");
    int K = x.shape(-1), N = w.shape(0), gs = group_;
    int M = (int)(x.size() / K);
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(x);
    enc.set_input_array(w);
    enc.set_input_array(sc);
    enc.set_input_array(bi);
    enc.set_output_array(out);
    const uint32_t* wp = w.data<uint32_t>();
    const float* sp = sc.data<float>();
    const float* bp = bi.data<float>();
    float* yp = out.data<float>();
    const int bits = bits_;
    enc.dispatch([=, x = x]() {
      std::vector<float> xbuf;  // x in row order when it is a strided view
      qrow_compute(dense_rows(x, xbuf), M, K, wp, sp, bp, gs, bits, N, yp);
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("mlx: the q4 row product runs on the CPU only");
  }
  const char* name() const override { return "QRowProduct"; }
  bool is_equivalent(const mx::Primitive& o) const override {
    auto& p = static_cast<const QRowProduct&>(o);
    return p.group_ == group_ && p.bits_ == bits_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    auto sh = in[0].shape();
    sh.back() = in[1].shape(0);
    return {sh};
  }

 private:
  int group_, bits_;
};

}  // namespace

// OpenBLAS, when linked in (Linux CPU builds), must not start threads of
// its own: they compete with MLX's CPU stream for the same cores.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));
// cblas_sgemv, from whichever BLAS the process has (weak: absent, the row
// product falls back to MLX's matmul).
extern "C" void cblas_sgemv(int order, int trans, int m, int n, float alpha,
                            const float* a, int lda, const float* x, int incx,
                            float beta, float* y, int incy) __attribute__((weak));

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// RowProduct is y = x @ wT for a few rows of x on the CPU, one BLAS
// matrix-vector product per row. MLX computes a 1-row matmul with a GEMM,
// which (in OpenBLAS) packs the whole weight panel on every call: several
// times the cost of reading it once. x is [..., K] float32, wT is [K, N]
// float32 (a transposed view of a row-major [N, K] matrix, or row-major).
class RowProduct : public mx::UnaryPrimitive {
 public:
  explicit RowProduct(mx::Stream s) : mx::UnaryPrimitive(s) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    auto& x = in[0];
    auto& w = in[1];
    int K = w.shape(0), N = w.shape(1);
    int M = (int)(x.size() / K);
    bool wRowMajorNK = w.strides(0) == 1 && w.strides(1) == K;  // transpose view
    bool wRowMajorKN = w.flags().row_contiguous;
    if (!(wRowMajorNK || wRowMajorKN)) throw std::runtime_error("mlx: row product needs a contiguous weight");
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(x);
    enc.set_input_array(w);
    enc.set_output_array(out);
    const float* wp = w.data<float>();
    float* yp = out.data<float>();
    enc.dispatch([=, x = x]() {
      std::vector<float> xbuf;  // x in row order when it is a strided view
      const float* xp = dense_rows(x, xbuf);
      for (int m = 0; m < M; m++) {
        if (wRowMajorNK)
          cblas_sgemv(kRowMajor, kNoTrans, N, K, 1.0f, wp, K, xp + (size_t)m * K, 1, 0.0f, yp + (size_t)m * N, 1);
        else
          cblas_sgemv(kRowMajor, kTrans, K, N, 1.0f, wp, N, xp + (size_t)m * K, 1, 0.0f, yp + (size_t)m * N, 1);
      }
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("mlx: the row product runs on the CPU only");
  }
  const char* name() const override { return "RowProduct"; }
  bool is_equivalent(const mx::Primitive&) const override { return true; }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    auto sh = in[0].shape();
    sh.back() = in[1].shape(1);
    return {sh};
  }
};


// dot and axpy for the attention of the fused decode block (GCC does not
// vectorise a float reduction without -ffast-math).
__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  acc0 = _mm256_add_ps(acc0, acc1);
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  float t = _mm_cvtss_f32(lo);
  for (; i < n; i++) t += a[i] * b[i];
  return t;
}

inline float dot(const float* a, const float* b, int n) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) return dot_avx2(a, b, n);
  float t = 0;
  for (int i = 0; i < n; i++) t += a[i] * b[i];
  return t;
}

// axpy: y += a * x.
inline void axpy(float a, const float* x, float* y, int n) {
  for (int i = 0; i < n; i++) y[i] += a * x[i];
}

// A linear layer as the fused decode block reads it: dense (w = wT, a
// float32 [in, out] view of a row-major [out, in] matrix, or row-major [in,
// out]) or MLX affine-quantized (w uint32 [out, in*bits/32], float32 scales
// and biases); an optional float32 bias [out]. Indices point into the
// primitive's inputs; -1 means absent.
struct BlockLinear {
  int w = -1, scales = -1, biases = -1, bias = -1;
  int bits = 0, group = 0;  // bits 0: dense
  int in = 0, out = 0;
};

// linear_rows computes y [M, out] = x [M, in] W^T (+ bias).
void linear_rows(const BlockLinear& l, const std::vector<mx::array>& in, const float* x, int M, float* y) {
  if (l.bits == 0) {
    const auto& w = in[l.w];
    const float* wp = w.data<float>();
    bool nk = w.strides(0) == 1 && w.strides(1) == l.in;  // transposed view of [out, in]
    const int parts = parallel_parts(l.out, l.in);
    Pool::get().run(parts, [&](int part) {
      auto [n0, n1] = split(l.out, parts, part);
      if (n1 <= n0) return;
      for (int m = 0; m < M; m++) {
        if (nk)
          cblas_sgemv(kRowMajor, kNoTrans, n1 - n0, l.in, 1.0f, wp + (size_t)n0 * l.in, l.in, x + (size_t)m * l.in, 1,
                      0.0f, y + (size_t)m * l.out + n0, 1);
        else
          cblas_sgemv(kRowMajor, kTrans, l.in, n1 - n0, 1.0f, wp + n0, l.out, x + (size_t)m * l.in, 1, 0.0f,
                      y + (size_t)m * l.out + n0, 1);
      }
    });
  } else {
    qrow_compute(x, M, l.in, in[l.w].data<uint32_t>(), in[l.scales].data<float>(), in[l.biases].data<float>(), l.group,
                 l.bits, l.out, y);
  }
  if (l.bias >= 0) {
    const float* b = in[l.bias].data<float>();
    for (int m = 0; m < M; m++)
      for (int o = 0; o < l.out; o++) y[(size_t)m * l.out + o] += b[o];
  }
}

void rms_norm_row(const float* x, const float* w, int n, float eps, float* y) {
  double ss = 0;  // float32 squares summed in double: no drift over long rows
  for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
  float r = 1.0f / std::sqrt((float)(ss / n) + eps);
  for (int i = 0; i < n; i++) y[i] = w[i] * (x[i] * r);
}

// DecodeBlockParams are the fixed shapes and settings of one block.
struct DecodeBlockParams {
  int B, D, H, Hkv, hd, F;
  float eps, scale;
  int offset;       // cache position of the new token (same for every lane)
  bool traditional; // RoPE on adjacent pairs (else the two halves)
  std::vector<int> pads;  // per lane: leading padded positions (none: zeros)
  int h = 0, attn_norm = 1, ffn_norm = 2, k_cache = 3, v_cache = 4, inv_freq = 5, q_norm = -1, k_norm = -1;
  BlockLinear qkv, o, gate_up, down;
};

// DecodeBlock is one decoder block for a single new position per lane, on
// the CPU, fused into one primitive: RMSNorm, the q/k/v projection (q/k
// RMSNorm per head when the model has it), RoPE, the keys and values written
// into the cache, attention over the lane's filled positions, the output
// projection and residual, RMSNorm, gate/up, SiLU(gate) * up, down and
// residual. Output: the block's output [B, 1, D] float32.
//
// The KV cache arrays are state owned by the engine's cache: the block
// writes the new position into their buffers in place (inputs 3 and 4 must
// be evaluated, row-contiguous float32 [B, Hkv, capacity, hd] with capacity
// > offset). Ops enqueued earlier on the stream run first, so any reader of
// the old contents has already run; nothing reads these buffers lazily later
// except later blocks of the same cache.
class DecodeBlock : public mx::UnaryPrimitive {
 public:
  DecodeBlock(mx::Stream s, DecodeBlockParams p) : mx::UnaryPrimitive(s), p_(std::move(p)) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    for (int c : {p_.k_cache, p_.v_cache})
      if (!in[c].flags().row_contiguous) throw std::runtime_error("mlx: decode block: the KV cache must be row-contiguous");
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& enc = mx::cpu::get_command_encoder(stream());
    for (auto& a : in) enc.set_input_array(a);
    enc.set_output_array(out);
    float* yp = out.data<float>();
    enc.dispatch([p = p_, in, yp]() {
      const int B = p.B, D = p.D, H = p.H, Hkv = p.Hkv, hd = p.hd, F = p.F;
      const int qd = H * hd, kvd = Hkv * hd, cap = in[p.k_cache].shape(2);
      std::vector<float> xbuf;
      const float* h = dense_rows(in[p.h], xbuf);
      std::vector<float> xn((size_t)B * D), qkv((size_t)B * (qd + 2 * kvd)), att((size_t)B * qd), h1((size_t)B * D),
          gu((size_t)B * 2 * F), act((size_t)B * F), dn((size_t)B * D);
      const float* an = in[p.attn_norm].data<float>();
      for (int b = 0; b < B; b++) rms_norm_row(h + (size_t)b * D, an, D, p.eps, xn.data() + (size_t)b * D);
      linear_rows(p.qkv, in, xn.data(), B, qkv.data());
      const float* invf = in[p.inv_freq].data<float>();
      float* kc = const_cast<float*>(in[p.k_cache].data<float>());  // the cache is written in place (see above)
      float* vc = const_cast<float*>(in[p.v_cache].data<float>());
      const int half = hd / 2;
      std::vector<float> cs(half), sn(half), tmp(hd);
      for (int b = 0; b < B; b++) {
        float* row = qkv.data() + (size_t)b * (qd + 2 * kvd);
        float* q = row;
        float* k = row + qd;
        const float* v = row + qd + kvd;
        if (p.q_norm >= 0) {
          const float* qn = in[p.q_norm].data<float>();
          const float* kn = in[p.k_norm].data<float>();
          for (int hh = 0; hh < H; hh++) {
            rms_norm_row(q + hh * hd, qn, hd, p.eps, tmp.data());
            std::copy(tmp.begin(), tmp.end(), q + hh * hd);
          }
          for (int hh = 0; hh < Hkv; hh++) {
            rms_norm_row(k + hh * hd, kn, hd, p.eps, tmp.data());
            std::copy(tmp.begin(), tmp.end(), k + hh * hd);
          }
        }
        const int pad = p.pads.empty() ? 0 : p.pads[b];
        const float pos = (float)(p.offset - pad);
        for (int i = 0; i < half; i++) {
          float theta = pos * invf[i];
          cs[i] = (float)std::cos((double)theta);
          sn[i] = (float)std::sin((double)theta);
        }
        auto rope = [&](float* x, int heads) {
          for (int hh = 0; hh < heads; hh++) {
            float* xh = x + hh * hd;
            for (int i = 0; i < half; i++) {
              int a = p.traditional ? 2 * i : i, c = p.traditional ? 2 * i + 1 : i + half;
              float x0 = xh[a], x1 = xh[c];
              xh[a] = x0 * cs[i] - x1 * sn[i];
              xh[c] = x0 * sn[i] + x1 * cs[i];
            }
          }
        };
        rope(q, H);
        rope(k, Hkv);
        for (int hh = 0; hh < Hkv; hh++) {
          size_t at = (((size_t)b * Hkv + hh) * cap + p.offset) * hd;
          std::copy(k + hh * hd, k + (hh + 1) * hd, kc + at);
          std::copy(v + hh * hd, v + (hh + 1) * hd, vc + at);
        }
      }
      // Attention, one (lane, head) item at a time, the items split over
      // the pool's cores once they hold some 8K multiply-adds (a few
      // microseconds, what waking the pool costs); at a 512-token context
      // the default model's heads were some 0.1 ms a block and lane here,
      // on one core.
      const int group = H / Hkv;
      const int items = B * H;
      const int parts = (size_t)items * (p.offset + 1) * hd >= (1 << 13) ? Pool::get().size() : 1;
      Pool::get().run(parts, [&](int part) {
        std::vector<float> sc(p.offset + 1);
        const int per = (items + parts - 1) / parts;
        for (int it = part * per; it < std::min(items, (part + 1) * per); it++) {
          const int b = it / H, hh = it % H;
          const int pad = p.pads.empty() ? 0 : p.pads[b];
          const int kh = hh / group;
          const float* qh = qkv.data() + (size_t)b * (qd + 2 * kvd) + hh * hd;
          const float* kbase = kc + ((size_t)b * Hkv + kh) * cap * hd;
          const float* vbase = vc + ((size_t)b * Hkv + kh) * cap * hd;
          float mx_ = -INFINITY;
          for (int t = pad; t <= p.offset; t++) {
            float d = dot(qh, kbase + (size_t)t * hd, hd) * p.scale;
            sc[t] = d;
            mx_ = std::max(mx_, d);
          }
          float sum = 0;
          for (int t = pad; t <= p.offset; t++) {
            sc[t] = std::exp(sc[t] - mx_);
            sum += sc[t];
          }
          float* o = att.data() + (size_t)b * qd + hh * hd;
          std::fill(o, o + hd, 0.0f);
          for (int t = pad; t <= p.offset; t++) {
            axpy(sc[t] / sum, vbase + (size_t)t * hd, o, hd);
          }
        }
      });
      linear_rows(p.o, in, att.data(), B, h1.data());
      for (size_t i = 0; i < (size_t)B * D; i++) h1[i] += h[i];
      const float* fn = in[p.ffn_norm].data<float>();
      for (int b = 0; b < B; b++) rms_norm_row(h1.data() + (size_t)b * D, fn, D, p.eps, xn.data() + (size_t)b * D);
      linear_rows(p.gate_up, in, xn.data(), B, gu.data());
      for (int b = 0; b < B; b++) {
        const float* g = gu.data() + (size_t)b * 2 * F;
        const float* u = g + F;
        float* a = act.data() + (size_t)b * F;
        for (int f = 0; f < F; f++) a[f] = g[f] / (1.0f + std::exp(-g[f])) * u[f];
      }
      linear_rows(p.down, in, act.data(), B, dn.data());
      for (size_t i = 0; i < (size_t)B * D; i++) yp[i] = h1[i] + dn[i];
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("mlx: the fused decode block runs on the CPU only");
  }
  const char* name() const override { return "DecodeBlock"; }
  bool is_equivalent(const mx::Primitive&) const override { return false; }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }

 private:
  DecodeBlockParams p_;
};

}  // namespace

extern "C" {

namespace {
// kProcessSignals are the signals sent to the process as a whole (by kill,
// the terminal or the shell) that Go handles (os/signal) or ignores. The
// kernel delivers such a signal to any thread that does not block it; on a
// thread that MLX or the CUDA driver started, Go's handler runs without a
// goroutine of its own, and on the GPU machine one SIGINT of 46 killed the
// process there with SIGSEGV (session 11). Threads inherit their creator's
// mask, so blocking these on the MLX thread keeps them off every thread it
// starts. Synchronous signals (SIGSEGV, SIGBUS, SIGFPE), Go's preemption
// signal (SIGURG) and SIGPROF stay open.
const int kProcessSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP,
                               SIGTTIN, SIGTTOU, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM};

void* blocked_signals_here(void* out) {
  sigset_t cur;
  uint64_t bits = 0;
  if (pthread_sigmask(SIG_SETMASK, nullptr, &cur) == 0) {
    for (int s : kProcessSignals)
      if (sigismember(&cur, s) == 1) bits |= uint64_t(1) << s;
  }
  *static_cast<uint64_t*>(out) = bits;
  return nullptr;
}
}  // namespace

uint64_t gk_child_blocked_signals(void) {
  uint64_t bits = 0;
  pthread_t t;
  if (pthread_create(&t, nullptr, blocked_signals_here, &bits) != 0) return ~uint64_t(0);
  pthread_join(t, nullptr);
  return bits;
}

void gk_block_process_signals(void* old) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kProcessSignals) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, static_cast<sigset_t*>(old));
}

void gk_bind_thread(void) {
  g_bound = true;
  gk_block_process_signals(nullptr);
  if (openblas_set_num_threads != nullptr && std::getenv("OPENBLAS_NUM_THREADS") == nullptr)
    openblas_set_num_threads(1);
}
int gk_is_bound(void) { return g_bound ? 1 : 0; }
const char* gk_error(void) { return g_error.c_str(); }
int64_t gk_live_arrays(void) { return g_live.load(); }
const char* gk_version(void) { return mx::version(); }

int gk_array_free(gk_array a) {
  GK_TRY({
    if (a.ctx != nullptr) {
      delete static_cast<mx::array*>(a.ctx);
      g_live.fetch_sub(1, std::memory_order_relaxed);
    }
  })
}

int gk_array_ndim(gk_array a) { return a.ctx ? (int)A(a).ndim() : -1; }

int gk_array_shape(gk_array a, int* shape, int max) {
  if (a.ctx == nullptr) return -1;
  auto& s = A(a).shape();
  int n = (int)s.size();
  for (int i = 0; i < n && i < max; i++) shape[i] = s[i];
  return n;
}

int gk_array_dtype(gk_array a) { return a.ctx ? from_dtype(A(a).dtype()) : -1; }
size_t gk_array_size(gk_array a) { return a.ctx ? A(a).size() : 0; }

int gk_array_from_data(gk_array* out, const void* data, size_t nbytes,
                       const int* shape, int ndim, int dtype) {
  GK_TRY({
    auto dt = to_dtype(dtype);
    auto sh = shape_of(shape, ndim);
    size_t n = 1;
    for (auto d : sh) {
      if (d < 0) throw std::invalid_argument("mlx: negative dimension");
      n *= (size_t)d;
    }
    if (n * mx::size_of(dt) != nbytes)
      throw std::invalid_argument(
          "mlx: data has " + std::to_string(nbytes) + " bytes, shape needs " +
          std::to_string(n * mx::size_of(dt)));
    void* buf = std::malloc(nbytes > 0 ? nbytes : 1);
    if (buf == nullptr) throw std::bad_alloc();
    if (nbytes > 0) std::memcpy(buf, data, nbytes);
    put(out, mx::array(buf, sh, dt, [](void* p) { std::free(p); }));
  })
}

int gk_array_scalar(gk_array* out, double v, int dtype) {
  GK_TRY({
    // Converted on the host: no device op (GPU backends have no float64).
    put(out, mx::array(v, to_dtype(dtype)));
  })
}

int gk_array_copy(gk_array* out, gk_array a) { GK_TRY(put(out, A(a))) }

int gk_array_read(gk_array a, int dtype, void* dst, size_t nbytes) {
  GK_TRY({
    // The array is evaluated where it lives; any conversion for the host then
    // runs on the CPU stream, since GPU backends lack some dtypes (float64).
    auto dt = to_dtype(dtype);
    auto x = A(a);
    x.eval();
    if (x.dtype() != dt || !x.flags().row_contiguous) {
      auto cpu = mx::Device(mx::Device::cpu);
      x = mx::contiguous(mx::astype(x, dt, cpu), false, cpu);
      x.eval();
    }
    if (x.nbytes() != nbytes)
      throw std::invalid_argument("mlx: read buffer has " +
                                  std::to_string(nbytes) + " bytes, array has " +
                                  std::to_string(x.nbytes()));
    if (nbytes > 0) std::memcpy(dst, x.data<void>(), nbytes);
  })
}

int gk_unary(gk_array* out, gk_array a, int op) {
  GK_TRY({
    auto& x = A(a);
    switch (op) {
      case GK_NEGATIVE: put(out, mx::negative(x)); break;
      case GK_EXP: put(out, mx::exp(x)); break;
      case GK_LOG: put(out, mx::log(x)); break;
      case GK_SIGMOID: put(out, mx::sigmoid(x)); break;
      case GK_SQRT: put(out, mx::sqrt(x)); break;
      case GK_RSQRT: put(out, mx::rsqrt(x)); break;
      case GK_ABS: put(out, mx::abs(x)); break;
      case GK_TANH: put(out, mx::tanh(x)); break;
      case GK_SQUARE: put(out, mx::square(x)); break;
      case GK_ISNAN: put(out, mx::isnan(x)); break;
      case GK_ISINF: put(out, mx::isinf(x)); break;
      case GK_FLOOR: put(out, mx::floor(x)); break;
      case GK_LOG1P: put(out, mx::log1p(x)); break;
      case GK_LOGICAL_NOT: put(out, mx::logical_not(x)); break;
      case GK_STOP_GRADIENT: put(out, mx::stop_gradient(x)); break;
      case GK_ISFINITE: put(out, mx::isfinite(x)); break;
      default: throw std::invalid_argument("mlx: unknown unary op");
    }
  })
}

int gk_binary(gk_array* out, gk_array a, gk_array b, int op) {
  GK_TRY({
    auto& x = A(a);
    auto& y = A(b);
    switch (op) {
      case GK_ADD: put(out, mx::add(x, y)); break;
      case GK_SUBTRACT: put(out, mx::subtract(x, y)); break;
      case GK_MULTIPLY: put(out, mx::multiply(x, y)); break;
      case GK_DIVIDE: put(out, mx::divide(x, y)); break;
      case GK_MAXIMUM: put(out, mx::maximum(x, y)); break;
      case GK_MINIMUM: put(out, mx::minimum(x, y)); break;
      case GK_POWER: put(out, mx::power(x, y)); break;
      case GK_EQUAL: put(out, mx::equal(x, y)); break;
      case GK_NOT_EQUAL: put(out, mx::not_equal(x, y)); break;
      case GK_LESS: put(out, mx::less(x, y)); break;
      case GK_LESS_EQUAL: put(out, mx::less_equal(x, y)); break;
      case GK_GREATER: put(out, mx::greater(x, y)); break;
      case GK_GREATER_EQUAL: put(out, mx::greater_equal(x, y)); break;
      case GK_LOGICAL_AND: put(out, mx::logical_and(x, y)); break;
      case GK_LOGICAL_OR: put(out, mx::logical_or(x, y)); break;
      case GK_MATMUL: put(out, mx::matmul(x, y)); break;
      default: throw std::invalid_argument("mlx: unknown binary op");
    }
  })
}

int gk_reduce(gk_array* out, gk_array a, const int* axes, int naxes,
              int keepdims, int op) {
  GK_TRY({
    auto& x = A(a);
    std::vector<int> ax = ints(axes, naxes);
    if (naxes == 0)
      for (int i = 0; i < (int)x.ndim(); i++) ax.push_back(i);
    bool k = keepdims != 0;
    switch (op) {
      case GK_SUM: put(out, mx::sum(x, ax, k)); break;
      case GK_MEAN: put(out, mx::mean(x, ax, k)); break;
      case GK_MAX: put(out, mx::max(x, ax, k)); break;
      case GK_MIN: put(out, mx::min(x, ax, k)); break;
      case GK_PROD: put(out, mx::prod(x, ax, k)); break;
      case GK_LOGSUMEXP: put(out, mx::logsumexp(x, ax, k)); break;
      case GK_ANY: put(out, mx::any(x, ax, k)); break;
      case GK_ALL: put(out, mx::all(x, ax, k)); break;
      case GK_VAR: put(out, mx::var(x, ax, k)); break;
      case GK_ARGMAX:
      case GK_ARGMIN:
        if (ax.size() != 1)
          throw std::invalid_argument("mlx: argmax/argmin take one axis");
        put(out, op == GK_ARGMAX ? mx::argmax(x, ax[0], k)
                                 : mx::argmin(x, ax[0], k));
        break;
      default: throw std::invalid_argument("mlx: unknown reduction");
    }
  })
}

int gk_where(gk_array* out, gk_array c, gk_array x, gk_array y) {
  GK_TRY(put(out, mx::where(A(c), A(x), A(y))))
}

int gk_astype(gk_array* out, gk_array a, int dtype) {
  GK_TRY(put(out, mx::astype(A(a), to_dtype(dtype))))
}

int gk_addmm(gk_array* out, gk_array c, gk_array a, gk_array b, float alpha,
             float beta) {
  GK_TRY(put(out, mx::addmm(A(c), A(a), A(b), alpha, beta)))
}

int gk_zeros(gk_array* out, const int* shape, int ndim, int dtype) {
  GK_TRY(put(out, mx::zeros(shape_of(shape, ndim), to_dtype(dtype))))
}

int gk_full(gk_array* out, const int* shape, int ndim, double v, int dtype) {
  GK_TRY({
    auto dt = to_dtype(dtype);
    put(out, mx::full(shape_of(shape, ndim), mx::array(v, dt), dt));
  })
}

int gk_arange(gk_array* out, double start, double stop, double step,
              int dtype) {
  GK_TRY(put(out, mx::arange(start, stop, step, to_dtype(dtype))))
}

int gk_tri(gk_array* out, gk_array a, int k, int upper) {
  GK_TRY(put(out, upper ? mx::triu(A(a), k) : mx::tril(A(a), k)))
}

int gk_reshape(gk_array* out, gk_array a, const int* shape, int ndim) {
  GK_TRY(put(out, mx::reshape(A(a), shape_of(shape, ndim))))
}

int gk_transpose(gk_array* out, gk_array a, const int* axes, int naxes) {
  GK_TRY(put(out, naxes == 0 ? mx::transpose(A(a))
                             : mx::transpose(A(a), ints(axes, naxes))))
}

int gk_swapaxes(gk_array* out, gk_array a, int a1, int a2) {
  GK_TRY(put(out, mx::swapaxes(A(a), a1, a2)))
}

int gk_expand_dims(gk_array* out, gk_array a, int axis) {
  GK_TRY(put(out, mx::expand_dims(A(a), axis)))
}

int gk_squeeze(gk_array* out, gk_array a, int axis) {
  GK_TRY(put(out, mx::squeeze(A(a), axis)))
}

int gk_broadcast_to(gk_array* out, gk_array a, const int* shape, int ndim) {
  GK_TRY(put(out, mx::broadcast_to(A(a), shape_of(shape, ndim))))
}

int gk_contiguous(gk_array* out, gk_array a) {
  GK_TRY(put(out, mx::contiguous(A(a))))
}

int gk_take(gk_array* out, gk_array a, gk_array idx, int axis) {
  GK_TRY(put(out, mx::take(A(a), A(idx), axis)))
}

int gk_take_along_axis(gk_array* out, gk_array a, gk_array idx, int axis) {
  GK_TRY(put(out, mx::take_along_axis(A(a), A(idx), axis)))
}

int gk_put_along_axis(gk_array* out, gk_array a, gk_array idx, gk_array v,
                      int axis) {
  GK_TRY(put(out, mx::put_along_axis(A(a), A(idx), A(v), axis)))
}

int gk_concatenate(gk_array* out, const gk_array* arrs, int n, int axis) {
  GK_TRY({
    std::vector<mx::array> xs;
    xs.reserve(n);
    for (int i = 0; i < n; i++) xs.push_back(A(arrs[i]));
    put(out, mx::concatenate(std::move(xs), axis));
  })
}

int gk_slice(gk_array* out, gk_array a, const int* start, const int* stop,
             const int* strides, int ndim) {
  GK_TRY(put(out, mx::slice(A(a), shape_of(start, ndim), shape_of(stop, ndim),
                            shape_of(strides, ndim))))
}

int gk_slice_update(gk_array* out, gk_array src, gk_array upd,
                    const int* start, const int* stop, const int* strides,
                    int ndim) {
  GK_TRY(put(out, mx::slice_update(A(src), A(upd), shape_of(start, ndim),
                                   shape_of(stop, ndim),
                                   shape_of(strides, ndim))))
}

int gk_slice_dynamic(gk_array* out, gk_array a, gk_array start,
                     const int* axes, int naxes, const int* size, int ndim) {
  GK_TRY(put(out, mx::slice(A(a), A(start), ints(axes, naxes),
                            shape_of(size, ndim))))
}

int gk_slice_update_dynamic(gk_array* out, gk_array src, gk_array upd,
                            gk_array start, const int* axes, int naxes) {
  GK_TRY(put(out, mx::slice_update(A(src), A(upd), A(start), ints(axes, naxes))))
}

int gk_softmax(gk_array* out, gk_array a, int axis, int precise) {
  GK_TRY(put(out, mx::softmax(A(a), axis, precise != 0)))
}

int gk_rms_norm(gk_array* out, gk_array x, gk_array w, int has_w, float eps) {
  GK_TRY(put(out, mx::fast::rms_norm(A(x), opt(w, has_w), eps)))
}

int gk_layer_norm(gk_array* out, gk_array x, gk_array w, int has_w,
                  gk_array b, int has_b, float eps) {
  GK_TRY(put(out, mx::fast::layer_norm(A(x), opt(w, has_w), opt(b, has_b), eps)))
}

int gk_rope(gk_array* out, gk_array x, int dims, int traditional, float base,
            int has_base, float scale, int offset, gk_array freqs,
            int has_freqs) {
  GK_TRY({
    std::optional<float> b;
    if (has_base) b = base;
    put(out, mx::fast::rope(A(x), dims, traditional != 0, b, scale, offset,
                            opt(freqs, has_freqs)));
  })
}

int gk_rope_dyn(gk_array* out, gk_array x, int dims, int traditional,
                float base, int has_base, float scale, gk_array offset,
                gk_array freqs, int has_freqs) {
  GK_TRY({
    std::optional<float> b;
    if (has_base) b = base;
    put(out, mx::fast::rope(A(x), dims, traditional != 0, b, scale, A(offset),
                            opt(freqs, has_freqs)));
  })
}

int gk_sdpa(gk_array* out, gk_array q, gk_array k, gk_array v, float scale,
            const char* mask_mode, gk_array mask, int has_mask) {
  GK_TRY({
    std::optional<mx::array> m;
    if (has_mask) m = A(mask);
    put(out, mx::fast::scaled_dot_product_attention(
                 A(q), A(k), A(v), scale, std::string(mask_mode), m));
  })
}

int gk_quantize(gk_array* w_out, gk_array* scales, gk_array* biases,
                gk_array w, int group_size, int bits) {
  GK_TRY({
    auto r = mx::quantize(A(w), group_size, bits, "affine");
    if (r.size() != 3)
      throw std::runtime_error("mlx: affine quantize returned " +
                               std::to_string(r.size()) + " arrays");
    put(w_out, r[0]);
    put(scales, r[1]);
    put(biases, r[2]);
  })
}

int gk_dequantize(gk_array* out, gk_array w, gk_array scales, gk_array biases,
                  int group_size, int bits, int dtype) {
  GK_TRY({
    std::optional<mx::Dtype> dt;
    if (dtype >= 0) dt = to_dtype(dtype);
    put(out, mx::dequantize(A(w), A(scales), A(biases), group_size, bits,
                            "affine", std::nullopt, dt));
  })
}

int gk_quantized_matmul(gk_array* out, gk_array x, gk_array w,
                        gk_array scales, gk_array biases, int transpose,
                        int group_size, int bits) {
  GK_TRY(put(out, mx::quantized_matmul(A(x), A(w), A(scales), A(biases),
                                       transpose != 0, group_size, bits,
                                       "affine")))
}

int gk_argmax(gk_array* out, gk_array a, int axis, int keepdims) {
  GK_TRY(put(out, mx::argmax(A(a), axis, keepdims != 0)))
}
int gk_argsort(gk_array* out, gk_array a, int axis) {
  GK_TRY(put(out, mx::argsort(A(a), axis)))
}
int gk_sort(gk_array* out, gk_array a, int axis) {
  GK_TRY(put(out, mx::sort(A(a), axis)))
}
int gk_argpartition(gk_array* out, gk_array a, int kth, int axis) {
  GK_TRY(put(out, mx::argpartition(A(a), kth, axis)))
}
int gk_topk(gk_array* out, gk_array a, int k, int axis) {
  GK_TRY(put(out, mx::topk(A(a), k, axis)))
}
int gk_cumsum(gk_array* out, gk_array a, int axis, int reverse,
              int inclusive) {
  GK_TRY(put(out, mx::cumsum(A(a), axis, reverse != 0, inclusive != 0)))
}

int gk_random_key(gk_array* out, uint64_t seed) {
  GK_TRY(put(out, mx::random::key(seed)))
}
int gk_random_split(gk_array* out, gk_array key, int num) {
  GK_TRY(put(out, mx::random::split(A(key), num)))
}
int gk_random_uniform(gk_array* out, const int* shape, int ndim, int dtype,
                      gk_array key) {
  GK_TRY(put(out, mx::random::uniform(mx::array(0.0f), mx::array(1.0f),
                                      shape_of(shape, ndim), to_dtype(dtype),
                                      A(key))))
}
int gk_random_categorical(gk_array* out, gk_array logits, int axis,
                          gk_array key) {
  GK_TRY(put(out, mx::random::categorical(A(logits), axis, A(key))))
}
int gk_random_gumbel(gk_array* out, const int* shape, int ndim, int dtype,
                     gk_array key) {
  GK_TRY(put(out, mx::random::gumbel(shape_of(shape, ndim), to_dtype(dtype),
                                     A(key))))
}

int gk_eval(const gk_array* arrs, int n) {
  GK_TRY({
    std::vector<mx::array> xs;
    for (int i = 0; i < n; i++) xs.push_back(A(arrs[i]));
    mx::eval(std::move(xs));
  })
}

int gk_async_eval(const gk_array* arrs, int n) {
  GK_TRY({
    std::vector<mx::array> xs;
    for (int i = 0; i < n; i++) xs.push_back(A(arrs[i]));
    mx::async_eval(std::move(xs));
  })
}

int gk_synchronize(void) { GK_TRY(mx::synchronize()) }

int gk_memory(size_t* active, size_t* peak, size_t* cache, size_t* limit) {
  GK_TRY({
    *active = mx::get_active_memory();
    *peak = mx::get_peak_memory();
    *cache = mx::get_cache_memory();
    *limit = mx::get_memory_limit();
  })
}
int gk_reset_peak_memory(void) { GK_TRY(mx::reset_peak_memory()) }
int gk_set_memory_limit(size_t limit, size_t* prev) {
  GK_TRY(*prev = mx::set_memory_limit(limit))
}
int gk_set_cache_limit(size_t limit, size_t* prev) {
  GK_TRY(*prev = mx::set_cache_limit(limit))
}
int gk_clear_cache(void) { GK_TRY(mx::clear_cache()) }

int gk_set_default_device(int type) {
  GK_TRY(mx::set_default_device(
      mx::Device(type == 1 ? mx::Device::gpu : mx::Device::cpu)))
}
int gk_default_device(int* type) {
  GK_TRY(*type = mx::default_device().type == mx::Device::gpu ? 1 : 0)
}
// ready is a for a CPU kernel that needs row-contiguous input: a itself when
// it is evaluated and row-contiguous (loaded weights), else a Contiguous
// node. Skipping the node for weights keeps a decode step's graph small.
static mx::array ready(const mx::array& a, mx::Stream s) {
  if (a.is_available() && a.flags().row_contiguous) return a;
  return mx::contiguous(a, false, s);
}

int gk_row_product_available(void) { return cblas_sgemv != nullptr ? 1 : 0; }

int gk_row_product(gk_array* out, gk_array x, gk_array wT) {
  GK_TRY({
    auto& a = A(x);
    auto& w = A(wT);
    if (cblas_sgemv == nullptr) throw std::runtime_error("mlx: no cblas_sgemv in this process");
    if (a.dtype() != mx::float32 || w.dtype() != mx::float32 || w.ndim() != 2 || a.shape(-1) != w.shape(0))
      throw std::invalid_argument("mlx: row product needs float32 x [..., K] and wT [K, N]");
    auto cpu = mx::default_stream(mx::Device(mx::Device::cpu));
    auto sh = a.shape();
    sh.back() = w.shape(1);
    put(out, mx::array(sh, mx::float32, std::make_shared<RowProduct>(cpu), {a, w}));
  })
}

int gk_q_row_product(gk_array* out, gk_array x, gk_array w, gk_array scales,
                     gk_array biases, int group, int bits) {
  GK_TRY({
    auto& a = A(x);
    auto& q = A(w);
    int K = a.shape(-1);
    if ((bits != 4 && bits != 8) || a.dtype() != mx::float32 || q.dtype() != mx::uint32 || q.ndim() != 2 ||
        q.shape(1) * (32 / bits) != K || group <= 0 || group % 8 != 0 || K % group != 0)
      throw std::invalid_argument("mlx: quantized row product needs 4 or 8 bits, float32 x [..., K], uint32 w [N, K*bits/32] and a group dividing K");
    auto cpu = mx::default_stream(mx::Device(mx::Device::cpu));
    auto f32 = [&](const mx::array& v) { return v.dtype() == mx::float32 ? ready(v, cpu) : mx::contiguous(mx::astype(v, mx::float32, cpu), false, cpu); };
    auto sh = a.shape();
    sh.back() = q.shape(0);
    put(out, mx::array(sh, mx::float32, std::make_shared<QRowProduct>(cpu, group, bits),
                       {a, ready(q, cpu), f32(A(scales)), f32(A(biases))}));
  })
}

int gk_decode_block(gk_array* out, const gk_decode_block_args* a, const int* pads, int n_pads) {
  GK_TRY({
    if (cblas_sgemv == nullptr) throw std::runtime_error("mlx: no cblas_sgemv in this process");
    auto& h = A(a->h);
    if (h.dtype() != mx::float32 || h.ndim() != 3 || h.shape(1) != 1)
      throw std::invalid_argument("mlx: decode block needs float32 h [B, 1, D]");
    DecodeBlockParams p;
    p.B = h.shape(0);
    p.D = h.shape(2);
    p.H = a->heads;
    p.Hkv = a->kv_heads;
    p.hd = a->head_dim;
    p.F = a->intermediate;
    p.eps = a->eps;
    p.scale = a->scale;
    p.offset = a->offset;
    p.traditional = a->traditional != 0;
    if (n_pads != 0 && n_pads != p.B) throw std::invalid_argument("mlx: decode block: one pad per lane");
    p.pads.assign(pads, pads + n_pads);
    if (p.H <= 0 || p.Hkv <= 0 || p.H % p.Hkv != 0 || p.hd % 2 != 0)
      throw std::invalid_argument("mlx: decode block: bad head counts");
    std::vector<mx::array> in;
    auto f32 = [&](gk_array x, int n, const char* what) {
      auto& v = A(x);
      if (v.dtype() != mx::float32 || (n > 0 && (int)v.size() != n))
        throw std::invalid_argument(std::string("mlx: decode block: ") + what + " must be float32 of " + std::to_string(n));
      in.push_back(ready(v, mx::default_stream(mx::Device(mx::Device::cpu))));
      return (int)in.size() - 1;
    };
    auto cpu = mx::default_stream(mx::Device(mx::Device::cpu));
    in.push_back(h);
    f32(a->attn_norm, p.D, "attn_norm");
    f32(a->ffn_norm, p.D, "ffn_norm");
    for (gk_array c : {a->k_cache, a->v_cache}) {
      auto& v = A(c);
      if (v.dtype() != mx::float32 || v.ndim() != 4 || v.shape(0) != p.B || v.shape(1) != p.Hkv || v.shape(3) != p.hd ||
          v.shape(2) <= p.offset)
        throw std::invalid_argument("mlx: decode block: cache must be float32 [B, Hkv, capacity > offset, head_dim]");
      in.push_back(v);
    }
    f32(a->inv_freq, p.hd / 2, "inv_freq");
    if (a->q_norm.ctx != nullptr) {
      p.q_norm = f32(a->q_norm, p.hd, "q_norm");
      p.k_norm = f32(a->k_norm, p.hd, "k_norm");
    }
    auto lin = [&](const gk_block_linear& g, int inDim, int outDim, const char* what) {
      BlockLinear l;
      l.in = inDim;
      l.out = outDim;
      l.bits = g.bits;
      l.group = g.group;
      if (g.in != inDim || g.out != outDim)
        throw std::invalid_argument(std::string("mlx: decode block: ") + what + " has the wrong shape");
      auto& w = A(g.w);
      if (g.bits == 0) {
        if (w.dtype() != mx::float32 || w.ndim() != 2 || w.shape(0) != inDim || w.shape(1) != outDim)
          throw std::invalid_argument(std::string("mlx: decode block: ") + what + " must be float32 wT [in, out]");
        bool nk = w.strides(0) == 1 && w.strides(1) == inDim;
        if (!w.is_available() || !(nk || w.flags().row_contiguous))
          throw std::invalid_argument(std::string("mlx: decode block: ") + what + " must be an evaluated contiguous weight");
        in.push_back(w);
        l.w = (int)in.size() - 1;
      } else {
        if ((g.bits != 4 && g.bits != 8) || w.dtype() != mx::uint32 || w.ndim() != 2 || w.shape(0) != outDim ||
            w.shape(1) * (32 / g.bits) != inDim || g.group <= 0 || inDim % g.group != 0)
          throw std::invalid_argument(std::string("mlx: decode block: ") + what + " is not a 4- or 8-bit affine weight");
        in.push_back(ready(w, cpu));
        l.w = (int)in.size() - 1;
        l.scales = f32(g.scales, outDim * (inDim / g.group), "scales");
        l.biases = f32(g.biases, outDim * (inDim / g.group), "biases");
      }
      if (g.bias.ctx != nullptr) l.bias = f32(g.bias, outDim, "bias");
      return l;
    };
    const int qd = p.H * p.hd, kvd = p.Hkv * p.hd;
    p.qkv = lin(a->qkv, p.D, qd + 2 * kvd, "qkv");
    p.o = lin(a->o, qd, p.D, "o");
    p.gate_up = lin(a->gate_up, p.D, 2 * p.F, "gate_up");
    p.down = lin(a->down, p.F, p.D, "down");
    put(out, mx::array(h.shape(), mx::float32, std::make_shared<DecodeBlock>(cpu, std::move(p)), std::move(in)));
  })
}

int gk_device_count(int type, int* n) {
  GK_TRY(*n = mx::device_count(type == 1 ? mx::Device::gpu : mx::Device::cpu))
}

int gk_device_probe(int type) {
  // A tiny op evaluated on the device: a backend that is linked but has no
  // usable device (a CUDA build with no visible GPU) fails here, cleanly.
  GK_TRY({
    auto s = mx::default_stream(
        mx::Device(type == 1 ? mx::Device::gpu : mx::Device::cpu));
    auto x = mx::add(mx::array(1.0f), mx::array(2.0f), s);
    x.eval();
    if (x.item<float>() != 3.0f) throw std::runtime_error("mlx: device probe gave a wrong sum");
  })
}

int gk_device_info(int type, char* name, size_t name_len, char* arch,
                   size_t arch_len, size_t* memory) {
  GK_TRY({
    auto dev = mx::Device(type == 1 ? mx::Device::gpu : mx::Device::cpu);
    const auto& info = mx::device_info(dev);
    auto str = [&](const char* key) -> std::string {
      auto it = info.find(key);
      if (it == info.end()) return "";
      if (auto* s = std::get_if<std::string>(&it->second)) return *s;
      return std::to_string(std::get<size_t>(it->second));
    };
    auto num = [&](const char* key) -> size_t {
      auto it = info.find(key);
      if (it == info.end()) return 0;
      if (auto* v = std::get_if<size_t>(&it->second)) return *v;
      return 0;
    };
    auto copy = [](const std::string& s, char* dst, size_t n) {
      if (n == 0) return;
      size_t k = std::min(s.size(), n - 1);
      std::memcpy(dst, s.data(), k);
      dst[k] = 0;
    };
    copy(str("device_name"), name, name_len);
    copy(str("architecture"), arch, arch_len);
    *memory = num("total_memory");
    if (*memory == 0) *memory = num("memory_size");
  })
}

int gk_device_available(int type, int* ok) {
  GK_TRY(*ok = mx::is_available(
                   mx::Device(type == 1 ? mx::Device::gpu : mx::Device::cpu))
                   ? 1
                   : 0)
}

int gk_map_new(gk_map* out) { GK_TRY(out->ctx = new Map()) }

int gk_map_free(gk_map m) {
  GK_TRY(delete static_cast<Map*>(m.ctx))
}
int gk_map_len(gk_map m) { return m.ctx ? (int)M(m).keys.size() : 0; }
const char* gk_map_key(gk_map m, int i) { return M(m).keys.at(i).c_str(); }
int gk_map_take(gk_array* out, gk_map m, int i) {
  GK_TRY({
    auto& slot = M(m).arrays.at(i);
    if (!slot) throw std::invalid_argument("mlx: map entry already taken");
    put(out, *slot);
    slot.reset();
  })
}
int gk_map_meta_len(gk_map m) { return m.ctx ? (int)M(m).meta.size() : 0; }
int gk_map_meta(gk_map m, int i, const char** key, int* kind) {
  GK_TRY({
    auto& mm = M(m);
    *key = mm.meta_keys.at(i).c_str();
    *kind = (int)mm.meta.at(i).index();
  })
}
const char* gk_map_meta_string(gk_map m, int i) {
  auto* s = std::get_if<std::string>(&M(m).meta.at(i));
  return s ? s->c_str() : nullptr;
}
int gk_map_meta_list_len(gk_map m, int i) {
  auto* s = std::get_if<std::vector<std::string>>(&M(m).meta.at(i));
  return s ? (int)s->size() : -1;
}
const char* gk_map_meta_list_item(gk_map m, int i, int j) {
  auto* s = std::get_if<std::vector<std::string>>(&M(m).meta.at(i));
  return s ? s->at(j).c_str() : nullptr;
}
int gk_map_meta_array(gk_array* out, gk_map m, int i) {
  GK_TRY({
    auto* a = std::get_if<mx::array>(&M(m).meta.at(i));
    if (!a) throw std::invalid_argument("mlx: metadata entry is not an array");
    put(out, *a);
  })
}

int gk_load_safetensors(gk_map* out, const char* path) {
  GK_TRY({
    auto r = mx::load_safetensors(std::string(path));
    auto* m = new Map();
    for (auto& [k, v] : r.first) {
      m->keys.push_back(k);
      m->arrays.emplace_back(v);
    }
    for (auto& [k, v] : r.second) {
      m->meta_keys.push_back(k);
      m->meta.emplace_back(v);
    }
    out->ctx = m;
  })
}

int gk_load_gguf(gk_map* out, const char* path) {
  GK_TRY({
    auto r = mx::load_gguf(std::string(path));
    auto* m = new Map();
    for (auto& [k, v] : r.first) {
      m->keys.push_back(k);
      m->arrays.emplace_back(v);
    }
    for (auto& [k, v] : r.second) {
      m->meta_keys.push_back(k);
      m->meta.push_back(v);
    }
    out->ctx = m;
  })
}

int gk_load_npy(gk_array* out, const char* path) {
  GK_TRY(put(out, mx::load(std::string(path))))
}
int gk_save_npy(const char* path, gk_array a) {
  GK_TRY(mx::save(std::string(path), A(a)))
}

int gk_map_put(gk_map m, const char* key, gk_array a) {
  GK_TRY({
    M(m).keys.push_back(key);
    M(m).arrays.emplace_back(A(a));
  })
}
int gk_map_put_meta_string(gk_map m, const char* key, const char* v) {
  GK_TRY({
    M(m).meta_keys.push_back(key);
    M(m).meta.emplace_back(std::string(v));
  })
}
int gk_map_put_meta_array(gk_map m, const char* key, gk_array a) {
  GK_TRY({
    M(m).meta_keys.push_back(key);
    M(m).meta.emplace_back(A(a));
  })
}

int gk_save_safetensors(const char* path, gk_map m) {
  GK_TRY({
    auto& mm = M(m);
    std::unordered_map<std::string, mx::array> arrays;
    std::unordered_map<std::string, std::string> meta;
    for (size_t i = 0; i < mm.keys.size(); i++)
      if (mm.arrays[i]) arrays.insert_or_assign(mm.keys[i], *mm.arrays[i]);
    for (size_t i = 0; i < mm.meta_keys.size(); i++) {
      auto* s = std::get_if<std::string>(&mm.meta[i]);
      if (!s)
        throw std::invalid_argument("mlx: safetensors metadata must be strings (" +
                                    mm.meta_keys[i] + ")");
      meta[mm.meta_keys[i]] = *s;
    }
    mx::save_safetensors(std::string(path), arrays, meta);
  })
}

int gk_save_gguf(const char* path, gk_map m) {
  GK_TRY({
    auto& mm = M(m);
    std::unordered_map<std::string, mx::array> arrays;
    std::unordered_map<std::string, Meta> meta;
    for (size_t i = 0; i < mm.keys.size(); i++)
      if (mm.arrays[i]) arrays.insert_or_assign(mm.keys[i], *mm.arrays[i]);
    for (size_t i = 0; i < mm.meta_keys.size(); i++)
      meta.insert_or_assign(mm.meta_keys[i], mm.meta[i]);
    mx::save_gguf(std::string(path), arrays, meta);
  })
}

}  // extern "C"

// ---------------------------------------------------------------------------
// CUDA kernels for decode steps: matrix-vector products and fused blocks.
//
// MLX's CUDA matmul multiplies one row with a GEMV but two to eight rows (a
// base + steered pair, a sweep) with a general GEMM, and its quantized
// product likewise. The product kernel here gives each output row of W one
// warp, reads W once in 16-byte loads and computes every row of x (up to
// gemv_max_rows) against it, so a pair costs about what one lane costs.
//
// A decode step of a small model on a GPU is bound by graph work and kernel
// launches, not by the weights (measured: docs/benchmarks.md). The same
// product kernel therefore takes optional prologues and epilogues (RMSNorm
// of x, a bias, a residual add, SwiGLU over a fused gate/up weight), and one
// attention kernel does q/k norms, RoPE, the cache write and attention over
// the cache for one new position: a decoder block is five kernels
// (gk_gpu_decode_block) instead of about fifteen.
//
// Rounding follows MLX's op-by-op graph: every value the graph would store
// in the compute dtype T (the normalised x, a product before its residual,
// q and k after RoPE, SiLU(gate)) is rounded to T here too, so float16 and
// bfloat16 runs track the unfused graph closely.
//
// The sources are bodies for MLX's fast::cuda_kernel wrapper. shim_ptx.cpp
// wraps the same bodies into standalone sources, compiles each variant once
// with NVRTC and caches it on disk (MLX compiles custom kernels in every
// process); MLX's fast::cuda_kernel is the fallback.

namespace {

constexpr int gemv_max_rows = 8;

// The product kernel: y[m, n] = epilogue(sum_k X(m, k) * W[n, k]) for x
// [M, K] (any leading shape), one warp per output n. Template values: T
// (dtype), M (rows), NORM (X is RMSNorm(x) * nw with eps prm[0]), GLU (W
// holds gate rows then up rows; y = SiLU(gate) * up), HASBIAS (+ bias[n]),
// RES (y = r + product). QUANT bodies read MLX's affine layout: w [N, K *
// BITS / 32] uint32 (value j of a word in bits [BITS*j, BITS*j+BITS)),
// scales and biases [N, K / group], a weight being scale * q + bias.
const char* kProductPrologue = R"(
  const int lane = threadIdx.x & 31;
  const int n = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int NW = w_shape[0];
  const int NOUT = GLU ? NW / 2 : NW;
  if (n >= NOUT) return;
  float inv[M];
#pragma unroll
  for (int m = 0; m < M; ++m) inv[m] = 1.f;
  if (NORM) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float ss = 0.f;
      for (int k = lane; k < K; k += 32) {
        const float v = static_cast<float>(x[(size_t)m * K + k]);
        ss += v * v;
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      inv[m] = rsqrtf(ss / K + prm[0]);
    }
  }
  auto xval = [&](int m, int k) -> float {
    const float v = static_cast<float>(x[(size_t)m * K + k]);
    if (NORM) return static_cast<float>(static_cast<T>(nw[k] * (v * inv[m])));
    return v;
  };
  float acc[M], acc2[M];
#pragma unroll
  for (int m = 0; m < M; ++m) { acc[m] = 0.f; acc2[m] = 0.f; }
)";

const char* kDenseKDim = R"(
  const int K = w_shape[1];
)";

const char* kDenseBody = R"(
  constexpr int VEC = 16 / sizeof(T);
  const T* row0 = w + (size_t)n * K;
  const T* row1 = w + (size_t)(n + (GLU ? NOUT : 0)) * K;
  for (int k = lane * VEC; k < K; k += 32 * VEC) {
    float w0[VEC], w1[VEC];
    {
      const uint4 p = *reinterpret_cast<const uint4*>(row0 + k);
      const T* v = reinterpret_cast<const T*>(&p);
#pragma unroll
      for (int j = 0; j < VEC; ++j) w0[j] = static_cast<float>(v[j]);
    }
    if (GLU) {
      const uint4 p = *reinterpret_cast<const uint4*>(row1 + k);
      const T* v = reinterpret_cast<const T*>(&p);
#pragma unroll
      for (int j = 0; j < VEC; ++j) w1[j] = static_cast<float>(v[j]);
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float a = 0.f, b = 0.f;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const float xv = xval(m, k + j);
        a += w0[j] * xv;
        if (GLU) b += w1[j] * xv;
      }
      acc[m] += a;
      if (GLU) acc2[m] += b;
    }
  }
)";

const char* kQuantKDim = R"(
  constexpr int PER = 32 / BITS;
  const int K = w_shape[1] * PER;
)";

const char* kQuantBody = R"(
  constexpr int VALS = 4 * PER;
  constexpr uint32_t MASK = (1u << BITS) - 1u;
  const int groups = scales_shape[1];
  const int G = K / groups;
  const int r1 = n + (GLU ? NOUT : 0);
  for (int k = lane * VALS; k < K; k += 32 * VALS) {
    float q0[VALS], q1[VALS];
    float sc0, bi0, sc1 = 0.f, bi1 = 0.f;
    {
      const uint4 p = *reinterpret_cast<const uint4*>(w + (size_t)n * (K / PER) + k / PER);
      const uint32_t words[4] = {p.x, p.y, p.z, p.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < PER; ++j) q0[i * PER + j] = static_cast<float>((words[i] >> (BITS * j)) & MASK);
      }
      sc0 = static_cast<float>(scales[(size_t)n * groups + k / G]);
      bi0 = static_cast<float>(biases[(size_t)n * groups + k / G]);
    }
    if (GLU) {
      const uint4 p = *reinterpret_cast<const uint4*>(w + (size_t)r1 * (K / PER) + k / PER);
      const uint32_t words[4] = {p.x, p.y, p.z, p.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < PER; ++j) q1[i * PER + j] = static_cast<float>((words[i] >> (BITS * j)) & MASK);
      }
      sc1 = static_cast<float>(scales[(size_t)r1 * groups + k / G]);
      bi1 = static_cast<float>(biases[(size_t)r1 * groups + k / G]);
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float d0 = 0.f, d1 = 0.f, sum = 0.f;
#pragma unroll
      for (int v = 0; v < VALS; ++v) {
        const float xv = xval(m, k + v);
        d0 += q0[v] * xv;
        if (GLU) d1 += q1[v] * xv;
        sum += xv;
      }
      acc[m] += sc0 * d0 + bi0 * sum;
      if (GLU) acc2[m] += sc1 * d1 + bi1 * sum;
    }
  }
)";

const char* kProductEpilogue = R"(
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float a = acc[m], b = acc2[m];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      a += __shfl_xor_sync(0xffffffffu, a, o);
      if (GLU) b += __shfl_xor_sync(0xffffffffu, b, o);
    }
    acc[m] = a;
    acc2[m] = b;
  }
  if (lane == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float v;
      if (GLU) {
        const float g = static_cast<float>(static_cast<T>(acc[m]));
        const float u = static_cast<float>(static_cast<T>(acc2[m]));
        const float s = static_cast<float>(static_cast<T>(g / (1.f + expf(-g))));
        v = s * u;
      } else {
        v = acc[m];
        if (HASBIAS) v = static_cast<float>(static_cast<T>(v)) + static_cast<float>(bias[n]);
        if (RES) v = static_cast<float>(r[(size_t)m * NOUT + n]) + static_cast<float>(static_cast<T>(v));
      }
      y[(size_t)m * NOUT + n] = static_cast<T>(v);
    }
  }
)";

// The tiled product kernel: the same products and epilogues as the kernel
// above, for the sizes where a step's products, not its launches, set the
// time. A block stages x (normalised when NORM, rounded to T as above) in
// shared memory once, then each warp takes R output rows at a time (with
// GLU, their gate and up rows: RW weight rows) over a grid-strided loop, so
// x is read and converted once per R rows, every lane has RW 16-byte loads
// in flight, and quantized values are unpacked with an exponent trick (the
// 4- or 8-bit value q as the float 2^23 + q, less 2^23: exact, and full-rate
// instructions where a conversion is quarter-rate; one byte permute puts q
// under the exponent, after a word's even and odd nibbles are masked into
// bytes once, so a value costs a permute, a subtraction and its
// multiply-add: the 4-bit products are bound by instructions issued, not by
// memory, scripts/gpu/prodlab.py). The group size is a power of two, so a
// group is a shift away. Template values as
// above plus R and XS (= M * K, the shared array's length; the host takes
// this kernel only where it fits). One warp's sums run in the same order as
// in the kernel above.
// The tiled prologue in three parts, so the block kernel below can declare
// the shared arrays once and run the rest once per product.
const char* kTileHead = R"(
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  const int NW = w_shape[0];
  const int NOUT = GLU ? NW / 2 : NW;
  constexpr int RW = GLU ? 2 * R : R;
)";

const char* kTileShared = R"(  __shared__ __align__(16) T xs[XS];
  __shared__ float part[M][32];
  __shared__ float inv[M];
)";

const char* kTilePrologue = R"(  if (NORM) {
    float ss[M];
#pragma unroll
    for (int m = 0; m < M; ++m) ss[m] = 0.f;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float v = static_cast<float>(x[(size_t)m * K + k]);
        ss[m] += v * v;
      }
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float s = ss[m];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (lane == 0) part[m][warp] = s;
    }
    __syncthreads();
    if (threadIdx.x < M) {
      float s = 0.f;
      for (int i = 0; i < warps; ++i) s += part[threadIdx.x][i];
      inv[threadIdx.x] = rsqrtf(s / K + prm[0]);
    }
    __syncthreads();
  }
  for (int i = threadIdx.x; i < M * K; i += blockDim.x) {
    if (NORM) {
      const int m = i / K;
      xs[i] = static_cast<T>(nw[i - m * K] * (static_cast<float>(x[i]) * inv[m]));
    } else {
      xs[i] = x[i];
    }
  }
  __syncthreads();
  const int tiles = (NOUT + R - 1) / R;
  for (int tile = blockIdx.x * warps + warp; tile < tiles; tile += gridDim.x * warps) {
    const int n0 = tile * R;
    int rn[RW];
#pragma unroll
    for (int c = 0; c < R; ++c) {
      const int n = min(n0 + c, NOUT - 1);
      rn[c] = n;
      if (GLU) rn[R + c] = n + NOUT;
    }
    float acc[RW][M];
#pragma unroll
    for (int c = 0; c < RW; ++c) {
#pragma unroll
      for (int m = 0; m < M; ++m) acc[c][m] = 0.f;
    }
)";

const char* kTileDenseBody = R"(
    constexpr int VEC = 16 / sizeof(T);
    for (int k = lane * VEC; k < K; k += 32 * VEC) {
      float wv[RW][VEC];
#pragma unroll
      for (int c = 0; c < RW; ++c) {
        const uint4 p = *reinterpret_cast<const uint4*>(w + (size_t)rn[c] * K + k);
        const T* v = reinterpret_cast<const T*>(&p);
#pragma unroll
        for (int j = 0; j < VEC; ++j) wv[c][j] = static_cast<float>(v[j]);
      }
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 p = *reinterpret_cast<const uint4*>(xs + m * K + k);
        const T* v = reinterpret_cast<const T*>(&p);
        float xv[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) xv[j] = static_cast<float>(v[j]);
#pragma unroll
        for (int c = 0; c < RW; ++c) {
          float a = 0.f;
#pragma unroll
          for (int j = 0; j < VEC; ++j) a += wv[c][j] * xv[j];
          acc[c][m] += a;
        }
      }
    }
)";

const char* kTileQuantBody = R"(
    constexpr int VALS = 4 * PER;
    constexpr int XU = PER * (int)sizeof(T) / 8;  // 8-byte loads of x per word
    constexpr int XPU = 8 / (int)sizeof(T);       // values per such load
    const int groups = scales_shape[1];
    const int gsh = __ffs(K / groups) - 1;  // the group size is a power of two (linear_check)
    const int WK = K / PER;
    const uint32_t* wr[RW];
    const T* sr[RW];
    const T* br[RW];
#pragma unroll
    for (int c = 0; c < RW; ++c) {
      wr[c] = w + (size_t)rn[c] * WK;
      sr[c] = scales + (size_t)rn[c] * groups;
      br[c] = biases + (size_t)rn[c] * groups;
    }
    for (int k = lane * VALS; k < K; k += 32 * VALS) {
      uint32_t wd[RW][4];
      float sc[RW], bi[RW];
#pragma unroll
      for (int c = 0; c < RW; ++c) {
        const uint4 p = *reinterpret_cast<const uint4*>(wr[c] + k / PER);
        wd[c][0] = p.x;
        wd[c][1] = p.y;
        wd[c][2] = p.z;
        wd[c][3] = p.w;
        sc[c] = static_cast<float>(sr[c][k >> gsh]);
        bi[c] = static_cast<float>(br[c][k >> gsh]);
      }
      float d[RW][M], sx[M];
#pragma unroll
      for (int m = 0; m < M; ++m) {
        sx[m] = 0.f;
#pragma unroll
        for (int c = 0; c < RW; ++c) d[c][m] = 0.f;
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float q[RW][PER];
#pragma unroll
        for (int c = 0; c < RW; ++c) {
          if (BITS == 4) {
            const uint32_t lo = wd[c][i] & 0x0f0f0f0fu, hi = (wd[c][i] >> 4) & 0x0f0f0f0fu;
#pragma unroll
            for (int j = 0; j < PER; ++j)
              q[c][j] = __uint_as_float(__byte_perm(j % 2 ? hi : lo, 0x4b000000u, 0x7540 | (j / 2))) - 8388608.f;
          } else {  // 8 bits (linear_check admits 4 and 8)
#pragma unroll
            for (int j = 0; j < PER; ++j)
              q[c][j] = __uint_as_float(__byte_perm(wd[c][i], 0x4b000000u, 0x7540 | j)) - 8388608.f;
          }
        }
#pragma unroll
        for (int m = 0; m < M; ++m) {
          float xv[PER];
          const uint2* xp = reinterpret_cast<const uint2*>(xs + m * K + k + i * PER);
#pragma unroll
          for (int u = 0; u < XU; ++u) {
            const uint2 p = xp[u];
            const T* v = reinterpret_cast<const T*>(&p);
#pragma unroll
            for (int j = 0; j < XPU; ++j) xv[u * XPU + j] = static_cast<float>(v[j]);
          }
#pragma unroll
          for (int j = 0; j < PER; ++j) sx[m] += xv[j];
#pragma unroll
          for (int c = 0; c < RW; ++c) {
#pragma unroll
            for (int j = 0; j < PER; ++j) d[c][m] += q[c][j] * xv[j];
          }
        }
      }
#pragma unroll
      for (int c = 0; c < RW; ++c) {
#pragma unroll
        for (int m = 0; m < M; ++m) acc[c][m] += sc[c] * d[c][m] + bi[c] * sx[m];
      }
    }
)";

const char* kTileEpilogue = R"(
#pragma unroll
    for (int c = 0; c < RW; ++c) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float a = acc[c][m];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
        acc[c][m] = a;
      }
    }
    if (lane == 0) {
#pragma unroll
      for (int c = 0; c < R; ++c) {
        const int n = n0 + c;
        if (n < NOUT) {
#pragma unroll
          for (int m = 0; m < M; ++m) {
            float v;
            if (GLU) {
              const float g = static_cast<float>(static_cast<T>(acc[c][m]));
              const float u = static_cast<float>(static_cast<T>(acc[R + c][m]));
              const float s = static_cast<float>(static_cast<T>(g / (1.f + expf(-g))));
              v = s * u;
            } else {
              v = acc[c][m];
              if (HASBIAS) v = static_cast<float>(static_cast<T>(v)) + static_cast<float>(bias[n]);
              if (RES) v = static_cast<float>(r[(size_t)m * NOUT + n]) + static_cast<float>(static_cast<T>(v));
            }
            y[(size_t)m * NOUT + n] = static_cast<T>(v);
          }
        }
      }
    }
  }
)";

// The attention kernel for one new position per lane: one block of 8 warps
// per (lane b, query head h). It takes the fused q/k/v row of b, applies the
// per-head RMSNorm (QKNORM) and RoPE (TRAD: adjacent pairs, else halves) at
// position meta[0] - meta[1 + b] with inverse frequencies invf, writes the
// new key and value into the caches at meta[0] (the first query head of a
// group writes; every head uses its own copy, so no block reads a position
// another is writing) and attends over positions [meta[1 + b], meta[0]]
// with an online softmax per warp, merged at the end. The caches kc and vc
// [B, NKV, capacity, HD] are written in place: the engine's cache owns them.
// (32 warps a block asked for more registers than a block may have on an
// H100: "too many resources requested for launch".)
//
// A warp loads P positions' keys and values before it uses the first, so P
// cache reads are in flight at once: one at a time, a long context is a
// chain of memory round trips (a 576-position context was half of a 4B
// step on an H100). The block kernel also splits a head's positions into
// `chunks` runs over as many blocks, each writing its (max, sum, values)
// to apart; the block that finishes last (acnt counts them) merges them.
//
// In three parts: the block kernel runs the body once per (lane, head,
// chunk) item its block takes.
const char* kAttnConsts = R"(
  constexpr int WARPS = 8;
  constexpr int DPL = (HD + 31) / 32;
  constexpr int HALF = HD / 2;
  constexpr int P = DPL <= 2 ? 8 : DPL <= 4 ? 4 : 2;
)";

const char* kAttnItem = R"(  const int b = blockIdx.x / NH;
  const int h = blockIdx.x % NH;
  constexpr int chunks = 1, chunk = 0;
  float* apart = nullptr;
  unsigned* acnt = nullptr;
)";

const char* kAttnBody = R"(  const int GROUP = NH / NKV;
  const int kh = h / GROUP;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int cap = kc_shape[2];
  const int offset = meta[0];
  const int pad = meta[1 + b];
  const float pos = static_cast<float>(offset - pad);
  const float eps = prm[0], scale = prm[1];
  const T* src = qkv + (size_t)b * (NH + 2 * NKV) * HD;
  __shared__ float qs[HD], ks[HD], vs[HD];
  __shared__ float inv[2];
  __shared__ float wm[WARPS], wl[WARPS], wacc[WARPS][HD];
  __shared__ int last;
  for (int d = tid; d < HD; d += blockDim.x) {
    qs[d] = static_cast<float>(src[h * HD + d]);
    ks[d] = static_cast<float>(src[(NH + kh) * HD + d]);
    vs[d] = static_cast<float>(src[(NH + NKV + kh) * HD + d]);
  }
  __syncthreads();
  if (QKNORM) {
    if (warp == 0) {
      float a = 0.f, c = 0.f;
      for (int d = lane; d < HD; d += 32) { a += qs[d] * qs[d]; c += ks[d] * ks[d]; }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, o);
        c += __shfl_xor_sync(0xffffffffu, c, o);
      }
      if (lane == 0) { inv[0] = rsqrtf(a / HD + eps); inv[1] = rsqrtf(c / HD + eps); }
    }
    __syncthreads();
    for (int d = tid; d < HD; d += blockDim.x) {
      qs[d] = static_cast<float>(static_cast<T>(qn[d] * (qs[d] * inv[0])));
      ks[d] = static_cast<float>(static_cast<T>(kn[d] * (ks[d] * inv[1])));
    }
    __syncthreads();
  }
  for (int i = tid; i < HALF; i += blockDim.x) {
    const int a = TRAD ? 2 * i : i;
    const int c = TRAD ? 2 * i + 1 : i + HALF;
    float sn, cs;
    sincosf(pos * invf[i], &sn, &cs);
    const float q0 = qs[a], q1 = qs[c], k0 = ks[a], k1 = ks[c];
    qs[a] = static_cast<float>(static_cast<T>(q0 * cs - q1 * sn));
    qs[c] = static_cast<float>(static_cast<T>(q0 * sn + q1 * cs));
    ks[a] = static_cast<float>(static_cast<T>(k0 * cs - k1 * sn));
    ks[c] = static_cast<float>(static_cast<T>(k0 * sn + k1 * cs));
  }
  __syncthreads();
  const size_t base = ((size_t)b * NKV + kh) * (size_t)cap * HD;
  if (h % GROUP == 0 && chunk == 0) {
    T* kw = const_cast<T*>(kc);
    T* vw = const_cast<T*>(vc);
    for (int d = tid; d < HD; d += blockDim.x) {
      kw[base + (size_t)offset * HD + d] = static_cast<T>(ks[d]);
      vw[base + (size_t)offset * HD + d] = static_cast<T>(vs[d]);
    }
  }
  // This block's run of positions: chunk of chunks equal runs of [pad, offset].
  const int span = (offset - pad + chunks) / chunks;
  const int tbeg = pad + chunk * span;
  const int tend = min(offset + 1, tbeg + span);
  float q[DPL], acc[DPL];
#pragma unroll
  for (int j = 0; j < DPL; ++j) { q[j] = lane + 32 * j < HD ? qs[lane + 32 * j] : 0.f; acc[j] = 0.f; }
  float mrun = -__int_as_float(0x7f800000), lrun = 0.f;
  for (int t0 = tbeg + warp * P; t0 < tend; t0 += WARPS * P) {
    float kv[P][DPL], vv[P][DPL];
#pragma unroll
    for (int u = 0; u < P; ++u) {
      const int t = t0 + u;
      const T* kr = kc + base + (size_t)t * HD;
      const T* vr = vc + base + (size_t)t * HD;
#pragma unroll
      for (int j = 0; j < DPL; ++j) {
        const int d = lane + 32 * j;
        const bool in = d < HD && t < tend;
        kv[u][j] = !in ? 0.f : t == offset ? ks[d] : static_cast<float>(kr[d]);
        vv[u][j] = !in ? 0.f : t == offset ? vs[d] : static_cast<float>(vr[d]);
      }
    }
#pragma unroll
    for (int u = 0; u < P; ++u) {
      if (t0 + u >= tend) break;
      float s = 0.f;
#pragma unroll
      for (int j = 0; j < DPL; ++j) s += q[j] * kv[u][j];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      s *= scale;
      const float mnew = fmaxf(mrun, s);
      const float corr = expf(mrun - mnew);
      const float p = expf(s - mnew);
      lrun = lrun * corr + p;
#pragma unroll
      for (int j = 0; j < DPL; ++j) acc[j] = acc[j] * corr + p * vv[u][j];
      mrun = mnew;
    }
  }
  if (lane == 0) { wm[warp] = mrun; wl[warp] = lrun; }
#pragma unroll
  for (int j = 0; j < DPL; ++j) {
    if (lane + 32 * j < HD) wacc[warp][lane + 32 * j] = acc[j];
  }
  __syncthreads();
  float* mine = chunks > 1 ? apart + ((size_t)(b * NH + h) * chunks + chunk) * (HD + 2) : nullptr;
  for (int d = tid; d < HD; d += blockDim.x) {
    float mx = -__int_as_float(0x7f800000);
#pragma unroll
    for (int i = 0; i < WARPS; ++i) mx = fmaxf(mx, wm[i]);
    float l = 0.f, o = 0.f;
#pragma unroll
    for (int i = 0; i < WARPS; ++i) {
      if (wl[i] > 0.f) {
        const float f = expf(wm[i] - mx);
        l += wl[i] * f;
        o += wacc[i][d] * f;
      }
    }
    if (chunks == 1) {
      y[((size_t)b * NH + h) * HD + d] = static_cast<T>(o / l);
    } else {
      mine[2 + d] = o;
      if (d == 0) { mine[0] = mx; mine[1] = l; }
    }
  }
  if (chunks > 1) {
    // The last of the head's blocks to finish merges the runs.
    __threadfence();
    __syncthreads();
    if (tid == 0) last = atomicAdd(acnt + b * NH + h, 1u) == (unsigned)(chunks - 1);
    __syncthreads();
    if (last) {
      __threadfence();
      const float* runs = apart + (size_t)(b * NH + h) * chunks * (HD + 2);
      for (int d = tid; d < HD; d += blockDim.x) {
        float mx = -__int_as_float(0x7f800000);
        for (int c = 0; c < chunks; ++c)
          if (__ldcg(runs + c * (HD + 2) + 1) > 0.f) mx = fmaxf(mx, __ldcg(runs + c * (HD + 2)));
        float l = 0.f, o = 0.f;
        for (int c = 0; c < chunks; ++c) {
          const float* r = runs + c * (HD + 2);
          const float lc = __ldcg(r + 1);
          if (lc > 0.f) {
            const float f = expf(__ldcg(r) - mx);
            l += lc * f;
            o += __ldcg(r + 2 + d) * f;
          }
        }
        y[((size_t)b * NH + h) * HD + d] = static_cast<T>(o / l);
      }
      if (tid == 0) acnt[b * NH + h] = 0u;
    }
  }
)";

// product_source is the product kernel's body: one warp a weight row, or
// tiled (x staged in shared memory), dense or quantized.
std::string product_source(bool quant, bool tile) {
  std::string s = quant ? kQuantKDim : kDenseKDim;
  if (tile) {
    s += kTileHead;
    s += kTileShared;
  }
  s += tile ? kTilePrologue : kProductPrologue;
  s += tile ? (quant ? kTileQuantBody : kTileDenseBody) : (quant ? kQuantBody : kDenseBody);
  s += tile ? kTileEpilogue : kProductEpilogue;
  return s;
}

// attention_source is the attention kernel's body: a block per (lane, head).
std::string attention_source() { return std::string(kAttnConsts) + kAttnItem + kAttnBody; }

// The block kernel: a whole decoder block for one new position per lane as
// one launch, the five kernels above as five stages of one grid with a
// barrier between them (every block of the grid waits there for the
// others), so a block is one node of a step's graph instead of five: a
// decode step of a large model on a GPU is set by the host's work per node
// (docs/benchmarks.md, "Where the time goes"). The stages run the same
// source text as the kernels above (the tiled product's prologue, body and
// epilogue; the attention body once per (lane, head) item a block takes),
// so they compute what the five kernels compute, in the same order.
//
// The grid must be resident at once (the host sizes it from the driver's
// occupancy for this variant); should it not be (another process holding
// multiprocessors), a block that has waited 10 s at a barrier traps, so the
// step fails with a CUDA error instead of hanging. The workspace ws
// (uint32) holds the barrier (a count at word 0, a generation at word 32,
// both zero at first, and back to count zero after every barrier), from
// word 64 the attention's run counters (zero between launches; at the same
// place for every layer), then the stages' intermediate rows in T: q/k/v,
// attention, the first residual, SwiGLU's output, each region on a
// 128-value boundary, then the attention's runs. Each region is written
// once a launch before any block reads it, so no block reads a stale copy
// from its L1 cache (the runs are read past it). The input `after` is not
// read: it is the previous block kernel's output, so MLX's graph orders
// this launch after that one even where a hook replaced h (two grids on
// one workspace, or both filling the GPU, must not run at once). Template
// values: T, M, HD, NH, NKV, QKNORM, TRAD, XS (M times the widest product
// input), QB, OB, DB (q/k/v, output and down biases), R1, R3, R5 (output
// rows a warp for q/k/v, output, down), BITS when quantized.
const char* kBlockHead = R"(
  unsigned* bar = const_cast<unsigned*>(reinterpret_cast<const unsigned*>(ws));
  const int NQKV = (NH + 2 * NKV) * HD;
  const int DM = o_w_shape[0];
  const int FF = gu_w_shape[0] / 2;
  auto region = [](int n) { return (n + 127) / 128 * 128; };
  // The attention runs' counters and partial results (kAttnBody).
  constexpr int SMAX = 16;
  unsigned* acnt = bar + 64;
  T* s_qkv = reinterpret_cast<T*>(acnt + region(M * NH));
  T* s_att = s_qkv + region(M * NQKV);
  T* s_h1 = s_att + region(M * NH * HD);
  T* s_act = s_h1 + region(M * DM);
  float* apart = reinterpret_cast<float*>(s_act + region(M * FF));
  // grid_sync: every block's writes so far are visible to every block after
  // it (the fence before arriving, as cooperative groups' grid sync does).
  auto grid_sync = [&]() {
    __syncthreads();
    if (threadIdx.x == 0) {
      volatile unsigned* gen = bar + 32;
      const unsigned seen = *gen;
      __threadfence();
      if (atomicAdd(bar, 1u) == gridDim.x - 1) {
        atomicExch(bar, 0u);
        __threadfence();
        atomicAdd(bar + 32, 1u);
      } else {
        // The clock is read once every 1024 polls: a block released by
        // the last arrival sees it on its next poll, not after a timer read.
        unsigned long long t0, t;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
        for (unsigned n = 1; *gen == seen; ++n) {
          __nanosleep(32);
          if ((n & 1023u) == 0) {
            asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
            if (t - t0 > 10000000000ull) __trap();
          }
        }
      }
      __threadfence();
    }
    __syncthreads();
  };
)";

// block_product is one product stage of the block kernel: the tiled
// product's source over the named inputs (p: the linear's input prefix),
// then (sync) the barrier before the next stage.
std::string block_product(bool quant, const std::string& x, const std::string& p, const std::string& nw,
                          const std::string& r, const std::string& y, bool norm, bool glu, const std::string& hasbias,
                          bool res, const std::string& rows, bool sync) {
  std::string s = "  {\n";
  s += "    const T* x = " + x + ";\n";
  s += quant ? "    const uint32_t* w = " + p + "_w;\n" : "    const T* w = " + p + "_w;\n";
  if (quant) s += "    const T* scales = " + p + "_s;\n    const T* biases = " + p + "_b;\n";
  s += "    const float* nw = " + nw + ";\n";
  s += "    const T* bias = " + p + "_bias;\n";
  s += "    const T* r = " + r + ";\n";
  s += "    T* y = " + y + ";\n";
  s += "    const int w_shape[2] = {" + p + "_w_shape[0], " + p + "_w_shape[1]};\n";
  if (quant) s += "    const int scales_shape[2] = {" + p + "_s_shape[0], " + p + "_s_shape[1]};\n";
  s += std::string("    constexpr bool NORM = ") + (norm ? "true" : "false") + ";\n";
  s += std::string("    constexpr bool GLU = ") + (glu ? "true" : "false") + ";\n";
  s += "    constexpr bool HASBIAS = " + hasbias + ";\n";
  s += std::string("    constexpr bool RES = ") + (res ? "true" : "false") + ";\n";
  s += "    constexpr int R = " + rows + ";\n";
  s += quant ? kQuantKDim : kDenseKDim;
  s += kTileHead;
  s += kTilePrologue;
  s += quant ? kTileQuantBody : kTileDenseBody;
  s += kTileEpilogue;
  s += sync ? "  }\n  grid_sync();\n" : "  }\n";
  return s;
}

// block_source is the block kernel's body.
std::string block_source(bool quant) {
  std::string s = kTileShared;
  s += kBlockHead;
  s += block_product(quant, "h", "qkv", "an", "h", "s_qkv", true, false, "QB", false, "R1", true);
  s += "  {\n    const T* qkv = s_qkv;\n    T* y = s_att;\n";
  s += kAttnConsts;
  s += "    const int chunks = max(1, min(SMAX, (int)gridDim.x / (M * NH)));\n";
  s += "    for (int item = blockIdx.x; item < M * NH * chunks; item += gridDim.x) {\n";
  s += "    const int chunk = item % chunks;\n    const int b = item / chunks / NH;\n    const int h = item / chunks % NH;\n";
  s += kAttnBody;
  s += "    __syncthreads();\n    }\n  }\n  grid_sync();\n";
  s += block_product(quant, "s_att", "o", "an", "h", "s_h1", false, false, "OB", true, "R3", true);
  s += block_product(quant, "s_h1", "gu", "fn", "h", "s_act", true, true, "false", false, "1", true);
  s += block_product(quant, "s_act", "dn", "an", "s_h1", "out", false, false, "DB", true, "R5", false);
  return s;
}

// product_kernel and attention_kernel are MLX's fast::cuda_kernel over the
// kernel definitions below: the fallback of gk::run_kernel.
mx::fast::CustomKernelFunction make_kernel(const gk::KernelDef& d) {
  return mx::fast::cuda_kernel(d.name, d.inputs, {d.output}, d.body, "", d.ensure_row_contiguous, 0);
}

mx::fast::CustomKernelFunction& product_kernel(bool quant, bool tile) {
  static mx::fast::CustomKernelFunction k[4] = {
      make_kernel(gk::product_def(false, false)), make_kernel(gk::product_def(true, false)),
      make_kernel(gk::product_def(false, true)), make_kernel(gk::product_def(true, true))};
  return k[quant + 2 * tile];
}

mx::fast::CustomKernelFunction& attention_kernel() {
  static mx::fast::CustomKernelFunction k = make_kernel(gk::attention_def());
  return k;
}

}  // namespace

// The kernel definitions shared by both launch paths (kernels.h).
const gk::KernelDef& gk::product_def(bool quant, bool tile) {
  auto def = [](bool q, bool t) {
    std::vector<std::string> inputs = {"x", "prm", "nw", "w", "bias", "r"};
    if (q) inputs.insert(inputs.begin() + 4, {"scales", "biases"});
    return gk::KernelDef{std::string("genkit_") + (t ? "t" : "") + (q ? "q" : "") + "product", inputs, "y",
                         product_source(q, t), true,
                         [q, t]() -> mx::fast::CustomKernelFunction& { return product_kernel(q, t); }};
  };
  static const gk::KernelDef defs[4] = {def(false, false), def(true, false), def(false, true), def(true, true)};
  return defs[quant + 2 * tile];
}

const gk::KernelDef& gk::attention_def() {
  // Not ensure_row_contiguous: the caches must be the engine's own buffers
  // (a contiguous copy would take the new key and value instead).
  static const gk::KernelDef k{"genkit_decode_attention", {"qkv", "prm", "qn", "kn", "invf", "meta", "kc", "vc"}, "y",
                               attention_source(), false, []() -> mx::fast::CustomKernelFunction& { return attention_kernel(); }};
  return k;
}

const gk::KernelDef& gk::block_def(bool quant) {
  auto def = [](bool q) {
    std::vector<std::string> inputs = {"h", "prm", "an", "fn", "qn", "kn", "invf", "meta", "kc", "vc", "ws", "after"};
    for (const char* p : {"qkv", "o", "gu", "dn"}) {
      inputs.push_back(std::string(p) + "_w");
      if (q) {
        inputs.push_back(std::string(p) + "_s");
        inputs.push_back(std::string(p) + "_b");
      }
      inputs.push_back(std::string(p) + "_bias");
    }
    // Not ensure_row_contiguous (the caches and the workspace are written in
    // place); no fallback: MLX's cuda_kernel cannot say whether a grid fits.
    gk::KernelDef d{std::string("genkit_") + (q ? "q" : "") + "block", inputs, "out", block_source(q), false, nullptr};
    d.sync_threads = 256;
    return d;
  };
  static const gk::KernelDef defs[2] = {def(false), def(true)};
  return defs[quant];
}

namespace {

bool float_type(mx::Dtype t) {
  return t == mx::float32 || t == mx::float16 || t == mx::bfloat16;
}

// weight_ok: a materialised, row-contiguous array whose data starts on a
// 16-byte boundary (the kernels read it in 16-byte loads).
bool weight_ok(const mx::array& a) {
  return a.is_available() && a.flags().row_contiguous &&
         reinterpret_cast<uintptr_t>(a.data<char>()) % 16 == 0;
}

// gemv_rows is x's row count when x is [..., K] with at most
// gemv_max_rows rows, else 0.
int gemv_rows(const mx::array& x, int K) {
  if (x.ndim() < 1 || x.shape(-1) != K || K <= 0) return 0;
  int64_t m = x.size() / K;
  return (m >= 1 && m <= gemv_max_rows) ? static_cast<int>(m) : 0;
}

// placeholder is a materialised one-element array of dtype t that stands
// for an absent kernel input (the kernels never read it). One per dtype,
// made once, so it adds no node to a step's graph.
const mx::array& placeholder(mx::Dtype t) {
  static std::map<int, mx::array> made;
  int key = static_cast<int>(t.val());
  auto it = made.find(key);
  if (it == made.end()) {
    mx::array a = mx::zeros({1}, t);
    mx::eval(a);
    it = made.emplace(key, a).first;
  }
  return it->second;
}

// ProductOp is one product kernel call: y = epilogue(prologue(x) W^T).
struct ProductOp {
  const mx::array* x = nullptr;
  const mx::array* w = nullptr;       // dense [N, K] or quantized words
  const mx::array* scales = nullptr;  // quantized only
  const mx::array* biases = nullptr;
  int bits = 0;
  const mx::array* norm = nullptr;  // float32 [K]: NORM
  const mx::array* prm = nullptr;   // float32 [eps, scale]
  const mx::array* bias = nullptr;  // [N]
  const mx::array* res = nullptr;   // [..., N]
  bool glu = false;
};

std::string linear_check(const ProductOp& op, mx::Dtype t, int& K, int& N);

// product_check is "" when the product kernel takes op (shapes, dtypes,
// alignment), else what is wrong, for errors; it sets M, K and N.
std::string product_check(const ProductOp& op, int& M, int& K, int& N) {
  const mx::array& x = *op.x;
  if (!float_type(x.dtype())) return "x is not a float array";
  std::string bad = linear_check(op, x.dtype(), K, N);
  if (!bad.empty()) return bad;
  M = gemv_rows(x, K);
  if (M == 0) return "x has too many rows or the wrong width";
  if (op.res && (op.res->dtype() != x.dtype() || op.res->size() != static_cast<size_t>(M) * N))
    return "the residual does not match the output";
  return "";
}

// linear_check is "" when the product kernels read op's weight, norm and
// bias with activations of dtype t, else what is wrong; it sets K (input
// width) and N (outputs).
std::string linear_check(const ProductOp& op, mx::Dtype t, int& K, int& N) {
  const mx::array& w = *op.w;
  if (w.ndim() != 2 || !weight_ok(w)) return "the weight is not a materialised, aligned, row-contiguous matrix";
  if (op.bits == 0) {
    if (w.dtype() != t) return "the weight's dtype differs from x's";
    K = w.shape(1);
    if ((static_cast<int64_t>(K) * mx::size_of(t)) % 16 != 0) return "the weight's rows are not 16-byte multiples";
  } else {
    if ((op.bits != 4 && op.bits != 8) || w.dtype() != mx::uint32) return "the weight is not 4- or 8-bit affine";
    const int per = 32 / op.bits, vals = 4 * per;
    K = w.shape(1) * per;
    const mx::array& sc = *op.scales;
    const mx::array& bi = *op.biases;
    if (sc.ndim() != 2 || bi.ndim() != 2 || sc.dtype() != t || bi.dtype() != t ||
        sc.shape(0) != w.shape(0) || bi.shape(0) != w.shape(0) || sc.shape(1) != bi.shape(1) ||
        !sc.is_available() || !sc.flags().row_contiguous || !bi.is_available() || !bi.flags().row_contiguous)
      return "the scales and biases do not match the weight";
    if (K % vals != 0 || sc.shape(1) <= 0 || K % sc.shape(1) != 0 || (K / sc.shape(1)) % vals != 0)
      return "the quantization group does not divide into the kernel's loads";
    if (((K / sc.shape(1)) & (K / sc.shape(1) - 1)) != 0) return "the quantization group is not a power of two";
  }
  N = op.glu ? w.shape(0) / 2 : w.shape(0);
  if (op.glu && w.shape(0) % 2 != 0) return "a gate/up weight needs an even row count";
  if (op.norm && (op.norm->dtype() != mx::float32 || op.norm->size() != static_cast<size_t>(K)))
    return "the norm weight is not float32 of the input width";
  if (op.bias && (op.bias->size() != static_cast<size_t>(N) || !float_type(op.bias->dtype())))
    return "the bias does not match the output";
  return "";
}

// tile_rows is how many output rows a warp of the tiled product takes at a
// time for N outputs: two where there are enough to fill every
// multiprocessor twice over with 8-warp blocks (a gate/up product has two
// weight rows an output already), else one.
int tile_rows(int N, bool glu) {
  const int sm = gk::multiprocessors() > 0 ? gk::multiprocessors() : 132;
  return (!glu && N >= 32 * sm) ? 2 : 1;
}

// TilePlan is how the tiled product kernel is launched: output rows a warp
// takes at a time (0: the one-warp-a-row kernel instead), warps a block,
// blocks.
struct TilePlan {
  int rows = 0, warps = 0, blocks = 0;
};

// tile_plan picks the product kernel for M rows of x of width K against N
// outputs in dtype size elem. The tiled kernel needs x (M * K values) in a
// block's static shared memory (48 KiB, less its reduction arrays);
// GENKIT_PRODUCT=warp asks for the one-warp-a-row kernel everywhere (for
// comparisons). Two rows a warp where there are enough rows to fill every
// multiprocessor twice over with 8-warp blocks (a gate/up product has two
// weight rows an output already), 4-warp blocks where rows are few, and at
// most 32 warps' worth of blocks a multiprocessor (x is staged once a
// block; where x is near 48 KiB fewer blocks fit at once, and the rest run
// as a second wave that stages x again).
TilePlan tile_plan(int M, int K, int N, size_t elem, bool glu) {
  TilePlan p;
  if (const char* e = std::getenv("GENKIT_PRODUCT"); e && std::string(e) == "warp") return p;
  if (static_cast<size_t>(M) * K * elem + static_cast<size_t>(M) * 33 * sizeof(float) > 48 * 1024) return p;
  const int sm = gk::multiprocessors() > 0 ? gk::multiprocessors() : 132;
  p.rows = tile_rows(N, glu);
  const int tiles = (N + p.rows - 1) / p.rows;
  p.warps = tiles >= 8 * sm ? 8 : 4;
  p.blocks = std::min((tiles + p.warps - 1) / p.warps, sm * (32 / p.warps));
  return p;
}

// run_product builds the product kernel's node for op; the output has x's
// leading shape and N columns.
mx::array run_product(const ProductOp& op) {
  int M = 0, K = 0, N = 0;
  std::string bad = product_check(op, M, K, N);
  if (!bad.empty()) throw std::invalid_argument("mlx: gpu product: " + bad);
  const mx::array& x = *op.x;
  const mx::Dtype t = x.dtype();
  const mx::array& prm = op.prm ? *op.prm : placeholder(mx::float32);
  const mx::array& nw = op.norm ? *op.norm : placeholder(mx::float32);
  const mx::array& bias = op.bias ? *op.bias : placeholder(t);
  const mx::array& r = op.res ? *op.res : placeholder(t);
  mx::Shape shape = x.shape();
  shape.back() = N;
  std::vector<std::pair<std::string, mx::fast::TemplateArg>> targs = {
      {"T", t}, {"M", M}, {"NORM", op.norm != nullptr}, {"GLU", op.glu},
      {"HASBIAS", op.bias != nullptr}, {"RES", op.res != nullptr}};
  const TilePlan tp = tile_plan(M, K, N, mx::size_of(t), op.glu);
  if (tp.rows > 0) {
    targs.push_back({"R", tp.rows});
    targs.push_back({"XS", M * K});
  }
  std::vector<mx::array> in;
  if (op.bits == 0) {
    in = {x, prm, nw, *op.w, bias, r};
  } else {
    in = {x, prm, nw, *op.w, *op.scales, *op.biases, bias, r};
    targs.push_back({"BITS", op.bits});
  }
  const bool quant = op.bits != 0;
  if (tp.rows > 0)
    return gk::run_kernel(gk::product_def(quant, true), in, shape, t, {tp.blocks * tp.warps * 32, 1, 1},
                          {tp.warps * 32, 1, 1}, targs)[0];
  return gk::run_kernel(gk::product_def(quant, false), in, shape, t, {N * 32, 1, 1}, {128, 1, 1}, targs)[0];
}

const mx::array* opt_array(gk_array a) { return a.ctx ? &A(a) : nullptr; }

std::atomic<long> g_block_kernels{0};

// block_workspace_words is the block kernel's workspace for B lanes, in
// uint32 words: the barrier's 64 words, the attention's run counters, the
// four intermediate regions (see kBlockHead) in elements of elem bytes,
// then the attention's runs.
size_t block_workspace_words(int B, int D, int H, int Hkv, int hd, int F, size_t elem) {
  auto region = [](size_t n) { return (n + 127) / 128 * 128; };
  const size_t vals = region(static_cast<size_t>(B) * (H + 2 * Hkv) * hd) + region(static_cast<size_t>(B) * H * hd) +
                      region(static_cast<size_t>(B) * D) + region(static_cast<size_t>(B) * F);
  // The attention's run counters, the rows, then its runs (at most 16 a
  // head) of hd + 2 floats.
  return 64 + region(static_cast<size_t>(B) * H) + (vals * elem + 3) / 4 + static_cast<size_t>(B) * H * 16 * (hd + 2);
}

// BlockCall is one decoder block's arrays as gk_gpu_decode_block checked
// them, for the block kernel.
struct BlockCall {
  const mx::array *h, *prm, *an, *fn, *qn, *kn, *invf, *meta, *kc, *vc, *ws, *after;
  ProductOp qkv, o, gu, dn;
  int H, Hkv, hd;
  bool qknorm, trad;
};

// run_block is the block as one kernel (block_def), or nothing where that
// kernel does not take it here: GENKIT_PRODUCT=warp (the block kernel runs
// the tiled product), CUDA MPS, linears of different bits, a bias in another dtype, x over the shared
// memory, no workspace of the size needed, or a grid that cannot be
// resident at once (the caller then runs the five kernels).
std::optional<mx::array> run_block(const BlockCall& c) {
  if (const char* e = std::getenv("GENKIT_PRODUCT"); e && std::string(e) == "warp") return std::nullopt;
  // Under MPS other clients share the multiprocessors: the grid might not
  // all be resident.
  for (const char* v : {"CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"})
    if (const char* e = std::getenv(v); e && *e) return std::nullopt;
  const mx::array& h = *c.h;
  const mx::Dtype t = h.dtype();
  const int B = h.shape(0), D = h.shape(2);
  const int bits = c.qkv.bits;
  int K1, N1, K3, N3, K4, N4, K5, N5;
  for (const ProductOp* op : {&c.qkv, &c.o, &c.gu, &c.dn}) {
    if (op->bits != bits) return std::nullopt;
    if (op->bias && op->bias->dtype() != t) return std::nullopt;
  }
  if (!linear_check(c.qkv, t, K1, N1).empty() || !linear_check(c.o, t, K3, N3).empty() ||
      !linear_check(c.gu, t, K4, N4).empty() || !linear_check(c.dn, t, K5, N5).empty())
    return std::nullopt;
  const int F = N4;
  if (K1 != D || N1 != (c.H + 2 * c.Hkv) * c.hd || K3 != c.H * c.hd || N3 != D || K4 != D || K5 != F || N5 != D)
    return std::nullopt;
  const int XS = B * std::max({D, c.H * c.hd, F});
  const size_t smem = static_cast<size_t>(XS) * mx::size_of(t) + static_cast<size_t>(B) * 33 * 4 +
                      static_cast<size_t>(11 * c.hd + 20) * 4;
  if (smem > 48 * 1024) return std::nullopt;
  const mx::array& ws = *c.ws;
  if (ws.dtype() != mx::uint32 || ws.ndim() != 1 ||
      ws.size() < block_workspace_words(B, D, c.H, c.Hkv, c.hd, F, mx::size_of(t)))
    return std::nullopt;
  const bool quant = bits != 0;
  std::vector<mx::array> in = {h, *c.prm, *c.an, *c.fn, *c.qn, *c.kn, *c.invf, *c.meta, *c.kc, *c.vc, ws, *c.after};
  for (const ProductOp* op : {&c.qkv, &c.o, &c.gu, &c.dn}) {
    in.push_back(*op->w);
    if (quant) {
      in.push_back(*op->scales);
      in.push_back(*op->biases);
    }
    in.push_back(op->bias ? *op->bias : placeholder(t));
  }
  gk::TemplateArgs targs = {{"T", t},
                            {"M", B},
                            {"HD", c.hd},
                            {"NH", c.H},
                            {"NKV", c.Hkv},
                            {"QKNORM", c.qknorm},
                            {"TRAD", c.trad},
                            {"XS", XS},
                            {"QB", c.qkv.bias != nullptr},
                            {"OB", c.o.bias != nullptr},
                            {"DB", c.dn.bias != nullptr},
                            {"R1", tile_rows(N1, false)},
                            {"R3", tile_rows(N3, false)},
                            {"R5", tile_rows(N5, false)}};
  if (quant) targs.push_back({"BITS", bits});
  const gk::KernelDef& def = gk::block_def(quant);
  const int resident = gk::cooperative_blocks(def, in, t, targs);
  const int sm = gk::multiprocessors();
  if (resident < 1 || sm < 1) return std::nullopt;
  // Blocks a multiprocessor: 4 (32 warps), or GENKIT_BLOCK_GRID (for
  // measuring), at most what is resident.
  int per = 4;
  if (const char* e = std::getenv("GENKIT_BLOCK_GRID"); e && std::atoi(e) > 0) per = std::atoi(e);
  const int grid = std::min(resident, per) * sm;
  g_block_kernels++;
  return gk::run_kernel(def, in, h.shape(), t, {grid * 256, 1, 1}, {256, 1, 1}, targs)[0];
}

}  // namespace

int gk_gemv(gk_array* out, int* used, gk_array xa, gk_array wa) {
  *used = 0;
  GK_TRY({
    if (mx::default_device() != mx::Device::gpu) return 0;
    ProductOp op;
    op.x = &A(xa);
    op.w = &A(wa);
    int M, K, N;
    if (!product_check(op, M, K, N).empty()) return 0;
    put(out, run_product(op));
    *used = 1;
  })
}

namespace {
// qgemv_op is gk_qgemv's product and why the kernels decline it ("" when
// they take it on a CUDA GPU).
std::string qgemv_op(ProductOp& op, gk_array xa, gk_array wa, gk_array sa, gk_array ba, int group_size, int bits) {
  op.x = &A(xa);
  op.w = &A(wa);
  op.scales = &A(sa);
  op.biases = &A(ba);
  op.bits = bits;
  int M, K, N;
  std::string bad = product_check(op, M, K, N);
  if (bad.empty() && A(sa).shape(1) * group_size != K) bad = "the group size does not match the scales";
  return bad;
}
thread_local std::string g_decline;
}  // namespace

int gk_qgemv(gk_array* out, int* used, gk_array xa, gk_array wa, gk_array sa,
             gk_array ba, int group_size, int bits) {
  *used = 0;
  GK_TRY({
    if (mx::default_device() != mx::Device::gpu) return 0;
    ProductOp op;
    if (!qgemv_op(op, xa, wa, sa, ba, group_size, bits).empty()) return 0;
    put(out, run_product(op));
    *used = 1;
  })
}

int gk_qgemv_decline(const char** why, gk_array xa, gk_array wa, gk_array sa, gk_array ba, int group_size,
                     int bits) {
  GK_TRY({
    ProductOp op;
    g_decline = qgemv_op(op, xa, wa, sa, ba, group_size, bits);
    *why = g_decline.c_str();
  })
}

int gk_gpu_decode_block(gk_array* out, const gk_decode_block_args* a, gk_array meta, gk_array prm) {
  GK_TRY({
    if (mx::default_device() != mx::Device::gpu)
      throw std::invalid_argument("mlx: the GPU decode block needs the GPU as the default device");
    const mx::array& h = A(a->h);
    const int B = h.ndim() == 3 ? h.shape(0) : 0;
    if (B < 1 || B > gemv_max_rows || h.shape(1) != 1 || !float_type(h.dtype()))
      throw std::invalid_argument("mlx: gpu decode block: h must be [B <= 8, 1, D] float");
    const int H = a->heads, Hkv = a->kv_heads, hd = a->head_dim;
    if (H <= 0 || Hkv <= 0 || H % Hkv != 0 || hd % 2 != 0 || hd > 256)
      throw std::invalid_argument("mlx: gpu decode block: head counts or head_dim (even, at most 256) unsupported");
    const mx::array& kc = A(a->k_cache);
    const mx::array& vc = A(a->v_cache);
    for (const mx::array* c : {&kc, &vc}) {
      if (c->dtype() != h.dtype() || c->ndim() != 4 || c->shape(0) != B || c->shape(1) != Hkv || c->shape(3) != hd ||
          c->shape(2) <= a->offset)
        throw std::invalid_argument("mlx: gpu decode block: the cache must be [B, Hkv, capacity > offset, head_dim] in h's dtype");
      if (c->is_available() && !c->flags().row_contiguous)
        throw std::invalid_argument("mlx: gpu decode block: the cache must be row-contiguous (it is written in place)");
    }
    const mx::array& mt = A(meta);
    const mx::array& pr = A(prm);
    if (mt.dtype() != mx::int32 || mt.size() != static_cast<size_t>(B + 1))
      throw std::invalid_argument("mlx: gpu decode block: meta must be int32 [1 + B] (offset, pads)");
    if (pr.dtype() != mx::float32 || pr.size() != 2)
      throw std::invalid_argument("mlx: gpu decode block: prm must be float32 [eps, scale]");
    const bool qknorm = a->q_norm.ctx != nullptr;
    const mx::array& invf = A(a->inv_freq);
    if (invf.dtype() != mx::float32 || invf.size() != static_cast<size_t>(hd / 2))
      throw std::invalid_argument("mlx: gpu decode block: inv_freq must be float32 [head_dim / 2]");
    const mx::array& qn = qknorm ? A(a->q_norm) : placeholder(mx::float32);
    const mx::array& kn = qknorm ? A(a->k_norm) : placeholder(mx::float32);
    if (qknorm && (qn.dtype() != mx::float32 || qn.size() != static_cast<size_t>(hd) ||
                   kn.dtype() != mx::float32 || kn.size() != static_cast<size_t>(hd)))
      throw std::invalid_argument("mlx: gpu decode block: q/k norms must be float32 [head_dim]");
    auto linear = [](const gk_block_linear& l, ProductOp& op) {
      op.w = &A(l.w);
      op.bits = l.bits;
      if (l.bits != 0) {
        op.scales = &A(l.scales);
        op.biases = &A(l.biases);
      }
      op.bias = opt_array(l.bias);
    };
    if (a->ws.ctx) {
      const mx::array& after = a->after.ctx ? A(a->after) : h;
      BlockCall c{&h, &pr, &A(a->attn_norm), &A(a->ffn_norm), &qn, &kn, &invf, &mt, &kc, &vc, &A(a->ws), &after};
      linear(a->qkv, c.qkv);
      c.qkv.norm = c.an;
      linear(a->o, c.o);
      linear(a->gate_up, c.gu);
      c.gu.glu = true;
      c.gu.norm = c.fn;
      linear(a->down, c.dn);
      c.H = H;
      c.Hkv = Hkv;
      c.hd = hd;
      c.qknorm = qknorm;
      c.trad = a->traditional != 0;
      // (linear_check in run_block checks the norms; a gate/up bias is
      // refused below.)
      if (!c.gu.bias) {
        if (auto y = run_block(c)) {
          put(out, *y);
          return 0;
        }
      }
    }
    // q/k/v: RMSNorm and the fused projection.
    ProductOp p1;
    p1.x = &h;
    p1.prm = &pr;
    p1.norm = &A(a->attn_norm);
    linear(a->qkv, p1);
    mx::array qkv = run_product(p1);
    if (qkv.shape(-1) != (H + 2 * Hkv) * hd)
      throw std::invalid_argument("mlx: gpu decode block: the q/k/v projection's width does not match the heads");
    // Attention (writes the cache).
    auto att = gk::run_kernel(
        gk::attention_def(), {qkv, pr, qn, kn, invf, mt, kc, vc}, {B, 1, H * hd}, h.dtype(), {B * H * 256, 1, 1},
        {256, 1, 1},
        {{"T", h.dtype()}, {"HD", hd}, {"NH", H}, {"NKV", Hkv}, {"QKNORM", qknorm}, {"TRAD", a->traditional != 0}})[0];
    // Output projection and residual.
    ProductOp p2;
    p2.x = &att;
    p2.res = &h;
    linear(a->o, p2);
    mx::array h1 = run_product(p2);
    // RMSNorm, gate/up and SwiGLU.
    ProductOp p3;
    p3.x = &h1;
    p3.prm = &pr;
    p3.norm = &A(a->ffn_norm);
    p3.glu = true;
    linear(a->gate_up, p3);
    if (p3.bias) throw std::invalid_argument("mlx: gpu decode block: a gate/up bias is not supported");
    mx::array act = run_product(p3);
    // Down projection and residual.
    ProductOp p4;
    p4.x = &act;
    p4.res = &h1;
    linear(a->down, p4);
    put(out, run_product(p4));
  })
}

int gk_gpu_block_workspace(gk_array* out, int lanes, int hidden, int heads, int kv_heads, int head_dim,
                           int intermediate, int dtype) {
  GK_TRY({
    if (lanes < 1 || hidden < 1 || heads < 1 || kv_heads < 1 || head_dim < 1 || intermediate < 1)
      throw std::invalid_argument("mlx: gpu block workspace: sizes must be positive");
    const size_t words =
        block_workspace_words(lanes, hidden, heads, kv_heads, head_dim, intermediate, mx::size_of(to_dtype(dtype)));
    // Zeros in a buffer of their own (a bare zeros is a broadcast scalar).
    put(out, mx::contiguous(mx::zeros({static_cast<int>(words)}, mx::uint32)));
  })
}

long gk_gpu_block_kernels(void) { return g_block_kernels.load(); }

void gk::set_error(const char* msg) { g_error = msg; }
