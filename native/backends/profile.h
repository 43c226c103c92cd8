// A backend that times every operation of another one (for `npm run bench -- --profile`): calls, seconds, and
// the work done (multiply-adds counted as 2 operations, bytes of weights read), per op class — products per
// weight format, LoRA, attention, norms, RoPE, GELU, elementwise ops, row lookups, transfers. Operations are
// timed on the calling thread around the inner call, which for the CPU backend is the whole operation (for an
// asynchronous backend it would be the enqueue only). The inner backend's own counters (the CPU backend's time
// quantizing activations inside the products and its thread pool's waits) are reported next to them.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backends/backend.h"

namespace nla {

struct OpStats {
  uint64_t calls = 0;
  double seconds = 0;
  double ops = 0;    // arithmetic operations (a multiply-add is 2)
  double bytes = 0;  // weight bytes read (products), else the tensor bytes touched
};

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  // {"ops": {"matmul:q4_K": {"calls", "seconds", "ops", "bytes"}, ...}, "counters": {...}}; reset: start over.
  std::string report_json(bool reset);

  std::string name() const override { return inner_->name(); }
  std::string description() const override { return inner_->description() + " [profiled]"; }
  void counters(std::map<std::string, double>& out) const override { inner_->counters(out); }
  void reset_counters() override { inner_->reset_counters(); }
  std::unique_ptr<Workspace> new_workspace() override { return inner_->new_workspace(); }
  std::unique_ptr<Buffer> new_buffer(int64_t rows, int64_t cols) override { return inner_->new_buffer(rows, cols); }
  void upload(const Tensor& dst, const float* src) override;
  void download(const Tensor& src, float* dst) override;
  void get_rows(const WeightMatrix& table, const int32_t* ids, int64_t c0, float scale, const Tensor& out) override;
  void matmul(const WeightMatrix& w, const Tensor& x, const Tensor& y, int64_t r0) override;
  void lowrank(const LowRank& p, const Tensor& x, const Tensor& y) override;
  void rms_norm(const Tensor& x, int64_t group, const float* w, float eps, const Tensor& y) override;
  void rope(const Tensor& x, int64_t head_dim, int64_t n_rot, float base, const float* ff, const int32_t* pos) override;
  void attention(const Tensor& q, const std::vector<AttentionSegment>& segments, int n_head, int n_head_kv, int head_dim,
                 int window, const Tensor& out) override;
  void gelu_mul(const Tensor& gate, const Tensor& up, GeluMode mode, const Tensor& out) override;
  void mul(const Tensor& x, const Tensor& y) override;
  void add(const Tensor& x, const Tensor& y) override;
  void scale(const Tensor& x, float s) override;
  void softcap(const Tensor& x, float cap) override;
  void copy(const Tensor& dst, const Tensor& src) override;

 private:
  template <class Fn>
  void timed(const std::string& op, double ops, double bytes, Fn&& fn);
  std::unique_ptr<Backend> inner_;
  std::mutex mu_;
  std::map<std::string, OpStats> stats_;
};

}  // namespace nla
