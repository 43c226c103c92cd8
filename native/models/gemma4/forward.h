// The Gemma-4 forward pass, written once against the Backend interface. One pass runs several sequences
// (their new tokens' rows concatenated), each appending to its own KV cache, each with its own adapter or
// none; it reads top to bottom like the math in shared/design/gemma4.md §2.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "adapters/lora.h"
#include "backends/backend.h"
#include "models/gemma4/kv_cache.h"
#include "models/gemma4/model.h"

namespace nla {
namespace gemma4 {

// Replaces the (already √d-scaled) input embedding at one position. The replacement feeds both the residual
// stream and the per-layer-input projection; the per-layer token lookup still uses the token id (what Hugging
// Face does with a forward hook on embed_tokens).
struct EmbeddingOverride {
  int64_t position = 0;       // index into the pass's tokens of the sequence
  std::vector<float> values;  // n_embd
};

// Which of a sequence's new rows a pass reads out: none (a chunk of a longer prompt, only filling the KV
// cache), the last one, or all.
enum class Read { None, Last, All };

// One sequence's part of a pass. The outputs are filled by forward().
struct SequencePass {
  KvCache* cache = nullptr;            // appended to; its n_past() is the first token's position
  const LoraAdapter* adapter = nullptr;
  std::vector<int32_t> tokens;         // at least one
  std::vector<EmbeddingOverride> overrides;
  Read read = Read::Last;
  bool logits = false;                 // the LM head on the rows read (needs every block)

  // Outputs, for the rows read (rows × n_embd / rows × n_vocab, row-major).
  int64_t first_row = 0;               // index into tokens of the first row read
  int64_t rows = 0;
  std::vector<std::vector<float>> hidden;  // one per PassOptions::capture_layers entry
  std::vector<float> logits_out;
};

struct PassOptions {
  int last_layer = -1;               // compute blocks 0..last_layer only (-1: every block)
  std::vector<int> capture_layers;   // block outputs to read
  GeluMode gelu = GeluMode::Exact;
  std::function<bool()> should_abort;  // polled between blocks; true -> throws Error(ABORTED)
  // Debugging: named intermediates under llama.cpp's callback names ("attn_norm-0", "Qcur_pos-3", "kqv_out-1",
  // "attn_out-…", "ffn_out-…", "pe_in-…", "per_layer_embd_out-…", "l_out-…", "inp_scaled", "inp_per_layer",
  // "result_norm", "result_output"). Each listed name is copied to the host (every row of the pass) and passed
  // to observe. Observing keeps every row through every block.
  std::vector<std::string> observe_names;
  std::function<void(const std::string& name, int64_t rows, int64_t cols, const float* data)> observe;
};

// Runs one pass. Scratch comes from ws (reset first). Throws nla::Error (INVALID_ARG, ABORTED); the caches
// are then left as they were before the pass only up to the failing block — callers drop the sequences.
void forward(const Weights& weights, Backend& be, Workspace& ws, std::vector<SequencePass>& seqs, const PassOptions& options);

}  // namespace gemma4
}  // namespace nla
