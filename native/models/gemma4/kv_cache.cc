#include "models/gemma4/kv_cache.h"

#include <algorithm>

namespace nla {
namespace gemma4 {

void LayerKv::make_room(Backend& be, Workspace& ws, int64_t n, int32_t p0) {
  // Rows a query at p0 or later can still see.
  int64_t drop = 0;
  if (window_ > 0)
    while (drop < rows_ && p0 - pos_[static_cast<size_t>(drop)] >= window_) ++drop;
  const int64_t keep = rows_ - drop;
  int64_t cap = cap_;
  // Capacity doubles as a sequence grows (a one-shot pass allocates what it needs); a sliding layer stops
  // growing at twice the window and from then on moves its last window down every window or so tokens.
  if (keep + n > cap) {
    const int64_t doubled = window_ > 0 ? std::min<int64_t>(2 * cap_, 2 * static_cast<int64_t>(window_)) : 2 * cap_;
    cap = std::max<int64_t>(keep + n, doubled);
  }
  if (cap != cap_) {
    std::unique_ptr<Buffer> k = be.new_buffer(cap, cols_), v = be.new_buffer(cap, cols_);
    if (keep > 0) {
      be.copy(k->tensor().rows_view(0, keep), k_->tensor().rows_view(drop, keep));
      be.copy(v->tensor().rows_view(0, keep), v_->tensor().rows_view(drop, keep));
    }
    k_ = std::move(k);
    v_ = std::move(v);
    cap_ = cap;
  } else if (keep > 0) {
    // Same buffers, rows moved down through scratch (the ranges may overlap).
    Tensor tk = ws.alloc(keep, cols_), tv = ws.alloc(keep, cols_);
    be.copy(tk, k_->tensor().rows_view(drop, keep));
    be.copy(tv, v_->tensor().rows_view(drop, keep));
    be.copy(k_->tensor().rows_view(0, keep), tk);
    be.copy(v_->tensor().rows_view(0, keep), tv);
  }
  pos_.erase(pos_.begin(), pos_.begin() + drop);
  rows_ = keep;
}

void LayerKv::append(Backend& be, Workspace& ws, const Tensor& k, const Tensor& v, int32_t p0) {
  const int64_t n = k.rows;
  if (n == 0) return;
  if (rows_ + n > cap_) make_room(be, ws, n, p0);
  be.copy(k_->tensor().rows_view(rows_, n), k);
  be.copy(v_->tensor().rows_view(rows_, n), v);
  for (int64_t i = 0; i < n; ++i) pos_.push_back(p0 + static_cast<int32_t>(i));
  rows_ += n;
}

void LayerKv::truncate_from(int32_t p) {
  while (rows_ > 0 && pos_.back() >= p) {
    pos_.pop_back();
    --rows_;
  }
}

LayerKv LayerKv::clone(Backend& be) const {
  LayerKv c(cols_, window_);
  if (rows_ > 0) {
    c.k_ = be.new_buffer(rows_, cols_);
    c.v_ = be.new_buffer(rows_, cols_);
    be.copy(c.k_->tensor(), k());
    be.copy(c.v_->tensor(), v());
  }
  c.pos_ = pos_;
  c.rows_ = c.cap_ = rows_;
  return c;
}

KvCache::KvCache(const HParams& hp) {
  own_last_ = hp.n_layer_own_kv() - 1;
  layers_.reserve(static_cast<size_t>(hp.n_layer_own_kv()));
  for (int il = 0; il < hp.n_layer_own_kv(); ++il)
    layers_.emplace_back(static_cast<int64_t>(hp.head_dim(il)) * hp.n_head_kv[il], hp.is_swa[il] ? hp.sliding_window : 0);
}

void KvCache::advance(int64_t n, int last) {
  n_past_ += static_cast<int32_t>(n);
  const int reached = std::min(last, own_last_);
  depth_ = depth_ < 0 ? reached : std::min(depth_, reached);
}

std::unique_ptr<KvCache> KvCache::clone(Backend& be) const {
  std::unique_ptr<KvCache> c(new KvCache(*this, be));
  return c;
}

KvCache::KvCache(const KvCache& other, Backend& be) : n_past_(other.n_past_), depth_(other.depth_), own_last_(other.own_last_) {
  layers_.reserve(other.layers_.size());
  for (const LayerKv& l : other.layers_) layers_.push_back(l.clone(be));
}

void KvCache::rollback() {
  for (LayerKv& l : layers_) l.truncate_from(n_past_);
}

size_t KvCache::bytes() const {
  size_t b = 0;
  for (const LayerKv& l : layers_) b += static_cast<size_t>(l.capacity()) * 2 * sizeof(float) * static_cast<size_t>(l.cols());
  return b;
}

}  // namespace gemma4
}  // namespace nla
