// The verbalizer (AV): an activation in, text out. The AV prompt is run with the activation written over the
// marker token's embedding (scaled to the injection norm; the per-layer token lookup stays by id, as a forward
// hook on embed_tokens does in transformers), then tokens are decoded until an end-of-generation token, a stop
// string or the length limit. Many activations decode together in one pass per step, each finishing on its own.
//
// The prompt before the marker is the same for every activation: it is run once per Verbalizer (with the AV
// adapter) and each activation's sequence starts from a copy of its K/V, so a request pays only for the few
// tokens from the marker on. The numbers are exactly those of running the whole prompt per activation.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"

namespace nla {

struct InjectionMarker {
  int32_t token = 0;  // the marker (㊗ = 249568 in the Gemma-4 vocabulary)
  int32_t left = 0;   // the ids around it in the prompt (236813, 954); -1: not checked
  int32_t right = 0;
};

// The position of the one marker in `prompt` whose neighbours match. Throws ERR_NLA_INJECTION when none or
// several match (naming what was found).
int64_t find_injection_site(const std::vector<int32_t>& prompt, const InjectionMarker& marker);

struct VerbalizerSpec {
  std::vector<int32_t> prompt;      // the AV prompt's ids (BOS first)
  InjectionMarker marker;
  int adapter_id = 0;               // the AV adapter (0: the base model)
  float injection_norm = 0;         // > 0: each activation is scaled to this L2 norm (√d_model); 0: injected as given
  std::vector<int32_t> eog;         // end-of-generation ids
};

class Verbalizer {
 public:
  Verbalizer(std::shared_ptr<Session> session, VerbalizerSpec spec);
  ~Verbalizer();

  enum class Finish { Eos, Length, Stop };
  struct Options {
    int max_new_tokens = 120;
    SamplerParams sampler;          // item i of a request samples with seed + i
    std::vector<std::string> stop;  // stop strings (in the decoded text, special tokens skipped)
    std::function<bool()> should_abort;
    std::function<void(size_t item, int32_t token)> on_token;  // each generated token as it comes
  };
  struct Result {
    std::vector<int32_t> tokens;  // the generated ids, without the end-of-generation token
    Finish finish = Finish::Length;
  };
  std::vector<Result> run(const std::vector<std::vector<float>>& activations, const Options& options);

  int64_t site() const { return site_; }
  const VerbalizerSpec& spec() const { return spec_; }

 private:
  std::shared_ptr<Session> session_;
  VerbalizerSpec spec_;
  int64_t site_ = 0;
  std::mutex mu_;       // one request at a time (the prefix is set up by the first)
  int prefix_seq_ = 0;  // the prompt before the marker, run once
};

}  // namespace nla
