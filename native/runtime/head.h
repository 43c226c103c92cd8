// The AR's linear head in the engine: reconstruction = W h + b with the fp32 weight [out, in] (nn.Linear
// layout) and bias [out]. The arithmetic is the TypeScript LinearHead.apply's exactly (each product exact in
// double, summed in double in index order, the bias added in double, rounded once to float), so both give the
// same bits.
#pragma once
#include <cstdint>
#include <vector>

namespace nla {

class LinearHead {
 public:
  // Throws ERR_NLA_HEAD_INVALID for inconsistent sizes or non-finite values.
  LinearHead(std::vector<float> weight, std::vector<float> bias, int64_t in_dim, int64_t out_dim);

  int64_t in_dim() const { return in_; }
  int64_t out_dim() const { return out_; }
  // y[out_dim] = W h + b. h must hold in_dim finite values (ERR_NLA_INVALID_ARG otherwise).
  void apply(const float* h, float* y) const;

 private:
  std::vector<float> w_, b_;
  int64_t in_, out_;
};

}  // namespace nla
