// The small set of operations a forward pass needs, behind one interface (in the manner of ggml's
// backends). A backend knows tensors, weight matrices in ggml formats and memory; it knows nothing of
// models or adapters. The Gemma-4 pass (models/gemma4/forward.cc) is written once against it; the CPU
// backend (backends/cpu) and the CUDA backend (backends/cuda) implement it.
//
// Activations are row-major [rows = tokens, cols = features] fp32 tensors in the backend's memory.
// Every operation may be called from several threads at once (one session per thread): a backend keeps
// no per-call state outside the Workspace and Buffer objects the caller owns.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/quant.h"

namespace nla {

struct Tensor {
  float* data = nullptr;  // backend memory (host for CPU, device for CUDA)
  int64_t rows = 0, cols = 0;
  int64_t stride = 0;     // floats between rows (>= cols)
  float* row(int64_t r) const { return data + r * stride; }
  // A view of columns [c0, c0+n) of every row.
  Tensor cols_view(int64_t c0, int64_t n) const { return Tensor{data + c0, rows, n, stride}; }
  // A view of rows [r0, r0+n).
  Tensor rows_view(int64_t r0, int64_t n) const { return Tensor{data + r0 * stride, n, cols, stride}; }
};

// A weight matrix: `out` rows of `in` values in a ggml format (ggml ne = [in, out]), in host memory that
// outlives the backend's use of it (a mapped GGUF).
struct WeightMatrix {
  GgmlType type = GgmlType::F32;
  int64_t in = 0, out = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  const uint8_t* row(int64_t o) const { return data + static_cast<size_t>(o) * row_bytes; }
  explicit operator bool() const { return data != nullptr; }
};

// A low-rank update y += scale · (x Aᵀ) Bᵀ with fp32 A [rank, in] and B [out, rank] in host memory.
struct LowRank {
  const float* a = nullptr;
  const float* b = nullptr;
  int64_t rank = 0, in = 0, out = 0;
  float scale = 1.0f;
};

enum class GeluMode {
  Exact,      // 0.5·x·(1+tanh(√(2/π)(x+0.044715x³))) in fp32
  Fp16Table,  // input and output rounded through fp16, as llama.cpp's CPU backend does (for differential tests)
};

// Scratch memory for one pass: tensors are valid until reset(). Owned by one caller (a session).
class Workspace {
 public:
  virtual ~Workspace() = default;
  virtual Tensor alloc(int64_t rows, int64_t cols) = 0;
  virtual void reset() = 0;
};

// Memory that outlives a pass (a sequence's KV cache); freed with the object.
class Buffer {
 public:
  virtual ~Buffer() = default;
  const Tensor& tensor() const { return t_; }

 protected:
  Tensor t_;
};

// Attention of the query rows [q_row0, q_row0 + q_rows) of one sequence over that sequence's keys.
// Keys are rows [0, keys) of k and v, in ascending position order (k_pos[j]); query i sits at q_pos[i].
// Key j is visible to query i iff k_pos[j] <= q_pos[i] and, when window > 0, q_pos[i] - k_pos[j] < window.
struct AttentionSegment {
  int64_t q_row0 = 0, q_rows = 0;
  const int32_t* q_pos = nullptr;  // host memory, q_rows entries
  Tensor k, v;
  int64_t keys = 0;
  const int32_t* k_pos = nullptr;  // host memory, keys entries
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;          // "cpu", "cuda"
  virtual std::string description() const = 0;   // kernels / device in use
  // Internal counters for profiling (the CPU backend: seconds quantizing activations inside products, seconds
  // callers waited on the thread pool for the last chunks of a loop).
  virtual void counters(std::map<std::string, double>& out) const { (void)out; }
  virtual void reset_counters() {}

  virtual std::unique_ptr<Workspace> new_workspace() = 0;
  virtual std::unique_ptr<Buffer> new_buffer(int64_t rows, int64_t cols) = 0;
  virtual void upload(const Tensor& dst, const float* src) = 0;          // rows*cols floats, row-major
  virtual void download(const Tensor& src, float* dst) = 0;              // rows*cols floats, row-major

  // out[i, :] = scale · table.row(ids[i])[c0 : c0 + out.cols]
  virtual void get_rows(const WeightMatrix& table, const int32_t* ids, int64_t c0, float scale, const Tensor& out) = 0;
  // y = x · Wᵀ (x: [T, w.in], y: [T, y.cols]); the rows of W used are [r0, r0 + y.cols).
  // Row t of y depends on row t of x alone (bit for bit, whatever T, the other rows and the thread count).
  virtual void matmul(const WeightMatrix& w, const Tensor& x, const Tensor& y, int64_t r0 = 0) = 0;
  // y += scale · (x Aᵀ) Bᵀ, row by row as matmul.
  virtual void lowrank(const LowRank& p, const Tensor& x, const Tensor& y) = 0;
  // Normalises every group of `group` consecutive values of each row: y = x / sqrt(mean(x²)+eps) · w (w may be null).
  virtual void rms_norm(const Tensor& x, int64_t group, const float* w, float eps, const Tensor& y) = 0;
  // NeoX RoPE on each head (head_dim values) of every row, rotating the first n_rot dims:
  // pair (k, k + n_rot/2), angle = pos[row] · base^(−2k/n_rot) / ff[k] (ff may be null).
  virtual void rope(const Tensor& x, int64_t head_dim, int64_t n_rot, float base, const float* freq_factors,
                    const int32_t* pos) = 0;
  // Attention with scale 1 and grouped KV heads for each segment (softmax over the visible keys in key order).
  virtual void attention(const Tensor& q, const std::vector<AttentionSegment>& segments, int n_head, int n_head_kv,
                         int head_dim, int window, const Tensor& out) = 0;
  // out = gelu(gate) ⊙ up ; with up == nullptr-tensor (data null): out = gelu(gate)
  virtual void gelu_mul(const Tensor& gate, const Tensor& up, GeluMode mode, const Tensor& out) = 0;
  virtual void mul(const Tensor& x, const Tensor& y) = 0;   // x ⊙= y
  virtual void add(const Tensor& x, const Tensor& y) = 0;   // x += y
  virtual void scale(const Tensor& x, float s) = 0;         // x *= s
  virtual void softcap(const Tensor& x, float cap) = 0;     // x = cap · tanh(x / cap)
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
};

std::unique_ptr<Backend> make_cpu_backend(int n_threads);
const char* cpu_kernels_name();  // "avx512vnni", "avx2" or "scalar": what make_cpu_backend uses on this CPU
#ifdef NLA_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(int device);
// Number of CUDA devices, or -cudaError when the runtime cannot query them (35: no/old driver, 100: no device).
int cuda_device_count();
// Runs a few of this binary's kernels on device 0 (scale, RMS norm, a q8_0 product) and checks the results against
// the CPU reference: "" when they run and agree, else what failed (a driver that lists the device but cannot run
// this binary's code: wrong architecture, broken JIT, …). For the loader's child-process probe.
std::string cuda_self_test();
#endif

}  // namespace nla
