// shim_dist.h is the distributed part of genkit's C layer over MLX: process
// groups and collective operations (mlx::core::distributed). It follows
// shim.h's conventions (status codes, out-parameter first, no C++ exception
// leaves the layer, the message of a failure read with gk_error()).
#ifndef GENKIT_MLX_SHIM_DIST_H
#define GENKIT_MLX_SHIM_DIST_H

#include "shim.h"

#ifdef __cplusplus
extern "C" {
#endif

// A group of processes that communicate; free it with gk_group_free.
typedef struct {
  void* ctx;
} gk_group;

// gk_dist_is_available reports in *ok whether the linked MLX has the backend
// ("any", "ring", "nccl", "mpi", "jaccl"). Any thread.
int gk_dist_is_available(const char* backend, int* ok);

// gk_dist_init initialises the backend and returns the group of every
// process it finds. With strict 0 a backend that cannot start gives a group
// of size 1; with strict 1 it is an error. It may block until the peers
// connect, and may be called from any thread (not only the MLX thread).
int gk_dist_init(gk_group* out, const char* backend, int strict);
int gk_group_free(gk_group g);
int gk_group_rank(gk_group g, int* rank);
int gk_group_size(gk_group g, int* size);

// Collectives (MLX thread only, like the ops of shim.h). A group with ctx
// NULL means MLX's default group (the first one initialised). The result is
// lazy: evaluating it performs the communication.
int gk_dist_all_sum(gk_array* out, gk_array x, gk_group g);
int gk_dist_all_gather(gk_array* out, gk_array x, gk_group g);

#ifdef __cplusplus
}
#endif

#endif
