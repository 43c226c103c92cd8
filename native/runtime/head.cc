#include "runtime/head.h"

#include <cmath>
#include <string>

#include "common/error.h"

// A fused multiply-add would not change the result (a float × float product is exact in double), but keep the
// compiler from reassociating anything.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace nla {

LinearHead::LinearHead(std::vector<float> weight, std::vector<float> bias, int64_t in_dim, int64_t out_dim)
    : w_(std::move(weight)), b_(std::move(bias)), in_(in_dim), out_(out_dim) {
  if (in_ <= 0 || out_ <= 0 || static_cast<int64_t>(w_.size()) != in_ * out_ || static_cast<int64_t>(b_.size()) != out_)
    throw Error(code::HEAD_INVALID, "linear head: weight has " + std::to_string(w_.size()) + " values and bias " +
                                        std::to_string(b_.size()) + ", expected " + std::to_string(out_) + "×" +
                                        std::to_string(in_) + " and " + std::to_string(out_));
  for (float v : w_)
    if (!std::isfinite(v)) throw Error(code::HEAD_INVALID, "linear head: the weight has a non-finite value");
  for (float v : b_)
    if (!std::isfinite(v)) throw Error(code::HEAD_INVALID, "linear head: the bias has a non-finite value");
}

void LinearHead::apply(const float* h, float* y) const {
  for (int64_t i = 0; i < in_; ++i)
    if (!std::isfinite(h[i]))
      throw Error(code::INVALID_ARG, "linear head: input value " + std::to_string(i) + " is not finite");
  for (int64_t o = 0; o < out_; ++o) {
    const float* row = w_.data() + o * in_;
    double acc = 0;
    for (int64_t i = 0; i < in_; ++i) acc += static_cast<double>(row[i]) * static_cast<double>(h[i]);
    y[o] = static_cast<float>(acc + static_cast<double>(b_[o]));
  }
}

}  // namespace nla
