// shim.h is mlx-genkit's own thin C layer over MLX's C++ API.
//
// Conventions (modelled on mlx-c): arrays are opaque handles; every call
// returns an int status (0 ok, non-zero error) and writes its result to the
// first out-parameter; the message of the last error on this thread is read
// with gk_error(). No C++ exception ever leaves this layer. Every call must be
// made on the thread bound with gk_bind_thread (MLX keeps its default streams
// and random state per thread); other threads get an error, not a crash.
#ifndef GENKIT_MLX_SHIM_H
#define GENKIT_MLX_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  void* ctx;
} gk_array;

// Dtype codes; the values are part of the Go binding.
enum {
  GK_BOOL = 0,
  GK_UINT8,
  GK_UINT16,
  GK_UINT32,
  GK_UINT64,
  GK_INT8,
  GK_INT16,
  GK_INT32,
  GK_INT64,
  GK_FLOAT16,
  GK_FLOAT32,
  GK_FLOAT64,
  GK_BFLOAT16,
  GK_COMPLEX64,
};

enum {
  GK_NEGATIVE = 0,
  GK_EXP,
  GK_LOG,
  GK_SIGMOID,
  GK_SQRT,
  GK_RSQRT,
  GK_ABS,
  GK_TANH,
  GK_SQUARE,
  GK_ISNAN,
  GK_ISINF,
  GK_FLOOR,
  GK_LOG1P,
  GK_LOGICAL_NOT,
  GK_STOP_GRADIENT,
  GK_ISFINITE,
};

enum {
  GK_ADD = 0,
  GK_SUBTRACT,
  GK_MULTIPLY,
  GK_DIVIDE,
  GK_MAXIMUM,
  GK_MINIMUM,
  GK_POWER,
  GK_EQUAL,
  GK_NOT_EQUAL,
  GK_LESS,
  GK_LESS_EQUAL,
  GK_GREATER,
  GK_GREATER_EQUAL,
  GK_LOGICAL_AND,
  GK_LOGICAL_OR,
  GK_MATMUL,
};

enum {
  GK_SUM = 0,
  GK_MEAN,
  GK_MAX,
  GK_MIN,
  GK_PROD,
  GK_LOGSUMEXP,
  GK_ARGMAX,
  GK_ARGMIN,
  GK_ANY,
  GK_ALL,
  GK_VAR,
};

// Thread binding and errors. gk_bind_thread marks the calling thread as
// MLX's and blocks the process-directed signals (SIGINT, SIGTERM, SIGHUP,
// SIGQUIT, SIGWINCH, SIGTSTP, SIGTTIN, SIGTTOU, SIGCHLD, SIGUSR1, SIGUSR2,
// SIGALRM) on it, so the threads MLX and the GPU driver start from it
// inherit the mask and such signals reach a Go thread instead.
// gk_block_process_signals blocks them on the calling thread alone and, when
// old is not NULL, stores the previous mask there (a sigset_t).
// gk_child_blocked_signals starts a thread from the caller and returns a bit
// set (1<<signo) of those signals blocked there.
void gk_bind_thread(void);
uint64_t gk_child_blocked_signals(void);
void gk_block_process_signals(void* old);
int gk_is_bound(void);
const char* gk_error(void);
int64_t gk_live_arrays(void);
const char* gk_version(void);

// Array lifetime and inspection.
int gk_array_free(gk_array a);
int gk_array_ndim(gk_array a);
int gk_array_shape(gk_array a, int* shape, int max);
int gk_array_dtype(gk_array a);
size_t gk_array_size(gk_array a);
int gk_array_from_data(gk_array* out, const void* data, size_t nbytes,
                       const int* shape, int ndim, int dtype);
int gk_array_scalar(gk_array* out, double v, int dtype);
int gk_array_copy(gk_array* out, gk_array a);
// Evaluates a, converts it to dtype and copies it row-major into dst.
int gk_array_read(gk_array a, int dtype, void* dst, size_t nbytes);

// Element-wise and reductions.
int gk_unary(gk_array* out, gk_array a, int op);
int gk_binary(gk_array* out, gk_array a, gk_array b, int op);
int gk_reduce(gk_array* out, gk_array a, const int* axes, int naxes,
              int keepdims, int op);
int gk_where(gk_array* out, gk_array cond, gk_array x, gk_array y);
int gk_astype(gk_array* out, gk_array a, int dtype);
int gk_addmm(gk_array* out, gk_array c, gk_array a, gk_array b, float alpha,
             float beta);

// Creation.
int gk_zeros(gk_array* out, const int* shape, int ndim, int dtype);
int gk_full(gk_array* out, const int* shape, int ndim, double v, int dtype);
int gk_arange(gk_array* out, double start, double stop, double step,
              int dtype);
int gk_tri(gk_array* out, gk_array a, int k, int upper);

// Shape manipulation and indexing.
int gk_reshape(gk_array* out, gk_array a, const int* shape, int ndim);
int gk_transpose(gk_array* out, gk_array a, const int* axes, int naxes);
int gk_swapaxes(gk_array* out, gk_array a, int a1, int a2);
int gk_expand_dims(gk_array* out, gk_array a, int axis);
int gk_squeeze(gk_array* out, gk_array a, int axis);
int gk_broadcast_to(gk_array* out, gk_array a, const int* shape, int ndim);
int gk_contiguous(gk_array* out, gk_array a);
int gk_take(gk_array* out, gk_array a, gk_array idx, int axis);
int gk_take_along_axis(gk_array* out, gk_array a, gk_array idx, int axis);
int gk_put_along_axis(gk_array* out, gk_array a, gk_array idx, gk_array v,
                      int axis);
int gk_concatenate(gk_array* out, const gk_array* arrs, int n, int axis);
int gk_slice(gk_array* out, gk_array a, const int* start, const int* stop,
             const int* strides, int ndim);
int gk_slice_update(gk_array* out, gk_array src, gk_array upd,
                    const int* start, const int* stop, const int* strides,
                    int ndim);
int gk_slice_dynamic(gk_array* out, gk_array a, gk_array start,
                     const int* axes, int naxes, const int* size, int ndim);
int gk_slice_update_dynamic(gk_array* out, gk_array src, gk_array upd,
                            gk_array start, const int* axes, int naxes);

// Neural-network building blocks.
int gk_softmax(gk_array* out, gk_array a, int axis, int precise);
int gk_rms_norm(gk_array* out, gk_array x, gk_array w, int has_w, float eps);
int gk_layer_norm(gk_array* out, gk_array x, gk_array w, int has_w,
                  gk_array b, int has_b, float eps);
int gk_rope(gk_array* out, gk_array x, int dims, int traditional, float base,
            int has_base, float scale, int offset, gk_array freqs,
            int has_freqs);
int gk_rope_dyn(gk_array* out, gk_array x, int dims, int traditional,
                float base, int has_base, float scale, gk_array offset,
                gk_array freqs, int has_freqs);
int gk_sdpa(gk_array* out, gk_array q, gk_array k, gk_array v, float scale,
            const char* mask_mode, gk_array mask, int has_mask);

// Quantization (affine mode).
int gk_quantize(gk_array* w_out, gk_array* scales, gk_array* biases,
                gk_array w, int group_size, int bits);
int gk_dequantize(gk_array* out, gk_array w, gk_array scales, gk_array biases,
                  int group_size, int bits, int dtype);
int gk_quantized_matmul(gk_array* out, gk_array x, gk_array w,
                        gk_array scales, gk_array biases, int transpose,
                        int group_size, int bits);

// Sorting and selection.
int gk_argmax(gk_array* out, gk_array a, int axis, int keepdims);
int gk_argsort(gk_array* out, gk_array a, int axis);
int gk_sort(gk_array* out, gk_array a, int axis);
int gk_argpartition(gk_array* out, gk_array a, int kth, int axis);
int gk_topk(gk_array* out, gk_array a, int k, int axis);
int gk_cumsum(gk_array* out, gk_array a, int axis, int reverse,
              int inclusive);

// Random numbers.
int gk_random_key(gk_array* out, uint64_t seed);
int gk_random_split(gk_array* out, gk_array key, int num);
int gk_random_uniform(gk_array* out, const int* shape, int ndim, int dtype,
                      gk_array key);
int gk_random_categorical(gk_array* out, gk_array logits, int axis,
                          gk_array key);
int gk_random_gumbel(gk_array* out, const int* shape, int ndim, int dtype,
                     gk_array key);

// Evaluation.
int gk_eval(const gk_array* arrs, int n);
int gk_async_eval(const gk_array* arrs, int n);
int gk_synchronize(void);

// Memory.
int gk_memory(size_t* active, size_t* peak, size_t* cache, size_t* limit);
int gk_reset_peak_memory(void);
int gk_set_memory_limit(size_t limit, size_t* prev);
int gk_set_cache_limit(size_t limit, size_t* prev);
int gk_clear_cache(void);

// Devices: 0 = cpu, 1 = gpu.
int gk_set_default_device(int type);
int gk_default_device(int* type);
int gk_device_available(int type, int* ok);
int gk_device_count(int type, int* n);
// gk_row_product is x @ wT through one BLAS matrix-vector product per row of
// x, on the CPU (float32; wT [K, N] a transposed row-major [N, K] or
// row-major). gk_row_product_available reports a BLAS with cblas_sgemv.
int gk_row_product(gk_array* out, gk_array x, gk_array wT);
int gk_row_product_available(void);
// gk_q_row_product is x @ dequantize(w)^T for MLX's affine 4- or 8-bit
// layout, on the CPU with SIMD where the processor has AVX2.
int gk_q_row_product(gk_array* out, gk_array x, gk_array w, gk_array scales,
                     gk_array biases, int group, int bits);
// gk_block_linear is one linear layer of gk_decode_block: dense (w a
// float32 wT [in, out]) when bits is 0, else MLX affine-quantized (w, scales,
// biases); bias optional. Absent arrays have ctx NULL.
typedef struct {
  gk_array w, scales, biases, bias;
  int bits, group, in, out;
} gk_block_linear;
// gk_decode_block_args describe one decoder block for gk_decode_block.
typedef struct {
  gk_array h, attn_norm, ffn_norm, k_cache, v_cache, inv_freq, q_norm, k_norm;
  gk_block_linear qkv, o, gate_up, down;
  int heads, kv_heads, head_dim, intermediate, offset, traditional;
  float eps, scale;
  // ws: the GPU block kernel's workspace (gk_gpu_block_workspace), or none
  // for the five kernels; the CPU block ignores it. after: the previous
  // block kernel's output when h is not it (a hook replaced it), so the
  // launches stay in order; none otherwise.
  gk_array ws, after;
} gk_decode_block_args;
// gk_decode_block is a whole decoder block for one new position per lane,
// fused into one CPU primitive that writes the new keys and values into the
// cache arrays in place (see DecodeBlock in shim.cpp). pads (n_pads = 0 or
// one per lane) are the lanes' leading padded positions.
int gk_decode_block(gk_array* out, const gk_decode_block_args* a, const int* pads, int n_pads);
// gk_gpu_decode_block is the same block on a CUDA GPU as one kernel of
// genkit's when a->ws is given and the kernel takes the block, else five
// (see gk_gpu_decode_block in shim.cpp): dense weights are w [out,
// in] in h's dtype (not wT), norms and inv_freq float32, meta int32 [1 + B]
// (the cache offset, then each lane's padded positions) and prm float32
// [eps, attention scale]. The new keys and values are written into the
// caches in place.
int gk_gpu_decode_block(gk_array* out, const gk_decode_block_args* a, gk_array meta, gk_array prm);
// gk_gpu_block_workspace makes a zeroed workspace for one decode step of
// gk_gpu_decode_block as one kernel a block: lanes, the model's width, head
// counts and size, the MLP's width, the activations' dtype. A step's blocks
// share it (they run one after another); a step must not share it with
// another.
int gk_gpu_block_workspace(gk_array* out, int lanes, int hidden, int heads, int kv_heads, int head_dim,
                           int intermediate, int dtype);
// gk_gpu_block_kernels counts the blocks built as one kernel so far.
long gk_gpu_block_kernels(void);
// gk_device_probe evaluates a tiny op on the device's default stream.
int gk_device_probe(int type);
// gk_device_info writes the device's name, architecture and memory (0 when
// unknown).
int gk_device_info(int type, char* name, size_t name_len, char* arch,
                   size_t arch_len, size_t* memory);

// Files. A map is returned as parallel arrays owned by a gk_map handle.
typedef struct {
  void* ctx;
} gk_map;
int gk_map_free(gk_map m);
int gk_map_len(gk_map m);
const char* gk_map_key(gk_map m, int i);
int gk_map_take(gk_array* out, gk_map m, int i);
int gk_map_meta_len(gk_map m);
// kind: 0 none, 1 array, 2 string, 3 string list.
int gk_map_meta(gk_map m, int i, const char** key, int* kind);
const char* gk_map_meta_string(gk_map m, int i);
int gk_map_meta_list_len(gk_map m, int i);
const char* gk_map_meta_list_item(gk_map m, int i, int j);
int gk_map_meta_array(gk_array* out, gk_map m, int i);

int gk_load_safetensors(gk_map* out, const char* path);
int gk_load_gguf(gk_map* out, const char* path);
int gk_load_npy(gk_array* out, const char* path);
int gk_save_npy(const char* path, gk_array a);

// Builders for saving: a fresh map, then entries, then save.
int gk_map_new(gk_map* out);
int gk_map_put(gk_map m, const char* key, gk_array a);
int gk_map_put_meta_string(gk_map m, const char* key, const char* v);
int gk_map_put_meta_array(gk_map m, const char* key, gk_array a);
int gk_save_safetensors(const char* path, gk_map m);
int gk_save_gguf(const char* path, gk_map m);

// Matrix-vector products on the CUDA backend (custom kernels, compiled just
// in time by MLX): y = x W^T for x of at most 8 rows, W dense [N, K]
// (gk_gemv) or MLX affine-quantized with 4 or 8 bits (gk_qgemv). *used is
// set to 0, with no error, when the shapes, dtypes, layout or device do not
// fit the kernels: the caller then uses MLX's own matmul.
int gk_gemv(gk_array* out, int* used, gk_array x, gk_array w);
int gk_qgemv(gk_array* out, int* used, gk_array x, gk_array w, gk_array scales,
             gk_array biases, int group_size, int bits);
// gk_qgemv_decline sets *why to what makes gk_qgemv decline these arrays on
// a CUDA GPU, "" where it would take them (on any device: the checks of
// shapes, dtypes, layout and quantization alone; valid until the thread's
// next call).
int gk_qgemv_decline(const char** why, gk_array x, gk_array w, gk_array scales, gk_array biases, int group_size,
                     int bits);

// The kernel cache (shim_ptx.cpp): the kernels above run precompiled, each
// variant compiled once with NVRTC and kept in a cache directory, when NVRTC
// is loaded (CUDA), a directory is set and GENKIT_KERNEL_CACHE is not 0;
// else through MLX's fast::cuda_kernel. GENKIT_KERNEL_CACHE=DIR overrides
// the directory. These calls need no MLX thread.
//
// gk_kernel_cache_set_dir sets the directory (the engine's cache/kernels);
// the decision is made again at the next kernel, and variants found
// in memory are looked up again.
void gk_kernel_cache_set_dir(const char* dir);
// gk_kernel_cache_status returns 1 when kernels run precompiled, else 0;
// *why (malloc'd) says why not, and the counters count variants compiled,
// variants loaded from the directory and calls through cuda_kernel.
int gk_kernel_cache_status(char** why, long* compiled, long* loaded, long* fallbacks);
// gk_kernel_cache_decide is the decision for the given findings (env is
// GENKIT_KERNEL_CACHE or NULL); *why is malloc'd. For tests.
int gk_kernel_cache_decide(const char* env, const char* dir, int have_nvrtc, int have_cc, int dir_ok, char** why);
// gk_kernel_source writes (malloc'd) the standalone CUDA source of a kernel
// variant: kernel 0 dense product (vals M, NORM, GLU, HASBIAS, RES), 1
// quantized product (those and BITS), 2 attention (HD, NH, NKV, QKNORM,
// TRAD), dtype GK_FLOAT32/16/BFLOAT16; nameless names the function
// genkit_kernel. Returns 1 with the message in *out on error.
int gk_kernel_source(char** out, int kernel, int dtype, const int* vals, int nvals, int nameless);
// The cache file layer, for tests: store, load (1 when a sound file was
// read; *data malloc'd), and load-or-compile with a fake compiler (that
// fails when fail is set) and a fake driver (that refuses a binary holding
// refuse, when not NULL or empty).
int gk_kernel_cache_store(const char* dir, const char* key, const void* data, size_t n, char** err);
int gk_kernel_cache_load(const char* dir, const char* key, char** data, size_t* n);
int gk_kernel_cache_obtain_fake(const char* dir, const char* key, const char* source, int fail, const char* refuse,
                                int* compiled, char** bin, char** err);
int gk_sha256_hex(const void* data, size_t n, char out[65]);

#ifdef __cplusplus
}
#endif

#endif
