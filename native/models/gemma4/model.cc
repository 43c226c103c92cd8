#include "models/gemma4/model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "adapters/lora.h"

namespace nla {
namespace gemma4 {

namespace {

const char* kArch = "gemma4";

std::string key(const std::string& suffix) { return std::string(kArch) + "." + suffix; }

// A hyperparameter that may be a scalar or a per-layer array.
std::vector<int> per_layer_ints(const GgufFile& f, const std::string& k, int n_layer, int fallback, bool required) {
  const GgufValue* v = f.find(k);
  if (!v) {
    if (required) throw Error(code::MODEL_INVALID, f.path() + ": missing required key '" + k + "'");
    return std::vector<int>(n_layer, fallback);
  }
  if (v->type == GgufValueType::ARRAY) {
    const auto& a = f.get_int_array(k);
    if (static_cast<int>(a.size()) != n_layer)
      throw Error(code::MODEL_INVALID, f.path() + ": key '" + k + "' has " + std::to_string(a.size()) +
                                           " entries but the model has " + std::to_string(n_layer) + " layers");
    std::vector<int> out;
    for (int64_t x : a) {
      if (x <= 0 || x > (1 << 24)) throw Error(code::MODEL_INVALID, f.path() + ": key '" + k + "' has an out-of-range entry " + std::to_string(x));
      out.push_back(static_cast<int>(x));
    }
    return out;
  }
  const uint64_t x = f.get_uint(k);
  if (x == 0 || x > (1u << 24)) throw Error(code::MODEL_INVALID, f.path() + ": key '" + k + "' is out of range: " + std::to_string(x));
  return std::vector<int>(n_layer, static_cast<int>(x));
}

int positive_int(const GgufFile& f, const std::string& k, int fallback, bool required, int64_t max = (1LL << 24)) {
  if (!f.has(k)) {
    if (required) throw Error(code::MODEL_INVALID, f.path() + ": missing required key '" + k + "'");
    return fallback;
  }
  const uint64_t x = f.get_uint(k);
  if (static_cast<int64_t>(x) > max) throw Error(code::MODEL_INVALID, f.path() + ": key '" + k + "' is out of range: " + std::to_string(x));
  return static_cast<int>(x);
}

std::string shape_str(const TensorInfo& t) {
  std::ostringstream s;
  s << "[";
  for (uint32_t i = 0; i < t.n_dims; ++i) s << (i ? ", " : "") << t.ne[i];
  s << "]";
  return s.str();
}

class Binder {
 public:
  explicit Binder(const GgufFile& f) : f_(f) {}

  const TensorInfo* find(const std::string& name, bool required) const {
    const TensorInfo* t = f_.tensor(name);
    if (!t && required) throw Error(code::MODEL_INVALID, f_.path() + ": missing tensor '" + name + "'");
    return t;
  }

  static void check_type(const GgufFile& f, const TensorInfo& t) {
    const TypeTraits& tr = type_traits(t.type_id);
    if (!tr.supported)
      throw Error(code::UNSUPPORTED_TYPE, f.path() + ": tensor '" + t.name + "' has type " + tr.name +
                                              ", which nla-ar does not support (supported: f32, f16, bf16, q8_0, q4_0, "
                                              "q4_1, q5_0, q5_1, q4_K, q5_K, q6_K)");
  }

  Matrix matrix(const std::string& name, int64_t in, int64_t out, bool required) const {
    Matrix m;
    const TensorInfo* t = find(name, required);
    if (!t) return m;
    if (t->n_dims != 2 || t->ne[0] != in || t->ne[1] != out)
      throw Error(code::MODEL_INVALID, f_.path() + ": tensor '" + name + "' has shape " + shape_str(*t) + ", expected [" +
                                           std::to_string(in) + ", " + std::to_string(out) + "]");
    check_type(f_, *t);
    m.type = t->type();
    m.in = in;
    m.out = out;
    m.data = t->data;
    m.row_bytes = row_size(m.type, in);
    return m;
  }

  std::vector<float> vector(const std::string& name, int64_t n, bool required) const {
    const TensorInfo* t = find(name, required);
    if (!t) return {};
    if (t->nelements() != n || t->ne[0] != n)
      throw Error(code::MODEL_INVALID, f_.path() + ": tensor '" + name + "' has shape " + shape_str(*t) + ", expected [" +
                                           std::to_string(n) + "]");
    check_type(f_, *t);
    std::vector<float> v(static_cast<size_t>(n));
    type_traits(t->type_id).to_float(t->data, v.data(), n);
    return v;
  }

 private:
  const GgufFile& f_;
};

std::string blk(int il, const char* name) { return "blk." + std::to_string(il) + "." + name + ".weight"; }

}  // namespace

int HParams::kv_source(int il) const {
  if (has_own_kv(il)) return il;
  for (int j = n_layer_own_kv() - 1; j >= 0; --j)
    if (is_swa[j] == is_swa[il]) return j;
  return -1;  // rejected at load
}

std::unique_ptr<Weights> Weights::load(const GgufFile& f) {
  const GgufValue* arch = f.find("general.architecture");
  if (!arch || arch->type != GgufValueType::STRING)
    throw Error(code::UNSUPPORTED_ARCH, f.path() + ": no general.architecture key; not a llama.cpp model GGUF");
  if (arch->s != kArch)
    throw Error(code::UNSUPPORTED_ARCH, f.path() + ": model architecture '" + arch->s +
                                            "' is not supported; nla-ar runs Gemma-4 ('gemma4') models only");
  if (f.has("general.type") && f.get_string("general.type") != "model")
    throw Error(code::UNSUPPORTED_ARCH, f.path() + ": general.type is '" + f.get_string("general.type") +
                                            "', expected a model (is this an adapter or projector file?)");

  std::unique_ptr<Weights> m(new Weights(f));
  HParams& hp = m->hp_;
  hp.n_layer = positive_int(f, key("block_count"), 0, true, 4096);
  hp.n_embd = positive_int(f, key("embedding_length"), 0, true);
  hp.n_ctx_train = positive_int(f, key("context_length"), 0, true, (1LL << 31) - 1);
  if (hp.n_layer <= 0 || hp.n_embd <= 0 || hp.n_ctx_train <= 0)
    throw Error(code::MODEL_INVALID, f.path() + ": block_count, embedding_length and context_length must be positive");
  const int L = hp.n_layer;
  hp.n_head = per_layer_ints(f, key("attention.head_count"), L, 0, true);
  hp.n_head_kv = per_layer_ints(f, key("attention.head_count_kv"), L, hp.n_head[0], false);
  if (!f.has(key("attention.head_count_kv"))) hp.n_head_kv = hp.n_head;
  hp.n_ff = per_layer_ints(f, key("feed_forward_length"), L, 0, true);
  hp.head_dim_full = positive_int(f, key("attention.key_length"), hp.n_embd / hp.n_head[0], false);
  const int vlen = positive_int(f, key("attention.value_length"), hp.head_dim_full, false);
  hp.head_dim_swa = positive_int(f, key("attention.key_length_swa"), 0, true);
  const int vlen_swa = positive_int(f, key("attention.value_length_swa"), 0, true);
  if (vlen != hp.head_dim_full || vlen_swa != hp.head_dim_swa)
    throw Error(code::MODEL_INVALID, f.path() + ": Gemma-4 needs key_length == value_length (also for _swa)");
  hp.n_rot_full = positive_int(f, key("rope.dimension_count"), hp.head_dim_full, false);
  hp.n_rot_swa = positive_int(f, key("rope.dimension_count_swa"), hp.n_rot_full, false);
  hp.sliding_window = positive_int(f, key("attention.sliding_window"), 0, true);
  hp.n_kv_shared = positive_int(f, key("attention.shared_kv_layers"), 0, false);
  hp.ple_dim = positive_int(f, key("embedding_length_per_layer_input"), 0, true);
  hp.eps = static_cast<float>(f.get_float(key("attention.layer_norm_rms_epsilon")));
  hp.rope_base_full = f.has(key("rope.freq_base")) ? static_cast<float>(f.get_float(key("rope.freq_base"))) : 10000.f;
  hp.rope_base_swa = f.has(key("rope.freq_base_swa")) ? static_cast<float>(f.get_float(key("rope.freq_base_swa"))) : hp.rope_base_full;
  hp.final_softcap = f.has(key("final_logit_softcapping")) ? static_cast<float>(f.get_float(key("final_logit_softcapping"))) : 0.f;
  for (const char* k : {"rope.scaling.type", "rope.scaling.factor", "expert_count"}) {
    if (f.has(key(k))) {
      const GgufValue* v = f.find(key(k));
      const bool trivial = (v->type == GgufValueType::STRING && (v->s == "none" || v->s.empty())) ||
                           (v->type != GgufValueType::STRING && v->type != GgufValueType::ARRAY && v->f == 0 && v->u == 0 && v->i == 0) ||
                           (std::string(k) == "rope.scaling.factor" && v->type == GgufValueType::FLOAT32 && v->f == 1.0);
      if (!trivial) throw Error(code::MODEL_INVALID, f.path() + ": key '" + key(k) + "' is set; RoPE scaling and MoE Gemma-4 variants are not supported");
    }
  }
  if (!(hp.eps > 0) || !std::isfinite(hp.rope_base_full) || !std::isfinite(hp.rope_base_swa) || hp.rope_base_full <= 0 || hp.rope_base_swa <= 0)
    throw Error(code::MODEL_INVALID, f.path() + ": invalid epsilon or RoPE base");

  const GgufValue* pat = f.find(key("attention.sliding_window_pattern"));
  if (!pat) throw Error(code::MODEL_INVALID, f.path() + ": missing required key '" + key("attention.sliding_window_pattern") + "'");
  const auto& swa = f.get_int_array(key("attention.sliding_window_pattern"));
  if (static_cast<int>(swa.size()) != L)
    throw Error(code::MODEL_INVALID, f.path() + ": sliding_window_pattern has " + std::to_string(swa.size()) + " entries for " +
                                         std::to_string(L) + " layers");
  for (int64_t s : swa) hp.is_swa.push_back(s != 0);
  if (hp.n_kv_shared >= L) throw Error(code::MODEL_INVALID, f.path() + ": shared_kv_layers must be smaller than block_count");
  for (int il = 0; il < L; ++il) {
    if (hp.n_head_kv[il] <= 0 || hp.n_head[il] % hp.n_head_kv[il] != 0)
      throw Error(code::MODEL_INVALID, f.path() + ": layer " + std::to_string(il) + ": head_count must be a multiple of head_count_kv");
    if (hp.kv_source(il) < 0)
      throw Error(code::MODEL_INVALID, f.path() + ": KV-shared layer " + std::to_string(il) + " has no earlier non-shared layer of its attention type");
    if (hp.n_rot(il) > hp.head_dim(il) || hp.n_rot(il) % 2)
      throw Error(code::MODEL_INVALID, f.path() + ": rope dimension count exceeds the head dimension or is odd");
  }
  for (int il = hp.n_layer_own_kv(); il < L; ++il)
    if (hp.head_dim(il) != hp.head_dim(hp.kv_source(il)) || hp.n_head_kv[il] != hp.n_head_kv[hp.kv_source(il)])
      throw Error(code::MODEL_INVALID, f.path() + ": KV-shared layer " + std::to_string(il) + " differs in KV geometry from its source layer");

  Binder b(f);
  m->token_embd = b.matrix("token_embd.weight", hp.n_embd, b.find("token_embd.weight", true)->ne[1], true);
  hp.n_vocab = static_cast<int>(m->token_embd.out);
  if (hp.ple_dim > 0) {
    const int64_t ple_all = static_cast<int64_t>(hp.ple_dim) * L;
    m->per_layer_token_embd = b.matrix("per_layer_token_embd.weight", ple_all, hp.n_vocab, true);
    m->per_layer_model_proj = b.matrix("per_layer_model_proj.weight", hp.n_embd, ple_all, true);
    m->per_layer_proj_norm = b.vector("per_layer_proj_norm.weight", hp.ple_dim, true);
  }
  m->output_norm = b.vector("output_norm.weight", hp.n_embd, true);
  const bool any_full = [&] { for (bool s : hp.is_swa) if (!s) return true; return false; }();
  if (any_full) m->rope_freqs = b.vector("rope_freqs.weight", hp.head_dim_full / 2, false);

  m->layers_.resize(L);
  for (int il = 0; il < L; ++il) {
    Layer& l = m->layers_[il];
    const int hd = hp.head_dim(il);
    const int64_t q_out = static_cast<int64_t>(hd) * hp.n_head[il];
    const int64_t kv_out = static_cast<int64_t>(hd) * hp.n_head_kv[il];
    const bool own = hp.has_own_kv(il);
    l.attn_norm = b.vector(blk(il, "attn_norm"), hp.n_embd, true);
    l.attn_qkv = b.matrix(blk(il, "attn_qkv"), hp.n_embd, q_out + 2 * kv_out, false);
    if (!l.attn_qkv) {
      l.attn_q = b.matrix(blk(il, "attn_q"), hp.n_embd, q_out, true);
      l.attn_k = b.matrix(blk(il, "attn_k"), hp.n_embd, kv_out, own);
      l.attn_v = b.matrix(blk(il, "attn_v"), hp.n_embd, kv_out, false);
    }
    l.attn_output = b.matrix(blk(il, "attn_output"), q_out, hp.n_embd, true);
    l.attn_q_norm = b.vector(blk(il, "attn_q_norm"), hd, true);
    l.attn_k_norm = b.vector(blk(il, "attn_k_norm"), hd, own);
    l.post_attention_norm = b.vector(blk(il, "post_attention_norm"), hp.n_embd, true);
    l.ffn_norm = b.vector(blk(il, "ffn_norm"), hp.n_embd, true);
    l.ffn_gate = b.matrix(blk(il, "ffn_gate"), hp.n_embd, hp.n_ff[il], true);
    l.ffn_up = b.matrix(blk(il, "ffn_up"), hp.n_embd, hp.n_ff[il], true);
    l.ffn_down = b.matrix(blk(il, "ffn_down"), hp.n_ff[il], hp.n_embd, true);
    l.post_ffw_norm = b.vector(blk(il, "post_ffw_norm"), hp.n_embd, true);
    if (hp.ple_dim > 0) {
      l.inp_gate = b.matrix(blk(il, "inp_gate"), hp.n_embd, hp.ple_dim, true);
      l.proj = b.matrix(blk(il, "proj"), hp.ple_dim, hp.n_embd, true);
      l.post_norm = b.vector(blk(il, "post_norm"), hp.n_embd, true);
    }
    const std::vector<float> s = b.vector(blk(il, "layer_output_scale"), 1, false);
    l.output_scale = s.empty() ? 1.0f : s[0];
    if (!std::isfinite(l.output_scale))
      throw Error(code::MODEL_INVALID, f.path() + ": " + blk(il, "layer_output_scale") + " is not finite");
  }
  if (f.tensor("blk.0.ffn_gate_inp.weight"))
    throw Error(code::MODEL_INVALID, f.path() + ": mixture-of-experts Gemma-4 variants are not supported");
  return m;
}

std::pair<int64_t, int64_t> Weights::projection_shape(int il, int target) const {
  if (il < 0 || il >= hp_.n_layer) return {0, 0};
  const Layer& l = layers_[il];
  const int64_t hd = hp_.head_dim(il);
  const int64_t q_out = hd * hp_.n_head[il], kv_out = hd * hp_.n_head_kv[il];
  switch (static_cast<LoraTarget>(target)) {
    case LoraTarget::Q: return {hp_.n_embd, q_out};
    case LoraTarget::K: return (l.attn_k || l.attn_qkv) ? std::pair<int64_t, int64_t>{hp_.n_embd, kv_out} : std::pair<int64_t, int64_t>{0, 0};
    case LoraTarget::V: return (l.attn_v || l.attn_qkv) ? std::pair<int64_t, int64_t>{hp_.n_embd, kv_out} : std::pair<int64_t, int64_t>{0, 0};
    case LoraTarget::O: return {q_out, hp_.n_embd};
    case LoraTarget::GATE:
    case LoraTarget::UP: return {hp_.n_embd, hp_.n_ff[il]};
    case LoraTarget::DOWN: return {hp_.n_ff[il], hp_.n_embd};
    default: return {0, 0};
  }
}

std::vector<std::pair<const uint8_t*, size_t>> Weights::ranges_for(int last) const {
  std::vector<std::pair<const uint8_t*, size_t>> r;
  auto add = [&](const Matrix& m) {
    if (m) r.emplace_back(m.data, static_cast<size_t>(m.out) * m.row_bytes);
  };
  add(per_layer_model_proj);
  for (int il = 0; il <= last && il < hp_.n_layer; ++il) {
    const Layer& l = layers_[il];
    for (const Matrix* mm : {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_qkv, &l.attn_output, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.inp_gate, &l.proj})
      add(*mm);
  }
  std::sort(r.begin(), r.end());
  return r;
}

std::string Weights::weight_types_summary() const {
  std::map<std::string, int> counts;
  auto add = [&](const Matrix& mm) { if (mm) counts[type_traits(mm.type).name]++; };
  add(token_embd);
  add(per_layer_token_embd);
  add(per_layer_model_proj);
  for (const auto& l : layers_) {
    for (const Matrix* mm : {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_qkv, &l.attn_output, &l.ffn_gate, &l.ffn_up,
                             &l.ffn_down, &l.inp_gate, &l.proj})
      add(*mm);
  }
  std::string s;
  for (const auto& [k, v] : counts) s += (s.empty() ? "" : ",") + k + ":" + std::to_string(v);
  return s;
}

}  // namespace gemma4
}  // namespace nla
