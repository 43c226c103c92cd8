// Single-thread throughput of the matrix-product kernels (thread CPU time, so other load on the machine
// matters less): kernel_bench [T] [rows] [n]
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/kernels.h"
#include "formats/quant.h"

namespace {
double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
}  // namespace

int main(int argc, char** argv) {
  const int64_t T = argc > 1 ? std::atol(argv[1]) : 64, rows = argc > 2 ? std::atol(argv[2]) : 2048,
                n = argc > 3 ? std::atol(argv[3]) : 1536;
  const auto& k = nla::cpu::kernels();
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> byte(0, 255);
  for (nla::GgmlType t : {nla::GgmlType::Q4_K, nla::GgmlType::Q6_K, nla::GgmlType::Q8_0, nla::GgmlType::Q4_0, nla::GgmlType::F16}) {
    const auto& tr = nla::type_traits(t);
    const auto& dt = nla::type_traits(tr.vec_dot_type);
    const size_t wrb = nla::row_size(t, n), xrb = nla::row_size(tr.vec_dot_type, n);
    std::vector<uint8_t> w(wrb * rows);
    for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
    // sane block scales: rewrite fp16 scale fields by dequant-independent means is format-specific; random
    // bytes are fine for timing (NaNs do not slow integer code)
    std::vector<float> xf(static_cast<size_t>(n * T));
    std::normal_distribution<float> nd;
    for (auto& v : xf) v = nd(rng);
    // group-major activations, as the CPU backend lays them out
    const size_t grb = nla::row_size(tr.vec_dot_type, 256);
    const bool float_act = tr.vec_dot_type == nla::GgmlType::F16;
    std::vector<uint8_t> xq(xrb * T);
    for (int64_t i = 0; i < T; ++i)
      for (int64_t g = 0; g < n / 256; ++g)
        dt.from_float(xf.data() + i * n + 256 * g,
                      xq.data() + (float_act ? i * xrb + g * grb : g * grb * T + i * grb), 256);
    const size_t x_row = float_act ? xrb : grb, x_group = float_act ? grb : grb * T;
    std::vector<float> y(static_cast<size_t>(rows * T));
    const nla::cpu::GemmFn g = k.gemm[static_cast<int>(t)];
    if (!g) continue;
    g(n, w.data(), wrb, rows, xq.data(), x_row, x_group, T, y.data(), rows);
    // check against the one-token path (vec_dot, which quant_check compares with ggml)
    {
      std::vector<uint8_t> xr(xrb);
      double worst = 0;
      for (int64_t t = 0; t < T; t += std::max<int64_t>(1, T / 7)) {
        std::vector<float> row(xf.begin() + t * n, xf.begin() + (t + 1) * n);
        dt.from_float(row.data(), xr.data(), n);
        for (int64_t o = 0; o < rows; o += std::max<int64_t>(1, rows / 13)) {
          float ref;
          tr.vec_dot(n, &ref, w.data() + o * wrb, xr.data());
          const double e = std::fabs(double(ref) - y[t * rows + o]) / (std::fabs(double(ref)) + 1e-3);
          if (std::isfinite(ref)) worst = std::max(worst, e);
        }
      }
      std::printf("%-5s multi-token vs vec_dot: worst rel diff %.2g%s\n", tr.name, worst, worst > 1e-4 ? "  <-- MISMATCH" : "");
    }
    // a token's results must not depend on the other tokens of the product (decode steps run T = 1, prefill T > 1,
    // and the engine promises bit-identical results): each sampled token alone against its row of the T-token call
    if (T > 1) {
      std::vector<uint8_t> x1(x_row * (n / 256 + 1));
      std::vector<float> y1(static_cast<size_t>(rows));
      int64_t differ = 0, checked = 0;
      for (int64_t t = 0; t < T; t += std::max<int64_t>(1, T / 7)) {
        for (int64_t g2 = 0; g2 < n / 256; ++g2)
          std::memcpy(x1.data() + g2 * x_row, xq.data() + (float_act ? t * xrb + g2 * grb : g2 * x_group + t * grb), grb);
        g(n, w.data(), wrb, rows, x1.data(), x_row, x_row, 1, y1.data(), rows);
        for (int64_t o = 0; o < rows; ++o, ++checked) differ += std::memcmp(&y1[o], &y[t * rows + o], sizeof(float)) != 0;
      }
      std::printf("%-5s one token alone vs its row of T=%lld: %lld of %lld results differ%s\n", tr.name, (long long)T,
                  (long long)differ, (long long)checked, differ ? "  <-- NOT BIT-IDENTICAL" : "");
    }
    double ms = 1e30;  // best of 15 (the machine may be shared)
    for (int r = 0; r < 15; ++r) {
      const double t0 = cpu_ms();
      g(n, w.data(), wrb, rows, xq.data(), x_row, x_group, T, y.data(), rows);
      ms = std::min(ms, cpu_ms() - t0);
    }
    std::printf("%-5s %s T=%lld rows=%lld n=%lld: %.2f ms/call, %.1f GMAC/s per core\n", tr.name, k.name, (long long)T,
                (long long)rows, (long long)n, ms, double(T) * rows * n / ms / 1e6);
  }
  return 0;
}
