// AVX2 + FMA + F16C kernels (any x86-64 from Haswell / Zen 1 on). Only this translation unit is
// compiled for that target; it runs only when the CPU reports the features (kernels_cpu.cc).
#include "backends/cpu/kernels.h"
#include "formats/quant_blocks.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi2")
#endif
#define NLA_NS avx2
#define NLA_VNNI 0
#include "backends/cpu/kernels_x86.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace nla {
namespace cpu {
bool fill_avx2(Kernels& k) {
  avx2::fill(k);
  k.name = "avx2";
  return true;
}
}  // namespace cpu
}  // namespace nla
#else
namespace nla {
namespace cpu {
bool fill_avx2(Kernels&) { return false; }
}  // namespace cpu
}  // namespace nla
#endif
