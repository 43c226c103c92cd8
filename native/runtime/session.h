// A session: one caller's state on a shared Model — its sequences' KV caches and positions, and the scratch
// of its passes. Any number of sessions run on one model at once from different threads; one session runs
// one pass at a time (calls on it from several threads take turns).
//
// A pass runs several sequences together (their new rows concatenated over one read of the weights), each
// with its adapter. A sequence's numbers do not depend on what else is in the pass, on how its prompt is cut
// into passes, or on the thread count: bit for bit.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "models/gemma4/forward.h"
#include "runtime/model.h"

namespace nla {

class Session {
 public:
  // max_tokens: the most tokens one sequence may hold (0 or more than the model's context: the context).
  explicit Session(std::shared_ptr<const Model> model, int64_t max_tokens = 0);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Model& model() const { return *model_; }
  int64_t max_tokens() const { return max_tokens_; }

  // A new, empty sequence that runs with the given adapter (0: none). Returns its id (never reused).
  int add_sequence(int adapter_id = 0);
  // A new sequence that continues from `seq`'s tokens (a copy of its cache, the same adapter): for a prompt
  // prefix shared by many sequences, computed once.
  int fork_sequence(int seq);
  // Finishes a sequence and frees its cache. Later steps on it throw ERR_NLA_SEQUENCE_FINISHED.
  void remove_sequence(int seq);
  bool has_sequence(int seq) const;
  int32_t n_past(int seq) const;
  std::vector<int> sequences() const;

  using Read = gemma4::Read;  // which new rows' outputs a pass reads for a sequence
  struct Input {
    int seq = 0;
    std::vector<int32_t> tokens;
    std::vector<gemma4::EmbeddingOverride> overrides;  // positions index `tokens`
    Read read = Read::Last;
    bool logits = false;
  };
  struct Output {
    int64_t first_row = 0, rows = 0;         // rows read, as indices into the input's tokens
    std::vector<std::vector<float>> hidden;  // per capture layer: rows × n_embd
    std::vector<float> logits;               // rows × n_vocab when asked
  };

  // One pass: appends each input's tokens to its sequence and runs blocks 0..options.last_layer. Throws
  // nla::Error; a failed or aborted pass leaves every sequence as it was before the pass.
  std::vector<Output> run(const std::vector<Input>& inputs, const gemma4::PassOptions& options);

  // One-shot prompts (their own new sequences, removed afterwards) in passes of at most max_pass_tokens new
  // tokens: several short prompts share a pass, a long one is cut into chunks (its K/V carried over in its
  // cache), so scratch memory is bounded by the budget rather than by the input. Outputs in input order.
  std::vector<Output> run_prompts(const std::vector<Input>& prompts, int adapter_id, const gemma4::PassOptions& options,
                                  int64_t max_pass_tokens = kDefaultPassTokens);

  // Backend memory held by the sequences' caches.
  size_t kv_bytes() const;

  static constexpr int64_t kDefaultPassTokens = 512;

 private:
  struct Sequence {
    std::unique_ptr<gemma4::KvCache> cache;
    std::shared_ptr<const LoraAdapter> adapter;
  };
  Sequence& live(int seq);
  std::vector<Output> run_locked(const std::vector<Input>& inputs, const gemma4::PassOptions& options);

  std::shared_ptr<const Model> model_;
  int64_t max_tokens_;
  std::unique_ptr<Workspace> ws_;
  mutable std::mutex mu_;
  std::map<int, Sequence> seqs_;
  int next_seq_ = 1;
};

}  // namespace nla
