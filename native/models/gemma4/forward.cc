#include "models/gemma4/forward.h"

#include <algorithm>
#include <cmath>

namespace nla {
namespace gemma4 {

namespace {

// The mechanics of a batched pass, kept out of the forward pass's way: which rows belong to which sequence,
// the rows' positions, the adapter groups for the LoRA products, and the copies that read results back.
class Rows {
 public:
  Rows(Backend& be, Workspace& ws, std::vector<SequencePass>& seqs) : be_(be), ws_(ws), seqs_(seqs) {
    int64_t r = 0;
    for (SequencePass& s : seqs_) {
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      first_.push_back(r);
      count_.push_back(n);
      for (int64_t i = 0; i < n; ++i) {
        pos_.push_back(s.cache->n_past() + static_cast<int32_t>(i));
        tokens_.push_back(s.tokens[static_cast<size_t>(i)]);
      }
      r += n;
    }
    total_ = r;
    groups();
  }

  int64_t total() const { return total_; }
  const int32_t* tokens() const { return tokens_.data(); }
  const int32_t* pos() const { return pos_.data(); }
  int64_t first(size_t s) const { return first_[s]; }
  int64_t count(size_t s) const { return count_[s]; }

  // The rows a pass reads of sequence s.
  int64_t wanted(size_t s) const {
    switch (seqs_[s].read) {
      case Read::None: return 0;
      case Read::Last: return 1;
      default: return static_cast<int64_t>(seqs_[s].tokens.size());
    }
  }

  // y += the adapter's update for (il, target), for each run of rows that shares an adapter.
  void lora(int il, LoraTarget target, const Tensor& x, const Tensor& y) const {
    for (const Group& g : groups_)
      if (const LoraMatrixPair* p = g.adapter ? g.adapter->get(il, target) : nullptr)
        be_.lowrank(p->lowrank(), x.rows_view(g.row0, g.rows), y.rows_view(g.row0, g.rows));
  }

  // Whether dropping the rows no one reads (each sequence's rows but its wanted last ones) saves anything.
  bool can_trim() const {
    for (size_t s = 0; s < seqs_.size(); ++s)
      if (count_[s] > wanted(s)) return true;
    return false;
  }

  // Keeps each sequence's wanted rows of the given tensors (copied into fresh scratch, so the kept rows'
  // values are exactly those computed so far) and updates the row tables.
  void trim(std::initializer_list<Tensor*> tensors) {  // null tensors (no per-layer inputs) are skipped
    std::vector<std::pair<int64_t, int64_t>> keep;  // (source row, rows)
    int64_t r = 0;
    std::vector<int32_t> pos;
    for (size_t s = 0; s < seqs_.size(); ++s) {
      const int64_t n = wanted(s), src = first_[s] + count_[s] - n;
      keep.emplace_back(src, n);
      pos.insert(pos.end(), pos_.begin() + src, pos_.begin() + src + n);
      first_[s] = r;
      count_[s] = n;
      r += n;
    }
    for (Tensor* t : tensors) {
      if (!t->data) continue;
      Tensor out = ws_.alloc(r, t->cols);
      int64_t dst = 0;
      for (const auto& [src, n] : keep) {
        be_.copy(out.rows_view(dst, n), t->rows_view(src, n));
        dst += n;
      }
      *t = out;
    }
    pos_ = std::move(pos);
    total_ = r;
    groups();
  }

  // Reads each sequence's wanted rows of h into out[s] (rows × cols floats).
  void read(const Tensor& h, const std::function<std::vector<float>&(size_t)>& out) const {
    for (size_t s = 0; s < seqs_.size(); ++s) {
      const int64_t n = wanted(s), src = first_[s] + count_[s] - n;
      std::vector<float>& v = out(s);
      v.resize(static_cast<size_t>(n * h.cols));
      be_.download(h.rows_view(src, n), v.data());
    }
  }

 private:
  struct Group { const LoraAdapter* adapter; int64_t row0, rows; };
  void groups() {
    groups_.clear();
    for (size_t s = 0; s < seqs_.size(); ++s) {
      const LoraAdapter* a = seqs_[s].adapter;
      if (!groups_.empty() && groups_.back().adapter == a && groups_.back().row0 + groups_.back().rows == first_[s])
        groups_.back().rows += count_[s];
      else
        groups_.push_back(Group{a, first_[s], count_[s]});
    }
  }

  Backend& be_;
  Workspace& ws_;
  std::vector<SequencePass>& seqs_;
  std::vector<int64_t> first_, count_;  // each sequence's rows in the current tensors
  std::vector<int32_t> pos_, tokens_;   // per current row (tokens: of the initial rows)
  std::vector<Group> groups_;
  int64_t total_ = 0;
};

void check(const HParams& hp, const std::vector<SequencePass>& seqs, const PassOptions& o, int last) {
  if (seqs.empty()) throw Error(code::INVALID_ARG, "forward: no sequences");
  if (last < 0 || last >= hp.n_layer)
    throw Error(code::INVALID_ARG, "last layer " + std::to_string(o.last_layer) + " is outside [0, " +
                                       std::to_string(hp.n_layer - 1) + "]");
  for (int l : o.capture_layers)
    if (l < 0 || l > last)
      throw Error(code::INVALID_ARG, "capture layer " + std::to_string(l) + " is outside the computed blocks [0, " +
                                         std::to_string(last) + "]");
  for (const SequencePass& s : seqs) {
    if (s.tokens.empty()) throw Error(code::INVALID_ARG, "forward: a sequence has no tokens");
    if (s.logits && last != hp.n_layer - 1) throw Error(code::INVALID_ARG, "logits need every block (last_layer = -1)");
    if (s.logits && s.read == Read::None) throw Error(code::INVALID_ARG, "logits need rows to read");
    const int depth = s.cache->depth();
    if (s.cache->n_past() > 0 && depth < std::min(last, hp.n_layer_own_kv() - 1))
      throw Error(code::INVALID_ARG, "the sequence's earlier tokens were run through block " + std::to_string(depth) +
                                         " only; it cannot continue through block " + std::to_string(last));
    for (size_t i = 0; i < s.tokens.size(); ++i)
      if (s.tokens[i] < 0 || s.tokens[i] >= hp.n_vocab)
        throw Error(code::INVALID_ARG, "token " + std::to_string(s.tokens[i]) + " at position " + std::to_string(i) +
                                           " is outside the vocabulary [0, " + std::to_string(hp.n_vocab) + ")");
    for (const auto& ov : s.overrides) {
      if (ov.position < 0 || ov.position >= static_cast<int64_t>(s.tokens.size()))
        throw Error(code::INVALID_ARG, "embedding override position " + std::to_string(ov.position) + " is outside the prompt");
      if (static_cast<int>(ov.values.size()) != hp.n_embd)
        throw Error(code::INVALID_ARG, "embedding override has " + std::to_string(ov.values.size()) + " values, expected " +
                                           std::to_string(hp.n_embd));
      for (float v : ov.values)
        if (!std::isfinite(v)) throw Error(code::INVALID_ARG, "embedding override contains a non-finite value");
    }
  }
}

}  // namespace

void forward(const Weights& W, Backend& be, Workspace& ws, std::vector<SequencePass>& seqs, const PassOptions& opt) {
  const HParams& hp = W.hparams();
  const int last = opt.last_layer < 0 ? hp.n_layer - 1 : opt.last_layer;
  check(hp, seqs, opt, last);
  ws.reset();
  Rows rows(be, ws, seqs);
  const int64_t T = rows.total();
  const int64_t d = hp.n_embd, P = hp.ple_dim;
  const float eps = hp.eps;
  const bool observing = opt.observe && !opt.observe_names.empty();
  auto observe = [&](const char* name, int il, const Tensor& t) {
    if (!observing) return;
    const std::string full = il < 0 ? std::string(name) : std::string(name) + "-" + std::to_string(il);
    if (std::find(opt.observe_names.begin(), opt.observe_names.end(), full) == opt.observe_names.end()) return;
    std::vector<float> host(static_cast<size_t>(t.rows * t.cols));
    be.download(t, host.data());
    opt.observe(full, t.rows, t.cols, host.data());
  };
  auto project = [&](const Matrix& w, int il, LoraTarget target, const Tensor& x, const Tensor& y) {
    be.matmul(w, x, y);
    rows.lora(il, target, x, y);
  };
  for (SequencePass& s : seqs) {
    s.hidden.assign(opt.capture_layers.size(), {});
    s.logits_out.clear();
    s.rows = rows.wanted(static_cast<size_t>(&s - seqs.data()));
    s.first_row = static_cast<int64_t>(s.tokens.size()) - s.rows;
  }

  // Working buffers, allocated once at the widest layer's size (llama2.c's RunState).
  int64_t max_q = 0, max_kv = 0, max_ff = 0;
  for (int il = 0; il <= last; ++il) {
    max_q = std::max<int64_t>(max_q, int64_t(hp.head_dim(il)) * hp.n_head[il]);
    max_kv = std::max<int64_t>(max_kv, int64_t(hp.head_dim(il)) * hp.n_head_kv[il]);
    max_ff = std::max<int64_t>(max_ff, hp.n_ff[il]);
  }
  Tensor h = ws.alloc(T, d);       // residual stream
  Tensor x = ws.alloc(T, d);       // normed input of a sub-block
  Tensor q = ws.alloc(T, max_q);
  Tensor qkv = ws.alloc(T, max_q + 2 * max_kv);  // fused projection output, if the model has one
  Tensor k = ws.alloc(T, max_kv), v = ws.alloc(T, max_kv);
  Tensor att = ws.alloc(T, max_q);
  Tensor branch = ws.alloc(T, d);  // output of a branch (attention, MLP, per-layer input)
  Tensor gate = ws.alloc(T, max_ff);
  Tensor up = ws.alloc(T, max_ff);

  // 1. Token embeddings, scaled by √d; optional per-position overrides (already in scaled units).
  be.get_rows(W.token_embd, rows.tokens(), 0, std::sqrt(static_cast<float>(d)), h);
  for (size_t s = 0; s < seqs.size(); ++s)
    for (const auto& ov : seqs[s].overrides) be.upload(h.rows_view(rows.first(s) + ov.position, 1), ov.values.data());
  observe("inp_scaled", -1, h);

  // 2. Per-layer inputs z[t, ℓ, :] for the blocks we run: (RMSNorm(W_plm e / √d) + P[t]·√P) / √2.
  Tensor ple;
  if (P > 0) {
    const int64_t n_ple = (last + 1) * P;
    Tensor tok = ws.alloc(T, n_ple);
    be.get_rows(W.per_layer_token_embd, rows.tokens(), 0, std::sqrt(static_cast<float>(P)), tok);
    ple = ws.alloc(T, n_ple);
    be.matmul(W.per_layer_model_proj, h, ple);
    be.scale(ple, 1.0f / std::sqrt(static_cast<float>(d)));
    be.rms_norm(ple, P, W.per_layer_proj_norm.data(), eps, ple);
    be.add(ple, tok);
    be.scale(ple, 1.0f / std::sqrt(2.0f));
    observe("inp_per_layer", -1, ple);
  }

  // KV-shared blocks write no K/V, so once the last block that writes K/V (or the last block run) has its
  // K/V, every later state of a token feeds nothing but its own row: the rows no one reads are dropped there.
  const int trim_at = observing || !rows.can_trim() ? -1 : std::min(last, hp.n_layer_own_kv() - 1);
  for (int il = 0; il <= last; ++il) {
    if (opt.should_abort && opt.should_abort()) throw Error(code::ABORTED, "the forward pass was aborted");
    const Layer& w = W.layers()[il];
    const int hd = hp.head_dim(il), n_head = hp.n_head[il], n_head_kv = hp.n_head_kv[il];
    const int64_t q_out = int64_t(hd) * n_head, kv_out = int64_t(hd) * n_head_kv;
    const float* ff = hp.is_swa[il] || W.rope_freqs.empty() ? nullptr : W.rope_freqs.data();
    const int window = hp.is_swa[il] ? hp.sliding_window : 0;

    // The scratch views hold the rows still computed (all of them until the rows no one reads are dropped).
    const int64_t R = rows.total();
    Tensor xr = x.rows_view(0, R), br = branch.rows_view(0, R);

    // 3. Attention: x = RMSNorm(h); q = RoPE(RMSNorm_head(W_q x)); K/V own (appended to the caches) or shared.
    be.rms_norm(h, d, w.attn_norm.data(), eps, xr);
    observe("attn_norm", il, xr);
    Tensor qc = q.rows_view(0, R).cols_view(0, q_out);
    Tensor kc = k.rows_view(0, R).cols_view(0, kv_out), vc = v.rows_view(0, R).cols_view(0, kv_out);
    if (w.attn_qkv) {
      Tensor all = qkv.rows_view(0, R).cols_view(0, q_out + 2 * kv_out);
      be.matmul(w.attn_qkv, xr, all);
      be.copy(qc, all.cols_view(0, q_out));
      rows.lora(il, LoraTarget::Q, xr, qc);
      if (hp.has_own_kv(il)) {
        be.copy(kc, all.cols_view(q_out, kv_out));
        be.copy(vc, all.cols_view(q_out + kv_out, kv_out));
        rows.lora(il, LoraTarget::K, xr, kc);
        rows.lora(il, LoraTarget::V, xr, vc);
      }
    } else {
      project(w.attn_q, il, LoraTarget::Q, xr, qc);
      if (hp.has_own_kv(il)) {
        project(w.attn_k, il, LoraTarget::K, xr, kc);
        if (w.attn_v) project(w.attn_v, il, LoraTarget::V, xr, vc);
        else be.copy(vc, kc);  // no v_proj: V = K before the K norm
      }
    }
    observe("Qcur", il, qc);
    be.rms_norm(qc, hd, w.attn_q_norm.data(), eps, qc);
    be.rope(qc, hd, hp.n_rot(il), hp.rope_base(il), ff, rows.pos());
    observe("Qcur_pos", il, qc);
    if (hp.has_own_kv(il)) {
      observe("Kcur", il, kc);
      observe("Vcur", il, vc);
      be.rms_norm(kc, hd, w.attn_k_norm.data(), eps, kc);
      be.rms_norm(vc, hd, nullptr, eps, vc);  // weightless V norm
      be.rope(kc, hd, hp.n_rot(il), hp.rope_base(il), ff, rows.pos());
      observe("Kcur_pos", il, kc);
      observe("Vcur_normed", il, vc);
      for (size_t s = 0; s < seqs.size(); ++s)
        seqs[s].cache->own(il).append(be, ws, kc.rows_view(rows.first(s), rows.count(s)), vc.rows_view(rows.first(s), rows.count(s)),
                                      seqs[s].cache->n_past());
    }
    if (il == trim_at) {
      rows.trim({&h, &qc, &ple});
      if (rows.total() == 0) break;  // nothing is read: the remaining blocks write no K/V
      xr = x.rows_view(0, rows.total());
      br = branch.rows_view(0, rows.total());
    }
    std::vector<AttentionSegment> segments(seqs.size());
    for (size_t s = 0; s < seqs.size(); ++s) {
      const LayerKv& cache = seqs[s].cache->source(hp, il);  // KV-shared layers read the last non-shared layer of their type
      segments[s] = AttentionSegment{rows.first(s), rows.count(s), rows.pos() + rows.first(s), cache.k(), cache.v(), cache.rows(), cache.pos()};
    }
    Tensor a = att.rows_view(0, rows.total()).cols_view(0, q_out);
    be.attention(qc, segments, n_head, n_head_kv, hd, window, a);
    observe("kqv_out", il, a);
    project(w.attn_output, il, LoraTarget::O, a, br);
    be.rms_norm(br, d, w.post_attention_norm.data(), eps, br);
    be.add(h, br);  // h1 = h + RMSNorm(o)
    observe("attn_out", il, h);

    // 4. MLP: h2 = h1 + RMSNorm(W_down(gelu(W_gate y) ⊙ W_up y)), y = RMSNorm(h1).
    const int64_t F = hp.n_ff[il];
    Tensor g = gate.rows_view(0, rows.total()).cols_view(0, F), u = up.rows_view(0, rows.total()).cols_view(0, F);
    be.rms_norm(h, d, w.ffn_norm.data(), eps, xr);
    project(w.ffn_gate, il, LoraTarget::GATE, xr, g);
    project(w.ffn_up, il, LoraTarget::UP, xr, u);
    be.gelu_mul(g, u, opt.gelu, g);
    project(w.ffn_down, il, LoraTarget::DOWN, g, br);
    observe("ffn_out", il, br);
    be.rms_norm(br, d, w.post_ffw_norm.data(), eps, br);
    be.add(h, br);

    // 5. Per-layer input: h3 = h2 + RMSNorm(W_proj(gelu(W_gate h2) ⊙ z[:, ℓ])).
    observe("pe_in", il, h);
    if (P > 0) {
      Tensor pg = gate.rows_view(0, rows.total()).cols_view(0, P);
      be.matmul(w.inp_gate, h, pg);
      be.gelu_mul(pg, Tensor{}, opt.gelu, pg);
      be.mul(pg, ple.cols_view(il * P, P));
      be.matmul(w.proj, pg, br);
      be.rms_norm(br, d, w.post_norm.data(), eps, br);
      observe("per_layer_embd_out", il, br);
      be.add(h, br);
    }

    // 6. Layer scalar on the whole stream.
    if (w.output_scale != 1.0f) be.scale(h, w.output_scale);
    observe("l_out", il, h);

    for (size_t c = 0; c < opt.capture_layers.size(); ++c)
      if (opt.capture_layers[c] == il) rows.read(h, [&](size_t s) -> std::vector<float>& { return seqs[s].hidden[c]; });
  }

  // 7. LM head on the rows read of the sequences that ask: softcap(E · RMSNorm(h)), E the tied embedding.
  std::vector<size_t> want;
  for (size_t s = 0; s < seqs.size(); ++s)
    if (seqs[s].logits) want.push_back(s);
  if (!want.empty()) {
    int64_t R = 0;
    for (size_t s : want) R += rows.wanted(s);
    Tensor hs = ws.alloc(R, d);
    int64_t r = 0;
    for (size_t s : want) {
      const int64_t n = rows.wanted(s);
      be.copy(hs.rows_view(r, n), h.rows_view(rows.first(s) + rows.count(s) - n, n));
      r += n;
    }
    Tensor xn = ws.alloc(R, d);
    be.rms_norm(hs, d, W.output_norm.data(), eps, xn);
    observe("result_norm", -1, xn);
    Tensor logits = ws.alloc(R, W.token_embd.out);
    be.matmul(W.token_embd, xn, logits);
    if (hp.final_softcap > 0) be.softcap(logits, hp.final_softcap);
    observe("result_output", -1, logits);
    r = 0;
    for (size_t s : want) {
      const int64_t n = rows.wanted(s);
      seqs[s].logits_out.resize(static_cast<size_t>(n * logits.cols));
      be.download(logits.rows_view(r, n), seqs[s].logits_out.data());
      r += n;
    }
  }
  for (SequencePass& s : seqs) s.cache->advance(static_cast<int64_t>(s.tokens.size()), last);
}

}  // namespace gemma4
}  // namespace nla
