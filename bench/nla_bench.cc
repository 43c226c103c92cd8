// nla-ar side of the benchmark (driven by bench/run.js): loads the engine in a fresh process and times
// reconstruct-style forward passes (blocks 0..layer, LoRA applied, last-token state read back).
//
//   nla_bench --model M.gguf [--adapter DIR] [--layer 17] [--threads 2] [--lengths 16,64,256]
//             [--repeat 5] [--warmup 1] [--batch 16] [--batch-length 64] [--seed 1]
//
// Prints one JSON object: load_ms (open + adapter), per-length median/all times, the batch time, peak RSS
// (getrusage ru_maxrss, i.e. of this whole process) and the kernels in use.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/requests.h"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Same prompts as bench/run.js gives llama.cpp: BOS then ordinary tokens of the synthetic vocab (LCG).
std::vector<int32_t> prompt(int n, uint32_t seed, int vocab) {
  std::vector<int32_t> out(static_cast<size_t>(n));
  out[0] = 2;
  uint32_t s = seed;
  for (int i = 1; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    out[i] = 300 + static_cast<int32_t>(s % static_cast<uint32_t>(vocab - 300));
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string join(const std::vector<double>& v) {
  std::ostringstream o;
  for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
  return o.str();
}

long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2) a[std::string(argv[i]).substr(2)] = argv[i + 1];
  auto num = [&](const char* k, long d) { return a.count(k) ? std::atol(a[k].c_str()) : d; };
  if (!a.count("model")) {
    std::fprintf(stderr, "usage: nla_bench --model M.gguf [--adapter DIR] [--layer 17] [--threads 2] ...\n");
    return 2;
  }
  try {
    const int layer = static_cast<int>(num("layer", 17));
    const int repeat = static_cast<int>(num("repeat", 5)), warmup = static_cast<int>(num("warmup", 1));
    const int batch = static_cast<int>(num("batch", 16)), batch_len = static_cast<int>(num("batch-length", 64));
    const uint32_t seed = static_cast<uint32_t>(num("seed", 1));
    std::vector<int> lengths;
    {
      std::stringstream ss(a.count("lengths") ? a["lengths"] : "16,64,256");
      std::string tok;
      while (std::getline(ss, tok, ',')) lengths.push_back(std::atoi(tok.c_str()));
    }
    nla::ModelOptions mo;
    mo.path = a["model"];
    mo.threads = static_cast<int>(num("threads", 2));

    const auto t0 = Clock::now();
    std::shared_ptr<nla::Model> model = nla::Model::load(mo);
    const int adapter = a.count("adapter") ? model->load_adapter(a["adapter"]) : 0;
    nla::Session session(model);
    const double load_ms = ms_since(t0);
    const long rss_after_load = peak_rss_kb();
    const int vocab = model->hparams().n_vocab;

    // blocks 0..layer with the LoRA, the last token's state read back; exact tanh GELU: the Reconstructor's
    // default (--gelu fp16-table: llama.cpp's table, as the differential tests)
    auto run = [&](const std::vector<std::vector<int32_t>>& toks) {
      nla::PromptRequest r;
      r.tokens = toks;
      r.layer = layer;
      r.adapter_id = adapter;
      r.gelu = a.count("gelu") && a["gelu"] == "fp16-table" ? nla::GeluMode::Fp16Table : nla::GeluMode::Exact;
      return nla::hidden_states(session, r);
    };
    std::printf("{\"load_ms\":%.1f,\"backend\":\"%s\",\"weights\":\"%s\",\"layer\":%d,\"threads\":%d,\"lengths\":{",
                load_ms, model->backend().description().c_str(), model->weights().weight_types_summary().c_str(), layer,
                mo.threads);
    for (size_t li = 0; li < lengths.size(); ++li) {
      const std::vector<int32_t> toks = prompt(lengths[li], seed, vocab);
      std::vector<double> times;
      for (int r = 0; r < warmup + repeat; ++r) {
        const auto t = Clock::now();
        run({toks});
        if (r >= warmup) times.push_back(ms_since(t));
      }
      std::printf("%s\"%d\":{\"median_ms\":%.2f,\"ms\":[%s]}", li ? "," : "", lengths[li], median(times),
                  join(times).c_str());
      std::fflush(stdout);
    }
    std::printf("}");
    if (batch > 0) {
      std::vector<std::vector<int32_t>> prompts;
      for (int i = 0; i < batch; ++i) prompts.push_back(prompt(batch_len, seed + 1000 + i, vocab));
      // the same prompts as one batched request (passes over several prompts at once) and one request each
      std::vector<double> batched, looped;
      for (int r = 0; r < std::max(1, repeat / 2); ++r) {
        auto t = Clock::now();
        run(prompts);
        batched.push_back(ms_since(t));
        t = Clock::now();
        for (const auto& p : prompts) run({p});
        looped.push_back(ms_since(t));
      }
      std::printf(",\"batch\":{\"n\":%d,\"length\":%d,\"median_ms\":%.2f,\"ms\":[%s],\"looped_median_ms\":%.2f,\"looped_ms\":[%s]}",
                  batch, batch_len, median(batched), join(batched).c_str(), median(looped), join(looped).c_str());
    }
    std::printf(",\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n", rss_after_load, peak_rss_kb());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nla_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
