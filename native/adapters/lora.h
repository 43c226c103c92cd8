// Run-time LoRA adapters read from PEFT files (adapter_config.json +
// adapter_model.safetensors). Deltas are kept as separate A/B matrices and
// applied next to the base product (y += scale * B (A x)); base weights are
// never rewritten, so one loaded model serves several adapters and none.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "common/error.h"

namespace nla {

// The projections an adapter may target (HF module names).
enum class LoraTarget : int { Q = 0, K, V, O, GATE, UP, DOWN, COUNT };
const char* lora_target_name(LoraTarget t);  // "q_proj", ..., "down_proj"

struct LoraMatrixPair {
  int64_t rank = 0;     // r
  int64_t in = 0;       // A is [rank, in] row-major (HF layout)
  int64_t out = 0;      // B is [out, rank] row-major
  std::vector<float> a; // rank*in, converted to f32 at load
  std::vector<float> b; // out*rank
  float scale = 1.0f;   // alpha/r (or alpha/sqrt(r) for rsLoRA), with rank_pattern/alpha_pattern applied
  // The update as a backend operation: y += scale · B(A x).
  LowRank lowrank() const { return LowRank{a.data(), b.data(), rank, in, out, scale}; }
};

struct PeftConfig {
  std::string peft_type;            // must be "LORA"
  int64_t r = 0;
  double lora_alpha = 0;
  bool use_rslora = false;
  bool use_dora = false;
  bool fan_in_fan_out = false;
  std::string base_model;           // base_model_name_or_path (informational)
  std::vector<std::string> target_modules;  // list form, or the single regex string as one element
  bool target_modules_is_regex = false;
  std::map<std::string, int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
  // The same keys in file order: PEFT tries them in this order and the first match wins.
  std::vector<std::string> rank_pattern_order;
  std::vector<std::string> alpha_pattern_order;
  std::vector<std::string> exclude_modules;  // list form, or the single regex string as one element
  bool exclude_modules_is_regex = false;
  std::vector<int64_t> layers_to_transform;  // empty: every layer
  std::vector<std::string> unknown_keys;    // keys present in the json that the loader does not interpret
};

// PEFT's rank_pattern/alpha_pattern rule (peft.utils.other.get_pattern_key): the
// first key K, in order, for which Python's re.match(rf"(.*\.)?({K})$", module)
// matches; K is a regex fragment, not escaped. `module` is the module's name in
// the base model, e.g. "model.language_model.layers.3.self_attn.q_proj".
// Returns nullptr if no key matches (the module then uses r / lora_alpha).
// Throws nla::Error(ADAPTER_INVALID) if a key is not a valid regex.
const std::string* peft_pattern_key(const std::vector<std::string>& keys, const std::string& module);

class LoraAdapter {
 public:
  // Loads <dir>/adapter_config.json and <dir>/adapter_model.safetensors.
  // Shapes are checked against the model later (validate()). Throws nla::Error
  // (IO, ADAPTER_INVALID) with a message naming the file and field/tensor.
  static std::unique_ptr<LoraAdapter> load_peft_dir(const std::string& dir);

  // Checks every pair against the model's projection shapes: shape(layer, target) returns
  // {in, out} or {0,0} if the model has no such projection at that layer (e.g. k/v of a
  // KV-shared layer -> error "module the model lacks"). Throws ADAPTER_MISMATCH.
  template <class ShapeFn> void validate(int n_layers, ShapeFn shape) const;

  const PeftConfig& config() const { return config_; }
  // nullptr if the adapter has no delta for (layer, target).
  const LoraMatrixPair* get(int layer, LoraTarget t) const;
  size_t n_pairs() const { return pairs_.size(); }
  int max_layer() const;  // highest layer index with a delta, -1 if none
  // Non-fatal findings (unknown config keys, tensors ignored and why), for info/reporting.
  const std::vector<std::string>& warnings() const { return warnings_; }
  const std::string& dir() const { return dir_; }

 private:
  LoraAdapter() = default;
  std::string dir_;
  PeftConfig config_;
  std::map<std::pair<int, int>, LoraMatrixPair> pairs_;  // key: (layer, target)
  std::vector<std::string> warnings_;
  friend struct LoraLoader;
};

template <class ShapeFn>
void LoraAdapter::validate(int n_layers, ShapeFn shape) const {
  for (const auto& [key, p] : pairs_) {
    const int layer = key.first;
    const auto target = static_cast<LoraTarget>(key.second);
    const std::string where = "layer " + std::to_string(layer) + " " + lora_target_name(target);
    if (layer < 0 || layer >= n_layers)
      throw Error(code::ADAPTER_MISMATCH, "adapter has a delta for " + where + " but the model has " +
                                              std::to_string(n_layers) + " layers");
    auto [in, out] = shape(layer, target);
    if (in == 0 || out == 0)
      throw Error(code::ADAPTER_MISMATCH, "adapter has a delta for " + where + ", a module the model lacks");
    if (p.in != in || p.out != out)
      throw Error(code::ADAPTER_MISMATCH, "adapter delta for " + where + " maps " + std::to_string(p.in) + "->" +
                                              std::to_string(p.out) + " but the model's projection maps " +
                                              std::to_string(in) + "->" + std::to_string(out));
  }
}

}  // namespace nla
