// shim_ptx.cpp runs genkit's CUDA kernels (kernels.h, bodies in shim.cpp)
// precompiled. MLX 0.32's fast::cuda_kernel compiles every variant with
// NVRTC in every process (its disk cache is off for custom kernels) and
// rebuilds the kernel's source string at every call; here each variant is
// wrapped once into a standalone CUDA source, compiled once with the NVRTC
// that libmlx already loaded, kept in memory and in genkit's cache directory,
// and launched with mx::fast::precompiled_cuda_kernel.
//
// Nothing here links against CUDA: NVRTC and the driver are found with dlsym
// in what the process has loaded (libmlx on CUDA needs both). When they are
// absent (the CPU build), when GENKIT_KERNEL_CACHE=0, when no cache
// directory is set or it cannot be written, or when a variant does not
// compile, the kernel runs through MLX's fast::cuda_kernel as before; with
// GENKIT_DEBUG set the reason is printed once on stderr.
//
// Cache files (<dir>/<sha256 hex>.gkc, the hash of the source, the target
// architecture and NVRTC's version) hold a header (magic, payload length,
// SHA-256 of the payload) in front of the cubin or PTX; a file whose header
// does not match is recompiled and replaced, never loaded. Files are written
// to a temporary name and renamed, so readers never see a partial file.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels.h"
#include "shim.h"

namespace gk {

namespace {

// ---- SHA-256 (FIPS 180-4), for cache keys and payload checksums. ----

constexpr uint32_t kSHAInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
constexpr uint32_t kSHAK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

void sha_block(uint32_t h[8], const unsigned char* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) | (uint32_t(p[4 * i + 2]) << 8) |
           uint32_t(p[4 * i + 3]);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kSHAK[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

std::array<unsigned char, 32> sha256(const std::string& data) {
  uint32_t h[8];
  std::memcpy(h, kSHAInit, sizeof h);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size(), i = 0;
  for (; i + 64 <= n; i += 64) sha_block(h, p + i);
  unsigned char tail[128] = {};
  size_t rest = n - i;
  std::memcpy(tail, p + i, rest);
  tail[rest] = 0x80;
  size_t len = rest + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = static_cast<uint64_t>(n) * 8;
  for (int j = 0; j < 8; ++j) tail[len - 1 - j] = static_cast<unsigned char>(bits >> (8 * j));
  sha_block(h, tail);
  if (len == 128) sha_block(h, tail + 64);
  std::array<unsigned char, 32> out;
  for (int j = 0; j < 8; ++j)
    for (int b = 0; b < 4; ++b) out[4 * j + b] = static_cast<unsigned char>(h[j] >> (24 - 8 * b));
  return out;
}

std::string hex(const std::array<unsigned char, 32>& d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned char c : d) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

// ---- Standalone sources. ----

// cuda_type is the CUDA type MLX's fast::cuda_kernel wrapper gives dtype t.
std::string cuda_type(mx::Dtype t) {
  if (t == mx::float32) return "float";
  if (t == mx::float16) return "__half";
  if (t == mx::bfloat16) return "__nv_bfloat16";
  if (t == mx::uint32) return "uint32_t";
  if (t == mx::int32) return "int32_t";
  if (t == mx::uint8) return "uint8_t";
  if (t == mx::int8) return "int8_t";
  if (t == mx::bool_) return "bool";
  throw std::invalid_argument("mlx: kernel cache: no CUDA type for this dtype");
}

// shape_inputs are the indices of def's inputs whose <name>_shape the body
// reads (found as MLX's wrapper finds them: by the name in the body).
std::vector<int> shape_inputs(const KernelDef& def) {
  std::vector<int> idx;
  for (size_t i = 0; i < def.inputs.size(); ++i)
    if (def.body.find(def.inputs[i] + "_shape") != std::string::npos) idx.push_back(static_cast<int>(i));
  return idx;
}

std::string targ_decl(const std::pair<std::string, mx::fast::TemplateArg>& a) {
  const auto& [name, v] = a;
  if (std::holds_alternative<int>(v)) return "  constexpr int " + name + " = " + std::to_string(std::get<int>(v)) + ";\n";
  if (std::holds_alternative<bool>(v))
    return "  constexpr bool " + name + " = " + (std::get<bool>(v) ? "true" : "false") + ";\n";
  return "  using " + name + " = " + cuda_type(std::get<mx::Dtype>(v)) + ";\n";
}

}  // namespace

std::string standalone_source(const KernelDef& def, const std::string& kernel_name,
                              const std::vector<mx::Dtype>& in_dtypes, const std::vector<int>& in_ndims,
                              mx::Dtype out_dtype, const TemplateArgs& targs) {
  if (in_dtypes.size() != def.inputs.size() || in_ndims.size() != def.inputs.size())
    throw std::invalid_argument("mlx: kernel cache: " + def.name + " takes " + std::to_string(def.inputs.size()) +
                                " inputs");
  std::string s;
  s.reserve(def.body.size() + 2048);
  s += "// " + kernel_name + ": genkit's " + def.name +
       " kernel (body from mlx/shim.cpp), generated by mlx/shim_ptx.cpp.\n"
       "#include <cuda_fp16.h>\n"
       "#include <cuda_bf16.h>\n"
       // The fixed-width types by hand rather than from CCCL's <cuda/std/cstdint>,
       // so only the CUDA runtime headers are needed (a repeated typedef of the
       // same type is valid C++ should a header declare them too).
       "typedef unsigned int uint32_t;\ntypedef int int32_t;\n"
       "typedef unsigned char uint8_t;\ntypedef signed char int8_t;\n\n";
  s += "extern \"C\" __global__ void " + kernel_name + "(\n";
  const std::vector<int> shaped = shape_inputs(def);
  for (size_t i = 0; i < def.inputs.size(); ++i) s += "    const " + cuda_type(in_dtypes[i]) + "* " + def.inputs[i] + ",\n";
  s += "    " + cuda_type(out_dtype) + "* " + def.output;
  for (int i : shaped) {
    if (in_ndims[i] < 1) throw std::invalid_argument("mlx: kernel cache: " + def.inputs[i] + " has no dimensions");
    for (int d = 0; d < in_ndims[i]; ++d) s += ",\n    int " + def.inputs[i] + "_dim" + std::to_string(d);
  }
  s += ") {\n";
  for (const auto& a : targs) s += targ_decl(a);
  for (int i : shaped) {
    s += "  const int " + def.inputs[i] + "_shape[" + std::to_string(in_ndims[i]) + "] = {";
    for (int d = 0; d < in_ndims[i]; ++d) s += (d ? ", " : "") + def.inputs[i] + "_dim" + std::to_string(d);
    s += "};\n";
  }
  s += "\n";
  s += def.body;
  s += "\n}\n";
  return s;
}

namespace {

// ---- Cache files. ----

constexpr char kMagic[8] = {'G', 'K', 'K', 'E', 'R', 'N', '0', '1'};
constexpr size_t kHeader = 8 + 8 + 32;

std::string cache_path(const std::string& dir, const std::string& key) { return dir + "/" + key + ".gkc"; }

// load_cached is the payload of dir's file for key, or false when there is
// none or it is damaged (wrong magic, length or checksum).
bool load_cached(const std::string& dir, const std::string& key, std::string& payload) {
  FILE* f = std::fopen(cache_path(dir, key).c_str(), "rb");
  if (!f) return false;
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  const bool err = std::ferror(f);
  std::fclose(f);
  if (err || data.size() < kHeader || std::memcmp(data.data(), kMagic, 8) != 0) return false;
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i) len |= static_cast<uint64_t>(static_cast<unsigned char>(data[8 + i])) << (8 * i);
  if (len == 0 || data.size() - kHeader != len) return false;
  std::string body = data.substr(kHeader);
  const auto sum = sha256(body);
  if (std::memcmp(sum.data(), data.data() + 16, 32) != 0) return false;
  payload = std::move(body);
  return true;
}

// store_cached writes payload as dir's file for key through a temporary file
// and a rename; it throws on failure.
void store_cached(const std::string& dir, const std::string& key, const std::string& payload) {
  std::string data(kMagic, 8);
  const uint64_t len = payload.size();
  for (int i = 0; i < 8; ++i) data += static_cast<char>((len >> (8 * i)) & 0xff);
  const auto sum = sha256(payload);
  data.append(reinterpret_cast<const char*>(sum.data()), 32);
  data += payload;
  static std::atomic<unsigned> seq{0};
  const std::string tmp = dir + "/." + key + ".tmp." + std::to_string(getpid()) + "." + std::to_string(seq++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("create " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("write " + tmp + ": " + std::strerror(e));
    }
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("sync " + tmp + ": " + std::strerror(e));
  }
  if (::rename(tmp.c_str(), cache_path(dir, key).c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("rename " + tmp + ": " + std::strerror(e));
  }
}

// Compiler turns a source into a cubin or PTX for kernel, or throws.
using Compiler = std::function<std::string(const std::string& source, const std::string& kernel)>;

// Validator checks that a compiled kernel loads on the device (throws with
// the reason when it does not); an empty one accepts everything.
using Validator = std::function<void(const std::string& binary, const std::string& kernel)>;

// obtain is the compiled kernel for source: dir's cache file when it holds
// one that validate accepts, else compile's result (which validate must
// accept), stored for the next process (a failed store is ignored: the
// kernel still runs). *compiled says which.
std::string obtain(const std::string& dir, const std::string& key, const std::string& source,
                   const std::string& kernel, const Compiler& compile, const Validator& validate, bool* compiled) {
  std::string bin;
  if (load_cached(dir, key, bin)) {
    try {
      if (validate) validate(bin, kernel);
      *compiled = false;
      return bin;
    } catch (const std::exception&) {
      // A sound file the device refuses (another driver, say): compile anew.
    }
  }
  bin = compile(source, kernel);
  if (bin.empty()) throw std::runtime_error("the compiler returned nothing for " + kernel);
  if (validate) validate(bin, kernel);
  *compiled = true;
  try {
    store_cached(dir, key, bin);
  } catch (const std::exception&) {
  }
  return bin;
}

// ---- NVRTC and the driver, found in the process. ----

void* find_symbol(const char* name, std::initializer_list<const char*> libs) {
  if (void* p = dlsym(RTLD_DEFAULT, name)) return p;
  for (const char* lib : libs) {
    // RTLD_NOLOAD: only a library the process already has; the CPU build
    // never loads CUDA.
    if (void* h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD)) {
      void* p = dlsym(h, name);
      dlclose(h);
      if (p) return p;
    }
  }
  return nullptr;
}

struct Nvrtc {
  using Prog = void*;
  int (*version)(int*, int*) = nullptr;
  int (*create)(Prog*, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
  int (*compile)(Prog, int, const char* const*) = nullptr;
  int (*log_size)(Prog, size_t*) = nullptr;
  int (*log)(Prog, char*) = nullptr;
  int (*cubin_size)(Prog, size_t*) = nullptr;
  int (*cubin)(Prog, char*) = nullptr;
  int (*ptx_size)(Prog, size_t*) = nullptr;
  int (*ptx)(Prog, char*) = nullptr;
  int (*destroy)(Prog*) = nullptr;
  int major = 0, minor = 0;

  // load finds every function; false when one is missing.
  bool load() {
    auto libs = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
    auto get = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(find_symbol(name, libs));
      return fn != nullptr;
    };
    bool ok = get(version, "nvrtcVersion") && get(create, "nvrtcCreateProgram") &&
              get(compile, "nvrtcCompileProgram") && get(log_size, "nvrtcGetProgramLogSize") &&
              get(log, "nvrtcGetProgramLog") && get(cubin_size, "nvrtcGetCUBINSize") && get(cubin, "nvrtcGetCUBIN") &&
              get(ptx_size, "nvrtcGetPTXSize") && get(ptx, "nvrtcGetPTX") && get(destroy, "nvrtcDestroyProgram");
    return ok && version(&major, &minor) == 0;
  }
};

// device_attribute asks the CUDA driver for one attribute of device
// ordinal; false when the process has no driver or the driver refuses.
bool device_attribute(int ordinal, int attribute, int* value) {
  auto libs = {"libcuda.so.1", "libcuda.so"};
  auto init = reinterpret_cast<int (*)(unsigned)>(find_symbol("cuInit", libs));
  auto get = reinterpret_cast<int (*)(int*, int)>(find_symbol("cuDeviceGet", libs));
  auto attr = reinterpret_cast<int (*)(int*, int, int)>(find_symbol("cuDeviceGetAttribute", libs));
  int dev = 0;
  return init && get && attr && init(0) == 0 && get(&dev, ordinal) == 0 && attr(value, attribute, dev) == 0;
}

// compute_capability asks the CUDA driver for device ordinal's (major, minor).
bool compute_capability(int ordinal, int* major, int* minor) {
  // 75, 76: CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, _MINOR.
  return device_attribute(ordinal, 75, major) && device_attribute(ordinal, 76, minor) && *major > 0;
}

}  // namespace

int multiprocessors() {
  static const int count = [] {
    const mx::Device d = mx::default_device();
    int n = 0;
    // 16: CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT.
    return device_attribute(d.type == mx::Device::gpu ? d.index : 0, 16, &n) && n > 0 ? n : 0;
  }();
  return count;
}

namespace {

// Driver is the part of the CUDA driver API used to check a compiled kernel
// before MLX is given it: a failure there would be an error at evaluation,
// too late to fall back.
struct Driver {
  int (*retain)(void**, int) = nullptr;
  int (*release)(int) = nullptr;
  int (*push)(void*) = nullptr;
  int (*pop)(void**) = nullptr;
  int (*load)(void**, const void*) = nullptr;
  int (*function)(void**, void*, const char*) = nullptr;
  int (*unload)(void*) = nullptr;
  int (*occupancy)(int*, void*, int, size_t) = nullptr;  // optional
  int device = 0;

  bool find(int dev) {
    auto libs = {"libcuda.so.1", "libcuda.so"};
    auto get = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(find_symbol(name, libs));
      return fn != nullptr;
    };
    auto dget = reinterpret_cast<int (*)(int*, int)>(find_symbol("cuDeviceGet", libs));
    // Optional: without it no kernel that syncs its grid runs (check says 0).
    get(occupancy, "cuOccupancyMaxActiveBlocksPerMultiprocessor");
    return dget && dget(&device, dev) == 0 && get(retain, "cuDevicePrimaryCtxRetain") &&
           get(release, "cuDevicePrimaryCtxRelease_v2") && get(push, "cuCtxPushCurrent_v2") &&
           get(pop, "cuCtxPopCurrent_v2") && get(load, "cuModuleLoadData") &&
           get(function, "cuModuleGetFunction") && get(unload, "cuModuleUnload");
  }

  // check loads binary in the device's primary context (the one MLX runs
  // in) and looks kernel up in it, or throws. With threads > 0 it returns
  // how many blocks of that many threads a multiprocessor holds at once (0
  // when the driver cannot say), else 0.
  int check(const std::string& binary, const std::string& kernel, int threads = 0) const {
    void* ctx = nullptr;
    if (int rc = retain(&ctx, device); rc != 0) throw std::runtime_error("cuDevicePrimaryCtxRetain: " + std::to_string(rc));
    int rc = push(ctx);
    int blocks = 0;
    if (rc == 0) {
      void* mod = nullptr;
      rc = load(&mod, binary.data());
      if (rc == 0) {
        void* fn = nullptr;
        rc = function(&fn, mod, kernel.c_str());
        if (rc == 0 && threads > 0 && occupancy != nullptr && occupancy(&blocks, fn, threads, 0) != 0) blocks = 0;
        unload(mod);
      }
      void* popped = nullptr;
      pop(&popped);
    }
    release(device);
    if (rc != 0) throw std::runtime_error("the CUDA driver refused " + kernel + " (CUresult " + std::to_string(rc) + ")");
    return blocks;
  }
};

bool path_exists(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec);
}

// include_paths are NVRTC's --include-path options as MLX's JIT builds them:
// the CCCL headers shipped beside libmlx (<wheel>/include/cccl), the CUDA
// runtime headers of the nvidia wheels next to it, else $CUDA_HOME,
// $CUDA_PATH or /usr/local/cuda.
std::vector<std::string> include_paths() {
  std::vector<std::string> out;
  Dl_info info{};
  auto fn = &mx::fast::precompiled_cuda_kernel;
  std::filesystem::path root;
  if (dladdr(reinterpret_cast<void*>(fn), &info) && info.dli_fname)
    root = std::filesystem::path(info.dli_fname).parent_path().parent_path();
  if (!root.empty() && path_exists(root / "include" / "cccl")) out.push_back("--include-path=" + (root / "include" / "cccl").string());
  std::vector<std::filesystem::path> cands;
  if (!root.empty()) {
    for (const char* sub : {"cuda_runtime", "cu13", "cu12"}) cands.push_back(root.parent_path() / "nvidia" / sub / "include");
  }
  for (const char* env : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* h = std::getenv(env); h && *h) cands.push_back(std::filesystem::path(h) / "include");
  cands.push_back("/usr/local/cuda/include");
  for (const auto& c : cands) {
    if (path_exists(c / "cuda_fp16.h")) {
      out.push_back("--include-path=" + c.string());
      // CUDA 13 toolkits keep CCCL under include/cccl.
      if (path_exists(c / "cccl")) out.push_back("--include-path=" + (c / "cccl").string());
      break;
    }
  }
  return out;
}

// nvrtc_compile compiles source for sm_<major><minor> (a cubin) with the
// options MLX uses (architecture and include paths only), or, when NVRTC
// does not take that architecture, for compute_<major><minor> (PTX).
std::string nvrtc_compile(const Nvrtc& nv, int major, int minor, const std::vector<std::string>& incs,
                          const std::string& source, const std::string& kernel) {
  for (bool sass : {true, false}) {
    Nvrtc::Prog prog = nullptr;
    if (nv.create(&prog, source.c_str(), (kernel + ".cu").c_str(), 0, nullptr, nullptr) != 0)
      throw std::runtime_error("nvrtcCreateProgram failed for " + kernel);
    std::vector<std::string> opts = {std::string("--gpu-architecture=") + (sass ? "sm_" : "compute_") +
                                     std::to_string(major) + std::to_string(minor)};
    opts.insert(opts.end(), incs.begin(), incs.end());
    std::vector<const char*> args;
    for (const auto& o : opts) args.push_back(o.c_str());
    const int rc = nv.compile(prog, static_cast<int>(args.size()), args.data());
    if (rc != 0) {
      size_t n = 0;
      nv.log_size(prog, &n);
      std::string log(n, '\0');
      if (n) nv.log(prog, log.data());
      nv.destroy(&prog);
      if (sass && rc == 5) continue;  // NVRTC_ERROR_INVALID_OPTION: try PTX.
      throw std::runtime_error("NVRTC " + std::to_string(rc) + " compiling " + kernel + ": " + log.c_str());
    }
    size_t n = 0;
    std::string bin;
    if ((sass ? nv.cubin_size(prog, &n) : nv.ptx_size(prog, &n)) == 0 && n > 0) {
      bin.resize(n);
      if ((sass ? nv.cubin(prog, bin.data()) : nv.ptx(prog, bin.data())) != 0) bin.clear();
    }
    nv.destroy(&prog);
    if (bin.empty()) throw std::runtime_error("NVRTC gave no code for " + kernel);
    return bin;
  }
  throw std::runtime_error("NVRTC takes neither sm_ nor compute_ for this device");
}

// ---- The decision and the process-wide state. ----

// decide is whether kernels run precompiled, given the environment
// (GENKIT_KERNEL_CACHE's value, nullptr when unset), the directory set by the
// engine, and what was found; else *why says why not.
bool decide(const char* env, const std::string& dir, bool have_nvrtc, bool have_cc, bool dir_ok, std::string* why) {
  if (env && std::string(env) == "0") {
    *why = "off (GENKIT_KERNEL_CACHE=0)";
    return false;
  }
  if (dir.empty()) {
    *why = "no cache directory (the engine sets one; or GENKIT_KERNEL_CACHE=DIR)";
    return false;
  }
  if (!have_nvrtc) {
    *why = "NVRTC is not loaded in this process";
    return false;
  }
  if (!have_cc) {
    *why = "the CUDA driver (its functions or the device's compute capability) was not found";
    return false;
  }
  if (!dir_ok) {
    *why = "the cache directory " + dir + " cannot be written";
    return false;
  }
  *why = "on";
  return true;
}

// writable makes dir and checks a file can be created in it.
bool writable(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string probe = dir + "/.probe." + std::to_string(getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

bool debug() {
  const char* d = std::getenv("GENKIT_DEBUG");
  return d && *d && std::string(d) != "0";
}

// Variant is one compiled kernel variant, or a failed one (run by fallback).
struct Variant {
  bool ok = false;
  std::string name;
  std::string binary;
  // resident is how many blocks of def.sync_threads threads a
  // multiprocessor holds at once (kernels that sync their grid only).
  int resident = 0;
};

struct State {
  std::mutex mu;
  std::string go_dir;  // set by the engine
  bool decided = false, on = false;
  std::string dir, why, arch, nvrtc_version;
  std::vector<std::string> incs;
  Nvrtc nv;
  Driver drv;
  int major = 0, minor = 0;
  std::unordered_map<std::string, std::shared_ptr<const Variant>> variants;
  std::map<const KernelDef*, std::vector<int>> shaped;
  std::set<std::string> said;
  std::atomic<long> compiled{0}, loaded{0}, fallbacks{0};

  void say(const std::string& msg) {
    if (debug() && said.insert(msg).second) std::fprintf(stderr, "genkit: kernel cache: %s\n", msg.c_str());
  }

  // decide_locked settles whether kernels run precompiled (once, and again
  // after the directory changes).
  void decide_locked() {
    if (decided) return;
    decided = true;
    const char* env = std::getenv("GENKIT_KERNEL_CACHE");
    const std::string e = env ? env : "";
    dir = (e.empty() || e == "0" || e == "1") ? go_dir : e;
    try {
      bool have_nvrtc = false, have_cc = false, dir_ok = false;
      if (!(env && std::string(env) == "0") && !dir.empty()) {
        have_nvrtc = nv.load();
        if (have_nvrtc) {
          const mx::Device d = mx::default_device();
          const int ordinal = d.type == mx::Device::gpu ? d.index : 0;
          have_cc = compute_capability(ordinal, &major, &minor) && drv.find(ordinal);
        }
        if (have_nvrtc && have_cc) dir_ok = writable(dir);
      }
      on = decide(env, dir, have_nvrtc, have_cc, dir_ok, &why);
      if (on) {
        arch = "sm_" + std::to_string(major) + std::to_string(minor);
        nvrtc_version = std::to_string(nv.major) + "." + std::to_string(nv.minor);
        incs = include_paths();
      }
    } catch (const std::exception& ex) {
      on = false;
      why = std::string("setting up failed: ") + ex.what();
    }
    if (on)
      say("on: " + dir + " (" + arch + ", NVRTC " + nvrtc_version + ")");
    else
      say(why + "; kernels run through MLX's cuda_kernel");
  }
};

State& state() {
  static State* s = new State();  // never destroyed: used until exit
  return *s;
}

std::string targ_key(const TemplateArgs& targs) {
  std::string k;
  for (const auto& [name, v] : targs) {
    k += name;
    k += '=';
    if (std::holds_alternative<int>(v))
      k += std::to_string(std::get<int>(v));
    else if (std::holds_alternative<bool>(v))
      k += std::get<bool>(v) ? 't' : 'f';
    else
      k += "d" + std::to_string(static_cast<int>(std::get<mx::Dtype>(v).val()));
    k += ';';
  }
  return k;
}

// kernel_name names a variant's function (and MLX's module, which MLX keys
// by this name): the base name and a hash of the source it is the name in.
std::string kernel_name(const KernelDef& def, const std::vector<mx::Dtype>& dts, const std::vector<int>& nd,
                        mx::Dtype out, const TemplateArgs& targs) {
  const std::string probe = standalone_source(def, "genkit_kernel", dts, nd, out, targs);
  return def.name + "_" + hex(sha256(probe)).substr(0, 16);
}

}  // namespace

namespace {

// find_variant is def's compiled variant for inputs, out_dtype and targs
// (compiled, or loaded from the cache directory, on first use), or null when
// kernels do not run precompiled here; shaped gets the indices of the inputs
// whose dimensions the kernel takes.
std::shared_ptr<const Variant> find_variant(const KernelDef& def, const std::vector<mx::array>& inputs,
                                            mx::Dtype out_dtype, const TemplateArgs& targs,
                                            const std::vector<int>** shaped) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.decide_locked();
  if (!st.on) return nullptr;
  auto sit = st.shaped.find(&def);
  if (sit == st.shaped.end()) sit = st.shaped.emplace(&def, shape_inputs(def)).first;
  *shaped = &sit->second;
  std::string key = def.name + '|' + targ_key(targs) + '|' + std::to_string(static_cast<int>(out_dtype.val()));
  for (const auto& in : inputs) key += ',' + std::to_string(static_cast<int>(in.dtype().val()));
  for (int i : **shaped) key += ':' + std::to_string(i < static_cast<int>(inputs.size()) ? inputs[i].ndim() : 0);
  auto it = st.variants.find(key);
  if (it != st.variants.end()) return it->second;
  Variant nv;
  try {
    std::vector<mx::Dtype> dts;
    std::vector<int> nd;
    for (const auto& in : inputs) {
      dts.push_back(in.dtype());
      nd.push_back(static_cast<int>(in.ndim()));
    }
    nv.name = kernel_name(def, dts, nd, out_dtype, targs);
    const std::string src = standalone_source(def, nv.name, dts, nd, out_dtype, targs);
    const std::string disk_key = hex(sha256(src + '\0' + st.arch + '\0' + "nvrtc " + st.nvrtc_version));
    bool compiled = false;
    const auto t0 = std::chrono::steady_clock::now();
    Compiler cc = [&](const std::string& s, const std::string& k) {
      return nvrtc_compile(st.nv, st.major, st.minor, st.incs, s, k);
    };
    Validator check = [&](const std::string& b, const std::string& k) { st.drv.check(b, k); };
    nv.binary = obtain(st.dir, disk_key, src, nv.name, cc, check, &compiled);
    if (def.sync_threads > 0) nv.resident = st.drv.check(nv.binary, nv.name, def.sync_threads);
    nv.ok = true;
    const long ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
    (compiled ? st.compiled : st.loaded)++;
    st.say(std::string(compiled ? "compiled " : "loaded ") + nv.name + " (" + st.arch + ") in " + std::to_string(ms) +
           " ms" + (def.sync_threads > 0 ? ", " + std::to_string(nv.resident) + " blocks a multiprocessor" : ""));
  } catch (const std::exception& e) {
    nv.ok = false;
    st.say(def.name + ": " + e.what() + (def.fallback ? "; this variant runs through MLX's cuda_kernel" : ""));
  }
  return st.variants.emplace(key, std::make_shared<const Variant>(std::move(nv))).first->second;
}

}  // namespace

int cooperative_blocks(const KernelDef& def, const std::vector<mx::array>& inputs, mx::Dtype out_dtype,
                       const TemplateArgs& targs) {
  const std::vector<int>* shaped = nullptr;
  auto v = find_variant(def, inputs, out_dtype, targs, &shaped);
  return v && v->ok ? v->resident : 0;
}

std::vector<mx::array> run_kernel(const KernelDef& def, const std::vector<mx::array>& inputs,
                                  const mx::Shape& out_shape, mx::Dtype out_dtype, std::tuple<int, int, int> grid,
                                  std::tuple<int, int, int> block, const TemplateArgs& targs) {
  State& st = state();
  const std::vector<int>* shaped = nullptr;
  std::shared_ptr<const Variant> v = find_variant(def, inputs, out_dtype, targs, &shaped);
  if (v == nullptr || !v->ok) {
    if (!def.fallback) throw std::runtime_error("mlx: " + def.name + " runs only precompiled, and it is not here");
    st.fallbacks++;
    return def.fallback()(inputs, {out_shape}, {out_dtype}, grid, block, targs, std::nullopt, false, {});
  }
  std::vector<mx::fast::ScalarArg> scalars;
  for (int i : *shaped)
    for (int d = 0; d < static_cast<int>(inputs[i].ndim()); ++d) scalars.emplace_back(static_cast<int>(inputs[i].shape(d)));
  return mx::fast::precompiled_cuda_kernel(v->name, v->binary, inputs, {out_shape}, {out_dtype}, scalars, grid, block,
                                           0, std::nullopt, def.ensure_row_contiguous, {});
}

}  // namespace gk

// ---- C entry points (shim.h): the cache directory, status, and tests. ----

namespace {

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

}  // namespace

extern "C" {

void gk_kernel_cache_set_dir(const char* dir) {
  gk::State& st = gk::state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.go_dir = dir ? dir : "";
  st.decided = false;
  st.variants.clear();  // found again under the new directory
}

int gk_kernel_cache_status(char** why, long* compiled, long* loaded, long* fallbacks) {
  gk::State& st = gk::state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.decide_locked();
  *why = dup(st.why);
  *compiled = st.compiled;
  *loaded = st.loaded;
  *fallbacks = st.fallbacks;
  return st.on ? 1 : 0;
}

int gk_kernel_cache_decide(const char* env, const char* dir, int have_nvrtc, int have_cc, int dir_ok, char** why) {
  std::string w;
  const bool on = gk::decide(env, dir ? dir : "", have_nvrtc, have_cc, dir_ok, &w);
  *why = dup(w);
  return on ? 1 : 0;
}

int gk_kernel_source(char** out, int kernel, int dtype, const int* vals, int nvals, int nameless) {
  try {
    namespace mx = mlx::core;
    mx::Dtype t = dtype == GK_FLOAT32    ? mx::float32
                  : dtype == GK_FLOAT16  ? mx::float16
                  : dtype == GK_BFLOAT16 ? mx::bfloat16
                                         : throw std::invalid_argument("dtype must be float32, float16 or bfloat16");
    const gk::KernelDef* def = nullptr;
    std::vector<std::string> names;
    std::vector<mx::Dtype> dts;
    std::vector<int> nd;
    if (kernel == 0 || kernel == 1 || kernel == 3 || kernel == 4) {
      const bool quant = kernel == 1 || kernel == 4, tile = kernel >= 3;
      def = &gk::product_def(quant, tile);
      names = {"M", "NORM", "GLU", "HASBIAS", "RES"};
      if (tile) names.insert(names.end(), {"R", "XS"});
      if (quant) names.push_back("BITS");
      mx::Dtype w = quant ? mx::uint32 : t;
      dts = {t, mx::float32, mx::float32, w};
      if (quant) dts.insert(dts.end(), {t, t});
      dts.insert(dts.end(), {t, t});
    } else if (kernel == 2) {
      def = &gk::attention_def();
      names = {"HD", "NH", "NKV", "QKNORM", "TRAD"};
      dts = {t, mx::float32, mx::float32, mx::float32, mx::float32, mx::int32, t, t};
    } else if (kernel == 5 || kernel == 6) {
      const bool quant = kernel == 6;
      def = &gk::block_def(quant);
      names = {"M", "HD", "NH", "NKV", "QKNORM", "TRAD", "XS", "QB", "OB", "DB", "R1", "R3", "R5"};
      if (quant) names.push_back("BITS");
      dts = {t, mx::float32, mx::float32, mx::float32, mx::float32, mx::float32, mx::float32, mx::int32, t, t, mx::uint32, t};
      for (int l = 0; l < 4; ++l) {
        dts.push_back(quant ? mx::uint32 : t);
        if (quant) dts.insert(dts.end(), {t, t});
        dts.push_back(t);
      }
    } else {
      throw std::invalid_argument(
          "kernel must be 0 (product), 1 (quantized product), 2 (attention), 3 (tiled product), 4 (tiled quantized "
          "product), 5 (block) or 6 (quantized block)");
    }
    if (nvals != static_cast<int>(names.size())) throw std::invalid_argument("wrong number of template values");
    gk::TemplateArgs targs = {{"T", t}};
    for (int i = 0; i < nvals; ++i) {
      const bool flag = names[i] == "NORM" || names[i] == "GLU" || names[i] == "HASBIAS" || names[i] == "RES" ||
                        names[i] == "QKNORM" || names[i] == "TRAD" || names[i] == "QB" || names[i] == "OB" ||
                        names[i] == "DB";
      if (flag)
        targs.push_back({names[i], vals[i] != 0});
      else
        targs.push_back({names[i], vals[i]});
    }
    // The engine's inputs: 2-D weights, scales and biases; 4-D caches;
    // everything else as shaped by the engine (only shaped inputs matter).
    for (size_t i = 0; i < def->inputs.size(); ++i) {
      const std::string& n = def->inputs[i];
      const bool matrix = n == "w" || n == "scales" || n == "biases" ||
                          (n.size() > 2 && (n.compare(n.size() - 2, 2, "_w") == 0 || n.compare(n.size() - 2, 2, "_s") == 0 ||
                                            n.compare(n.size() - 2, 2, "_b") == 0));
      nd.push_back(n == "kc" || n == "vc" ? 4 : matrix ? 2 : 1);
    }
    const std::string name = nameless ? "genkit_kernel" : gk::kernel_name(*def, dts, nd, t, targs);
    *out = dup(gk::standalone_source(*def, name, dts, nd, t, targs));
    return 0;
  } catch (const std::exception& e) {
    *out = dup(e.what());
    return 1;
  }
}

int gk_kernel_cache_store(const char* dir, const char* key, const void* data, size_t n, char** err) {
  try {
    gk::store_cached(dir, key, std::string(static_cast<const char*>(data), n));
    *err = nullptr;
    return 0;
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return 1;
  }
}

int gk_kernel_cache_load(const char* dir, const char* key, char** data, size_t* n) {
  std::string payload;
  if (!gk::load_cached(dir, key, payload)) return 0;
  *data = static_cast<char*>(std::malloc(payload.size()));
  if (!*data) return 0;
  std::memcpy(*data, payload.data(), payload.size());
  *n = payload.size();
  return 1;
}

int gk_kernel_cache_obtain_fake(const char* dir, const char* key, const char* source, int fail, const char* refuse,
                                int* compiled, char** bin, char** err) {
  try {
    gk::Compiler fake = [fail](const std::string& s, const std::string& k) -> std::string {
      if (fail) throw std::runtime_error("fake compiler failed on " + k);
      return "CUBIN(" + k + "):" + s;
    };
    const std::string no = refuse ? refuse : "";
    gk::Validator val = [no](const std::string& b, const std::string& k) {
      if (!no.empty() && b.find(no) != std::string::npos) throw std::runtime_error("fake driver refused " + k);
    };
    bool c = false;
    std::string b = gk::obtain(dir, key, source, "fake_kernel", fake, val, &c);
    *compiled = c ? 1 : 0;
    *bin = dup(b);
    *err = nullptr;
    return 0;
  } catch (const std::exception& e) {
    *bin = nullptr;
    *err = dup(e.what());
    return 1;
  }
}

int gk_sha256_hex(const void* data, size_t n, char out[65]) {
  const std::string in = n ? std::string(static_cast<const char*>(data), n) : std::string();
  const std::string h = gk::hex(gk::sha256(in));
  std::memcpy(out, h.c_str(), 65);
  return 0;
}

}  // extern "C"
