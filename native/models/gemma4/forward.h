// The Gemma-4 forward pass (prefill of one prompt), written once against the
// Backend interface. Reads top to bottom like the math in shared/design/gemma4.md §2.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "adapters/lora.h"
#include "models/gemma4/model.h"

namespace nla {

// Replaces the (already √d-scaled) input embedding at one position. The replacement feeds
// both the residual stream and the per-layer-input projection; the per-layer token lookup
// still uses the token id (what Hugging Face does with a forward hook on embed_tokens).
struct EmbeddingOverride {
  int64_t position = 0;
  std::vector<float> values;  // n_embd
};

struct ForwardOptions {
  int last_layer = -1;                 // compute blocks 0..last_layer only (-1: every block)
  std::vector<int> capture_layers;     // block outputs to report through on_hidden
  bool capture_all_tokens = false;     // false: only the last token's row
  const LoraAdapter* adapter = nullptr;
  std::vector<EmbeddingOverride> overrides;
  GeluMode gelu = GeluMode::Exact;
  bool logits = false;                 // also compute the LM head (final norm, tied embedding, softcap) for the last token
  // Called with each captured block output: rows × n_embd floats, first_row = token index of rows[0].
  std::function<void(int layer, int64_t rows, int64_t first_row, const float* data)> on_hidden;
  std::function<void(const float* logits, int64_t n_vocab)> on_logits;
  std::function<bool()> should_abort;  // polled between blocks; true -> throws Error(ABORTED)
  // Debugging: named intermediates under llama.cpp's callback names ("attn_norm-0", "Qcur_pos-3", "kqv_out-1",
  // "attn_out-…", "ffn_out-…", "pe_in-…", "per_layer_embd_out-…", "l_out-…", and "inp_scaled", "inp_per_layer").
  // Each name listed in observe_names is copied to the host (all rows) and passed to observe.
  std::vector<std::string> observe_names;
  std::function<void(const std::string& name, int64_t rows, int64_t cols, const float* data)> observe;
};

// Runs one prompt. Throws nla::Error (INVALID_ARG, CONTEXT_OVERFLOW, ABORTED).
void forward(const Gemma4Model& model, Backend& backend, const std::vector<int32_t>& tokens, const ForwardOptions& options);

}  // namespace nla
