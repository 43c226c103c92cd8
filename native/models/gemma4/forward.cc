#include "models/gemma4/forward.h"

#include <algorithm>
#include <cmath>

namespace nla {

namespace {

// Runs a projection and, if the adapter has a delta for it, adds scale·B(A x) next to it.
void project(Backend& be, const Matrix& w, const LoraAdapter* adapter, int il, LoraTarget target, const Tensor& x,
             const Tensor& y) {
  be.matmul(w, x, y);
  if (adapter)
    if (const LoraMatrixPair* p = adapter->get(il, target)) be.lora(*p, x, y);
}

void lora_only(Backend& be, const LoraAdapter* adapter, int il, LoraTarget target, const Tensor& x, const Tensor& y) {
  if (adapter)
    if (const LoraMatrixPair* p = adapter->get(il, target)) be.lora(*p, x, y);
}

void check_options(const Gemma4HParams& hp, const std::vector<int32_t>& tokens, const ForwardOptions& o, int last) {
  if (tokens.empty()) throw Error(code::INVALID_ARG, "forward: the token list is empty");
  if (static_cast<int64_t>(tokens.size()) > hp.n_ctx_train)
    throw Error(code::CONTEXT_OVERFLOW, "the prompt has " + std::to_string(tokens.size()) +
                                            " tokens but the model's context is " + std::to_string(hp.n_ctx_train) + " tokens");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= hp.n_vocab)
      throw Error(code::INVALID_ARG, "token " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                                         " is outside the vocabulary [0, " + std::to_string(hp.n_vocab) + ")");
  if (last < 0 || last >= hp.n_layer)
    throw Error(code::INVALID_ARG, "last layer " + std::to_string(o.last_layer) + " is outside [0, " +
                                       std::to_string(hp.n_layer - 1) + "]");
  for (int l : o.capture_layers)
    if (l < 0 || l > last)
      throw Error(code::INVALID_ARG, "capture layer " + std::to_string(l) + " is outside the computed blocks [0, " +
                                         std::to_string(last) + "]");
  for (const auto& ov : o.overrides) {
    if (ov.position < 0 || ov.position >= static_cast<int64_t>(tokens.size()))
      throw Error(code::INVALID_ARG, "embedding override position " + std::to_string(ov.position) + " is outside the prompt");
    if (static_cast<int>(ov.values.size()) != hp.n_embd)
      throw Error(code::INVALID_ARG, "embedding override has " + std::to_string(ov.values.size()) + " values, expected " +
                                         std::to_string(hp.n_embd));
    for (float v : ov.values)
      if (!std::isfinite(v)) throw Error(code::INVALID_ARG, "embedding override contains a non-finite value");
  }
}

}  // namespace

void forward(const Gemma4Model& model, Backend& be, const std::vector<int32_t>& tokens, const ForwardOptions& opt) {
  const Gemma4HParams& hp = model.hparams();
  const int last = opt.last_layer < 0 ? hp.n_layer - 1 : opt.last_layer;
  check_options(hp, tokens, opt, last);
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t d = hp.n_embd, P = hp.ple_dim;
  const float eps = hp.eps;
  const LoraAdapter* adapter = opt.adapter;
  auto observe = [&](const char* name, int il, const Tensor& t) {
    if (!opt.observe || opt.observe_names.empty()) return;
    const std::string full = il < 0 ? std::string(name) : std::string(name) + "-" + std::to_string(il);
    if (std::find(opt.observe_names.begin(), opt.observe_names.end(), full) == opt.observe_names.end()) return;
    std::vector<float> rows(static_cast<size_t>(t.rows * t.cols));
    for (int64_t r = 0; r < t.rows; ++r) be.download_row(t, r, rows.data() + r * t.cols);
    opt.observe(full, t.rows, t.cols, rows.data());
  };
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(t);

  // Working buffers, allocated once at the widest layer's size (llama2.c's RunState).
  int64_t max_q = 0, max_kv = 0, max_ff = 0;
  for (int il = 0; il <= last; ++il) {
    max_q = std::max<int64_t>(max_q, int64_t(hp.head_dim(il)) * hp.n_head[il]);
    max_kv = std::max<int64_t>(max_kv, int64_t(hp.head_dim(il)) * hp.n_head_kv[il]);
    max_ff = std::max<int64_t>(max_ff, hp.n_ff[il]);
  }
  be.reset();
  Tensor h = be.alloc(T, d);      // residual stream
  Tensor x = be.alloc(T, d);      // normed input of a sub-block
  Tensor q = be.alloc(T, max_q);
  Tensor qkv = be.alloc(T, max_q + 2 * max_kv);  // fused projection output, if the model has one
  Tensor att = be.alloc(T, max_q);
  Tensor branch = be.alloc(T, d);  // output of a branch (attention, MLP, per-layer input)
  Tensor gate = be.alloc(T, max_ff);
  Tensor up = be.alloc(T, max_ff);
  struct KV { Tensor k, v; };
  std::vector<KV> kv(static_cast<size_t>(last + 1));
  std::vector<float> host(static_cast<size_t>(d));

  // 1. Token embeddings, scaled by √d; optional per-position overrides (already in scaled units).
  be.get_rows(model.token_embd, tokens.data(), 0, std::sqrt(static_cast<float>(d)), h);
  for (const auto& ov : opt.overrides) be.upload(Tensor{h.row(ov.position), 1, d, d}, ov.values.data());
  observe("inp_scaled", -1, h);

  // 2. Per-layer inputs z[t, ℓ, :] for the blocks we run: (RMSNorm(W_plm e / √d) + P[t]·√P) / √2.
  Tensor ple;
  if (P > 0) {
    const int64_t n_ple = (last + 1) * P;
    Tensor tok = be.alloc(T, n_ple);
    be.get_rows(model.per_layer_token_embd, tokens.data(), 0, std::sqrt(static_cast<float>(P)), tok);
    ple = be.alloc(T, n_ple);
    be.matmul(model.per_layer_model_proj, h, ple);
    be.scale(ple, 1.0f / std::sqrt(static_cast<float>(d)));
    be.rms_norm(ple, P, model.per_layer_proj_norm.data(), eps, ple);
    be.add(ple, tok);
    be.scale(ple, 1.0f / std::sqrt(2.0f));
    observe("inp_per_layer", -1, ple);
  }

  // KV-shared blocks write no K/V, so once the last block that writes K/V (or the last block run) has its
  // K/V, every later state of a token feeds nothing but its own row: when only the last token is read (no
  // capture_all_tokens, no observed intermediates) and the backend takes fewer query rows than keys, the
  // rest (attention onwards) runs on the last row alone. row0 = index of h's row 0.
  const bool trim_shared = T > 1 && !opt.capture_all_tokens && (!opt.observe || opt.observe_names.empty()) && be.attention_suffix_queries();
  int64_t row0 = 0;
  for (int il = 0; il <= last; ++il) {
    if (opt.should_abort && opt.should_abort()) throw Error(code::ABORTED, "the forward pass was aborted");
    const Gemma4Layer& w = model.layers()[il];
    const int hd = hp.head_dim(il), n_head = hp.n_head[il], n_head_kv = hp.n_head_kv[il];
    const int64_t q_out = int64_t(hd) * n_head, kv_out = int64_t(hd) * n_head_kv;
    const float* ff = hp.is_swa[il] || model.rope_freqs.empty() ? nullptr : model.rope_freqs.data();

    // 3. Attention: x = RMSNorm(h); q = RoPE(RMSNorm_head(W_q x)); K/V own or borrowed.
    be.rms_norm(h, d, w.attn_norm.data(), eps, x);
    observe("attn_norm", il, x);
    Tensor qc = q.cols_view(0, q_out);
    Tensor kc, vc;
    if (w.attn_qkv) {
      Tensor all = qkv.cols_view(0, q_out + 2 * kv_out);
      be.matmul(w.attn_qkv, x, all);
      be.copy(qc, all.cols_view(0, q_out));
      lora_only(be, adapter, il, LoraTarget::Q, x, qc);
      kc = all.cols_view(q_out, kv_out);
      vc = all.cols_view(q_out + kv_out, kv_out);
    } else {
      project(be, w.attn_q, adapter, il, LoraTarget::Q, x, qc);
    }
    observe("Qcur", il, qc);
    be.rms_norm(qc, hd, w.attn_q_norm.data(), eps, qc);
    be.rope(qc, hd, hp.n_rot(il), hp.rope_base(il), ff, pos.data() + row0);
    observe("Qcur_pos", il, qc);

    if (hp.has_own_kv(il)) {
      Tensor k = be.alloc(T, kv_out), v = be.alloc(T, kv_out);
      if (w.attn_qkv) {
        be.copy(k, kc);
        be.copy(v, vc);
        lora_only(be, adapter, il, LoraTarget::K, x, k);
        lora_only(be, adapter, il, LoraTarget::V, x, v);
      } else {
        project(be, w.attn_k, adapter, il, LoraTarget::K, x, k);
        if (w.attn_v) project(be, w.attn_v, adapter, il, LoraTarget::V, x, v);
        else be.copy(v, k);  // no v_proj: V = K before the K norm
      }
      observe("Kcur", il, k);
      observe("Vcur", il, v);
      be.rms_norm(k, hd, w.attn_k_norm.data(), eps, k);
      be.rms_norm(v, hd, nullptr, eps, v);  // weightless V norm
      be.rope(k, hd, hp.n_rot(il), hp.rope_base(il), ff, pos.data());
      observe("Kcur_pos", il, k);
      observe("Vcur_normed", il, v);
      kv[il] = {k, v};
    }
    if (trim_shared && row0 == 0 && il >= std::min(last, hp.n_layer_own_kv() - 1)) {
      row0 = T - 1;
      auto keep_last = [&](Tensor& t) { t = Tensor{t.row(row0), 1, t.cols, t.stride}; };
      auto keep_first = [&](Tensor& t) { t = Tensor{t.data, 1, t.cols, t.stride}; };
      keep_last(h);
      keep_last(qc);
      if (P > 0) keep_last(ple);
      for (Tensor* t : {&x, &q, &qkv, &att, &branch, &gate, &up}) keep_first(*t);
    }
    const KV& src = kv[hp.kv_source(il)];  // KV-shared layers read the last non-shared layer of their type
    Tensor a = att.cols_view(0, q_out);
    be.attention(qc, src.k, src.v, n_head, n_head_kv, hd, hp.is_swa[il] ? hp.sliding_window : 0, pos.data(), a);
    observe("kqv_out", il, a);
    project(be, w.attn_output, adapter, il, LoraTarget::O, a, branch);
    be.rms_norm(branch, d, w.post_attention_norm.data(), eps, branch);
    be.add(h, branch);  // h1 = h + RMSNorm(o)
    observe("attn_out", il, h);

    // 4. MLP: h2 = h1 + RMSNorm(W_down(gelu(W_gate y) ⊙ W_up y)), y = RMSNorm(h1).
    const int64_t F = hp.n_ff[il];
    Tensor g = gate.cols_view(0, F), u = up.cols_view(0, F);
    be.rms_norm(h, d, w.ffn_norm.data(), eps, x);
    project(be, w.ffn_gate, adapter, il, LoraTarget::GATE, x, g);
    project(be, w.ffn_up, adapter, il, LoraTarget::UP, x, u);
    be.gelu_mul(g, u, opt.gelu, g);
    project(be, w.ffn_down, adapter, il, LoraTarget::DOWN, g, branch);
    observe("ffn_out", il, branch);
    be.rms_norm(branch, d, w.post_ffw_norm.data(), eps, branch);
    be.add(h, branch);

    // 5. Per-layer input: h3 = h2 + RMSNorm(W_proj(gelu(W_gate h2) ⊙ z[:, ℓ])).
    observe("pe_in", il, h);
    if (P > 0) {
      Tensor pg = gate.cols_view(0, P);
      be.matmul(w.inp_gate, h, pg);
      be.gelu_mul(pg, Tensor{}, opt.gelu, pg);
      be.mul(pg, ple.cols_view(il * P, P));
      be.matmul(w.proj, pg, branch);
      be.rms_norm(branch, d, w.post_norm.data(), eps, branch);
      observe("per_layer_embd_out", il, branch);
      be.add(h, branch);
    }

    // 6. Layer scalar on the whole stream.
    if (w.output_scale != 1.0f) be.scale(h, w.output_scale);
    observe("l_out", il, h);

    if (opt.on_hidden && std::find(opt.capture_layers.begin(), opt.capture_layers.end(), il) != opt.capture_layers.end()) {
      const int64_t first = opt.capture_all_tokens ? 0 : T - 1;
      std::vector<float> rows(static_cast<size_t>((T - first) * d));
      for (int64_t t = first; t < T; ++t) be.download_row(h, t - row0, rows.data() + (t - first) * d);
      opt.on_hidden(il, T - first, first, rows.data());
    }
  }

  // Optional LM head on the last token: softcap(E · RMSNorm(h)).
  if (opt.logits && opt.on_logits) {
    if (last != hp.n_layer - 1) throw Error(code::INVALID_ARG, "logits need every block (last_layer = -1)");
    Tensor hl = Tensor{h.row(T - 1 - row0), 1, d, d};
    Tensor xl = Tensor{x.row(0), 1, d, d};
    be.rms_norm(hl, d, model.output_norm.data(), eps, xl);
    Tensor logits = be.alloc(1, model.token_embd.out);
    be.matmul(model.token_embd, xl, logits);
    std::vector<float> out(static_cast<size_t>(model.token_embd.out));
    be.download_row(logits, 0, out.data());
    if (hp.final_softcap > 0)
      for (float& v : out) v = hp.final_softcap * std::tanh(v / hp.final_softcap);
    opt.on_logits(out.data(), static_cast<int64_t>(out.size()));
  }
}

}  // namespace nla
