// Differential check of native/quant.cc (and the GGUF reader's tensor table)
// against llama.cpp's ggml libraries.
//
//   dequant   weights quantized by ggml_quantize_chunk, dequantized by ours and
//             by ggml's to_float: must be bit-identical.
//   act       activations quantized by ours and by ggml's CPU from_float (the
//             x86 SIMD build llama.cpp would pick here): identical bytes.
//   vec_dot   ours vs ggml's CPU vec_dot on the same bytes. Both sum exact
//             integer block products scaled by float block scales; ggml sums in
//             float SIMD lanes, ours in double, so they may differ by float
//             accumulation error only. Measured as |ours - ggml| / sum|x_i*y_i|
//             (the conditioning-aware relative error; the plain relative error
//             is printed too), must be <= 1e-6.
//   traits    block size / bytes / vec_dot_type per type id vs ggml.
//   fp16/bf16 conversions vs ggml, exhaustively or over many bit patterns.
//   gguf      files written by ggml's gguf writer read back by ours.
//
// Prints one JSON line per check and `quant_check: N passed, M failed`.
#include <dlfcn.h>
#include <dirent.h>
#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <algorithm>
#include <cstdarg>

#include "formats/gguf.h"
#include "formats/quant.h"
#include "backends/cpu/kernels.h"
#include "ggml-cpu.h"
#include "ggml.h"

// ggml's own gguf.h shares its file name with native/gguf.h, so the few entry
// points used here are declared directly (signatures of ggml/include/gguf.h).
extern "C" {
struct gguf_context;
enum gguf_type { GGUF_TYPE_INT32 = 5 };
struct gguf_init_params {
  bool no_alloc;
  struct ggml_context** ctx;
};
gguf_context* gguf_init_empty(void);
gguf_context* gguf_init_from_file(const char* fname, gguf_init_params params);
void gguf_free(gguf_context* ctx);
int64_t gguf_get_n_kv(const gguf_context* ctx);
int64_t gguf_find_key(const gguf_context* ctx, const char* key);
size_t gguf_get_arr_n(const gguf_context* ctx, int64_t key_id);
const char* gguf_get_arr_str(const gguf_context* ctx, int64_t key_id, size_t i);
int64_t gguf_get_n_tensors(const gguf_context* ctx);
size_t gguf_get_tensor_offset(const gguf_context* ctx, int64_t tensor_id);
void gguf_set_val_u32(gguf_context* ctx, const char* key, uint32_t val);
void gguf_set_val_f32(gguf_context* ctx, const char* key, float val);
void gguf_set_val_u64(gguf_context* ctx, const char* key, uint64_t val);
void gguf_set_val_i64(gguf_context* ctx, const char* key, int64_t val);
void gguf_set_val_f64(gguf_context* ctx, const char* key, double val);
void gguf_set_val_bool(gguf_context* ctx, const char* key, bool val);
void gguf_set_val_str(gguf_context* ctx, const char* key, const char* val);
void gguf_set_arr_data(gguf_context* ctx, const char* key, gguf_type type, const void* data, size_t n);
void gguf_set_arr_str(gguf_context* ctx, const char* key, const char** data, size_t n);
void gguf_add_tensor(gguf_context* ctx, const struct ggml_tensor* tensor);
bool gguf_write_to_file(const gguf_context* ctx, const char* fname, bool only_meta);
}

namespace {

int g_pass = 0, g_fail = 0;

void report(bool ok, const std::string& json_body) {
  (ok ? g_pass : g_fail)++;
  std::printf("{\"ok\":%s,%s}\n", ok ? "true" : "false", json_body.c_str());
  std::fflush(stdout);
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// ---------------------------------------------------------------- ggml CPU backend

using TraitsCpuFn = const ggml_type_traits_cpu* (*)(ggml_type);
TraitsCpuFn g_cpu_traits = nullptr;
std::string g_cpu_variant;

// Loads the CPU variant llama.cpp's backend loader would choose here: the one
// whose ggml_backend_score() is highest.
bool load_cpu_backend(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return false;
  int best = 0;
  void* best_handle = nullptr;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("libggml-cpu-", 0) != 0 || name.size() < 3 || name.substr(name.size() - 3) != ".so") continue;
    void* h = dlopen((dir + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    auto score = reinterpret_cast<int (*)()>(dlsym(h, "ggml_backend_score"));
    const int s = score ? score() : 0;
    if (s > best) {
      if (best_handle) dlclose(best_handle);
      best = s;
      best_handle = h;
      g_cpu_variant = name;
    } else {
      dlclose(h);
    }
  }
  closedir(d);
  if (!best_handle) return false;
  auto init = reinterpret_cast<void (*)()>(dlsym(best_handle, "ggml_cpu_init"));
  if (init) init();
  g_cpu_traits = reinterpret_cast<TraitsCpuFn>(dlsym(best_handle, "ggml_get_type_traits_cpu"));
  return g_cpu_traits != nullptr;
}

// ---------------------------------------------------------------- data

// Weight-like rows: per-block scale variation, blocks of zeros, outliers,
// tiny values and constant blocks.
std::vector<float> make_weights(uint32_t seed, int64_t n) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  const float base = 0.02f * (1 + seed % 4);
  for (int64_t b = 0; b < n; b += 32) {
    const float r = ud(rng);
    const float scale = base * std::exp(1.5f * nd(rng));
    for (int64_t i = b; i < b + 32 && i < n; ++i) {
      float x = scale * nd(rng);
      if (r < 0.03f) x = 0.0f;                              // a block of zeros
      else if (r < 0.05f) x = scale;                        // constant block
      else if (r < 0.07f) x = 1e-6f * nd(rng);              // tiny values
      else if (r < 0.09f && ud(rng) < 0.1f) x *= 50.0f;     // outliers
      else if (r < 0.10f) x = std::fabs(x);                 // all positive
      else if (r < 0.11f) x = -std::fabs(x);                // all negative
      v[static_cast<size_t>(i)] = x;
    }
  }
  return v;
}

// Activation-like vectors: unit scale with outlier channels; plus blocks built
// to hit exact rounding ties and sign / tie-of-magnitude cases.
std::vector<float> make_activations(uint32_t seed, int64_t n) {
  std::mt19937 rng(seed * 7919u + 13);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    x = nd(rng);
    if (ud(rng) < 0.01f) x *= 30.0f;
  }
  // Special super-blocks of 256 (only where n allows).
  for (int64_t b = 0; b + 256 <= n; b += 256) {
    const int kind = static_cast<int>((b / 256 + seed) % 8);
    float* x = v.data() + b;
    switch (kind) {
      case 1:  // exact .5 ties: amax 127 gives multiplier 1 (q8_0) / -1 (q8_K)
        for (int i = 0; i < 256; ++i) x[i] = (i % 32 == 0) ? 127.0f : static_cast<float>((i % 64) - 32) + 0.5f;
        break;
      case 2:  // largest magnitude negative
        for (int i = 0; i < 256; ++i) x[i] = (i == 77) ? -40.0f : nd(rng);
        break;
      case 3:  // both signs of the largest magnitude (+ first, then -)
        for (int i = 0; i < 256; ++i) x[i] = nd(rng);
        x[5] = 9.0f;
        x[200] = -9.0f;
        break;
      case 4:  // zeros
        for (int i = 0; i < 256; ++i) x[i] = 0.0f;
        break;
      case 5:  // tiny
        for (int i = 0; i < 256; ++i) x[i] = 1e-20f * nd(rng);
        break;
      case 6:  // large (kept where q8_1's fp16 d*sum(q) stays finite)
        for (int i = 0; i < 256; ++i) x[i] = 100.0f * nd(rng);
        break;
      default:
        break;
    }
  }
  return v;
}

const std::vector<ggml_type> kWeightTypes = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                             GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                             GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
const std::vector<ggml_type> kActTypes = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
                                          GGML_TYPE_Q8_0, GGML_TYPE_Q8_1, GGML_TYPE_Q8_K};
const std::vector<uint32_t> kSeeds = {1, 2, 3, 4, 5};
const std::vector<int64_t> kLengths = {256, 1536, 4096, 8960};

// ggml's dequantizer (f32 has none: its bytes are the values).
void ggml_to_float(ggml_type t, const void* src, float* dst, int64_t n) {
  if (t == GGML_TYPE_F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  if (ggml_get_type_traits(t)->to_float == nullptr) {  // q8_K: only used to size the error bound
    nla::type_traits(static_cast<uint32_t>(t)).to_float(src, dst, n);
    return;
  }
  ggml_get_type_traits(t)->to_float(src, dst, n);
}

// ---------------------------------------------------------------- checks

void check_traits() {
  int bad = 0;
  std::string first;
  for (int t = 0; t < GGML_TYPE_COUNT + 3; ++t) {
    const nla::TypeTraits& ours = nla::type_traits(static_cast<uint32_t>(t));
    int64_t bs = 0;
    size_t ts = 0;
    std::string gname = "?";
    if (t < GGML_TYPE_COUNT) {
      bs = ggml_blck_size(static_cast<ggml_type>(t));
      ts = ggml_type_size(static_cast<ggml_type>(t));
      gname = ggml_type_name(static_cast<ggml_type>(t));
    }
    bool ok = ours.block_size == bs && ours.type_size == ts;
    if (ok && bs != 0) ok = gname == ours.name;
    if (ok && ours.supported) {
      const ggml_type_traits_cpu* c = g_cpu_traits(static_cast<ggml_type>(t));
      ok = static_cast<int>(ours.vec_dot_type) == static_cast<int>(c->vec_dot_type) && ours.to_float && ours.vec_dot;
    }
    if (!ok) {
      ++bad;
      if (first.empty()) first = fmt("id %d: ours %s/%lld/%zu vs ggml %s/%lld/%zu", t, ours.name, (long long)ours.block_size,
                                     ours.type_size, gname.c_str(), (long long)bs, ts);
    }
  }
  report(bad == 0, fmt("\"check\":\"traits\",\"ids\":%d,\"mismatches\":%d,\"first\":\"%s\"", GGML_TYPE_COUNT + 3, bad,
                       first.c_str()));
}

void check_fp_conversions() {
  // fp16 -> fp32: all 65536 values, bit-exact against ggml.
  {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
      const float a = nla::fp16_to_fp32(static_cast<uint16_t>(h));
      const float b = ggml_fp16_to_fp32(static_cast<ggml_fp16_t>(h));
      if (std::memcmp(&a, &b, 4) != 0) ++bad;
    }
    report(bad == 0, fmt("\"check\":\"fp16_to_fp32\",\"values\":65536,\"mismatches\":%d", bad));
  }
  // bf16 -> fp32: all 65536.
  {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
      ggml_bf16_t g;
      std::memcpy(&g, &h, 2);
      const float a = nla::bf16_to_fp32(static_cast<uint16_t>(h));
      const float b = ggml_bf16_to_fp32(g);
      if (std::memcmp(&a, &b, 4) != 0) ++bad;
    }
    report(bad == 0, fmt("\"check\":\"bf16_to_fp32\",\"values\":65536,\"mismatches\":%d", bad));
  }
  // fp32 -> fp16 / bf16: every 61st bit pattern (covers all exponents and many
  // rounding cases) plus random patterns, against the CPU backend's from_float
  // (F16C hardware conversion / ggml's bf16 rounding), which is what matmuls use.
  const ggml_type_traits_cpu* f16c = g_cpu_traits(GGML_TYPE_F16);
  const ggml_type_traits_cpu* bf16c = g_cpu_traits(GGML_TYPE_BF16);
  const size_t chunk = 1 << 16;
  std::vector<float> src(chunk);
  std::vector<uint16_t> ours(chunk), theirs(chunk);
  uint64_t n16 = 0, bad16 = 0, nb = 0, badb = 0, nan16 = 0;
  std::mt19937 rng(99);
  uint64_t pattern = 0;
  while (pattern < (1ull << 32)) {
    size_t m = 0;
    for (; m < chunk / 2 && pattern < (1ull << 32); ++m, pattern += 61) {
      const uint32_t bits = static_cast<uint32_t>(pattern);
      std::memcpy(&src[m], &bits, 4);
    }
    for (; m < chunk; ++m) {
      const uint32_t bits = rng();
      std::memcpy(&src[m], &bits, 4);
    }
    f16c->from_float(src.data(), theirs.data(), static_cast<int64_t>(chunk));
    for (size_t i = 0; i < chunk; ++i) ours[i] = nla::fp32_to_fp16(src[i]);
    for (size_t i = 0; i < chunk; ++i) {
      ++n16;
      if (ours[i] != theirs[i]) {
        if (std::isnan(src[i])) ++nan16; else ++bad16;
      }
    }
    bf16c->from_float(src.data(), theirs.data(), static_cast<int64_t>(chunk));
    for (size_t i = 0; i < chunk; ++i) {
      ++nb;
      if (nla::fp32_to_bf16(src[i]) != theirs[i]) ++badb;
    }
  }
  report(bad16 == 0 && nan16 == 0,
         fmt("\"check\":\"fp32_to_fp16\",\"values\":%" PRIu64 ",\"mismatches\":%" PRIu64 ",\"nan_mismatches\":%" PRIu64, n16,
             bad16, nan16));
  report(badb == 0, fmt("\"check\":\"fp32_to_bf16\",\"values\":%" PRIu64 ",\"mismatches\":%" PRIu64, nb, badb));
}

void check_dequant(ggml_type t, uint32_t seed, int64_t n_per_row) {
  const int64_t nrows = 4;
  const std::vector<float> w = make_weights(seed, n_per_row * nrows);
  const size_t rs = ggml_row_size(t, n_per_row);
  std::vector<uint8_t> q(rs * nrows);
  ggml_quantize_chunk(t, w.data(), q.data(), 0, nrows, n_per_row, nullptr);
  std::vector<float> a(static_cast<size_t>(n_per_row * nrows)), b(a.size());
  const nla::TypeTraits& tt = nla::type_traits(static_cast<uint32_t>(t));
  tt.to_float(q.data(), a.data(), n_per_row * nrows);
  ggml_to_float(t, q.data(), b.data(), n_per_row * nrows);
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], 4) != 0) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  report(bad == 0, fmt("\"check\":\"dequant\",\"type\":\"%s\",\"seed\":%u,\"n\":%lld,\"mismatches\":%lld,\"first\":%lld%s",
                       tt.name, seed, (long long)(n_per_row * nrows), (long long)bad, (long long)first,
                       first >= 0 ? fmt(",\"ours\":%.9g,\"ggml\":%.9g", a[first], b[first]).c_str() : ""));
}

// impl: "reference" (the format table's scalar code) or "kernels" (the CPU backend's table, SIMD on this CPU).
void check_act(ggml_type t, uint32_t seed, int64_t n, bool kernels) {
  const std::vector<float> x = make_activations(seed, n);
  const size_t rs = ggml_row_size(t, n);
  std::vector<uint8_t> a(rs, 0xAA), b(rs, 0xAA);
  const nla::TypeTraits& tt = nla::type_traits(static_cast<uint32_t>(t));
  const nla::FromFloatFn from_float = kernels ? nla::cpu::kernels().from_float[static_cast<uint32_t>(t)] : tt.from_float;
  // ggml's q8_K leaves bsums of all-zero blocks untouched; start both from zero
  // so that only bytes either side defines are compared.
  if (t == GGML_TYPE_Q8_K) {
    std::fill(a.begin(), a.end(), 0);
    std::fill(b.begin(), b.end(), 0);
  }
  from_float(x.data(), a.data(), n);
  g_cpu_traits(t)->from_float(x.data(), b.data(), n);
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < rs; ++i) {
    if (a[i] != b[i]) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  report(bad == 0, fmt("\"check\":\"act\",\"impl\":\"%s\",\"type\":\"%s\",\"seed\":%u,\"n\":%lld,\"bytes\":%zu,\"mismatched_bytes\":%lld,"
                       "\"first\":%lld",
                       kernels ? "kernels" : "reference", tt.name, seed, (long long)n, rs, (long long)bad, (long long)first));
}

double g_worst_vecdot = 0;

void check_vec_dot(ggml_type t, uint32_t seed, int64_t n, bool kernels) {
  const nla::TypeTraits& tt = nla::type_traits(static_cast<uint32_t>(t));
  const nla::VecDotFn vec_dot = kernels ? nla::cpu::kernels().vec_dot[static_cast<uint32_t>(t)] : tt.vec_dot;
  const ggml_type vt = static_cast<ggml_type>(tt.vec_dot_type);
  const std::vector<float> w = make_weights(seed + 100, n);
  const std::vector<float> x = make_activations(seed + 200, n);
  std::vector<uint8_t> wq(ggml_row_size(t, n)), xq(ggml_row_size(vt, n), 0);
  ggml_quantize_chunk(t, w.data(), wq.data(), 0, 1, n, nullptr);
  g_cpu_traits(vt)->from_float(x.data(), xq.data(), n);
  float ours = 0, theirs = 0;
  vec_dot(n, &ours, wq.data(), xq.data());
  g_cpu_traits(t)->vec_dot(static_cast<int>(n), &theirs, 0, wq.data(), 0, xq.data(), 0, 1);
  // Exact value and magnitude from the dequantized operands.
  std::vector<float> wd(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
  ggml_to_float(t, wq.data(), wd.data(), n);
  ggml_to_float(vt, xq.data(), xd.data(), n);
  long double exact = 0, mag = 0;
  for (int64_t i = 0; i < n; ++i) {
    exact += static_cast<long double>(wd[i]) * xd[i];
    mag += std::fabs(static_cast<long double>(wd[i]) * xd[i]);
  }
  if (vt == GGML_TYPE_Q8_1) {
    // q4_1 / q5_1 products are d*dy*sum(q*qy) + m*s per block, with s the
    // activation block's stored fp16 d*sum(qy): the exact value uses that s,
    // and the magnitude both implementations accumulate is |d..| + |m*s|.
    exact = 0;
    mag = 0;
    const size_t wts = ggml_type_size(t), xts = ggml_type_size(vt);
    for (int64_t b = 0; b < n / 32; ++b) {
      uint16_t mh, sh;
      std::memcpy(&mh, wq.data() + b * wts + 2, 2);
      std::memcpy(&sh, xq.data() + b * xts + 2, 2);
      const long double m = ggml_fp16_to_fp32(mh), sy = ggml_fp16_to_fp32(sh);
      for (int64_t i = 32 * b; i < 32 * b + 32; ++i) {
        const long double scaled = (static_cast<long double>(wd[i]) - m) * xd[i];
        exact += scaled;
        mag += std::fabs(scaled);
      }
      exact += m * sy;
      mag += std::fabs(m * sy);
    }
  }
  const double denom = mag > 0 ? static_cast<double>(mag) : 1.0;
  const double rel = std::fabs(static_cast<double>(ours) - theirs) / denom;
  const double plain = std::fabs(static_cast<double>(ours) - theirs) / std::max(std::fabs(static_cast<double>(theirs)), 1e-30);
  const double ours_err = std::fabs(static_cast<double>(ours - exact)) / denom;
  const double ggml_err = std::fabs(static_cast<double>(theirs - exact)) / denom;
  g_worst_vecdot = std::max(g_worst_vecdot, rel);
  report(rel <= 1e-6,
         fmt("\"check\":\"vec_dot\",\"impl\":\"%s\",\"type\":\"%s\",\"dot_type\":\"%s\",\"seed\":%u,\"n\":%lld,\"ours\":%.9g,\"ggml\":%.9g,"
             "\"rel_to_sum_abs\":%.3g,\"rel_plain\":%.3g,\"ours_err_vs_exact\":%.3g,\"ggml_err_vs_exact\":%.3g",
             kernels ? "kernels" : "reference", tt.name, nla::type_traits(tt.vec_dot_type).name, seed, (long long)n, ours, theirs, rel, plain, ours_err,
             ggml_err));
}

// ---------------------------------------------------------------- gguf via ggml's writer

void check_gguf_roundtrip() {
  const std::string path = fmt("/tmp/quant_check_%d.gguf", static_cast<int>(getpid()));
  ggml_init_params ip = {64 * 1024 * 1024, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  gguf_context* g = gguf_init_empty();
  gguf_set_val_str(g, "general.architecture", "gemma4");
  gguf_set_val_u32(g, "gemma4.block_count", 35);
  gguf_set_val_f32(g, "gemma4.attention.layer_norm_rms_epsilon", 1e-6f);
  gguf_set_val_bool(g, "tokenizer.ggml.add_bos_token", true);
  gguf_set_val_i64(g, "test.i64", -5);
  gguf_set_val_u64(g, "test.u64", 1ull << 40);
  gguf_set_val_f64(g, "test.f64", 0.25);
  const int32_t ffn[3] = {6144, 6144, 12288};
  gguf_set_arr_data(g, "gemma4.feed_forward_length", GGUF_TYPE_INT32, ffn, 3);
  const char* toks[3] = {"<pad>", "<eos>", "hello world"};
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks, 3);
  std::vector<ggml_tensor*> ts;
  int idx = 0;
  for (ggml_type t : kWeightTypes) {
    const int64_t ne0 = 512, ne1 = 3;
    ggml_tensor* tensor = ggml_new_tensor_2d(ctx, t, ne0, ne1);
    ggml_set_name(tensor, fmt("blk.%d.w", idx++).c_str());
    const std::vector<float> w = make_weights(7, ne0 * ne1);
    ggml_quantize_chunk(t, w.data(), tensor->data, 0, ne1, ne0, nullptr);
    gguf_add_tensor(g, tensor);
    ts.push_back(tensor);
  }
  ggml_tensor* t1 = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 7);
  ggml_set_name(t1, "odd.f32");
  for (int i = 0; i < 7; ++i) static_cast<float*>(t1->data)[i] = static_cast<float>(i);
  gguf_add_tensor(g, t1);
  ts.push_back(t1);
  const bool wrote = gguf_write_to_file(g, path.c_str(), false);
  int bad = 0;
  std::string why;
  try {
    auto f = nla::GgufFile::open(path);
    if (!wrote) { ++bad; why = "ggml write failed"; }
    if (f->tensors().size() != ts.size()) { ++bad; why = "tensor count"; }
    for (size_t i = 0; i < ts.size() && i < f->tensors().size(); ++i) {
      const nla::TensorInfo& ti = f->tensors()[i];
      const ggml_tensor* gt = ts[i];
      if (ti.name != ggml_get_name(gt) || ti.type_id != static_cast<uint32_t>(gt->type) || ti.nbytes != ggml_nbytes(gt) ||
          ti.ne[0] != gt->ne[0] || ti.ne[1] != gt->ne[1] || ti.offset != gguf_get_tensor_offset(g, static_cast<int64_t>(i)) ||
          std::memcmp(ti.data, gt->data, ti.nbytes) != 0) {
        ++bad;
        why = "tensor " + ti.name;
      }
    }
    if (f->get_uint("gemma4.block_count") != 35 || f->get_string("general.architecture") != "gemma4" ||
        std::fabs(f->get_float("gemma4.attention.layer_norm_rms_epsilon") - 1e-6) > 1e-12 ||
        !f->get_bool("tokenizer.ggml.add_bos_token") || f->get_int("test.i64") != -5 ||
        f->get_uint("test.u64") != (1ull << 40) || f->get_float("test.f64") != 0.25 ||
        f->get_int_array("gemma4.feed_forward_length") != std::vector<int64_t>({6144, 6144, 12288}) ||
        f->get_string_array("tokenizer.ggml.tokens")[2] != "hello world" || f->alignment() != 32) {
      ++bad;
      why = "metadata";
    }
  } catch (const nla::Error& e) {
    ++bad;
    why = e.what();
  }
  std::remove(path.c_str());
  gguf_free(g);
  ggml_free(ctx);
  report(bad == 0, fmt("\"check\":\"gguf_ggml_writer_roundtrip\",\"tensors\":%zu,\"problems\":%d,\"why\":\"%s\"", ts.size(), bad,
                       why.c_str()));
}

// Every vocab GGUF in the reference tree: ours and ggml's reader agree on counts.
void check_vocab_files(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.substr(n.size() - 5) == ".gguf") names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    const std::string path = dir + "/" + n;
    gguf_init_params gp = {true, nullptr};
    gguf_context* g = gguf_init_from_file(path.c_str(), gp);
    bool ok = true;
    std::string why;
    size_t nkv = 0;
    try {
      auto f = nla::GgufFile::open(path);
      nkv = f->metadata().size();
      if (!g) { ok = false; why = "ggml failed but ours opened"; }
      else if (static_cast<int64_t>(nkv) != gguf_get_n_kv(g) || static_cast<int64_t>(f->tensors().size()) != gguf_get_n_tensors(g)) {
        ok = false;
        why = "counts differ";
      } else {
        const int64_t k = gguf_find_key(g, "tokenizer.ggml.tokens");
        if (k >= 0 && gguf_get_arr_n(g, k) != f->get_string_array("tokenizer.ggml.tokens").size()) { ok = false; why = "tokens"; }
        if (k >= 0 && f->get_string_array("tokenizer.ggml.tokens").back() != gguf_get_arr_str(g, k, gguf_get_arr_n(g, k) - 1)) {
          ok = false;
          why = "last token";
        }
      }
    } catch (const nla::Error& e) {
      if (g) { ok = false; why = e.what(); }
    }
    if (g) gguf_free(g);
    report(ok, fmt("\"check\":\"gguf_vocab\",\"file\":\"%s\",\"kv\":%zu,\"why\":\"%s\"", n.c_str(), nkv, why.c_str()));
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef LLAMA_REF_LIBDIR  // set by scripts/setup-reference.sh: .cache/reference/lx/package/bins/linux-x64
  const std::string default_libdir = LLAMA_REF_LIBDIR;
  const std::string default_vocabdir = default_libdir + "/../../../../llama.cpp/models";
#else
  const std::string default_libdir = "/work/refcache/lx/package/bins/linux-x64";
  const std::string default_vocabdir = "/work/refcache/llama.cpp/models";
#endif
  // Usage: quant_check [LIBDIR [VOCAB_DIR]]
  const std::string libdir = argc > 1 ? argv[1] : default_libdir;
  const std::string vocabdir = argc > 2 ? argv[2] : default_vocabdir;
  if (!load_cpu_backend(libdir)) {
    std::printf("{\"ok\":false,\"check\":\"load_cpu_backend\",\"dir\":\"%s\"}\nquant_check: 0 passed, 1 failed\n", libdir.c_str());
    return 1;
  }
  std::printf("{\"info\":\"cpu_backend\",\"variant\":\"%s\",\"ours\":\"%s\"}\n", g_cpu_variant.c_str(),
              nla::cpu::kernels().name);
  check_traits();
  check_fp_conversions();
  for (ggml_type t : kWeightTypes)
    for (uint32_t s : kSeeds)
      for (int64_t n : kLengths) check_dequant(t, s, n);
  // the CPU backend's kernel table (what runs), then the format table's reference implementations
  for (bool kernels : {true, false}) {
    for (ggml_type t : kActTypes)
      for (uint32_t s : kSeeds)
        for (int64_t n : kLengths) check_act(t, s, n, kernels);
    for (ggml_type t : kWeightTypes)
      for (uint32_t s : kSeeds)
        for (int64_t n : kLengths) check_vec_dot(t, s, n, kernels);
  }
  check_gguf_roundtrip();
  check_vocab_files(vocabdir);
  std::printf("{\"info\":\"worst_vec_dot_rel_to_sum_abs\",\"value\":%.3g}\n", g_worst_vecdot);
  std::printf("quant_check: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
