// AVX-512 VNNI kernels (Ice Lake, Zen 4 and later): the AVX2 code with vpdpwssd and 32 vector registers. Only this translation unit is
// compiled for that target; it runs only when the CPU reports the features (kernels_cpu.cc).
#include "backends/cpu/kernels.h"
#include "formats/quant_blocks.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positives inside the AVX-512 intrinsic headers
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#define NLA_NS avx512vnni
#define NLA_VNNI 1
#include "backends/cpu/kernels_x86.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace nla {
namespace cpu {
bool fill_avx512vnni(Kernels& k) {
  avx512vnni::fill(k);
  k.name = "avx512vnni";
  return true;
}
}  // namespace cpu
}  // namespace nla
#else
namespace nla {
namespace cpu {
bool fill_avx512vnni(Kernels&) { return false; }
}  // namespace cpu
}  // namespace nla
#endif
