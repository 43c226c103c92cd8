// CUDA matrix products over the quantized weight rows, and the activation quantizers.
//
// Same arithmetic as the CPU reference (quant.cc): activations are quantized to the
// weight's dot type with the same rounding (round-half-even, the same scale formulas),
// block products are exact integer sums (__dp4a), each block's scale product is formed
// in float (__fmul_rn, never fused) and the per-row sum accumulates in double. So a
// CUDA product differs from the CPU one only by the order of the double additions.
// Float formats (f32/f16/bf16) accumulate in fp32 with fmaf (the CPU uses double):
// about 1e-7 relative.
//
// Layout: one warp per output row; the warp's lanes stride over "units" of a row (a
// 32-value block for the legacy formats, 64 values = one scale pair of a q4_K/q5_K
// super-block, 32 values of a q6_K super-block), decode the weight unit once into
// packed int8 words and dot it against TT activation rows (TT = 1 or 8).
#include <type_traits>

#include "backends/cuda/cuda_common.cuh"
#include "formats/quant_blocks.h"

namespace nla {
namespace cuda {

namespace {

using namespace blocks;

constexpr int kWarps = 4;  // warps (output rows) per thread block

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t f2h(float f) { return __half_as_ushort(__float2half_rn(f)); }
__device__ __forceinline__ float bf2f(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }
__device__ __forceinline__ uint16_t f2bf(float f) {
  const uint32_t x = __float_as_uint(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40);
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}

__device__ __forceinline__ uint16_t ld16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }
// A 32-bit word at a 2-byte aligned address.
__device__ __forceinline__ int ld32_a2(const uint8_t* p) {
  return static_cast<int>(static_cast<uint32_t>(ld16(p)) | (static_cast<uint32_t>(ld16(p + 2)) << 16));
}
__device__ __forceinline__ int ld32_a4(const uint8_t* p) { return *reinterpret_cast<const int*>(p); }

// ------------------------------------------------------------------ activation blocks
// Block layouts: formats/quant_blocks.h (shared with the CPU code); bytes are addressed through sizeof/offsetof.

struct Q8_0Act {
  static __device__ __forceinline__ void load(const uint8_t* row, int b, int (&a)[8], float& d, float& s) {
    const uint8_t* blk = row + sizeof(BlockQ8_0) * b;
    d = h2f(ld16(blk + offsetof(BlockQ8_0, d)));
    s = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) a[k] = ld32_a2(blk + offsetof(BlockQ8_0, qs) + 4 * k);
  }
};
struct Q8_1Act {
  static __device__ __forceinline__ void load(const uint8_t* row, int b, int (&a)[8], float& d, float& s) {
    const uint8_t* blk = row + sizeof(BlockQ8_1) * b;
    d = h2f(ld16(blk + offsetof(BlockQ8_1, d)));
    s = h2f(ld16(blk + offsetof(BlockQ8_1, s)));
#pragma unroll
    for (int k = 0; k < 8; ++k) a[k] = ld32_a4(blk + offsetof(BlockQ8_1, qs) + 4 * k);
  }
};

// ------------------------------------------------------------------ weight formats

// Legacy 32-value blocks: v[8] = the 32 values as packed signed bytes (value l in byte l%4 of word l/4).
struct Q4_0 {
  using Act = Q8_0Act;
  static constexpr int kUnitValues = 32;
  struct Unit { int v[8]; float d, m; };
  static __device__ __forceinline__ void load(const uint8_t* row, int u, Unit& w) {
    const uint8_t* blk = row + sizeof(BlockQ4_0) * u;
    w.d = h2f(ld16(blk + offsetof(BlockQ4_0, d)));
    w.m = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int q = ld32_a2(blk + offsetof(BlockQ4_0, qs) + 4 * k);
      w.v[k] = __vsub4(q & 0x0F0F0F0F, 0x08080808);
      w.v[k + 4] = __vsub4((q >> 4) & 0x0F0F0F0F, 0x08080808);
    }
  }
};
struct Q4_1 {
  using Act = Q8_1Act;
  static constexpr int kUnitValues = 32;
  struct Unit { int v[8]; float d, m; };
  static __device__ __forceinline__ void load(const uint8_t* row, int u, Unit& w) {
    const uint8_t* blk = row + sizeof(BlockQ4_1) * u;
    w.d = h2f(ld16(blk + offsetof(BlockQ4_1, d)));
    w.m = h2f(ld16(blk + offsetof(BlockQ4_1, m)));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int q = ld32_a4(blk + offsetof(BlockQ4_1, qs) + 4 * k);
      w.v[k] = q & 0x0F0F0F0F;
      w.v[k + 4] = (q >> 4) & 0x0F0F0F0F;
    }
  }
};
// Bits 0..3 of h moved to bit 4 of bytes 0..3.
__device__ __forceinline__ int spread4(uint32_t h) {
  return static_cast<int>(((h & 1) << 4) | ((h & 2) << 11) | ((h & 4) << 18) | ((h & 8) << 25));
}
struct Q5_0 {
  using Act = Q8_0Act;
  static constexpr int kUnitValues = 32;
  struct Unit { int v[8]; float d, m; };
  static __device__ __forceinline__ void load(const uint8_t* row, int u, Unit& w) {
    const uint8_t* blk = row + sizeof(BlockQ5_0) * u;
    w.d = h2f(ld16(blk + offsetof(BlockQ5_0, d)));
    w.m = 0;
    const uint32_t qh = static_cast<uint32_t>(ld32_a2(blk + offsetof(BlockQ5_0, qh)));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int q = ld32_a2(blk + offsetof(BlockQ5_0, qs) + 4 * k);
      w.v[k] = __vsub4((q & 0x0F0F0F0F) | spread4((qh >> (4 * k)) & 0xF), 0x10101010);
      w.v[k + 4] = __vsub4(((q >> 4) & 0x0F0F0F0F) | spread4((qh >> (16 + 4 * k)) & 0xF), 0x10101010);
    }
  }
};
struct Q5_1 {
  using Act = Q8_1Act;
  static constexpr int kUnitValues = 32;
  struct Unit { int v[8]; float d, m; };
  static __device__ __forceinline__ void load(const uint8_t* row, int u, Unit& w) {
    const uint8_t* blk = row + sizeof(BlockQ5_1) * u;
    w.d = h2f(ld16(blk + offsetof(BlockQ5_1, d)));
    w.m = h2f(ld16(blk + offsetof(BlockQ5_1, m)));
    const uint32_t qh = static_cast<uint32_t>(ld32_a4(blk + offsetof(BlockQ5_1, qh)));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int q = ld32_a4(blk + offsetof(BlockQ5_1, qs) + 4 * k);
      w.v[k] = (q & 0x0F0F0F0F) | spread4((qh >> (4 * k)) & 0xF);
      w.v[k + 4] = ((q >> 4) & 0x0F0F0F0F) | spread4((qh >> (16 + 4 * k)) & 0xF);
    }
  }
};
struct Q8_0 {
  using Act = Q8_0Act;
  static constexpr int kUnitValues = 32;
  struct Unit { int v[8]; float d, m; };
  static __device__ __forceinline__ void load(const uint8_t* row, int u, Unit& w) {
    const uint8_t* blk = row + sizeof(BlockQ8_0) * u;
    w.d = h2f(ld16(blk + offsetof(BlockQ8_0, d)));
    w.m = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) w.v[k] = ld32_a2(blk + offsetof(BlockQ8_0, qs) + 4 * k);
  }
};

// k-quants against q8_K.
__device__ __forceinline__ void k4_scale_min(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// q4_K / q5_K unit: sub-blocks j=2p and 2p+1 (64 values) of super-block u/4.
template <bool kFive>
struct QK45 {
  static constexpr int kUnitValues = 64;
  struct Unit { int lo[8], hi[8]; int sc1, m1, sc2, m2; float d, dmin; };
  static __device__ __forceinline__ void load(const uint8_t* row, int u, Unit& w) {
    const int b = u >> 2, p = u & 3, j = 2 * p;
    using B = typename std::conditional<kFive, BlockQ5_K, BlockQ4_K>::type;
    static_assert(offsetof(BlockQ5_K, scales) == offsetof(BlockQ4_K, scales), "k-quant scales");
    const uint8_t* blk = row + sizeof(B) * b;
    w.d = h2f(ld16(blk + offsetof(B, d)));
    w.dmin = h2f(ld16(blk + offsetof(B, dmin)));
    k4_scale_min(j, blk + offsetof(B, scales), w.sc1, w.m1);
    k4_scale_min(j + 1, blk + offsetof(B, scales), w.sc2, w.m2);
    const uint8_t* ql = blk + offsetof(B, qs) + 32 * p;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int q = ld32_a4(ql + 4 * k);
      w.lo[k] = q & 0x0F0F0F0F;
      w.hi[k] = (q >> 4) & 0x0F0F0F0F;
      if (kFive) {
        const int qh = ld32_a4(blk + offsetof(BlockQ5_K, qh) + 4 * k);
        w.lo[k] |= ((qh >> j) & 0x01010101) << 4;
        w.hi[k] |= ((qh >> (j + 1)) & 0x01010101) << 4;
      }
    }
  }
  static __device__ __forceinline__ double dot(const Unit& w, const uint8_t* xrow, int u) {
    const int b = u >> 2, p = u & 3, j = 2 * p;
    const uint8_t* blk = xrow + sizeof(BlockQ8_K) * b;
    const float dy = *reinterpret_cast<const float*>(blk + offsetof(BlockQ8_K, d));
    const uint8_t* a = blk + offsetof(BlockQ8_K, qs) + 64 * p;
    int d1 = 0, d2 = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      d1 = __dp4a(w.lo[k], ld32_a4(a + 4 * k), d1);
      d2 = __dp4a(w.hi[k], ld32_a4(a + 32 + 4 * k), d2);
    }
    const int16_t* bs = reinterpret_cast<const int16_t*>(blk + offsetof(BlockQ8_K, bsums));
    const int sumi = w.sc1 * d1 + w.sc2 * d2;
    const int summ = w.m1 * (bs[2 * j] + bs[2 * j + 1]) + w.m2 * (bs[2 * j + 2] + bs[2 * j + 3]);
    return static_cast<double>(__fmul_rn(w.d, dy)) * sumi - static_cast<double>(__fmul_rn(w.dmin, dy)) * summ;
  }
};

// q6_K unit: values 32c..32c+31 (c = u%8) of super-block u/8; 16-value groups 2c and 2c+1.
struct Q6K {
  static constexpr int kUnitValues = 32;
  struct Unit { int v[8]; int sc0, sc1; float d; };
  static __device__ __forceinline__ void load(const uint8_t* row, int u, Unit& w) {
    const int b = u >> 3, c = u & 7, half = c >> 2, k = c & 3;
    const uint8_t* blk = row + sizeof(BlockQ6_K) * b;
    const uint8_t* ql = blk + offsetof(BlockQ6_K, ql) + 64 * half + 32 * (k & 1);
    const uint8_t* qh = blk + offsetof(BlockQ6_K, qh) + 32 * half;
    const int ns = (k & 2) ? 4 : 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int lo = (ld32_a2(ql + 4 * i) >> ns) & 0x0F0F0F0F;
      const int hi = ((ld32_a2(qh + 4 * i) >> (2 * k)) & 0x03030303) << 4;
      w.v[i] = __vsub4(lo | hi, 0x20202020);
    }
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + offsetof(BlockQ6_K, scales));
    w.sc0 = sc[2 * c];
    w.sc1 = sc[2 * c + 1];
    w.d = h2f(ld16(blk + offsetof(BlockQ6_K, d)));
  }
  static __device__ __forceinline__ double dot(const Unit& w, const uint8_t* xrow, int u) {
    const int b = u >> 3, c = u & 7;
    const uint8_t* blk = xrow + sizeof(BlockQ8_K) * b;
    const float dy = *reinterpret_cast<const float*>(blk + offsetof(BlockQ8_K, d));
    const uint8_t* a = blk + offsetof(BlockQ8_K, qs) + 32 * c;
    int d0 = 0, d1 = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      d0 = __dp4a(w.v[i], ld32_a4(a + 4 * i), d0);
      d1 = __dp4a(w.v[i + 4], ld32_a4(a + 16 + 4 * i), d1);
    }
    return static_cast<double>(__fmul_rn(w.d, dy)) * (w.sc0 * d0 + w.sc1 * d1);
  }
};

template <class F>
struct Legacy : F {
  static __device__ __forceinline__ double dot(const typename F::Unit& w, const uint8_t* xrow, int u) {
    int a[8];
    float dy, sy;
    F::Act::load(xrow, u, a, dy, sy);
    int isum = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) isum = __dp4a(w.v[k], a[k], isum);
    (void)sy;
    return static_cast<double>(__fmul_rn(w.d, dy)) * isum;
  }
};
template <class F>
struct LegacyMin : F {
  static __device__ __forceinline__ double dot(const typename F::Unit& w, const uint8_t* xrow, int u) {
    int a[8];
    float dy, sy;
    F::Act::load(xrow, u, a, dy, sy);
    int isum = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) isum = __dp4a(w.v[k], a[k], isum);
    return static_cast<double>(__fmul_rn(w.d, dy)) * isum + static_cast<double>(__fmul_rn(w.m, sy));
  }
};

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <class F, int TT>
__global__ void __launch_bounds__(kWarps * 32) mmv_quant(const uint8_t* __restrict__ w, size_t w_row_bytes, int n_units,
                                                         int n_out, int64_t r0, const uint8_t* __restrict__ xq,
                                                         size_t xq_row_bytes, int T, float* __restrict__ y,
                                                         int64_t y_stride) {
  const int lane = threadIdx.x & 31;
  const int o = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (o >= n_out) return;
  const int t0 = blockIdx.y * TT;
  const uint8_t* wrow = w + static_cast<size_t>(r0 + o) * w_row_bytes;
  double acc[TT];
#pragma unroll
  for (int t = 0; t < TT; ++t) acc[t] = 0.0;
  for (int u = lane; u < n_units; u += 32) {
    typename F::Unit wu;
    F::load(wrow, u, wu);
#pragma unroll
    for (int t = 0; t < TT; ++t)
      if (t0 + t < T) acc[t] += F::dot(wu, xq + static_cast<size_t>(t0 + t) * xq_row_bytes, u);
  }
#pragma unroll
  for (int t = 0; t < TT; ++t) {
    const double s = warp_sum(acc[t]);
    if (lane == 0 && t0 + t < T) y[static_cast<int64_t>(t0 + t) * y_stride + o] = static_cast<float>(s);
  }
}

// Float formats: W element type and activation element type are the same (f16·f16, bf16·bf16) or f32·f32.
struct F32Fmt {
  using E = float;
  static __device__ __forceinline__ float cvt(float v) { return v; }
};
struct F16Fmt {
  using E = uint16_t;
  static __device__ __forceinline__ float cvt(uint16_t v) { return h2f(v); }
};
struct BF16Fmt {
  using E = uint16_t;
  static __device__ __forceinline__ float cvt(uint16_t v) { return bf2f(v); }
};

template <class F, int TT>
__global__ void __launch_bounds__(kWarps * 32) mmv_float(const uint8_t* __restrict__ w, size_t w_row_bytes, int n, int n_out,
                                                         int64_t r0, const uint8_t* __restrict__ xq, size_t xq_row_bytes,
                                                         int T, float* __restrict__ y, int64_t y_stride) {
  using E = typename F::E;
  const int lane = threadIdx.x & 31;
  const int o = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (o >= n_out) return;
  const int t0 = blockIdx.y * TT;
  const E* wrow = reinterpret_cast<const E*>(w + static_cast<size_t>(r0 + o) * w_row_bytes);
  float acc[TT];
#pragma unroll
  for (int t = 0; t < TT; ++t) acc[t] = 0.0f;
  for (int i = lane; i < n; i += 32) {
    const float wv = F::cvt(wrow[i]);
#pragma unroll
    for (int t = 0; t < TT; ++t)
      if (t0 + t < T) {
        const E* xr = reinterpret_cast<const E*>(xq + static_cast<size_t>(t0 + t) * xq_row_bytes);
        acc[t] = fmaf(wv, F::cvt(xr[i]), acc[t]);
      }
  }
#pragma unroll
  for (int t = 0; t < TT; ++t) {
    const float s = warp_sum(acc[t]);
    if (lane == 0 && t0 + t < T) y[static_cast<int64_t>(t0 + t) * y_stride + o] = s;
  }
}

template <class F>
void run_quant(const uint8_t* w, size_t wrb, int64_t n_in, int64_t n_out, int64_t r0, const void* xq, size_t xrb, int64_t T,
               float* y, int64_t ys, cudaStream_t s) {
  const int n_units = static_cast<int>(n_in / F::kUnitValues);
  const auto* x = static_cast<const uint8_t*>(xq);
  const dim3 block(kWarps * 32);
  if (T == 1) {
    const dim3 grid(static_cast<unsigned>((n_out + kWarps - 1) / kWarps), 1);
    mmv_quant<F, 1><<<grid, block, 0, s>>>(w, wrb, n_units, static_cast<int>(n_out), r0, x, xrb, 1, y, ys);
  } else {
    const dim3 grid(static_cast<unsigned>((n_out + kWarps - 1) / kWarps), static_cast<unsigned>((T + 7) / 8));
    mmv_quant<F, 8><<<grid, block, 0, s>>>(w, wrb, n_units, static_cast<int>(n_out), r0, x, xrb, static_cast<int>(T), y, ys);
  }
  NLA_CUDA_LAUNCH_CHECK("mmv_quant");
}

template <class F>
void run_float(const uint8_t* w, size_t wrb, int64_t n_in, int64_t n_out, int64_t r0, const void* xq, size_t xrb, int64_t T,
               float* y, int64_t ys, cudaStream_t s) {
  const auto* x = static_cast<const uint8_t*>(xq);
  const dim3 block(kWarps * 32);
  if (T == 1) {
    const dim3 grid(static_cast<unsigned>((n_out + kWarps - 1) / kWarps), 1);
    mmv_float<F, 1><<<grid, block, 0, s>>>(w, wrb, static_cast<int>(n_in), static_cast<int>(n_out), r0, x, xrb, 1, y, ys);
  } else {
    const dim3 grid(static_cast<unsigned>((n_out + kWarps - 1) / kWarps), static_cast<unsigned>((T + 7) / 8));
    mmv_float<F, 8><<<grid, block, 0, s>>>(w, wrb, static_cast<int>(n_in), static_cast<int>(n_out), r0, x, xrb,
                                           static_cast<int>(T), y, ys);
  }
  NLA_CUDA_LAUNCH_CHECK("mmv_float");
}

// ------------------------------------------------------------------ activation quantizers

__global__ void quant_f16(const float* __restrict__ x, int64_t xs, int n, int T, uint16_t* __restrict__ out, int64_t os,
                          bool bf16) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int t = blockIdx.y;
  if (i >= n || t >= T) return;
  const float v = x[t * xs + i];
  out[t * os + i] = bf16 ? f2bf(v) : f2h(v);
}

// One warp per 32-value block (q8_0 / q8_1), as quant.cc's q8_block.
__global__ void quant_q8_32(const float* __restrict__ x, int64_t xs, int n, int T, uint8_t* __restrict__ out, size_t orb,
                            bool q8_1) {
  const int lane = threadIdx.x & 31;
  const int64_t gb = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + (threadIdx.x >> 5);
  const int nb = n / 32;
  if (gb >= static_cast<int64_t>(nb) * T) return;
  const int t = static_cast<int>(gb / nb), b = static_cast<int>(gb % nb);
  const float v = x[t * xs + 32 * b + lane];
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int q = __float2int_rn(__fmul_rn(v, id));
  q = q > 127 ? 127 : (q < -128 ? -128 : q);
  int sum = q;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  uint8_t* blk = out + static_cast<size_t>(t) * orb + static_cast<size_t>(b) * (q8_1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0));
  const size_t qoff = q8_1 ? offsetof(BlockQ8_1, qs) : offsetof(BlockQ8_0, qs);
  static_assert(offsetof(BlockQ8_1, d) == offsetof(BlockQ8_0, d), "q8 scales");
  blk[qoff + lane] = static_cast<uint8_t>(static_cast<int8_t>(q));
  if (lane == 0) {
    *reinterpret_cast<uint16_t*>(blk + offsetof(BlockQ8_0, d)) = f2h(d);
    if (q8_1) *reinterpret_cast<uint16_t*>(blk + offsetof(BlockQ8_1, s)) = f2h(__fmul_rn(d, static_cast<float>(sum)));
  }
}

// One warp per 256-value block (q8_K); lane l holds values 8l..8l+7.
__global__ void quant_q8_K(const float* __restrict__ x, int64_t xs, int n, int T, uint8_t* __restrict__ out, size_t orb) {
  const int lane = threadIdx.x & 31;
  const int64_t gb = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + (threadIdx.x >> 5);
  const int nb = n / 256;
  if (gb >= static_cast<int64_t>(nb) * T) return;
  const int t = static_cast<int>(gb / nb), b = static_cast<int>(gb % nb);
  const float* xb = x + t * xs + 256 * b + 8 * lane;
  float v[8];
  float amax = 0.0f, mx = 0.0f;
  int idx = 0x7fffffff;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    v[k] = xb[k];
    const float ax = fabsf(v[k]);
    if (ax > amax) {
      amax = ax;
      mx = v[k];
      idx = 8 * lane + k;
    }
  }
  // Largest |x|, first index on ties (quant.cc scans in order with a strict >).
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float a2 = __shfl_xor_sync(0xffffffffu, amax, o);
    const float m2 = __shfl_xor_sync(0xffffffffu, mx, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
    if (a2 > amax || (a2 == amax && i2 < idx)) {
      amax = a2;
      mx = m2;
      idx = i2;
    }
  }
  uint8_t* blk = out + static_cast<size_t>(t) * orb + static_cast<size_t>(b) * sizeof(BlockQ8_K);
  int q[8];
  if (amax == 0.0f) {
#pragma unroll
    for (int k = 0; k < 8; ++k) q[k] = 0;
  } else {
    const float iscale = -127.0f / mx;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int r = __float2int_rn(__fmul_rn(iscale, v[k]));
      q[k] = r < 127 ? r : 127;
    }
    if (lane == 0) *reinterpret_cast<float*>(blk + offsetof(BlockQ8_K, d)) = 1.0f / iscale;
  }
  if (amax == 0.0f && lane == 0) *reinterpret_cast<float*>(blk + offsetof(BlockQ8_K, d)) = 0.0f;
  int w0 = 0, w1 = 0, s = 0;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    w0 |= (q[k] & 0xFF) << (8 * k);
    w1 |= (q[k + 4] & 0xFF) << (8 * k);
  }
#pragma unroll
  for (int k = 0; k < 8; ++k) s += q[k];
  *reinterpret_cast<int*>(blk + offsetof(BlockQ8_K, qs) + 8 * lane) = w0;
  *reinterpret_cast<int*>(blk + offsetof(BlockQ8_K, qs) + 4 + 8 * lane) = w1;
  const int s_other = __shfl_xor_sync(0xffffffffu, s, 1);  // the group of 16 is lanes 2g, 2g+1
  if ((lane & 1) == 0) reinterpret_cast<int16_t*>(blk + offsetof(BlockQ8_K, bsums))[lane >> 1] = static_cast<int16_t>(s + s_other);
}

}  // namespace

void launch_quantize(GgmlType type, const float* x, int64_t x_stride, int64_t n, int64_t T, void* out, size_t row_bytes,
                     cudaStream_t s) {
  switch (type) {
    case GgmlType::F16:
    case GgmlType::BF16: {
      const dim3 grid(static_cast<unsigned>((n + 255) / 256), static_cast<unsigned>(T));
      quant_f16<<<grid, 256, 0, s>>>(x, x_stride, static_cast<int>(n), static_cast<int>(T), static_cast<uint16_t*>(out),
                                     static_cast<int64_t>(row_bytes / 2), type == GgmlType::BF16);
      break;
    }
    case GgmlType::Q8_0:
    case GgmlType::Q8_1: {
      const int64_t blocks = (n / 32) * T;
      quant_q8_32<<<static_cast<unsigned>((blocks + 7) / 8), 256, 0, s>>>(x, x_stride, static_cast<int>(n), static_cast<int>(T),
                                                                          static_cast<uint8_t*>(out), row_bytes,
                                                                          type == GgmlType::Q8_1);
      break;
    }
    case GgmlType::Q8_K: {
      const int64_t blocks = (n / 256) * T;
      quant_q8_K<<<static_cast<unsigned>((blocks + 7) / 8), 256, 0, s>>>(x, x_stride, static_cast<int>(n), static_cast<int>(T),
                                                                         static_cast<uint8_t*>(out), row_bytes);
      break;
    }
    default:
      throw Error(code::INTERNAL, std::string("cuda: no activation quantizer for ") + type_traits(type).name);
  }
  NLA_CUDA_LAUNCH_CHECK("quantize");
}

void launch_matmul(GgmlType type, const uint8_t* w, size_t wrb, int64_t n_in, int64_t n_out, int64_t r0, const void* xq,
                   size_t xrb, int64_t T, float* y, int64_t ys, cudaStream_t s) {
  switch (type) {
    case GgmlType::F32: return run_float<F32Fmt>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::F16: return run_float<F16Fmt>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::BF16: return run_float<BF16Fmt>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::Q4_0: return run_quant<Legacy<Q4_0>>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::Q4_1: return run_quant<LegacyMin<Q4_1>>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::Q5_0: return run_quant<Legacy<Q5_0>>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::Q5_1: return run_quant<LegacyMin<Q5_1>>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::Q8_0: return run_quant<Legacy<Q8_0>>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::Q4_K: return run_quant<QK45<false>>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::Q5_K: return run_quant<QK45<true>>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    case GgmlType::Q6_K: return run_quant<Q6K>(w, wrb, n_in, n_out, r0, xq, xrb, T, y, ys, s);
    default:
      throw Error(code::UNSUPPORTED_TYPE, std::string("cuda: no matrix product for tensor type ") + type_traits(type).name);
  }
}

}  // namespace cuda
}  // namespace nla
