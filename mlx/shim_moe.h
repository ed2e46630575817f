// shim_moe.h declares genkit's shim for mixtures of experts: products of
// each row with the expert matrices its router chose (MLX's gather_mm and
// gather_qmm), and the sort that groups rows by expert. It follows shim.h's
// conventions (status codes, results in the first out-parameters, calls on
// the bound MLX thread, the message of a failure read with gk_error()).
#ifndef GENKIT_MLX_SHIM_MOE_H
#define GENKIT_MLX_SHIM_MOE_H

#include "shim.h"

#ifdef __cplusplus
extern "C" {
#endif

// gk_gather_mm is a @ b[rhs] for each batch position: a [..., M, K], b
// [E, K, N], rhs integer indices (has_rhs) into b's first axis broadcast
// against a's batch axes; lhs (has_lhs) likewise picks a's batch rows.
// sorted says rhs is ascending (rows grouped by expert).
int gk_gather_mm(gk_array* out, gk_array a, gk_array b, gk_array lhs,
                 int has_lhs, gk_array rhs, int has_rhs, int sorted);

// gk_gather_qmm is gk_gather_mm for an MLX affine-quantized stack w [E, N,
// K*bits/32] (scales, biases [E, N, K/group]); transpose computes
// x @ dequantize(w[rhs])^T.
int gk_gather_qmm(gk_array* out, gk_array x, gk_array w, gk_array scales,
                  gk_array biases, gk_array lhs, int has_lhs, gk_array rhs,
                  int has_rhs, int transpose, int group_size, int bits,
                  int sorted);

// gk_moe_sort groups the rows of x [N, 1, D] by expert: idx [N, k] holds
// each row's k experts. x_out [N*k, 1, D] repeats row n once per chosen
// expert, in ascending expert order (idx_out [N*k]); inv [N*k] is the
// permutation that restores the [N, k] order (take rows by inv).
int gk_moe_sort(gk_array* x_out, gk_array* idx_out, gk_array* inv,
                gk_array x, gk_array idx);

#ifdef __cplusplus
}
#endif

#endif
