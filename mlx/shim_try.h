// shim_try.h is internal to the mlx package's C++ files (not part of the C
// API): the one way an entry point of genkit's C layer turns C++ exceptions
// into a status code and the message gk_error() returns, shared by shim.cpp,
// shim_dist.cpp and shim_moe.cpp so there is one error channel.
#ifndef GENKIT_MLX_SHIM_TRY_H
#define GENKIT_MLX_SHIM_TRY_H

#include <exception>

#include "shim.h"

namespace gk {
// set_error records msg as this thread's last error (what gk_error returns).
void set_error(const char* msg);
}  // namespace gk

// GK_TRY_IF runs the body of an entry point: status 2 when bound is true and
// the caller is not the MLX thread, 1 (the message kept) when the body
// throws, else 0.
#define GK_TRY_IF(bound, ...)                                                       \
  if ((bound) && !gk_is_bound()) {                                                  \
    gk::set_error("mlx: called outside the MLX thread (use mlx.Do to run work there)"); \
    return 2;                                                                       \
  }                                                                                 \
  try {                                                                             \
    __VA_ARGS__;                                                                    \
    return 0;                                                                       \
  } catch (const std::exception& e) {                                               \
    gk::set_error(e.what());                                                        \
    return 1;                                                                       \
  } catch (...) {                                                                   \
    gk::set_error("mlx: unknown C++ exception");                                    \
    return 1;                                                                       \
  }

// GK_TRY is GK_TRY_IF for an entry point that must run on the MLX thread.
#define GK_TRY(...) GK_TRY_IF(true, __VA_ARGS__)

#endif
