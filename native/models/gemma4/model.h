// The one model definition: Gemma-4 (text tower) hyperparameters and weights,
// bound to tensors of a GGUF file (see shared/design/gemma4.md §1, §5).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "formats/gguf.h"

namespace nla {
namespace gemma4 {

struct HParams {
  int n_layer = 0;
  int n_embd = 0;
  int n_ctx_train = 0;
  int n_vocab = 0;
  int head_dim_full = 0;   // attention.key_length
  int head_dim_swa = 0;    // attention.key_length_swa
  int n_rot_full = 0;      // rope.dimension_count
  int n_rot_swa = 0;       // rope.dimension_count_swa
  int sliding_window = 0;
  int n_kv_shared = 0;     // the last n_kv_shared layers reuse K/V of earlier layers
  int ple_dim = 0;         // embedding_length_per_layer_input (0: no per-layer inputs)
  float eps = 1e-6f;
  float rope_base_full = 10000.f;
  float rope_base_swa = 10000.f;
  float final_softcap = 0.f;
  std::vector<int> n_head;     // per layer
  std::vector<int> n_head_kv;  // per layer
  std::vector<int> n_ff;       // per layer
  std::vector<bool> is_swa;    // per layer: sliding-window attention

  int head_dim(int il) const { return is_swa[il] ? head_dim_swa : head_dim_full; }
  int n_rot(int il) const { return is_swa[il] ? n_rot_swa : n_rot_full; }
  float rope_base(int il) const { return is_swa[il] ? rope_base_swa : rope_base_full; }
  int n_layer_own_kv() const { return n_layer - n_kv_shared; }
  bool has_own_kv(int il) const { return il < n_layer_own_kv(); }
  // Layer whose K/V layer il attends over: itself, or the last non-shared layer of its type.
  int kv_source(int il) const;
};

// A matrix in HF orientation: out rows of `in` values (ggml ne = [in, out]); data == nullptr: absent.
using Matrix = WeightMatrix;

struct Layer {
  std::vector<float> attn_norm, attn_q_norm, attn_k_norm, post_attention_norm, ffn_norm, post_ffw_norm, post_norm;
  Matrix attn_q, attn_k, attn_v, attn_qkv, attn_output;
  Matrix ffn_gate, ffn_up, ffn_down;
  Matrix inp_gate, proj;  // per-layer input gate [n_embd -> ple], projection [ple -> n_embd]
  float output_scale = 1.0f;
};

// The weights of a Gemma-4 GGUF, immutable after load (the tensors stay in the file's mapping).
class Weights {
 public:
  // Binds hyperparameters and tensors. Throws UNSUPPORTED_ARCH for another architecture,
  // MODEL_INVALID for missing keys/tensors or wrong shapes, UNSUPPORTED_TYPE for a tensor
  // format the engine lacks (naming the tensor and the type).
  static std::unique_ptr<Weights> load(const GgufFile& file);

  const HParams& hparams() const { return hp_; }
  const GgufFile& file() const { return file_; }
  const std::vector<Layer>& layers() const { return layers_; }

  Matrix token_embd;            // [n_embd x n_vocab] rows are tokens
  Matrix per_layer_token_embd;  // [n_layer*ple x n_vocab]
  Matrix per_layer_model_proj;  // n_embd -> n_layer*ple
  std::vector<float> per_layer_proj_norm;  // [ple]
  std::vector<float> rope_freqs;           // [head_dim_full/2] or empty
  std::vector<float> output_norm;

  // The {in, out} shape of the projection a LoRA target names at layer il ({0,0}: absent), for validation.
  std::pair<int64_t, int64_t> projection_shape(int il, int target) const;
  // The byte ranges (in the mapping) of the matrices a pass through blocks 0..last reads in full (the embedding
  // tables are read by row and left out), in file order: what to read ahead before a first pass.
  std::vector<std::pair<const uint8_t*, size_t>> ranges_for(int last) const;
  // Histogram of the matrix formats used by the blocks the engine runs, e.g. "q4_K:120,q6_K:21".
  std::string weight_types_summary() const;

 private:
  explicit Weights(const GgufFile& f) : file_(f) {}
  const GgufFile& file_;
  HParams hp_;
  std::vector<Layer> layers_;
};

}  // namespace gemma4
}  // namespace nla
