// Run-time choice of the CPU kernels (kernels.h).
#include "backends/cpu/kernels.h"

#include <cstdlib>
#include <cstring>
#include <string>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace nla {
namespace cpu {

namespace {

float dot_f32_scalar(const float* a, const float* b, int64_t n) {
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) s[k] += a[i + k] * b[i + k];
  for (; i < n; ++i) s[0] += a[i] * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void axpy_f32_scalar(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// F16C from CPUID directly: clang (up to 15 at least) rejects "f16c" in __builtin_cpu_supports.
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}
#endif

bool cpu_has(const char* level) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (std::strcmp(level, "avx2") == 0)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c() &&
           __builtin_cpu_supports("bmi2");
  if (std::strcmp(level, "avx512vnni") == 0)
    return cpu_has("avx2") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
#else
  (void)level;
#endif
  return false;
}

Kernels best_level() {
  Kernels k;
  fill_scalar(k);
  const char* force = std::getenv("NLA_CPU_KERNELS");
  const std::string want = force ? force : "";
  if (want == "scalar") return k;
  if (cpu_has("avx512vnni") && want != "avx2") {
    Kernels v = k;
    if (fill_avx512vnni(v)) return v;
  }
  if (cpu_has("avx2")) {
    Kernels v = k;
    if (fill_avx2(v)) return v;
  }
  return k;
}

// The chosen level, completed with the format table's reference products and quantizers.
Kernels detect() {
  Kernels k = best_level();
  for (uint32_t id = 0; id < 64; ++id) {
    const TypeTraits& t = type_traits(id);
    if (!t.supported && !t.from_float) continue;
    if (!k.vec_dot[id]) k.vec_dot[id] = t.vec_dot;
    if (!k.from_float[id]) k.from_float[id] = t.from_float;
  }
  return k;
}

}  // namespace

bool fill_scalar(Kernels& k) {
  k.name = "scalar";
  k.dot_f32 = dot_f32_scalar;
  k.axpy_f32 = axpy_f32_scalar;
  return true;
}

void* thread_scratch(size_t bytes) {
  struct Buf {
    void* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf buf;
  if (buf.n < bytes) {
    std::free(buf.p);
    buf.n = (bytes + 63) & ~size_t(63);
    buf.p = std::aligned_alloc(64, buf.n);
  }
  return buf.p;
}

const Kernels& kernels() {
  static const Kernels k = detect();
  return k;
}

}  // namespace cpu
}  // namespace nla
