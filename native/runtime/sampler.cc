#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace nla {

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Sampler::Sampler(const SamplerParams& p) : p_(p) {
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature))
    throw Error(code::INVALID_ARG, "temperature must be a finite number >= 0");
  if (p.top_k < 0) throw Error(code::INVALID_ARG, "top_k must be >= 0");
  if (!(p.top_p > 0 && p.top_p <= 1)) throw Error(code::INVALID_ARG, "top_p must be in (0, 1]");
  uint64_t x = p.seed;
  for (uint64_t& v : s_) v = splitmix64(x);
}

double Sampler::uniform() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return static_cast<double>(result >> 11) * 0x1.0p-53;
}

int32_t Sampler::argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

int32_t Sampler::sample(const float* logits, int64_t n) {
  if (p_.temperature <= 0) return argmax(logits, n);
  // temperature
  cand_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) cand_[static_cast<size_t>(i)] = {logits[i] / p_.temperature, static_cast<int32_t>(i)};
  // top-k (ties at the k-th value are cut by index, the order a stable sort gives)
  auto by_logit = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    keep = static_cast<size_t>(p_.top_k);
    cand_.resize(keep);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // softmax over the kept tokens (in double)
  const double mx = cand_[0].first;
  std::vector<double> prob(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += prob[i] = std::exp(static_cast<double>(cand_[i].first) - mx);
  for (double& v : prob) v /= sum;
  // top-p: the smallest prefix (in descending order) whose mass reaches top_p, at least one token
  if (p_.top_p < 1) {
    double c = 0;
    size_t cut = keep;
    for (size_t i = 0; i < keep; ++i) {
      c += prob[i];
      if (c >= p_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    double s2 = 0;
    for (size_t i = 0; i < keep; ++i) s2 += prob[i];
    for (size_t i = 0; i < keep; ++i) prob[i] /= s2;
  }
  double u = uniform(), c = 0;
  for (size_t i = 0; i < keep; ++i) {
    c += prob[i];
    if (u < c) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace nla
