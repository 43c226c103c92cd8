// The CPU backend's constant kernel table: multi-token matrix products over quantized
// weights (weights decoded once per row block and reused for every token), activation
// quantizers, and fp32 helpers. SIMD variants are compiled in their own translation units
// with target pragmas (kernels_avx2.cc, kernels_avx512.cc) and chosen once at run time by
// CPU feature detection; every entry the chosen level lacks falls back to the scalar
// reference of the format table (formats/quant.h), so the table is complete.
#pragma once
#include <cstddef>
#include <cstdint>

#include "formats/quant.h"

namespace nla {
namespace cpu {

// y[t * ldy + o] = dot(row o of W, activation row t) for o in [0, rows), t in [0, T).
// w: `rows` rows of n values of the weight type, w_row_bytes apart. x: T activation rows of n values already
// in the weight type's vec_dot_type (the bytes of quant.h's from_float), cut into groups of 256 values
// (one q8_K super-block, eight q8_0 blocks): group g of row t starts at x + g·x_group_bytes + t·x_row_bytes.
// Plain rows: x_group_bytes = 292 (q8_K) / 272 (q8_0), x_row_bytes = the row size. Group-major (what the CPU
// backend uses, so that the tokens of one group are contiguous): x_row_bytes = 292 / 272, x_group_bytes =
// T·292 / T·272. Float types ignore x_group_bytes (plain rows).
using GemmFn = void (*)(int64_t n, const uint8_t* w, size_t w_row_bytes, int64_t rows, const uint8_t* x,
                        size_t x_row_bytes, size_t x_group_bytes, int64_t T, float* y, int64_t ldy);

struct Kernels {
  const char* name = "scalar";
  GemmFn gemm[64] = {};              // by ggml type id; null: no fast kernel (use vec_dot per pair)
  VecDotFn vec_dot[64] = {};         // by ggml type id: SIMD or quant.h's reference (null: unsupported type)
  FromFloatFn from_float[64] = {};   // activation quantizers, byte-identical to quant.h's reference
  float (*dot_f32)(const float* a, const float* b, int64_t n) = nullptr;
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n) = nullptr;  // y += a x
  // Y[t·ldy + m] (=|+=) alpha · Σ_k A[m·lda + k] · X[t·ldx + k] for m < M, t < T (fp32, register-tiled).
  void (*sgemm_nt)(int64_t M, int64_t T, int64_t K, const float* A, int64_t lda, const float* X, int64_t ldx, float* Y,
                   int64_t ldy, float alpha, bool accumulate) = nullptr;
  // out[i] = gelu(g[i]) · (up ? up[i] : 1), tanh form computed as g / (1 + exp(-2u)) (a few ulp of the
  // textbook formula); null: the backend's scalar loop.
  void (*gelu_exact)(const float* g, const float* up, float* out, int64_t n) = nullptr;
  // The same through llama.cpp's fp16 table (table: 65536 fp16 results indexed by the input's fp16 bits).
  void (*gelu_fp16)(const float* g, const float* up, float* out, int64_t n, const uint16_t* table) = nullptr;
};

// Per-thread scratch of at least `bytes` bytes, 64-byte aligned (valid until the next call on the thread).
void* thread_scratch(size_t bytes);

// Kernels for this CPU (detected once; constant afterwards). NLA_CPU_KERNELS=scalar|avx2|avx512vnni forces a
// lower level.
const Kernels& kernels();

// The individual levels (filled by their translation units; a level the compiler cannot build is absent).
bool fill_scalar(Kernels& k);
bool fill_avx2(Kernels& k);
bool fill_avx512vnni(Kernels& k);

}  // namespace cpu
}  // namespace nla
