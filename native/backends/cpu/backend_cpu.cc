// CPU backend. Matrix products go through the multi-token kernels of kernels.h (each weight row is
// decoded once and multiplied with every token's quantized activations, rows split across a persistent
// thread pool); the remaining ops are row-parallel loops over SIMD fp32 helpers. Per-call temporaries
// (quantized activations, the LoRA's inner product) are per calling thread, and the pool takes one loop at
// a time, so sessions on different threads share the backend without a lock around a pass.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/kernels.h"
#include "common/error.h"
#include "common/thread_pool.h"

namespace nla {

namespace {

float gelu_exact(float x) {
  const float kSqrt2OverPi = 0.79788456080286535588f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

// llama.cpp's CPU GELU: inputs rounded to fp16, looked up in a table of fp16 results,
// identity/zero outside ±10. Built once from gelu_exact.
const std::vector<uint16_t>& gelu_fp16_table() {
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(1 << 16);
    for (uint32_t i = 0; i < (1u << 16); ++i) t[i] = fp32_to_fp16(gelu_exact(fp16_to_fp32(static_cast<uint16_t>(i))));
    return t;
  }();
  return table;
}

inline float gelu(float x, GeluMode mode) {
  if (mode == GeluMode::Exact) return gelu_exact(x);
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return fp16_to_fp32(gelu_fp16_table()[fp32_to_fp16(x)]);
}

float* alloc_floats(int64_t rows, int64_t cols, std::vector<float>& v) {
  if (rows < 0 || cols < 0) throw Error(code::INTERNAL, "cpu backend: negative tensor size");
  v.assign(static_cast<size_t>(rows * cols), 0.0f);
  return v.data();
}

// Scratch for one pass: a list of host arrays, kept (not freed) across reset() so a session's next pass of
// the same size allocates nothing.
class CpuWorkspace final : public Workspace {
 public:
  Tensor alloc(int64_t rows, int64_t cols) override {
    if (used_ == arrays_.size()) arrays_.emplace_back();
    std::vector<float>& v = arrays_[used_++];
    const size_t n = static_cast<size_t>(std::max<int64_t>(0, rows * cols));
    if (v.size() < n) v.resize(n);
    return Tensor{v.data(), rows, cols, cols};
  }
  void reset() override {
    used_ = 0;
    if (arrays_.size() > 64) arrays_.resize(64);
  }

 private:
  std::deque<std::vector<float>> arrays_;
  size_t used_ = 0;
};

class CpuBuffer final : public Buffer {
 public:
  CpuBuffer(int64_t rows, int64_t cols) { t_ = Tensor{alloc_floats(rows, cols, data_), rows, cols, cols}; }

 private:
  std::vector<float> data_;
};

// The smallest chunk worth handing to another thread: about 30 µs of work (a hand-off and the wait for the
// slowest thread cost several µs, more on a loaded machine). Small ops (decode steps of small models) then run on
// the calling thread alone; every result is the same either way (rows never depend on the thread split).
constexpr double kMinChunkWork = 1 << 16;  // multiply-adds (or element operations)
int64_t grain_for(double work_per_item, int64_t at_least = 1) {
  const double g = std::ceil(kMinChunkWork / std::max(1.0, work_per_item));
  return std::max<int64_t>(at_least, static_cast<int64_t>(std::min(g, 1e12)));
}

// Per-thread temporaries of one call (quantized activations, the LoRA's x·Aᵀ).
std::vector<uint8_t>& thread_qbuf() {
  thread_local std::vector<uint8_t> b;
  return b;
}
std::vector<float>& thread_lowrank() {
  thread_local std::vector<float> b;
  return b;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads) : pool_(n_threads), k_(cpu::kernels()) {}

  std::string name() const override { return "cpu"; }
  void counters(std::map<std::string, double>& out) const override {
    out["cpu.quantize_seconds"] = static_cast<double>(quantize_ns_.load()) * 1e-9;
    out["cpu.pool_loops"] = static_cast<double>(pool_.loops());
    out["cpu.pool_wait_seconds"] = static_cast<double>(pool_.wait_ns()) * 1e-9;
    out["cpu.threads"] = pool_.size();
  }
  void reset_counters() override {
    quantize_ns_.store(0);
    pool_.reset_counters();
  }
  std::string description() const override {
    return "cpu (" + std::to_string(pool_.size()) + " threads, " + k_.name + " kernels)";
  }

  std::unique_ptr<Workspace> new_workspace() override { return std::make_unique<CpuWorkspace>(); }
  std::unique_ptr<Buffer> new_buffer(int64_t rows, int64_t cols) override { return std::make_unique<CpuBuffer>(rows, cols); }
  void upload(const Tensor& dst, const float* src) override {
    for (int64_t r = 0; r < dst.rows; ++r) std::memcpy(dst.row(r), src + r * dst.cols, sizeof(float) * dst.cols);
  }
  void download(const Tensor& src, float* dst) override {
    for (int64_t r = 0; r < src.rows; ++r) std::memcpy(dst + r * src.cols, src.row(r), sizeof(float) * src.cols);
  }

  void get_rows(const WeightMatrix& table, const int32_t* ids, int64_t c0, float scale, const Tensor& out) override {
    const auto& tr = type_traits(table.type);
    pool_.parallel_for(out.rows, grain_for(static_cast<double>(table.in)), [&](int64_t b, int64_t e, int) {
      std::vector<float> row(static_cast<size_t>(table.in));
      for (int64_t i = b; i < e; ++i) {
        tr.to_float(table.row(ids[i]), row.data(), table.in);
        float* y = out.row(i);
        for (int64_t c = 0; c < out.cols; ++c) y[c] = row[c0 + c] * scale;
      }
    });
  }

  void matmul(const WeightMatrix& w, const Tensor& x, const Tensor& y, int64_t r0) override {
    const auto& tr = type_traits(w.type);
    const uint32_t id = static_cast<uint32_t>(w.type) & 63, dot_id = static_cast<uint32_t>(tr.vec_dot_type) & 63;
    const FromFloatFn quantize = k_.from_float[dot_id];
    const VecDotFn vec_dot = k_.vec_dot[id];
    if (!vec_dot || (tr.vec_dot_type != GgmlType::F32 && !quantize))
      throw Error(code::UNSUPPORTED_TYPE, std::string("cpu matmul: no product for tensor type ") + tr.name);
    const int64_t T = x.rows, n = w.in;
    if (T == 0 || y.cols == 0) return;
    std::vector<uint8_t>& qbuf = thread_qbuf();
    // Activations in the weight's dot type, once per row (as llama.cpp does).
    const int64_t n_out = y.cols;
    const cpu::GemmFn g = k_.gemm[id];
    const uint8_t* xq;
    size_t xrow, xgroup = 0;
    const auto tq = std::chrono::steady_clock::now();
    if (tr.vec_dot_type == GgmlType::F32) {
      xq = reinterpret_cast<const uint8_t*>(x.data);
      xrow = sizeof(float) * static_cast<size_t>(x.stride);
    } else if (g && n % 256 == 0 && (tr.vec_dot_type == GgmlType::Q8_K || tr.vec_dot_type == GgmlType::Q8_0)) {
      // Group-major activations: the T tokens' copies of each 256-value group are contiguous.
      xrow = row_size(tr.vec_dot_type, 256);
      xgroup = xrow * static_cast<size_t>(T);
      const int64_t groups = n / 256;
      qbuf.resize(xgroup * static_cast<size_t>(groups));
      uint8_t* q = qbuf.data();
      pool_.parallel_for(T, grain_for(4.0 * static_cast<double>(n)), [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t)
          for (int64_t gi = 0; gi < groups; ++gi) quantize(x.row(t) + 256 * gi, q + xgroup * gi + xrow * t, 256);
      });
      xq = q;
    } else {
      const auto& dt = type_traits(tr.vec_dot_type);
      xrow = row_size(tr.vec_dot_type, n);
      xgroup = row_size(tr.vec_dot_type, 256 % dt.block_size == 0 ? 256 : dt.block_size);
      qbuf.resize(xrow * T);
      uint8_t* q = qbuf.data();
      pool_.parallel_for(T, grain_for(4.0 * static_cast<double>(n)), [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) quantize(x.row(t), q + xrow * t, n);
      });
      xq = q;
    }
    if (tr.vec_dot_type != GgmlType::F32)
      quantize_ns_.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - tq).count()),
                             std::memory_order_relaxed);
    if (g) {
      // Chunks of whole 16-row groups (the AVX-512 k-quant kernels work on 16 rows at a time).
      pool_.parallel_for((n_out + 15) / 16, grain_for(16.0 * static_cast<double>(n) * static_cast<double>(T)), [&](int64_t gb, int64_t ge, int) {
        const int64_t b = gb * 16, e = std::min(n_out, ge * 16);
        g(n, w.row(r0 + b), w.row_bytes, e - b, xq, xrow, xgroup, T, y.data + b, y.stride);
      });
      return;
    }
    pool_.parallel_for(n_out, grain_for(static_cast<double>(n) * static_cast<double>(T), 16), [&](int64_t b, int64_t e, int) {
      for (int64_t o = b; o < e; ++o) {
        const uint8_t* wrow = w.row(r0 + o);
        for (int64_t t = 0; t < T; ++t) {
          float s;
          vec_dot(n, &s, wrow, xq + xrow * t);
          y.row(t)[o] = s;
        }
      }
    });
  }

  // Two thin products, never merged into W: ax = x Aᵀ ([T, r]), then y += scale · ax Bᵀ.
  void lowrank(const LowRank& p, const Tensor& x, const Tensor& y) override {
    const int64_t T = x.rows, r = p.rank, in = p.in;
    if (T == 0 || r == 0) return;
    std::vector<float>& axb = thread_lowrank();
    axb.resize(static_cast<size_t>(T * r));
    float* ax = axb.data();
    if (k_.sgemm_nt) {
      pool_.parallel_for(r, grain_for(static_cast<double>(T) * static_cast<double>(in), 4), [&](int64_t b, int64_t e, int) {
        k_.sgemm_nt(e - b, T, in, p.a + b * in, in, x.data, x.stride, ax + b, r, 1.0f, false);
      });
      pool_.parallel_for(y.cols, grain_for(static_cast<double>(T) * static_cast<double>(r), 64), [&](int64_t b, int64_t e, int) {
        k_.sgemm_nt(e - b, T, r, p.b + b * r, r, ax, r, y.data + b, y.stride, p.scale, true);
      });
      return;
    }
    pool_.parallel_for(r, grain_for(static_cast<double>(T) * static_cast<double>(in), 4), [&](int64_t b, int64_t e, int) {
      for (int64_t k = b; k < e; ++k) {
        const float* a = p.a + k * in;
        for (int64_t t = 0; t < T; ++t) ax[t * r + k] = k_.dot_f32(a, x.row(t), in);
      }
    });
    pool_.parallel_for(y.cols, grain_for(static_cast<double>(T) * static_cast<double>(r), 64), [&](int64_t b, int64_t e, int) {
      for (int64_t o = b; o < e; ++o) {
        const float* bo = p.b + o * r;
        for (int64_t t = 0; t < T; ++t) y.row(t)[o] += p.scale * k_.dot_f32(bo, ax + t * r, r);
      }
    });
  }

  void rms_norm(const Tensor& x, int64_t group, const float* w, float eps, const Tensor& y) override {
    const int64_t groups = x.cols / group;
    pool_.parallel_for(x.rows * groups, grain_for(3.0 * static_cast<double>(group), 8), [&](int64_t b, int64_t e, int) {
      for (int64_t gi = b; gi < e; ++gi) {
        const float* xs = x.row(gi / groups) + (gi % groups) * group;
        float* ys = y.row(gi / groups) + (gi % groups) * group;
        double sum = 0;
        for (int64_t i = 0; i < group; ++i) sum += static_cast<double>(xs[i] * xs[i]);
        const float scale = 1.0f / std::sqrt(static_cast<float>(sum / group) + eps);
        for (int64_t i = 0; i < group; ++i) ys[i] = w ? (xs[i] * scale) * w[i] : xs[i] * scale;
      }
    });
  }

  void rope(const Tensor& x, int64_t head_dim, int64_t n_rot, float base, const float* ff, const int32_t* pos) override {
    const int64_t heads = x.cols / head_dim, half = n_rot / 2;
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_rot));
    pool_.parallel_for(x.rows, grain_for(static_cast<double>(x.cols) * 4), [&](int64_t b, int64_t e, int) {
      std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
      for (int64_t t = b; t < e; ++t) {
        float theta = static_cast<float>(pos[t]);  // p · theta_scale^k by repeated products, as ggml does
        for (int64_t k = 0; k < half; ++k) {
          const float a = ff ? theta / ff[k] : theta;
          cs[k] = std::cos(a);
          sn[k] = std::sin(a);
          theta *= theta_scale;
        }
        for (int64_t h = 0; h < heads; ++h) {
          float* v = x.row(t) + h * head_dim;
          for (int64_t k = 0; k < half; ++k) {
            const float x0 = v[k], x1 = v[k + half];
            v[k] = x0 * cs[k] - x1 * sn[k];
            v[k + half] = x0 * sn[k] + x1 * cs[k];
          }
        }
      }
    });
  }

  void attention(const Tensor& q, const std::vector<AttentionSegment>& segments, int n_head, int n_head_kv, int head_dim,
                 int window, const Tensor& out) override {
    const int group = n_head / n_head_kv;
    // One work item per (query row, head) over all segments.
    std::vector<int64_t> first(segments.size() + 1, 0);
    for (size_t s = 0; s < segments.size(); ++s) first[s + 1] = first[s] + segments[s].q_rows * n_head;
    int64_t keys = 0;
    for (const AttentionSegment& sg : segments) keys = std::max(keys, sg.keys);
    pool_.parallel_for(first.back(), grain_for(2.0 * static_cast<double>(keys) * head_dim), [&](int64_t b, int64_t e, int) {
      size_t s = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), b) - first.begin()) - 1;
      for (int64_t idx = b; idx < e; ++idx) {
        while (idx >= first[s + 1]) ++s;
        const AttentionSegment& sg = segments[s];
        const int64_t local = idx - first[s];
        const int64_t i = local / n_head;
        const int h = static_cast<int>(local % n_head), hk = h / group;
        const int32_t pi = sg.q_pos[i];
        const int64_t Tk = sg.keys;
        float* p = static_cast<float*>(cpu::thread_scratch(sizeof(float) * static_cast<size_t>(std::max<int64_t>(1, Tk))));
        const float* qi = q.row(sg.q_row0 + i) + static_cast<int64_t>(h) * head_dim;
        float mx = -INFINITY;
        for (int64_t j = 0; j < Tk; ++j) {
          // keys outside the causal (and sliding) window are skipped, never computed
          const int32_t pj = sg.k_pos[j];
          const bool visible = pj <= pi && (window <= 0 || pi - pj < window);
          if (!visible) { p[j] = -INFINITY; continue; }
          const float sc = k_.dot_f32(qi, sg.k.row(j) + static_cast<int64_t>(hk) * head_dim, head_dim);
          p[j] = sc;
          mx = std::max(mx, sc);
        }
        double sum = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          const float ex = p[j] == -INFINITY ? 0.0f : std::exp(p[j] - mx);
          p[j] = ex;
          sum += ex;
        }
        const float inv = static_cast<float>(1.0 / sum);
        float* o = out.row(sg.q_row0 + i) + static_cast<int64_t>(h) * head_dim;
        for (int d = 0; d < head_dim; ++d) o[d] = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          if (p[j] == 0.0f) continue;
          k_.axpy_f32(p[j] * inv, sg.v.row(j) + static_cast<int64_t>(hk) * head_dim, o, head_dim);
        }
      }
    });
  }

  void gelu_mul(const Tensor& gate, const Tensor& up, GeluMode mode, const Tensor& out) override {
    const uint16_t* table = mode == GeluMode::Fp16Table ? gelu_fp16_table().data() : nullptr;
    pool_.parallel_for(gate.rows, grain_for(16.0 * static_cast<double>(gate.cols)), [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        const float* g = gate.row(t);
        const float* u = up.data ? up.row(t) : nullptr;
        float* o = out.row(t);
        if (table && k_.gelu_fp16) {
          k_.gelu_fp16(g, u, o, gate.cols, table);
        } else if (!table && k_.gelu_exact) {
          k_.gelu_exact(g, u, o, gate.cols);
        } else {
          for (int64_t c = 0; c < gate.cols; ++c) o[c] = u ? gelu(g[c], mode) * u[c] : gelu(g[c], mode);
        }
      }
    });
  }

  // Elementwise ops: rows split across the pool once the tensor is big enough to pay for the hand-off.
  template <typename F>
  void rows(const Tensor& x, F f) {
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, x.cols));
    pool_.parallel_for(x.rows, grain, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) f(t);
    });
  }
  void mul(const Tensor& x, const Tensor& y) override {
    rows(x, [&](int64_t t) {
      float* a = x.row(t);
      const float* c = y.row(t);
      for (int64_t i = 0; i < x.cols; ++i) a[i] *= c[i];
    });
  }
  void add(const Tensor& x, const Tensor& y) override {
    rows(x, [&](int64_t t) {
      float* a = x.row(t);
      const float* c = y.row(t);
      for (int64_t i = 0; i < x.cols; ++i) a[i] += c[i];
    });
  }
  void scale(const Tensor& x, float s) override {
    rows(x, [&](int64_t t) {
      float* a = x.row(t);
      for (int64_t i = 0; i < x.cols; ++i) a[i] *= s;
    });
  }
  void softcap(const Tensor& x, float cap) override {
    rows(x, [&](int64_t t) {
      float* a = x.row(t);
      for (int64_t i = 0; i < x.cols; ++i) a[i] = cap * std::tanh(a[i] / cap);
    });
  }
  void copy(const Tensor& dst, const Tensor& src) override {
    rows(src, [&](int64_t t) { std::memcpy(dst.row(t), src.row(t), sizeof(float) * src.cols); });
  }

 private:
  ThreadPool pool_;
  const cpu::Kernels& k_;
  std::atomic<uint64_t> quantize_ns_{0};
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

const char* cpu_kernels_name() { return cpu::kernels().name; }

}  // namespace nla
