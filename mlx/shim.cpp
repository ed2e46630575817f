// shim.cpp implements shim.h over MLX's C++ API. Every entry point catches
// every C++ exception and turns it into a status code plus a message.
#include "shim.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <immintrin.h>
#include <exception>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace {

thread_local bool g_bound = false;
thread_local std::string g_error;
std::atomic<int64_t> g_live{0};

int not_bound() {
  g_error =
      "mlx: called outside the MLX thread (use mlx.Do to run work there)";
  return 2;
}

#define GK_TRY(...)                                    \
  if (!g_bound) return not_bound();                    \
  try {                                                \
    __VA_ARGS__;                                       \
    return 0;                                          \
  } catch (const std::exception& e) {                  \
    g_error = e.what();                                \
    return 1;                                          \
  } catch (...) {                                      \
    g_error = "mlx: unknown C++ exception";            \
    return 1;                                          \
  }

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
template <int BITS, int R>
__attribute__((target("avx2,fma"))) void qrows_avx2(
    const float* x, const float* xs, int K, const uint32_t* w, const float* sc,
    const float* bi, int gs, float* y, int N, int n0, int n1) {
  // R rows of x at once: each weight block is unpacked once for all of them.
  constexpr int per = 32 / BITS;  // values a word
  const int G = K / gs, words = K / per;
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i mask = _mm256_set1_epi32((1 << BITS) - 1);
  for (int n = n0; n < n1; n++) {
    const uint32_t* wr = w + (size_t)n * words;
    const float* sr = sc + (size_t)n * G;
    const float* br = bi + (size_t)n * G;
    __m256 total[R];
    float bias[R];
    for (int r = 0; r < R; r++) total[r] = _mm256_setzero_ps(), bias[r] = 0;
    for (int g = 0; g < G; g++) {
      __m256 acc[R];
      for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
      for (int k = g * gs; k < (g + 1) * gs; k += 8) {
        const uint32_t* wp = wr + k / per;
        __m256i v;
        if constexpr (BITS == 4) {
          v = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)wp[0]), shifts), mask);
        } else {
          v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(wp)));
        }
        __m256 q = _mm256_cvtepi32_ps(v);
        for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(q, _mm256_loadu_ps(x + (size_t)r * K + k), acc[r]);
      }
      __m256 s = _mm256_set1_ps(sr[g]);
      for (int r = 0; r < R; r++) {
        total[r] = _mm256_fmadd_ps(acc[r], s, total[r]);
        bias[r] += br[g] * xs[r * G + g];
      }
    }
    for (int r = 0; r < R; r++) {
      __m128 lo = _mm256_castps256_ps128(total[r]), hi = _mm256_extractf128_ps(total[r], 1);
      lo = _mm_add_ps(lo, hi);
      lo = _mm_hadd_ps(lo, lo);
      lo = _mm_hadd_ps(lo, lo);
      y[(size_t)r * N + n] = _mm_cvtss_f32(lo) + bias[r];
    }
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

// QRowProduct is x @ dequantize(w, scales, biases)^T for a few rows of x,
// on the CPU, reading the 4- or 8-bit weights once (MLX's CPU quantized
// matmul has no x86 SIMD). x [..., K] float32; w [N, K*bits/32] uint32;
// scales and biases [N, K/group] float32.
class QRowProduct : public mx::UnaryPrimitive {
 public:
  QRowProduct(mx::Stream s, int group, int bits) : mx::UnaryPrimitive(s), group_(group), bits_(bits) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    auto &x = in[0], &w = in[1], &sc = in[2], &bi = in[3];
    for (auto* a : {&x, &w, &sc, &bi})
      if (!a->flags().row_contiguous) throw std::runtime_error("mlx: q4 row product needs contiguous inputs");
    int K = x.shape(-1), N = w.shape(0), gs = group_;
    int M = (int)(x.size() / K);
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(x);
    enc.set_input_array(w);
    enc.set_input_array(sc);
    enc.set_input_array(bi);
    enc.set_output_array(out);
    const float* xp = x.data<float>();
    const uint32_t* wp = w.data<uint32_t>();
    const float* sp = sc.data<float>();
    const float* bp = bi.data<float>();
    float* yp = out.data<float>();
    static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int bits = bits_;
    enc.dispatch([=]() {
      const int G = K / gs;
      std::vector<float> xs((size_t)M * G);
      for (int m = 0; m < M; m++)
        for (int g = 0; g < G; g++) {
          float t = 0;
          for (int k = g * gs; k < (g + 1) * gs; k++) t += xp[(size_t)m * K + k];
          xs[(size_t)m * G + g] = t;
        }
      for (int m = 0; m < M;) {
        const float* xr = xp + (size_t)m * K;
        float* yr = yp + (size_t)m * N;
        const float* xsr = xs.data() + (size_t)m * G;
        if (avx2 && m + 3 < M) {  // four rows share each unpacked block
          if (bits == 4) qrows_avx2<4, 4>(xr, xsr, K, wp, sp, bp, gs, yr, N, 0, N);
          else qrows_avx2<8, 4>(xr, xsr, K, wp, sp, bp, gs, yr, N, 0, N);
          m += 4;
          continue;
        }
        if (avx2 && m + 1 < M) {  // two rows share each unpacked block
          if (bits == 4) qrows_avx2<4, 2>(xr, xsr, K, wp, sp, bp, gs, yr, N, 0, N);
          else qrows_avx2<8, 2>(xr, xsr, K, wp, sp, bp, gs, yr, N, 0, N);
          m += 2;
          continue;
        }
        if (avx2) {
          if (bits == 4) qrows_avx2<4, 1>(xr, xsr, K, wp, sp, bp, gs, yr, N, 0, N);
          else qrows_avx2<8, 1>(xr, xsr, K, wp, sp, bp, gs, yr, N, 0, N);
        } else {
          if (bits == 4) qrows_scalar<4>(xr, xsr, K, wp, sp, bp, gs, yr, 0, N);
          else qrows_scalar<8>(xr, xsr, K, wp, sp, bp, gs, yr, 0, N);
        }
        m += 1;
      }
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
    if (!x.flags().row_contiguous || !(wRowMajorNK || wRowMajorKN))
      throw std::runtime_error("mlx: row product needs contiguous inputs");
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(x);
    enc.set_input_array(w);
    enc.set_output_array(out);
    const float* xp = x.data<float>();
    const float* wp = w.data<float>();
    float* yp = out.data<float>();
    enc.dispatch([=]() {
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

}  // namespace

extern "C" {

void gk_bind_thread(void) {
  g_bound = true;
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
int gk_row_product_available(void) { return cblas_sgemv != nullptr ? 1 : 0; }

int gk_row_product(gk_array* out, gk_array x, gk_array wT) {
  GK_TRY({
    auto& a = A(x);
    auto& w = A(wT);
    if (cblas_sgemv == nullptr) throw std::runtime_error("mlx: no cblas_sgemv in this process");
    if (a.dtype() != mx::float32 || w.dtype() != mx::float32 || w.ndim() != 2 || a.shape(-1) != w.shape(0))
      throw std::invalid_argument("mlx: row product needs float32 x [..., K] and wT [K, N]");
    auto cpu = mx::default_stream(mx::Device(mx::Device::cpu));
    auto xc = mx::contiguous(a, false, cpu);
    auto sh = a.shape();
    sh.back() = w.shape(1);
    put(out, mx::array(sh, mx::float32, std::make_shared<RowProduct>(cpu), {xc, w}));
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
    auto f32 = [&](const mx::array& v) { return mx::contiguous(mx::astype(v, mx::float32, cpu), false, cpu); };
    auto sh = a.shape();
    sh.back() = q.shape(0);
    put(out, mx::array(sh, mx::float32, std::make_shared<QRowProduct>(cpu, group, bits),
                       {mx::contiguous(a, false, cpu), mx::contiguous(q, false, cpu), f32(A(scales)), f32(A(biases))}));
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
