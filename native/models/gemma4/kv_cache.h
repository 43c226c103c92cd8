// A sequence's KV cache for Gemma 4: the normed and roped keys and the normed values of every layer that
// computes its own K/V (the KV-shared layers read the cache of the last such layer of their attention type,
// gemma4.md §2.5), in backend memory, rows in position order.
//
// Full-attention layers keep every position. Sliding-window layers keep the window: when a layer needs room
// it drops the keys that no query at or after the next position can see (older than the window), so it holds
// at most about twice the window plus one pass. Rows stay in position order (no ring wrap-around), so
// attention reads one contiguous range and sums over the keys in the same order as a full prefill: a token
// decoded step by step gets exactly the numbers a prefill of the whole sequence gives it.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backends/backend.h"
#include "models/gemma4/model.h"

namespace nla {
namespace gemma4 {

class LayerKv {
 public:
  LayerKv(int64_t cols, int window) : cols_(cols), window_(window) {}

  int64_t rows() const { return rows_; }
  Tensor k() const { return k_ ? k_->tensor().rows_view(0, rows_) : Tensor{}; }
  Tensor v() const { return v_ ? v_->tensor().rows_view(0, rows_) : Tensor{}; }
  const int32_t* pos() const { return pos_.data(); }
  int64_t capacity() const { return cap_; }
  int64_t cols() const { return cols_; }

  // Appends n rows of keys and values (rows of k and v) at positions p0 .. p0 + n - 1.
  void append(Backend& be, Workspace& ws, const Tensor& k, const Tensor& v, int32_t p0);
  // Drops every row at position >= p (undoes the appends of a pass that failed).
  void truncate_from(int32_t p);
  // A copy in new buffers (a fork of a shared prefix).
  LayerKv clone(Backend& be) const;

 private:
  void make_room(Backend& be, Workspace& ws, int64_t n, int32_t p0);
  int64_t cols_;
  int window_;  // 0: full attention
  std::unique_ptr<Buffer> k_, v_;
  std::vector<int32_t> pos_;  // the positions of rows [0, rows_)
  int64_t rows_ = 0, cap_ = 0;
};

class KvCache {
 public:
  explicit KvCache(const HParams& hp);
  KvCache(KvCache&&) = default;

  // The next position: the number of tokens the sequence holds.
  int32_t n_past() const { return n_past_; }
  // The cache a layer's attention reads: its own, or its KV source's for a KV-shared layer.
  const LayerKv& source(const HParams& hp, int il) const { return layers_[static_cast<size_t>(hp.kv_source(il))]; }
  LayerKv& own(int il) { return layers_[static_cast<size_t>(il)]; }
  // The deepest block whose K/V cover every token so far (a pass that stopped early leaves the layers after
  // it without K/V for its tokens); -1 before the first pass.
  int depth() const { return depth_; }
  // Records a pass of n tokens through blocks 0..last.
  void advance(int64_t n, int last);
  // Undoes whatever a failed pass appended (every row at position >= n_past()).
  void rollback();
  // A copy in new buffers: a sequence that continues from this one's tokens (a shared prompt prefix).
  std::unique_ptr<KvCache> clone(Backend& be) const;
  // Bytes of backend memory held.
  size_t bytes() const;

 private:
  KvCache(const KvCache& other, Backend& be);
  std::vector<LayerKv> layers_;  // one per layer that owns its K/V (0 .. n_layer_own_kv - 1)
  int32_t n_past_ = 0;
  int depth_ = -1;
  int own_last_ = 0;
};

}  // namespace gemma4
}  // namespace nla
