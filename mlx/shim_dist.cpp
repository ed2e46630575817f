// shim_dist.cpp implements shim_dist.h over mlx::core::distributed.
#include "shim_dist.h"
#include "shim_try.h"

#include <pthread.h>
#include <signal.h>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

#include "mlx/distributed/distributed.h"
#include "mlx/distributed/ops.h"
#include "mlx/mlx.h"

namespace mx = mlx::core;
namespace md = mlx::core::distributed;

namespace {

md::Group& G(gk_group g) {
  if (g.ctx == nullptr) throw std::invalid_argument("mlx: nil group");
  return *static_cast<md::Group*>(g.ctx);
}

std::optional<md::Group> opt_group(gk_group g) {
  if (g.ctx == nullptr) return std::nullopt;
  return G(g);
}

mx::array& arr(gk_array a) {
  if (a.ctx == nullptr) throw std::invalid_argument("mlx: nil array");
  return *static_cast<mx::array*>(a.ctx);
}

// hand_out gives r to the caller through shim.cpp's own constructor of
// handles (gk_array_copy), so the live-array count stays right.
void hand_out(gk_array* out, mx::array r) {
  gk_array tmp{&r};
  if (gk_array_copy(out, tmp) != 0) throw std::runtime_error(gk_error());
}

std::string backend_name(const char* b) {
  if (b == nullptr || *b == 0) return "any";
  return b;
}

}  // namespace

extern "C" {


int gk_dist_is_available(const char* backend, int* ok) {
  GK_TRY_IF(false, *ok = md::is_available(backend_name(backend)) ? 1 : 0)
}

int gk_dist_init(gk_group* out, const char* backend, int strict) {
  // The backend's threads (NCCL's, the ring's) start from this one: they
  // inherit the process signals blocked, as the MLX thread's do (see
  // gk_block_process_signals); the Go thread gets its own mask back.
  struct Masked {
    sigset_t old;
    Masked() { gk_block_process_signals(&old); }
    ~Masked() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
  } masked;
  GK_TRY_IF(false, {
    auto g = md::init(strict != 0, backend_name(backend));
    out->ctx = new md::Group(std::move(g));
  })
}

int gk_group_free(gk_group g) {
  GK_TRY_IF(false, delete static_cast<md::Group*>(g.ctx))
}

int gk_group_rank(gk_group g, int* rank) { GK_TRY_IF(false, *rank = G(g).rank()) }

int gk_group_size(gk_group g, int* size) { GK_TRY_IF(false, *size = G(g).size()) }

int gk_dist_all_sum(gk_array* out, gk_array x, gk_group g) {
  GK_TRY_IF(true, hand_out(out, md::all_sum(arr(x), opt_group(g))))
}

int gk_dist_all_gather(gk_array* out, gk_array x, gk_group g) {
  GK_TRY_IF(true, hand_out(out, md::all_gather(arr(x), opt_group(g))))
}

}  // extern "C"
