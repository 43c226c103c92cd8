// nla-ar side of the benchmark (driven by bench/run.js): loads the engine in a fresh process and times
// reconstruct-style forward passes (blocks 0..layer, LoRA applied, last-token state read back).
//
//   nla_bench --model M.gguf [--adapter DIR] [--layer 17] [--threads 2] [--lengths 16,64,256]
//             [--repeat 5] [--warmup 1] [--batch 16] [--batch-length 64] [--seed 1]
//             [--av DIR --av-template FILE --av-marker T,L,R [--av-steps 120] [--av-batch 16]]
// With --av: the verbalizer (AV LoRA, all blocks + LM head) on one and on av-batch activations: a call that
// generates one token (prefill) and one that generates av-steps (no end-of-generation token, so every call runs
// to the limit); decode rate = (steps − 1) / (time − prefill time). The AR adapter stays loaded on the same model
// (the Autoencoder's memory: one base model, both adapters, their caches).
//
//   nla_bench --evict FILE[,FILE...]   drops the files from the page cache (posix_fadvise DONTNEED) and prints the
//                                      resident share before and after (mincore), for the cold-start rows.
//
// Prints one JSON object: load_ms (open + adapter), per-length median/all times, the batch time, peak RSS
// (getrusage ru_maxrss, i.e. of this whole process) and the kernels in use.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/requests.h"
#include "runtime/verbalizer.h"

#include <fstream>

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

// The share of a file's pages in the page cache.
double resident(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return -1;
  struct stat st{};
  fstat(fd, &st);
  double share = -1;
  if (st.st_size > 0) {
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE)), n = (static_cast<size_t>(st.st_size) + page - 1) / page;
      std::vector<unsigned char> v(n);
      if (mincore(p, static_cast<size_t>(st.st_size), v.data()) == 0) {
        size_t in = 0;
        for (unsigned char c : v) in += c & 1;
        share = static_cast<double>(in) / static_cast<double>(n);
      }
      munmap(p, static_cast<size_t>(st.st_size));
    }
  }
  close(fd);
  return share;
}

int evict(const std::string& list) {
  std::stringstream ss(list);
  std::string f;
  std::printf("{");
  bool first = true;
  while (std::getline(ss, f, ',')) {
    const double before = resident(f);
    const int fd = open(f.c_str(), O_RDONLY);
    if (fd < 0) {
      std::fprintf(stderr, "nla_bench: cannot open %s\n", f.c_str());
      return 1;
    }
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    std::printf("%s\"%s\":{\"before\":%.3f,\"after\":%.3f}", first ? "" : ",", f.c_str(), before, resident(f));
    first = false;
  }
  std::printf("}\n");
  return 0;
}

int main(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2) a[std::string(argv[i]).substr(2)] = argv[i + 1];
  if (a.count("evict")) return evict(a["evict"]);
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
    // --profile 1: every backend op timed (slightly slower); the per-op report follows each measurement
    mo.profile = num("profile", 0) != 0;

    const auto t0 = Clock::now();
    std::shared_ptr<nla::Model> model = nla::Model::load(mo);
    const int adapter = a.count("adapter") ? model->load_adapter(a["adapter"]) : 0;
    model->prefetch(layer);  // as Reconstructor.load does
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
      double first_ms = -1;
      for (int r = 0; r < warmup + repeat; ++r) {
        const auto t = Clock::now();
        run({toks});
        if (first_ms < 0) first_ms = ms_since(t);
        if (r >= warmup) times.push_back(ms_since(t));
      }
      model->profile_json(true);  // the warm-up and timed runs again, profiled alone
      if (mo.profile) run({toks});
      std::printf("%s\"%d\":{\"median_ms\":%.2f,\"ms\":[%s],\"first_ms\":%.2f,\"profile\":%s}", li ? "," : "", lengths[li],
                  median(times), join(times).c_str(), first_ms, model->profile_json(true).c_str());
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
    if (a.count("av")) {
      std::ifstream tf(a["av-template"], std::ios::binary);
      const std::string templ((std::istreambuf_iterator<char>(tf)), std::istreambuf_iterator<char>());
      nla::VerbalizerSpec spec;
      spec.prompt = model->tokenizer().encode(templ, true, true);
      std::sscanf(a["av-marker"].c_str(), "%d,%d,%d", &spec.marker.token, &spec.marker.left, &spec.marker.right);
      spec.adapter_id = model->load_adapter(a["av"]);
      spec.injection_norm = std::sqrt(static_cast<float>(model->hparams().n_embd));
      auto av_session = std::make_shared<nla::Session>(model);
      nla::Verbalizer av(av_session, spec);
      const int steps = static_cast<int>(num("av-steps", 120)), nb = static_cast<int>(num("av-batch", 16));
      auto acts = [&](int n) {
        std::vector<std::vector<float>> v(static_cast<size_t>(n), std::vector<float>(static_cast<size_t>(model->hparams().n_embd)));
        for (int i = 0; i < n; ++i)
          for (size_t j = 0; j < v[i].size(); ++j) v[i][j] = std::sin(0.37f * j + 1.3f * i);
        return v;
      };
      auto time_gen = [&](int n, int max_new) {
        nla::Verbalizer::Options o;
        o.max_new_tokens = max_new;
        const auto t = Clock::now();
        auto r = av.run(acts(n), o);
        const double ms = ms_since(t);
        for (const auto& x : r)
          if (static_cast<int>(x.tokens.size()) != max_new) throw std::runtime_error("a generation stopped early");
        return ms;
      };
      time_gen(1, 2);  // warm-up: the prompt before the marker runs once here
      std::vector<double> p1, t1, pb, tb;
      for (int r = 0; r < std::max(1, repeat / 2); ++r) {
        p1.push_back(time_gen(1, 1));
        t1.push_back(time_gen(1, steps));
        pb.push_back(time_gen(nb, 1));
        tb.push_back(time_gen(nb, steps));
      }
      // --profile 1: one more generation of one activation and one of av-batch, each profiled alone
      std::string prof1 = "null", profB = "null";
      if (mo.profile) {
        model->profile_json(true);
        time_gen(1, steps);
        prof1 = model->profile_json(true);
        time_gen(nb, steps);
        profB = model->profile_json(true);
      }
      std::printf(",\"av\":{\"prompt_tokens\":%zu,\"site\":%lld,\"steps\":%d,\"batch\":%d,\"prefill1_ms\":%.2f,\"gen1_ms\":%.2f,"
                  "\"prefillB_ms\":%.2f,\"genB_ms\":%.2f,\"profile1\":%s,\"profileB\":%s}",
                  spec.prompt.size(), static_cast<long long>(av.site()), steps, nb, median(p1), median(t1), median(pb), median(tb),
                  prof1.c_str(), profB.c_str());
    }
    std::printf(",\"rss_after_load_kb\":%ld,\"peak_rss_kb\":%ld}\n", rss_after_load, peak_rss_kb());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nla_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
