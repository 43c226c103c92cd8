// Choosing the next token from a row of logits: greedy (the default; the released scripts' do_sample=False), or
// temperature / top-k / top-p sampling from a seeded generator. Deterministic everywhere: the generator and the
// uniform draws are defined here (not by the standard library), so a seed gives the same tokens on any platform.
#pragma once
#include <cstdint>
#include <vector>

namespace nla {

struct SamplerParams {
  float temperature = 0.0f;  // <= 0: greedy (argmax, the first index on ties)
  int top_k = 0;             // 0: all tokens
  float top_p = 1.0f;        // 1: no nucleus cut
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  // The next token. As transformers' logits warpers, in this order: temperature, top-k, top-p; then a draw.
  int32_t sample(const float* logits, int64_t n_vocab);
  static int32_t argmax(const float* logits, int64_t n_vocab);

 private:
  double uniform();  // [0, 1), 53 bits
  SamplerParams p_;
  uint64_t s_[4];  // xoshiro256**
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace nla
