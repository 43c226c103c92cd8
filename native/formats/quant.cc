// The tensor-format table and its scalar reference kernels.
//
// Block layouts and arithmetic follow ggml's (llama.cpp v0.5.0) so that a
// dequantized weight is bit-identical to ggml's and an activation quantized
// here has the same bytes as ggml's CPU backend produces on x86 (AVX path).
// Products accumulate in double, so they agree with ggml's float SIMD sums to
// within ggml's own accumulation error.
#include "formats/quant.h"
#include "formats/quant_blocks.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "common/error.h"

// Dequantization must round every multiply and add separately, as ggml's
// (generically compiled) reference code does; a fused multiply-add would
// change the last bit. Forbid contraction in this file whatever -march is.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace nla {

namespace {

using namespace blocks;  // the block layouts (formats/quant_blocks.h)

// All 65536 half values as floats (256 KiB, built once on first use).
float fp16_bits_to_fp32(uint16_t h);
const float* fp16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = fp16_bits_to_fp32(static_cast<uint16_t>(h));
    return t;
  }();
  return table.data();
}

inline float h2f(uint16_t h) { return fp16_table()[h]; }

// 6-bit scale and min of sub-block j (0..7) of a q4_K / q5_K super-block.
inline void k4_scale_min(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// 5-bit value l (0..31) of a q5_0 / q5_1 block, before the offset.
inline int q5_value(const uint8_t* qs, uint32_t qh, int l) {
  if (l < QK / 2) return (qs[l] & 0x0F) | (((qh >> l) & 1) << 4);
  return (qs[l - QK / 2] >> 4) | (((qh >> l) & 1) << 4);
}

// Round half to even (the default rounding mode), as ggml's x86 activation
// quantizers do (_mm256_round_ps nearest / the 1.5*2^23 trick).
inline int round_even(float v) { return static_cast<int>(std::nearbyint(v)); }

// ---------------------------------------------------------------- to_float

void f32_to_float(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }

void f16_to_float(const void* src, float* dst, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(src);
  const float* t = fp16_table();
  for (int64_t i = 0; i < n; ++i) dst[i] = t[x[i]];
}

void bf16_to_float(const void* src, float* dst, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(x[i]);
}

void q4_0_to_float(const void* src, float* y, int64_t n) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d);
    for (int l = 0; l < QK / 2; ++l) {
      y[l] = static_cast<float>((x[b].qs[l] & 0x0F) - 8) * d;
      y[l + QK / 2] = static_cast<float>((x[b].qs[l] >> 4) - 8) * d;
    }
  }
}

void q4_1_to_float(const void* src, float* y, int64_t n) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d), m = h2f(x[b].m);
    for (int l = 0; l < QK / 2; ++l) {
      y[l] = static_cast<float>(x[b].qs[l] & 0x0F) * d + m;
      y[l + QK / 2] = static_cast<float>(x[b].qs[l] >> 4) * d + m;
    }
  }
}

void q5_0_to_float(const void* src, float* y, int64_t n) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(src);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int l = 0; l < QK; ++l) y[l] = static_cast<float>(q5_value(x[b].qs, qh, l) - 16) * d;
  }
}

void q5_1_to_float(const void* src, float* y, int64_t n) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(src);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d), m = h2f(x[b].m);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int l = 0; l < QK; ++l) y[l] = static_cast<float>(q5_value(x[b].qs, qh, l)) * d + m;
  }
}

void q8_0_to_float(const void* src, float* y, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d);
    for (int l = 0; l < QK; ++l) y[l] = static_cast<float>(x[b].qs[l]) * d;
  }
}

void q8_1_to_float(const void* src, float* y, int64_t n) {
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(src);
  for (int64_t b = 0; b < n / QK; ++b, y += QK) {
    const float d = h2f(x[b].d);
    for (int l = 0; l < QK; ++l) y[l] = static_cast<float>(x[b].qs[l]) * d;
  }
}

void q4_K_to_float(const void* src, float* y, int64_t n) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(src);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    const uint8_t* q = x[b].qs;
    for (int j = 0; j < 8; j += 2, q += 32) {  // 64 values per 32 bytes: low nibbles, then high
      int sc, m;
      k4_scale_min(j, x[b].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      k4_scale_min(j + 1, x[b].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void q5_K_to_float(const void* src, float* y, int64_t n) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(src);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    const uint8_t* ql = x[b].qs;
    const uint8_t* qh = x[b].qh;
    for (int j = 0; j < 8; j += 2, ql += 32) {
      int sc, m;
      k4_scale_min(j, x[b].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      k4_scale_min(j + 1, x[b].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      const uint8_t bit1 = static_cast<uint8_t>(1u << j), bit2 = static_cast<uint8_t>(2u << j);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & bit1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & bit2) ? 16 : 0)) - m2;
    }
  }
}

// The 256 6-bit values of a q6_K super-block, offset removed. Each half of
// 128 values takes 64 bytes of low nibbles and 32 bytes of 2-bit highs; value
// l + 32*k of a half uses nibble (k&2 ? high : low) of ql[l + 32*(k&1)] and
// bits 2k..2k+1 of qh[l].
inline void q6_decode(const BlockQ6_K& blk, int8_t* out) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = blk.ql + 64 * half;
    const uint8_t* qh = blk.qh + 32 * half;
    int8_t* o = out + 128 * half;
    for (int l = 0; l < 32; ++l) {
      o[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

void q6_K_to_float(const void* src, float* y, int64_t n) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(src);
  int8_t q[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const float d = h2f(x[b].d);
    q6_decode(x[b], q);
    for (int p = 0; p < QK_K; ++p) {
      y[p] = d * static_cast<float>(x[b].scales[p / 16]) * static_cast<float>(q[p]);
    }
  }
}

void q8_K_to_float(const void* src, float* y, int64_t n) {
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(src);
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    for (int l = 0; l < QK_K; ++l) y[l] = x[b].d * static_cast<float>(x[b].qs[l]);
  }
}

// ---------------------------------------------------------------- from_float (activations)

void f32_from_float(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }

void f16_from_float(const float* src, void* dst, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(src[i]);
}

void bf16_from_float(const float* src, void* dst, int64_t n) {
  uint16_t* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(src[i]);
}

// Shared by q8_0 and q8_1 (ggml's AVX quantizer): scale amax/127 stored as
// fp16, but the values are multiplied by 127/amax (not 1/d) and rounded half
// to even, then saturated to int8. Returns d (unrounded) and the sum of quants.
inline float q8_block(const float* x, int8_t* qs, int* sum) {
  float amax = 0.0f;
  for (int l = 0; l < QK; ++l) amax = std::fmax(amax, std::fabs(x[l]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int s = 0;
  for (int l = 0; l < QK; ++l) {
    int v = round_even(x[l] * id);
    v = v > 127 ? 127 : (v < -128 ? -128 : v);
    qs[l] = static_cast<int8_t>(v);
    s += v;
  }
  *sum = s;
  return d;
}

void q8_0_from_float(const float* x, void* dst, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    int sum;
    y[b].d = fp32_to_fp16(q8_block(x, y[b].qs, &sum));
  }
}

void q8_1_from_float(const float* x, void* dst, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    int sum;
    const float d = q8_block(x, y[b].qs, &sum);
    y[b].d = fp32_to_fp16(d);
    y[b].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

// ggml's q8_K: the scale comes from the signed value of largest magnitude
// (first one on ties); multiplier -127/max, so the quants carry the opposite
// sign of x when max > 0 and d = 1/multiplier is negative then.
void q8_K_from_float(const float* x, void* dst, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int l = 0; l < QK_K; ++l) {
      const float ax = std::fabs(x[l]);
      if (ax > amax) {
        amax = ax;
        max = x[l];
      }
    }
    if (amax == 0.0f) {
      y[b].d = 0.0f;
      std::memset(y[b].qs, 0, sizeof y[b].qs);
      std::memset(y[b].bsums, 0, sizeof y[b].bsums);  // ggml leaves these untouched; zero is their true value
      continue;
    }
    const float iscale = -127.0f / max;
    for (int l = 0; l < QK_K; ++l) {
      const int v = round_even(iscale * x[l]);
      y[b].qs[l] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < QK_K / 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += y[b].qs[16 * g + l];
      y[b].bsums[g] = static_cast<int16_t>(s);
    }
    y[b].d = 1.0f / iscale;
  }
}

// ---------------------------------------------------------------- vec_dot

// Float formats: four double accumulators (independent add chains); the
// products of two floats / halves / bfloat16s are exact in double.
template <typename Load>
float float_dot(int64_t n, Load load) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) acc[k] += load(i + k);
  }
  for (; i < n; ++i) acc[0] += load(i);
  return static_cast<float>((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

void f32_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const float* x = static_cast<const float*>(vx);
  const float* y = static_cast<const float*>(vy);
  *s = float_dot(n, [&](int64_t i) { return static_cast<double>(x[i]) * static_cast<double>(y[i]); });
}

void f16_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  const uint16_t* y = static_cast<const uint16_t*>(vy);
  const float* t = fp16_table();
  *s = float_dot(n, [&](int64_t i) { return static_cast<double>(t[x[i]]) * t[y[i]]; });
}

void bf16_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const uint16_t* x = static_cast<const uint16_t*>(vx);
  const uint16_t* y = static_cast<const uint16_t*>(vy);
  *s = float_dot(n, [&](int64_t i) { return static_cast<double>(bf16_to_fp32(x[i])) * bf16_to_fp32(y[i]); });
}

// Legacy formats: an exact integer sum per block, scaled by the product of
// the two block scales (formed in float, as ggml does).
void q4_0_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  double acc = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int l = 0; l < QK / 2; ++l) {
      isum += ((x[b].qs[l] & 0x0F) - 8) * y[b].qs[l];
      isum += ((x[b].qs[l] >> 4) - 8) * y[b].qs[l + QK / 2];
    }
    acc += static_cast<double>(h2f(x[b].d) * h2f(y[b].d)) * isum;
  }
  *s = static_cast<float>(acc);
}

void q4_1_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(vx);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(vy);
  double acc = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int l = 0; l < QK / 2; ++l) {
      isum += (x[b].qs[l] & 0x0F) * y[b].qs[l];
      isum += (x[b].qs[l] >> 4) * y[b].qs[l + QK / 2];
    }
    acc += static_cast<double>(h2f(x[b].d) * h2f(y[b].d)) * isum + static_cast<double>(h2f(x[b].m) * h2f(y[b].s));
  }
  *s = static_cast<float>(acc);
}

void q5_0_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  double acc = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    int isum = 0;
    for (int l = 0; l < QK; ++l) isum += (q5_value(x[b].qs, qh, l) - 16) * y[b].qs[l];
    acc += static_cast<double>(h2f(x[b].d) * h2f(y[b].d)) * isum;
  }
  *s = static_cast<float>(acc);
}

void q5_1_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(vx);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(vy);
  double acc = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    int isum = 0;
    for (int l = 0; l < QK; ++l) isum += q5_value(x[b].qs, qh, l) * y[b].qs[l];
    acc += static_cast<double>(h2f(x[b].d) * h2f(y[b].d)) * isum + static_cast<double>(h2f(x[b].m) * h2f(y[b].s));
  }
  *s = static_cast<float>(acc);
}

void q8_0_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(vy);
  double acc = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    int isum = 0;
    for (int l = 0; l < QK; ++l) isum += x[b].qs[l] * y[b].qs[l];
    acc += static_cast<double>(h2f(x[b].d) * h2f(y[b].d)) * isum;
  }
  *s = static_cast<float>(acc);
}

// k-quants: per super-block, sum over sub-blocks of scale * (int dot), and the
// min term via the activation's 16-value partial sums (bsums).
void q4_K_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  double acc = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const uint8_t* q = x[b].qs;
    const int8_t* a = y[b].qs;
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j += 2, q += 32, a += 64) {
      int sc1, m1, sc2, m2;
      k4_scale_min(j, x[b].scales, &sc1, &m1);
      k4_scale_min(j + 1, x[b].scales, &sc2, &m2);
      int d1 = 0, d2 = 0;
      for (int l = 0; l < 32; ++l) {
        d1 += (q[l] & 0xF) * a[l];
        d2 += (q[l] >> 4) * a[l + 32];
      }
      sumi += sc1 * d1 + sc2 * d2;
      summ += m1 * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]) + m2 * (y[b].bsums[2 * j + 2] + y[b].bsums[2 * j + 3]);
    }
    const float d = h2f(x[b].d) * y[b].d;
    const float dmin = h2f(x[b].dmin) * y[b].d;
    acc += static_cast<double>(d) * sumi - static_cast<double>(dmin) * summ;
  }
  *s = static_cast<float>(acc);
}

void q5_K_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  double acc = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const uint8_t* ql = x[b].qs;
    const uint8_t* qh = x[b].qh;
    const int8_t* a = y[b].qs;
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j += 2, ql += 32, a += 64) {
      int sc1, m1, sc2, m2;
      k4_scale_min(j, x[b].scales, &sc1, &m1);
      k4_scale_min(j + 1, x[b].scales, &sc2, &m2);
      const int bit1 = 1 << j, bit2 = 2 << j;
      int d1 = 0, d2 = 0;
      for (int l = 0; l < 32; ++l) {
        d1 += ((ql[l] & 0xF) + ((qh[l] & bit1) ? 16 : 0)) * a[l];
        d2 += ((ql[l] >> 4) + ((qh[l] & bit2) ? 16 : 0)) * a[l + 32];
      }
      sumi += sc1 * d1 + sc2 * d2;
      summ += m1 * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]) + m2 * (y[b].bsums[2 * j + 2] + y[b].bsums[2 * j + 3]);
    }
    const float d = h2f(x[b].d) * y[b].d;
    const float dmin = h2f(x[b].dmin) * y[b].d;
    acc += static_cast<double>(d) * sumi - static_cast<double>(dmin) * summ;
  }
  *s = static_cast<float>(acc);
}

void q6_K_vec_dot(int64_t n, float* s, const void* vx, const void* vy) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(vy);
  double acc = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    int8_t q[QK_K];
    q6_decode(x[b], q);
    int sumi = 0;
    for (int g = 0; g < QK_K / 16; ++g) {
      int dot = 0;
      for (int l = 0; l < 16; ++l) dot += q[16 * g + l] * y[b].qs[16 * g + l];
      sumi += x[b].scales[g] * dot;
    }
    acc += static_cast<double>(h2f(x[b].d) * y[b].d) * sumi;
  }
  *s = static_cast<float>(acc);
}

// ---------------------------------------------------------------- the table

using T = GgmlType;

TypeTraits make(uint32_t id, const char* name, int64_t bs, size_t ts, bool supported = false,
                ToFloatFn to = nullptr, FromFloatFn from = nullptr, GgmlType dot = T::F32, VecDotFn vd = nullptr) {
  return TypeTraits{static_cast<GgmlType>(id), name, bs, ts, supported, to, from, dot, vd};
}

constexpr uint32_t kKnownIds = 43;  // ggml type ids 0..42 as of llama.cpp v0.5.0

struct Table {
  TypeTraits entry[kKnownIds];
  Table() {
    for (uint32_t i = 0; i < kKnownIds; ++i) entry[i] = make(i, nullptr, 0, 0);
    auto set = [&](TypeTraits t) { entry[static_cast<uint32_t>(t.type)] = t; };
    set(make(0, "f32", 1, 4, true, f32_to_float, f32_from_float, T::F32, f32_vec_dot));
    set(make(1, "f16", 1, 2, true, f16_to_float, f16_from_float, T::F16, f16_vec_dot));
    set(make(30, "bf16", 1, 2, true, bf16_to_float, bf16_from_float, T::BF16, bf16_vec_dot));
    set(make(2, "q4_0", 32, 18, true, q4_0_to_float, nullptr, T::Q8_0, q4_0_vec_dot));
    set(make(3, "q4_1", 32, 20, true, q4_1_to_float, nullptr, T::Q8_1, q4_1_vec_dot));
    set(make(6, "q5_0", 32, 22, true, q5_0_to_float, nullptr, T::Q8_0, q5_0_vec_dot));
    set(make(7, "q5_1", 32, 24, true, q5_1_to_float, nullptr, T::Q8_1, q5_1_vec_dot));
    set(make(8, "q8_0", 32, 34, true, q8_0_to_float, q8_0_from_float, T::Q8_0, q8_0_vec_dot));
    // Activation-only formats: quantize and inspect, but no weight products.
    set(make(9, "q8_1", 32, 36, false, q8_1_to_float, q8_1_from_float, T::Q8_1));
    set(make(15, "q8_K", 256, 292, false, q8_K_to_float, q8_K_from_float, T::Q8_K));
    set(make(12, "q4_K", 256, 144, true, q4_K_to_float, nullptr, T::Q8_K, q4_K_vec_dot));
    set(make(13, "q5_K", 256, 176, true, q5_K_to_float, nullptr, T::Q8_K, q5_K_vec_dot));
    set(make(14, "q6_K", 256, 210, true, q6_K_to_float, nullptr, T::Q8_K, q6_K_vec_dot));
    // Known layouts the engine does not compute with (files using them still open).
    set(make(10, "q2_K", 256, 84, false, nullptr, nullptr, T::Q8_K));
    set(make(11, "q3_K", 256, 110, false, nullptr, nullptr, T::Q8_K));
    set(make(16, "iq2_xxs", 256, 66, false, nullptr, nullptr, T::Q8_K));
    set(make(17, "iq2_xs", 256, 74, false, nullptr, nullptr, T::Q8_K));
    set(make(18, "iq3_xxs", 256, 98, false, nullptr, nullptr, T::Q8_K));
    set(make(19, "iq1_s", 256, 50, false, nullptr, nullptr, T::Q8_K));
    set(make(20, "iq4_nl", 32, 18, false, nullptr, nullptr, T::Q8_0));
    set(make(21, "iq3_s", 256, 110, false, nullptr, nullptr, T::Q8_K));
    set(make(22, "iq2_s", 256, 82, false, nullptr, nullptr, T::Q8_K));
    set(make(23, "iq4_xs", 256, 136, false, nullptr, nullptr, T::Q8_K));
    set(make(24, "i8", 1, 1));
    set(make(25, "i16", 1, 2));
    set(make(26, "i32", 1, 4));
    set(make(27, "i64", 1, 8));
    set(make(28, "f64", 1, 8));
    set(make(29, "iq1_m", 256, 56, false, nullptr, nullptr, T::Q8_K));
    set(make(34, "tq1_0", 256, 54, false, nullptr, nullptr, T::Q8_K));
    set(make(35, "tq2_0", 256, 66, false, nullptr, nullptr, T::Q8_K));
    set(make(39, "mxfp4", 32, 17, false, nullptr, nullptr, T::Q8_0));
    set(make(40, "nvfp4", 64, 36, false, nullptr, nullptr, T::Q8_0));
    set(make(41, "q1_0", 128, 18, false, nullptr, nullptr, T::Q8_0));
    set(make(42, "q2_0", 64, 18, false, nullptr, nullptr, T::Q8_0));
  }
};

Table& table() {
  static Table t;
  return t;
}

// Ids without a known layout (removed or future types): name only.
const TypeTraits& unknown_traits(uint32_t id) {
  static std::mutex mu;
  static std::map<uint32_t, std::pair<std::unique_ptr<std::string>, std::unique_ptr<TypeTraits>>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[id];
  if (!slot.second) {
    slot.first.reset(new std::string("type" + std::to_string(id)));
    slot.second.reset(new TypeTraits(make(id, slot.first->c_str(), 0, 0)));
  }
  return *slot.second;
}

}  // namespace

const TypeTraits& type_traits(uint32_t type_id) {
  if (type_id < kKnownIds && table().entry[type_id].name != nullptr) return table().entry[type_id];
  return unknown_traits(type_id);
}

size_t row_size(GgmlType t, int64_t n) {
  const TypeTraits& tt = type_traits(t);
  if (tt.block_size <= 0) {
    throw Error(code::UNSUPPORTED_TYPE, std::string("row_size: tensor type ") + tt.name + " has no known block layout");
  }
  if (n < 0 || n % tt.block_size != 0) {
    throw Error(code::INVALID_ARG, std::string("row_size: ") + std::to_string(n) + " values of type " + tt.name +
                                       " is not a multiple of its block size " + std::to_string(tt.block_size));
  }
  return static_cast<size_t>(n / tt.block_size) * tt.type_size;
}

// ---------------------------------------------------------------- half / bfloat16

float fp16_to_fp32(uint16_t h) { return fp16_table()[h]; }

namespace {

float fp16_bits_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / NaN (payload kept)
    if (mant != 0) bits |= 0x00400000u;         // a signalling NaN comes back quiet, as from F16C
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

// IEEE binary16 with round-to-nearest-even, like the F16C instruction ggml's
// CPU backend uses (NaN stays NaN with its top payload bits and the quiet bit).
uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // inf or NaN
    if (ax == 0x7F800000u) return sign | 0x7C00;
    return static_cast<uint16_t>(sign | 0x7E00 | ((ax >> 13) & 0x3FF));
  }
  if (ax >= 0x477FF000u) return sign | 0x7C00;  // rounds to >= 65520: overflow to inf
  if (ax >= 0x38800000u) {                       // normal half (>= 2^-14)
    const uint32_t mant_round = ax + 0xFFF + ((ax >> 13) & 1);  // RNE at bit 13
    return static_cast<uint16_t>(sign | ((mant_round - 0x38000000u) >> 13));
  }
  if (ax < 0x33000000u) return sign;  // < 2^-25: rounds to zero (2^-25 itself ties to even 0)
  // Subnormal half: value = m * 2^-24, m = round(ax_value * 2^24).
  const uint32_t e = ax >> 23;                 // biased exponent, 102..112
  const uint32_t m = (ax & 0x7FFFFF) | 0x800000;  // 24-bit significand
  const uint32_t shift = 126 - e;               // value*2^24 = m >> shift (shift 14..24)
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (q & 1))) ++q;
  return static_cast<uint16_t>(sign | q);
}

float bf16_to_fp32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN: keep it quiet
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}

}  // namespace nla
