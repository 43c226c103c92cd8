// CUDA backend: the Backend interface (backend.h) on one NVIDIA GPU.
//
// Semantics follow backend_cpu.cc op by op (that file is the reference):
//  * weights: each Matrix's bytes are copied to the device on first use (cache keyed by
//    the host data pointer); host float arrays (norm weights, rope frequency factors,
//    LoRA A/B) likewise. The GGUF is mmapped and owned by the engine, so these pointers
//    are stable for the backend's lifetime.
//  * get_rows: the few rows needed are dequantized on the host with the quant table's
//    to_float (bit-identical to the CPU backend) and uploaded; the big embedding tables
//    (token_embd, per_layer_token_embd) are therefore never copied whole for the lookup
//    (llama.cpp keeps them on the host too). token_embd is uploaded only if the logits
//    product uses it.
//  * matmul: activations quantized on the device to the weight's dot type with the CPU's
//    rounding, then exact block products (matmul.cu).
//  * scratch: a workspace per session, a bump allocator over device chunks rewound by reset() (memory
//    kept); KV caches are buffers of their own (cudaMalloc / cudaFree).
//  * threads: every operation takes the backend's lock and enqueues on one stream, so sessions on several
//    threads share it; the temporaries an operation enqueues (quantized activations, positions) are reused by
//    the next operation only after the stream has consumed them (stream order, or an explicit sync).
// Every CUDA call is checked; an allocation failure is nla::Error(code::OOM).
#include <cmath>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_common.cuh"

namespace nla {

namespace cuda {

void throw_cuda(cudaError_t err, const char* what, const char* file, int line) {
  (void)cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  const char* base = std::strrchr(file, '/');
  std::string msg = std::string("CUDA error ") + std::to_string(static_cast<int>(err)) + " (" + cudaGetErrorName(err) +
                    ": " + cudaGetErrorString(err) + ") in " + what + " at " + (base ? base + 1 : file) + ":" +
                    std::to_string(line);
  if (err == cudaErrorMemoryAllocation) throw Error(code::OOM, "out of GPU memory: " + msg);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) throw Error(code::NO_CUDA, msg);
  throw Error(code::INTERNAL, msg);
}

}  // namespace cuda

namespace {

using cuda::throw_cuda;

// ------------------------------------------------------------------ kernels

__device__ __forceinline__ float warp_sum_f(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Elementwise ops over [rows, cols] views with row strides.
enum class Ew : int { Mul, Add, Scale, Copy, Softcap };
__global__ void k_elementwise(Ew op, float* __restrict__ x, int64_t xs, const float* __restrict__ y, int64_t ys, int64_t rows,
                              int64_t cols, float s) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    float& v = x[r * xs + c];
    switch (op) {
      case Ew::Mul: v = __fmul_rn(v, y[r * ys + c]); break;
      case Ew::Add: v = __fadd_rn(v, y[r * ys + c]); break;
      case Ew::Scale: v = __fmul_rn(v, s); break;
      case Ew::Copy: v = y[r * ys + c]; break;
      case Ew::Softcap: v = __fmul_rn(s, tanhf(__fdiv_rn(v, s))); break;
    }
  }
}

// 0.5·x·(1+tanh(√(2/π)·x·(1+0.044715x²))) evaluated in the CPU's order, every operation rounded on its own.
__device__ __forceinline__ float gelu_exact_dev(float x) {
  const float k = 0.79788456080286535588f;
  const float inner = __fmul_rn(__fmul_rn(k, x), __fadd_rn(1.0f, __fmul_rn(__fmul_rn(0.044715f, x), x)));
  return __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, tanhf(inner)));
}

// table: null for GeluMode::Exact, else the fp16 GELU table (built on the host exactly as the CPU backend builds it).
__global__ void k_gelu_mul(const float* __restrict__ g, int64_t gs, const float* __restrict__ u, int64_t us, float* out,
                           int64_t os, int64_t rows, int64_t cols, const uint16_t* __restrict__ table) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float x = g[r * gs + c];
    float v;
    if (!table) {
      v = gelu_exact_dev(x);
    } else if (x <= -10.0f) {
      v = 0.0f;
    } else if (x >= 10.0f) {
      v = x;
    } else {
      v = __half2float(__ushort_as_half(table[__half_as_ushort(__float2half_rn(x))]));
    }
    out[r * os + c] = u ? __fmul_rn(v, u[r * us + c]) : v;
  }
}

// One block per (row, group): y = x / sqrt(mean(x²) + eps) · w, the sum of squares in double.
__global__ void k_rms_norm(const float* x, int64_t xs, float* y, int64_t ys, int64_t groups, int group,
                           const float* __restrict__ w, float eps) {
  const int64_t gi = blockIdx.x;
  const int64_t r = gi / groups, g = gi % groups;
  const float* xr = x + r * xs + g * group;
  float* yr = y + r * ys + g * group;
  double sum = 0;
  for (int i = threadIdx.x; i < group; i += blockDim.x) sum += static_cast<double>(__fmul_rn(xr[i], xr[i]));
  sum = warp_sum_d(sum);
  __shared__ double part[32];
  __shared__ float scale_s;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) part[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0;
    for (int i = 0; i < static_cast<int>((blockDim.x + 31) / 32); ++i) t += part[i];
    scale_s = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(static_cast<float>(t / group), eps)));
  }
  __syncthreads();
  const float scale = scale_s;
  for (int i = threadIdx.x; i < group; i += blockDim.x) {
    const float v = __fmul_rn(xr[i], scale);
    yr[i] = w ? __fmul_rn(v, w[i]) : v;
  }
}

// One block per token row; thread k handles rotation pair (k, k+half) of every head.
// theta_k = pos · theta_scale^k formed by repeated products (as ggml / the CPU backend).
__global__ void k_rope(float* x, int64_t xs, int heads, int head_dim, int half, float theta_scale,
                       const float* __restrict__ ff, const int32_t* __restrict__ pos) {
  const int t = blockIdx.x;
  for (int k = threadIdx.x; k < half; k += blockDim.x) {
    float theta = static_cast<float>(pos[t]);
    for (int i = 0; i < k; ++i) theta = __fmul_rn(theta, theta_scale);
    const float a = ff ? __fdiv_rn(theta, ff[k]) : theta;
    float sn, cs;
    sincosf(a, &sn, &cs);
    for (int h = 0; h < heads; ++h) {
      float* v = x + t * xs + static_cast<int64_t>(h) * head_dim;
      const float x0 = v[k], x1 = v[k + half];
      v[k] = __fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn));
      v[k + half] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs));
    }
  }
}

// Attention, one block (kAttWarps warps) per (query row i, head h). Two passes over the
// visible keys: the maximum score, then exp-weights with the V accumulation. Each warp
// takes every kAttWarps-th key; lanes split head_dim (≤ 512 → ≤ 16 values per lane).
constexpr int kAttWarps = 4;
constexpr int kMaxHeadDim = 512;
__global__ void __launch_bounds__(kAttWarps * 32)
    k_attention(const float* __restrict__ q, int64_t qs, const float* __restrict__ k, int64_t ks, const float* __restrict__ v,
                int64_t vs, int64_t Tk, int n_head, int group, int head_dim, int window, const int32_t* __restrict__ qpos,
                const int32_t* __restrict__ kpos, float* __restrict__ out, int64_t os) {
  constexpr int kPer = kMaxHeadDim / 32;
  const int64_t i = blockIdx.x / n_head;
  const int h = static_cast<int>(blockIdx.x % n_head), hk = h / group;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int per = head_dim / 32;
  const float* qi = q + i * qs + static_cast<int64_t>(h) * head_dim;
  float qv[kPer];
#pragma unroll
  for (int e = 0; e < kPer; ++e) qv[e] = e < per ? qi[lane + 32 * e] : 0.0f;
  const int32_t pi = qpos[i];
  auto visible = [&](int64_t j) { return kpos[j] <= pi && (window <= 0 || pi - kpos[j] < window); };
  auto score = [&](int64_t j) {
    const float* kj = k + j * ks + static_cast<int64_t>(hk) * head_dim;
    float s = 0;
#pragma unroll
    for (int e = 0; e < kPer; ++e)
      if (e < per) s = fmaf(qv[e], kj[lane + 32 * e], s);
    return warp_sum_f(s);
  };
  __shared__ float red[kAttWarps];
  __shared__ float acc_s[kAttWarps][kMaxHeadDim];
  __shared__ float sum_s[kAttWarps];
  // Pass 1: max.
  float mx = -INFINITY;
  for (int64_t j = warp; j < Tk; j += kAttWarps)
    if (visible(j)) mx = fmaxf(mx, score(j));
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
  for (int w = 1; w < kAttWarps; ++w) mx = fmaxf(mx, red[w]);
  // Pass 2: weights and weighted V.
  float o[kPer];
#pragma unroll
  for (int e = 0; e < kPer; ++e) o[e] = 0.0f;
  float sum = 0.0f;
  for (int64_t j = warp; j < Tk; j += kAttWarps) {
    if (!visible(j)) continue;
    const float p = expf(__fsub_rn(score(j), mx));
    sum += p;
    const float* vj = v + j * vs + static_cast<int64_t>(hk) * head_dim;
#pragma unroll
    for (int e = 0; e < kPer; ++e)
      if (e < per) o[e] = fmaf(p, vj[lane + 32 * e], o[e]);
  }
#pragma unroll
  for (int e = 0; e < kPer; ++e)
    if (e < per) acc_s[warp][lane + 32 * e] = o[e];
  if (lane == 0) sum_s[warp] = sum;
  __syncthreads();
  float total = 0;
  for (int w = 0; w < kAttWarps; ++w) total += sum_s[w];
  const float inv = 1.0f / total;
  float* oi = out + i * os + static_cast<int64_t>(h) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float a = 0;
    for (int w = 0; w < kAttWarps; ++w) a += acc_s[w][d];
    oi[d] = a * inv;
  }
}

// LoRA step 1: ax[t, r] = Σ_i A[r, i] · x[t, i]; one warp per (t, r).
__global__ void k_lora_a(const float* __restrict__ a, const float* __restrict__ x, int64_t xs, int64_t T, int64_t rank,
                         int64_t in, float* __restrict__ ax) {
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (id >= T * rank) return;
  const int64_t t = id / rank, r = id % rank;
  const float* ar = a + r * in;
  const float* xr = x + t * xs;
  float s = 0;
  for (int64_t i = lane; i < in; i += 32) s = fmaf(ar[i], xr[i], s);
  s = warp_sum_f(s);
  if (lane == 0) ax[t * rank + r] = s;
}
// LoRA step 2: y[t, o] += scale · Σ_r B[o, r] · ax[t, r]; one thread per (t, o).
__global__ void k_lora_b(const float* __restrict__ b, const float* __restrict__ ax, int64_t T, int64_t rank, int64_t out,
                         float scale, float* __restrict__ y, int64_t ys) {
  const int64_t id = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (id >= T * out) return;
  const int64_t t = id / out, o = id % out;
  const float* br = b + o * rank;
  const float* ar = ax + t * rank;
  float s = 0;
  for (int64_t r = 0; r < rank; ++r) s = fmaf(br[r], ar[r], s);
  float& dst = y[t * ys + o];
  dst = __fadd_rn(dst, __fmul_rn(scale, s));
}

// ------------------------------------------------------------------ host side

float gelu_exact_host(float x) {
  const float kSqrt2OverPi = 0.79788456080286535588f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

unsigned grid_rows(int64_t rows) { return static_cast<unsigned>(rows < 65535 ? (rows > 0 ? rows : 1) : 65535); }

class CudaBackend;

// Scratch of one session: device chunks handed out in order, rewound by reset().
class CudaWorkspace final : public Workspace {
 public:
  explicit CudaWorkspace(CudaBackend& be) : be_(be) {}
  ~CudaWorkspace() override;
  Tensor alloc(int64_t rows, int64_t cols) override;
  void reset() override;

 private:
  struct Chunk { void* ptr = nullptr; size_t size = 0, used = 0; };
  CudaBackend& be_;
  std::vector<Chunk> chunks_;
  size_t cur_ = 0;
};

class CudaBuffer final : public Buffer {
 public:
  CudaBuffer(CudaBackend& be, int64_t rows, int64_t cols);
  ~CudaBuffer() override;

 private:
  CudaBackend& be_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      throw Error(code::NO_CUDA, std::string("no usable CUDA device: cudaGetDeviceCount failed with error ") +
                                     std::to_string(static_cast<int>(err)) + " (" + cudaGetErrorName(err) + ")");
    }
    if (device < 0 || device >= n)
      throw Error(code::NO_CUDA, "CUDA device " + std::to_string(device) + " requested but " + std::to_string(n) +
                                     " device(s) present");
    NLA_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop{};
    NLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    desc_ = "cuda (device " + std::to_string(device) + ": " + prop.name + ", sm_" + std::to_string(prop.major) +
            std::to_string(prop.minor) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
    NLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }

  ~CudaBackend() override {
    cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_);
    for (auto& kv : weights_) cudaFree(kv.second.ptr);
    for (auto& kv : floats_) cudaFree(kv.second.ptr);
    if (qbuf_) cudaFree(qbuf_);
    if (aux_) cudaFree(aux_);
    if (ints_) cudaFree(ints_);
    if (gelu_table_) cudaFree(gelu_table_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }
  std::string description() const override { return desc_; }

  std::unique_ptr<Workspace> new_workspace() override { return std::make_unique<CudaWorkspace>(*this); }
  std::unique_ptr<Buffer> new_buffer(int64_t rows, int64_t cols) override { return std::make_unique<CudaBuffer>(*this, rows, cols); }

  void upload(const Tensor& dst, const float* src) override {
    Lock lock(*this);
    if (dst.rows == 0 || dst.cols == 0) return;
    NLA_CUDA_CHECK(cudaMemcpy2DAsync(dst.data, dst.stride * sizeof(float), src, dst.cols * sizeof(float),
                                     dst.cols * sizeof(float), dst.rows, cudaMemcpyHostToDevice, stream_));
    sync();  // src is pageable host memory the caller may free
  }

  void download(const Tensor& src, float* dst) override {
    Lock lock(*this);
    if (src.rows == 0 || src.cols == 0) return;
    NLA_CUDA_CHECK(cudaMemcpy2DAsync(dst, src.cols * sizeof(float), src.data, src.stride * sizeof(float),
                                     src.cols * sizeof(float), src.rows, cudaMemcpyDeviceToHost, stream_));
    sync();
  }

  void get_rows(const WeightMatrix& table, const int32_t* ids, int64_t c0, float scale, const Tensor& out) override {
    const auto& tr = type_traits(table.type);
    if (!tr.to_float) throw Error(code::UNSUPPORTED_TYPE, std::string("cuda get_rows: tensor type ") + tr.name);
    std::vector<float> row(static_cast<size_t>(table.in)), host(static_cast<size_t>(out.rows * out.cols));
    for (int64_t i = 0; i < out.rows; ++i) {
      tr.to_float(table.row(ids[i]), row.data(), table.in);
      float* y = host.data() + i * out.cols;
      for (int64_t c = 0; c < out.cols; ++c) y[c] = row[c0 + c] * scale;
    }
    upload(out, host.data());
  }

  void matmul(const WeightMatrix& w, const Tensor& x, const Tensor& y, int64_t r0) override {
    Lock lock(*this);
    if (x.rows == 0 || y.cols == 0) return;
    const auto& tr = type_traits(w.type);
    const int64_t n = w.in, T = x.rows;
    const uint8_t* dw = weight(w);
    const void* xq;
    size_t xrb;
    if (tr.vec_dot_type == GgmlType::F32) {
      xq = x.data;
      xrb = static_cast<size_t>(x.stride) * sizeof(float);
    } else {
      xrb = row_size(tr.vec_dot_type, n);
      void* buf = grow(qbuf_, qcap_, xrb * T);
      cuda::launch_quantize(tr.vec_dot_type, x.data, x.stride, n, T, buf, xrb, stream_);
      xq = buf;
    }
    cuda::launch_matmul(w.type, dw, w.row_bytes, n, y.cols, r0, xq, xrb, T, y.data, y.stride, stream_);
  }

  void lowrank(const LowRank& p, const Tensor& x, const Tensor& y) override {
    Lock lock(*this);
    const int64_t T = x.rows;
    if (T == 0 || p.rank == 0) return;
    const float* a = floats(p.a, static_cast<size_t>(p.rank * p.in));
    const float* b = floats(p.b, static_cast<size_t>(p.out * p.rank));
    float* ax = static_cast<float*>(grow(aux_, aux_cap_, sizeof(float) * T * p.rank));
    const int64_t warps = T * p.rank;
    k_lora_a<<<static_cast<unsigned>((warps + 7) / 8), 256, 0, stream_>>>(a, x.data, x.stride, T, p.rank, p.in, ax);
    NLA_CUDA_LAUNCH_CHECK("lora_a");
    const int64_t threads = T * y.cols;
    k_lora_b<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream_>>>(b, ax, T, p.rank, y.cols, p.scale, y.data,
                                                                                 y.stride);
    NLA_CUDA_LAUNCH_CHECK("lora_b");
  }

  void rms_norm(const Tensor& x, int64_t group, const float* w, float eps, const Tensor& y) override {
    Lock lock(*this);
    const int64_t groups = x.cols / group;
    if (x.rows * groups == 0) return;
    const float* dw = w ? floats(w, static_cast<size_t>(group)) : nullptr;
    const int threads = group >= 256 ? 256 : 128;
    k_rms_norm<<<static_cast<unsigned>(x.rows * groups), threads, 0, stream_>>>(x.data, x.stride, y.data, y.stride, groups,
                                                                                static_cast<int>(group), dw, eps);
    NLA_CUDA_LAUNCH_CHECK("rms_norm");
  }

  void rope(const Tensor& x, int64_t head_dim, int64_t n_rot, float base, const float* ff, const int32_t* pos) override {
    Lock lock(*this);
    if (x.rows == 0) return;
    const int64_t heads = x.cols / head_dim, half = n_rot / 2;
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_rot));  // host pow, as the CPU backend
    const float* dff = ff ? floats(ff, static_cast<size_t>(half)) : nullptr;
    const int32_t* dpos = ints({{pos, x.rows}})[0];
    k_rope<<<static_cast<unsigned>(x.rows), 128, 0, stream_>>>(x.data, x.stride, static_cast<int>(heads),
                                                               static_cast<int>(head_dim), static_cast<int>(half),
                                                               theta_scale, dff, dpos);
    NLA_CUDA_LAUNCH_CHECK("rope");
  }

  void attention(const Tensor& q, const std::vector<AttentionSegment>& segments, int n_head, int n_head_kv, int head_dim,
                 int window, const Tensor& out) override {
    Lock lock(*this);
    if (head_dim % 32 != 0 || head_dim > kMaxHeadDim)
      throw Error(code::UNSUPPORTED_ARCH, "cuda attention: head_dim " + std::to_string(head_dim) +
                                              " is not a multiple of 32 up to " + std::to_string(kMaxHeadDim));
    std::vector<std::pair<const int32_t*, int64_t>> arrays;
    for (const AttentionSegment& sg : segments) {
      arrays.emplace_back(sg.q_pos, sg.q_rows);
      arrays.emplace_back(sg.k_pos, sg.keys);
    }
    const std::vector<const int32_t*> dev = ints(arrays);
    for (size_t s = 0; s < segments.size(); ++s) {
      const AttentionSegment& sg = segments[s];
      if (sg.q_rows == 0) continue;
      const int64_t blocks = sg.q_rows * n_head;
      k_attention<<<static_cast<unsigned>(blocks), kAttWarps * 32, 0, stream_>>>(
          q.row(sg.q_row0), q.stride, sg.k.data, sg.k.stride, sg.v.data, sg.v.stride, sg.keys, n_head, n_head / n_head_kv,
          head_dim, window, dev[2 * s], dev[2 * s + 1], out.row(sg.q_row0), out.stride);
      NLA_CUDA_LAUNCH_CHECK("attention");
    }
  }

  void gelu_mul(const Tensor& gate, const Tensor& up, GeluMode mode, const Tensor& out) override {
    Lock lock(*this);
    if (gate.rows == 0 || gate.cols == 0) return;
    const uint16_t* table = mode == GeluMode::Fp16Table ? gelu_table() : nullptr;
    const dim3 grid(static_cast<unsigned>((gate.cols + 255) / 256), grid_rows(gate.rows));
    k_gelu_mul<<<grid, 256, 0, stream_>>>(gate.data, gate.stride, up.data, up.stride, out.data, out.stride, gate.rows,
                                          gate.cols, table);
    NLA_CUDA_LAUNCH_CHECK("gelu_mul");
  }

  void mul(const Tensor& x, const Tensor& y) override { ew(Ew::Mul, x, y, 0); }
  void add(const Tensor& x, const Tensor& y) override { ew(Ew::Add, x, y, 0); }
  void scale(const Tensor& x, float s) override { ew(Ew::Scale, x, Tensor{}, s); }
  void softcap(const Tensor& x, float cap) override { ew(Ew::Softcap, x, Tensor{}, cap); }
  void copy(const Tensor& dst, const Tensor& src) override {
    Lock lock(*this);
    if (src.rows == 0 || src.cols == 0) return;
    NLA_CUDA_CHECK(cudaMemcpy2DAsync(dst.data, dst.stride * sizeof(float), src.data, src.stride * sizeof(float),
                                     src.cols * sizeof(float), src.rows, cudaMemcpyDeviceToDevice, stream_));
  }

  // For the workspace and buffer classes.
  void* device_alloc(size_t bytes) {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      if (err == cudaErrorMemoryAllocation) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        throw Error(code::OOM, "out of GPU memory: cudaMalloc of " + std::to_string(bytes >> 20) + " MiB failed (" +
                                   std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) +
                                   " MiB on " + desc_ + ")");
      }
      throw_cuda(err, "cudaMalloc", __FILE__, __LINE__);
    }
    return p;
  }
  void device_free(void* p) {
    if (!p) return;
    Lock lock(*this);
    sync();  // kernels enqueued before may still read it
    cudaFree(p);
  }
  // Every CUDA call of an operation runs under the lock, with this backend's device current on the thread.
  struct Lock {
    explicit Lock(CudaBackend& b) : g(b.mu_) { NLA_CUDA_CHECK(cudaSetDevice(b.device_)); }
    std::lock_guard<std::recursive_mutex> g;
  };
  void sync() { NLA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  struct Buf { void* ptr = nullptr; size_t size = 0; };
  struct FBuf { void* ptr = nullptr; size_t size = 0; std::vector<float> fp; };

  static size_t round_up(size_t b) { return (b + 255) & ~size_t(255); }

  // Device copy of a weight matrix's rows (all `out` rows), uploaded on first use.
  const uint8_t* weight(const WeightMatrix& w) {
    const size_t bytes = static_cast<size_t>(w.out) * w.row_bytes;
    auto it = weights_.find(w.data);
    if (it != weights_.end() && it->second.size >= bytes) return static_cast<const uint8_t*>(it->second.ptr);
    if (it != weights_.end()) {
      sync();
      cudaFree(it->second.ptr);
      weights_.erase(it);
    }
    void* p = device_alloc(bytes);
    weights_[w.data] = Buf{p, bytes};
    NLA_CUDA_CHECK(cudaMemcpy(p, w.data, bytes, cudaMemcpyHostToDevice));
    return static_cast<const uint8_t*>(p);
  }

  // Device copy of a host float array that lives as long as the model (norm weights, rope factors) or an
  // adapter (LoRA A/B). Keyed by the host pointer; a fingerprint (size and 16 sampled values) guards
  // against a freed adapter's address being reused by another one.
  static std::vector<float> fingerprint(const float* host, size_t n) {
    std::vector<float> f;
    f.reserve(17);
    f.push_back(static_cast<float>(n));
    for (size_t i = 0; i < 16 && n > 0; ++i) f.push_back(host[(n - 1) * i / 15]);
    return f;
  }
  const float* floats(const float* host, size_t n) {
    std::vector<float> fp = fingerprint(host, n);
    auto it = floats_.find(host);
    if (it != floats_.end() && it->second.size >= n * sizeof(float) &&
        std::memcmp(fp.data(), it->second.fp.data(), fp.size() * sizeof(float)) == 0 && it->second.fp.size() == fp.size())
      return static_cast<const float*>(it->second.ptr);
    if (it != floats_.end()) {
      sync();
      cudaFree(it->second.ptr);
      floats_.erase(it);
    }
    void* p = device_alloc(n * sizeof(float));
    floats_[host] = FBuf{p, n * sizeof(float), std::move(fp)};
    NLA_CUDA_CHECK(cudaMemcpy(p, host, n * sizeof(float), cudaMemcpyHostToDevice));
    return static_cast<const float*>(p);
  }

  // Integer arrays (positions) for the kernels of one operation: copied into one device buffer (after the
  // kernels that read the previous ones are done) and returned in order.
  std::vector<const int32_t*> ints(const std::vector<std::pair<const int32_t*, int64_t>>& arrays) {
    size_t total = 0;
    for (const auto& [p, n] : arrays) total += static_cast<size_t>(n);
    sync();
    int32_t* base = static_cast<int32_t*>(grow(ints_, ints_cap_, std::max<size_t>(1, total) * sizeof(int32_t)));
    std::vector<int32_t> host;
    host.reserve(total);
    std::vector<const int32_t*> out;
    for (const auto& [p, n] : arrays) {
      out.push_back(base + host.size());
      host.insert(host.end(), p, p + n);
    }
    if (total) NLA_CUDA_CHECK(cudaMemcpy(base, host.data(), total * sizeof(int32_t), cudaMemcpyHostToDevice));
    return out;
  }

  void* grow(void*& buf, size_t& cap, size_t bytes) {
    if (cap < bytes) {
      sync();
      if (buf) cudaFree(buf);
      buf = nullptr;
      cap = 0;
      buf = device_alloc(round_up(bytes));
      cap = round_up(bytes);
    }
    return buf;
  }

  const uint16_t* gelu_table() {
    if (!gelu_table_) {
      std::vector<uint16_t> t(1 << 16);
      for (uint32_t i = 0; i < (1u << 16); ++i) t[i] = fp32_to_fp16(gelu_exact_host(fp16_to_fp32(static_cast<uint16_t>(i))));
      gelu_table_ = static_cast<uint16_t*>(device_alloc(t.size() * sizeof(uint16_t)));
      NLA_CUDA_CHECK(cudaMemcpy(gelu_table_, t.data(), t.size() * sizeof(uint16_t), cudaMemcpyHostToDevice));
    }
    return gelu_table_;
  }

  void ew(Ew op, const Tensor& x, const Tensor& y, float s) {
    Lock lock(*this);
    if (x.rows == 0 || x.cols == 0) return;
    const dim3 grid(static_cast<unsigned>((x.cols + 255) / 256), grid_rows(x.rows));
    k_elementwise<<<grid, 256, 0, stream_>>>(op, x.data, x.stride, y.data, y.stride, x.rows, x.cols, s);
    NLA_CUDA_LAUNCH_CHECK("elementwise");
  }

  int device_;
  std::string desc_;
  cudaStream_t stream_ = nullptr;
  std::recursive_mutex mu_;
  std::unordered_map<const void*, Buf> weights_;
  std::unordered_map<const void*, FBuf> floats_;
  void* qbuf_ = nullptr;
  size_t qcap_ = 0;
  void* aux_ = nullptr;
  size_t aux_cap_ = 0;
  void* ints_ = nullptr;
  size_t ints_cap_ = 0;
  uint16_t* gelu_table_ = nullptr;
};

CudaWorkspace::~CudaWorkspace() {
  for (auto& c : chunks_) be_.device_free(c.ptr);
}

Tensor CudaWorkspace::alloc(int64_t rows, int64_t cols) {
  const size_t bytes = (static_cast<size_t>(std::max<int64_t>(0, rows * cols)) * sizeof(float) + 255) & ~size_t(255);
  for (; cur_ < chunks_.size(); ++cur_) {
    Chunk& c = chunks_[cur_];
    if (c.used + bytes <= c.size) {
      float* p = reinterpret_cast<float*>(static_cast<char*>(c.ptr) + c.used);
      c.used += bytes;
      return Tensor{p, rows, cols, cols};
    }
  }
  CudaBackend::Lock lock(be_);
  Chunk c;
  c.size = std::max<size_t>(bytes, size_t(64) << 20);
  c.ptr = be_.device_alloc(c.size);
  c.used = bytes;
  chunks_.push_back(c);
  cur_ = chunks_.size() - 1;
  return Tensor{static_cast<float*>(c.ptr), rows, cols, cols};
}

void CudaWorkspace::reset() {
  CudaBackend::Lock lock(be_);
  be_.sync();
  if (chunks_.size() > 1) {  // consolidate into one chunk big enough for the last pass
    size_t total = 0;
    for (auto& c : chunks_) total += c.size;
    for (auto& c : chunks_) cudaFree(c.ptr);
    chunks_.clear();
    Chunk c;
    c.size = total;
    c.ptr = be_.device_alloc(total);
    chunks_.push_back(c);
  }
  for (auto& c : chunks_) c.used = 0;
  cur_ = 0;
}

CudaBuffer::CudaBuffer(CudaBackend& be, int64_t rows, int64_t cols) : be_(be) {
  CudaBackend::Lock lock(be_);
  const size_t bytes = std::max<size_t>(1, static_cast<size_t>(rows * cols)) * sizeof(float);
  t_ = Tensor{static_cast<float*>(be_.device_alloc(bytes)), rows, cols, cols};
}

CudaBuffer::~CudaBuffer() {
  try {
    be_.device_free(t_.data);
  } catch (...) {
  }
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

std::string cuda_self_test() {
  try {
    std::unique_ptr<Backend> be = make_cuda_backend(0);
    std::unique_ptr<Workspace> ws = be->new_workspace();
    const int64_t n = 64, rows = 3;
    std::vector<float> x(static_cast<size_t>(n * rows));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((static_cast<int>(i * 37 % 23) - 11)) / 8.0f;
    Tensor t = ws->alloc(rows, n);
    be->upload(t, x.data());
    be->scale(t, 2.0f);
    std::vector<float> y(x.size());
    be->download(t, y.data());
    for (size_t i = 0; i < x.size(); ++i)
      if (y[i] != 2.0f * x[i]) return "scale: element " + std::to_string(i) + " is " + std::to_string(y[i]) + ", expected " + std::to_string(2.0f * x[i]);
    // a q8_0 product against the format table's reference dot
    std::vector<uint8_t> w(static_cast<size_t>(rows) * row_size(GgmlType::Q8_0, n));
    const TypeTraits& q8 = type_traits(GgmlType::Q8_0);
    for (int64_t r = 0; r < rows; ++r) q8.from_float(x.data() + r * n, w.data() + r * row_size(GgmlType::Q8_0, n), n);
    WeightMatrix wm{GgmlType::Q8_0, n, rows, w.data(), row_size(GgmlType::Q8_0, n)};
    Tensor out = ws->alloc(rows, rows);
    be->upload(t, x.data());
    be->matmul(wm, t, out, 0);
    std::vector<float> got(static_cast<size_t>(rows * rows));
    be->download(out, got.data());
    std::vector<uint8_t> xq(row_size(GgmlType::Q8_0, n));
    for (int64_t i = 0; i < rows; ++i) {
      q8.from_float(x.data() + i * n, xq.data(), n);
      for (int64_t o = 0; o < rows; ++o) {
        float ref = 0;
        q8.vec_dot(n, &ref, wm.row(o), xq.data());
        const float g = got[static_cast<size_t>(i * rows + o)];
        if (!(std::fabs(g - ref) <= 1e-4f * (1.0f + std::fabs(ref))))
          return "q8_0 product: (" + std::to_string(i) + ", " + std::to_string(o) + ") is " + std::to_string(g) + ", expected " + std::to_string(ref);
      }
    }
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

int cuda_device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return -static_cast<int>(err);
  }
  return n;
}

}  // namespace nla
