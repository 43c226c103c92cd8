#include "backends/profile.h"

#include <chrono>
#include <sstream>

namespace nla {

namespace {
double bytes_of(const Tensor& t) { return static_cast<double>(t.rows) * static_cast<double>(t.cols) * sizeof(float); }
}  // namespace

template <class Fn>
void ProfilingBackend::timed(const std::string& op, double ops, double bytes, Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(mu_);
  OpStats& st = stats_[op];
  st.calls++;
  st.seconds += s;
  st.ops += ops;
  st.bytes += bytes;
}

std::string ProfilingBackend::report_json(bool reset) {
  std::map<std::string, double> counters;
  inner_->counters(counters);
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream o;
  o.precision(9);
  o << "{\"ops\":{";
  bool first = true;
  for (const auto& [name, st] : stats_) {
    o << (first ? "" : ",") << '"' << name << "\":{\"calls\":" << st.calls << ",\"seconds\":" << st.seconds << ",\"ops\":" << st.ops
      << ",\"bytes\":" << st.bytes << '}';
    first = false;
  }
  o << "},\"counters\":{";
  first = true;
  for (const auto& [name, v] : counters) {
    o << (first ? "" : ",") << '"' << name << "\":" << v;
    first = false;
  }
  o << "}}";
  if (reset) {
    stats_.clear();
    inner_->reset_counters();
  }
  return o.str();
}

void ProfilingBackend::upload(const Tensor& dst, const float* src) {
  timed("upload", 0, bytes_of(dst), [&] { inner_->upload(dst, src); });
}
void ProfilingBackend::download(const Tensor& src, float* dst) {
  timed("download", 0, bytes_of(src), [&] { inner_->download(src, dst); });
}
void ProfilingBackend::get_rows(const WeightMatrix& table, const int32_t* ids, int64_t c0, float scale, const Tensor& out) {
  timed("get_rows", 0, static_cast<double>(out.rows) * static_cast<double>(table.row_bytes), [&] { inner_->get_rows(table, ids, c0, scale, out); });
}
void ProfilingBackend::matmul(const WeightMatrix& w, const Tensor& x, const Tensor& y, int64_t r0) {
  const double ops = 2.0 * static_cast<double>(x.rows) * static_cast<double>(w.in) * static_cast<double>(y.cols);
  timed(std::string("matmul:") + type_traits(w.type).name, ops, static_cast<double>(y.cols) * static_cast<double>(w.row_bytes),
        [&] { inner_->matmul(w, x, y, r0); });
}
void ProfilingBackend::lowrank(const LowRank& p, const Tensor& x, const Tensor& y) {
  const double ops = 2.0 * static_cast<double>(x.rows) * static_cast<double>(p.rank) * static_cast<double>(p.in + p.out);
  timed("lora", ops, static_cast<double>(p.rank) * static_cast<double>(p.in + p.out) * sizeof(float), [&] { inner_->lowrank(p, x, y); });
}
void ProfilingBackend::rms_norm(const Tensor& x, int64_t group, const float* w, float eps, const Tensor& y) {
  timed("rms_norm", 3.0 * static_cast<double>(x.rows) * static_cast<double>(x.cols), 2 * bytes_of(x), [&] { inner_->rms_norm(x, group, w, eps, y); });
}
void ProfilingBackend::rope(const Tensor& x, int64_t head_dim, int64_t n_rot, float base, const float* ff, const int32_t* pos) {
  const double ops = 3.0 * static_cast<double>(x.rows) * static_cast<double>(x.cols / head_dim) * static_cast<double>(n_rot);
  timed("rope", ops, 2 * bytes_of(x), [&] { inner_->rope(x, head_dim, n_rot, base, ff, pos); });
}
void ProfilingBackend::attention(const Tensor& q, const std::vector<AttentionSegment>& segments, int n_head, int n_head_kv, int head_dim,
                                 int window, const Tensor& out) {
  double ops = 0, bytes = 0;
  for (const AttentionSegment& s : segments) {
    // visible keys per query: the causal (and sliding) window within the segment's keys
    for (int64_t i = 0; i < s.q_rows; ++i) {
      int64_t keys = 0;
      for (int64_t j = 0; j < s.keys; ++j)
        if (s.k_pos[j] <= s.q_pos[i] && (window <= 0 || s.q_pos[i] - s.k_pos[j] < window)) ++keys;
      ops += 4.0 * static_cast<double>(keys) * head_dim * n_head;  // q·k and p·v, multiply-adds
    }
    bytes += 2.0 * static_cast<double>(s.keys) * head_dim * n_head_kv * sizeof(float);
  }
  timed("attention", ops, bytes, [&] { inner_->attention(q, segments, n_head, n_head_kv, head_dim, window, out); });
}
void ProfilingBackend::gelu_mul(const Tensor& gate, const Tensor& up, GeluMode mode, const Tensor& out) {
  timed("gelu_mul", 0, (up.data ? 3 : 2) * bytes_of(gate), [&] { inner_->gelu_mul(gate, up, mode, out); });
}
void ProfilingBackend::mul(const Tensor& x, const Tensor& y) { timed("elementwise", static_cast<double>(x.rows * x.cols), 3 * bytes_of(x), [&] { inner_->mul(x, y); }); }
void ProfilingBackend::add(const Tensor& x, const Tensor& y) { timed("elementwise", static_cast<double>(x.rows * x.cols), 3 * bytes_of(x), [&] { inner_->add(x, y); }); }
void ProfilingBackend::scale(const Tensor& x, float s) { timed("elementwise", static_cast<double>(x.rows * x.cols), 2 * bytes_of(x), [&] { inner_->scale(x, s); }); }
void ProfilingBackend::softcap(const Tensor& x, float cap) { timed("softcap", 0, 2 * bytes_of(x), [&] { inner_->softcap(x, cap); }); }
void ProfilingBackend::copy(const Tensor& dst, const Tensor& src) { timed("copy", 0, 2 * bytes_of(src), [&] { inner_->copy(dst, src); }); }

}  // namespace nla
