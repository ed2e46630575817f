// kernels.h is internal to the mlx package's C++ files (not part of the C
// API in shim.h): genkit's CUDA kernels as shim.cpp defines them, and the
// launcher in shim_ptx.cpp that runs them precompiled (NVRTC once, cached on
// disk) or, failing that, through MLX's fast::cuda_kernel.
#ifndef GENKIT_MLX_KERNELS_H
#define GENKIT_MLX_KERNELS_H

#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "mlx/fast.h"
#include "mlx/mlx.h"

namespace gk {

namespace mx = mlx::core;

using TemplateArgs = std::vector<std::pair<std::string, mx::fast::TemplateArg>>;

// KernelDef is one of genkit's kernels: a body written for MLX's
// fast::cuda_kernel wrapper (inputs by name, <input>_shape where the body
// reads it, template values as constexprs), the one source both launch paths
// are generated from.
struct KernelDef {
  std::string name;                 // base name, e.g. "genkit_product"
  std::vector<std::string> inputs;  // input names, in argument order
  std::string output;               // the one output's name
  std::string body;
  bool ensure_row_contiguous = true;
  // fallback is MLX's fast::cuda_kernel over the same body (made on first
  // use); empty for a kernel that runs only precompiled.
  std::function<mx::fast::CustomKernelFunction&()> fallback;
  // sync_threads > 0 marks a kernel whose blocks wait for each other (a
  // grid-wide barrier): its variants record how many blocks of that many
  // threads a multiprocessor holds at once (cooperative_blocks), since every
  // block of its grid must be resident together.
  int sync_threads = 0;
};

// The kernels (shim.cpp): the dense and the quantized product (one warp a
// weight row, or tiled: x staged in shared memory), attention.
const KernelDef& product_def(bool quant, bool tile);
const KernelDef& attention_def();
// block_def is the whole decoder block as one kernel (quantized or dense):
// five stages with a grid-wide barrier between them.
const KernelDef& block_def(bool quant);

// run_kernel builds def's node for inputs: precompiled through
// mx::fast::precompiled_cuda_kernel when the kernel cache works, else through
// def.fallback. Both launch the same body with the same template values,
// grid and block.
std::vector<mx::array> run_kernel(const KernelDef& def, const std::vector<mx::array>& inputs,
                                  const mx::Shape& out_shape, mx::Dtype out_dtype,
                                  std::tuple<int, int, int> grid, std::tuple<int, int, int> block,
                                  const TemplateArgs& targs);

// cooperative_blocks is how many blocks of def.sync_threads threads of the
// precompiled variant for these inputs a multiprocessor holds at once, or 0
// when it cannot run precompiled here (or the driver cannot say).
int cooperative_blocks(const KernelDef& def, const std::vector<mx::array>& inputs, mx::Dtype out_dtype,
                       const TemplateArgs& targs);

// multiprocessors is the default GPU's streaming multiprocessor count as
// the CUDA driver reports it, or 0 when there is no driver in the process.
int multiprocessors();

// standalone_source is def as a complete CUDA source with one extern "C"
// __global__ function called kernel_name: inputs of dtypes in_dtypes, then
// the output, then one int scalar per dimension of each input whose shape
// the body reads (in_ndims gives the dimension counts), the template values
// as constexprs in front of the body.
std::string standalone_source(const KernelDef& def, const std::string& kernel_name,
                              const std::vector<mx::Dtype>& in_dtypes, const std::vector<int>& in_ndims,
                              mx::Dtype out_dtype, const TemplateArgs& targs);

}  // namespace gk

#endif
