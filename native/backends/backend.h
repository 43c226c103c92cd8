// The small set of operations the forward pass needs, behind one interface
// (in the manner of ggml's backends). The forward pass (forward.cc) is written
// once against this interface; the CPU backend (backend_cpu.cc) and the CUDA
// backend implement it. Activations are row-major [rows = tokens, cols = features]
// fp32 tensors living in the backend's memory.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "adapters/lora.h"
#include "models/gemma4/model.h"

namespace nla {

struct Tensor {
  float* data = nullptr;  // backend memory (host for CPU, device for CUDA)
  int64_t rows = 0, cols = 0;
  int64_t stride = 0;     // floats between rows (>= cols)
  float* row(int64_t r) const { return data + r * stride; }
  // A view of columns [c0, c0+n) of every row.
  Tensor cols_view(int64_t c0, int64_t n) const { return Tensor{data + c0, rows, n, stride}; }
};

enum class GeluMode {
  Exact,      // 0.5·x·(1+tanh(√(2/π)(x+0.044715x³))) in fp32
  Fp16Table,  // input and output rounded through fp16, as llama.cpp's CPU backend does (for differential tests)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;          // "cpu", "cuda"
  virtual std::string description() const = 0;   // kernels / device in use

  // Scratch memory: valid until reset().
  virtual Tensor alloc(int64_t rows, int64_t cols) = 0;
  virtual void reset() = 0;
  virtual void upload(const Tensor& dst, const float* src) = 0;          // rows*cols floats, row-major
  virtual void download_row(const Tensor& src, int64_t r, float* dst) = 0;

  // out[i, :] = scale · table.row(ids[i])[c0 : c0 + out.cols]
  virtual void get_rows(const Matrix& table, const int32_t* ids, int64_t c0, float scale, const Tensor& out) = 0;
  // y = x · Wᵀ (x: [T, w.in], y: [T, w.out]); the rows of W used are [r0, r0 + y.cols).
  virtual void matmul(const Matrix& w, const Tensor& x, const Tensor& y, int64_t r0 = 0) = 0;
  // y += scale · (x Aᵀ) Bᵀ  (A: [r, in], B: [out, r]).
  virtual void lora(const LoraMatrixPair& p, const Tensor& x, const Tensor& y) = 0;
  // Normalises every group of `group` consecutive values of each row: y = x / sqrt(mean(x²)+eps) · w (w may be null).
  virtual void rms_norm(const Tensor& x, int64_t group, const float* w, float eps, const Tensor& y) = 0;
  // NeoX RoPE on each head (head_dim values) of every row, rotating the first n_rot dims:
  // pair (k, k + n_rot/2), angle = pos · base^(−2k/n_rot) / ff[k] (ff may be null).
  virtual void rope(const Tensor& x, int64_t head_dim, int64_t n_rot, float base, const float* freq_factors,
                    const int32_t* pos) = 0;
  // Causal (and, if window > 0, sliding-window) attention with scale 1, grouped KV heads.
  // q may have fewer rows than k only where attention_suffix_queries() is true: query row i is then the
  // token at position pos[k.rows - q.rows + i] (the last q.rows tokens of the keys' sequence).
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_head, int n_head_kv, int head_dim,
                         int window, const int32_t* pos, const Tensor& out) = 0;
  virtual bool attention_suffix_queries() const { return false; }
  // out = gelu(gate) ⊙ up ; with up == nullptr-tensor (data null): out = gelu(gate)
  virtual void gelu_mul(const Tensor& gate, const Tensor& up, GeluMode mode, const Tensor& out) = 0;
  virtual void mul(const Tensor& x, const Tensor& y) = 0;   // x ⊙= y
  virtual void add(const Tensor& x, const Tensor& y) = 0;   // x += y
  virtual void scale(const Tensor& x, float s) = 0;         // x *= s
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
};

std::unique_ptr<Backend> make_cpu_backend(int n_threads);
#ifdef NLA_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(int device);
// Number of CUDA devices, or -cudaError when the runtime cannot query them (35: no/old driver, 100: no device).
int cuda_device_count();
#endif

}  // namespace nla
