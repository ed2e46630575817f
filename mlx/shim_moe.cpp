// shim_moe.cpp implements shim_moe.h over MLX's C++ API. Every entry point
// catches every C++ exception and turns it into a status code plus the
// message gk_error returns (shim_try.h). Results are handed out through gk_array_copy so
// shim.cpp's count of live arrays stays exact.
#include "shim_moe.h"
#include "shim_try.h"

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

#include "mlx/mlx.h"

namespace mx = mlx::core;

namespace {

const mx::array& in(gk_array a) {
  if (a.ctx == nullptr) throw std::invalid_argument("mlx: nil array");
  return *static_cast<const mx::array*>(a.ctx);
}

std::optional<mx::array> opt(gk_array a, int has) {
  if (!has) return std::nullopt;
  return in(a);
}

// hand registers r as a new handle in *out (shim.cpp owns handles).
void hand(gk_array* out, mx::array r) {
  gk_array tmp{&r};
  if (gk_array_copy(out, tmp) != 0) throw std::runtime_error(gk_error());
}

}  // namespace

extern "C" {


int gk_gather_mm(gk_array* out, gk_array a, gk_array b, gk_array lhs,
                 int has_lhs, gk_array rhs, int has_rhs, int sorted) {
  GK_TRY(hand(out, mx::gather_mm(in(a), in(b), opt(lhs, has_lhs),
                                     opt(rhs, has_rhs), sorted != 0)))
}

int gk_gather_qmm(gk_array* out, gk_array x, gk_array w, gk_array scales,
                  gk_array biases, gk_array lhs, int has_lhs, gk_array rhs,
                  int has_rhs, int transpose, int group_size, int bits,
                  int sorted) {
  GK_TRY(hand(out, mx::gather_qmm(in(x), in(w), in(scales), in(biases),
                                      opt(lhs, has_lhs), opt(rhs, has_rhs),
                                      transpose != 0, group_size, bits,
                                      "affine", std::nullopt, sorted != 0)))
}

int gk_moe_sort(gk_array* x_out, gk_array* idx_out, gk_array* inv,
                gk_array x, gk_array idx) {
  GK_TRY({
    const auto& xs = in(x);
    const auto& is = in(idx);
    if (is.ndim() != 2)
      throw std::invalid_argument("moe_sort: indices must be [N, k], got " +
                                  std::to_string(is.ndim()) + " axes");
    if (xs.ndim() != 3 || xs.shape(0) != is.shape(0) || xs.shape(1) != 1)
      throw std::invalid_argument(
          "moe_sort: x must be [N, 1, D] with N the indices' rows");
    int k = is.shape(1);
    auto flat = mx::flatten(is);
    auto order = mx::argsort(flat);
    auto back = mx::argsort(order);
    auto rows = mx::floor_divide(order, mx::array(k, order.dtype()));
    auto xo = mx::take(xs, rows, 0);
    auto io = mx::take(flat, order, 0);
    hand(x_out, xo);
    gk_array tmp{};
    try {
      hand(idx_out, io);
      tmp = *idx_out;
      hand(inv, back);
    } catch (...) {
      gk_array_free(*x_out);
      if (tmp.ctx != nullptr) gk_array_free(tmp);
      throw;
    }
  })
}

}  // extern "C"
