#include "runtime/session.h"

#include <algorithm>
#include <deque>
#include <numeric>

namespace nla {

Session::Session(std::shared_ptr<const Model> model, int64_t max_tokens)
    : model_(std::move(model)), ws_(model_->backend().new_workspace()) {
  const int64_t ctx = model_->hparams().n_ctx_train;
  max_tokens_ = max_tokens <= 0 || max_tokens > ctx ? ctx : max_tokens;
}

Session::~Session() = default;

int Session::add_sequence(int adapter_id) {
  std::shared_ptr<const LoraAdapter> adapter = adapter_id ? model_->adapter(adapter_id) : nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  const int id = next_seq_++;
  seqs_[id] = Sequence{std::make_unique<gemma4::KvCache>(model_->hparams()), std::move(adapter)};
  return id;
}

int Session::fork_sequence(int seq) {
  std::lock_guard<std::mutex> lock(mu_);
  Sequence& src = live(seq);
  Sequence copy{src.cache->clone(model_->backend()), src.adapter};
  const int id = next_seq_++;
  seqs_[id] = std::move(copy);
  return id;
}

void Session::remove_sequence(int seq) {
  std::lock_guard<std::mutex> lock(mu_);
  live(seq);
  seqs_.erase(seq);
}

bool Session::has_sequence(int seq) const {
  std::lock_guard<std::mutex> lock(mu_);
  return seqs_.count(seq) != 0;
}

int32_t Session::n_past(int seq) const {
  std::lock_guard<std::mutex> lock(mu_);
  return const_cast<Session*>(this)->live(seq).cache->n_past();
}

std::vector<int> Session::sequences() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int> ids;
  for (const auto& [id, s] : seqs_) ids.push_back(id);
  return ids;
}

size_t Session::kv_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t b = 0;
  for (const auto& [id, s] : seqs_) b += s.cache->bytes();
  return b;
}

Session::Sequence& Session::live(int seq) {
  auto it = seqs_.find(seq);
  if (it != seqs_.end()) return it->second;
  if (seq >= 1 && seq < next_seq_)  // ids are issued in order and never reused
    throw Error(code::SEQUENCE_FINISHED, "sequence " + std::to_string(seq) + " was finished; start a new one");
  throw Error(code::INVALID_ARG, "sequence " + std::to_string(seq) + " does not exist in this session");
}

std::vector<Session::Output> Session::run(const std::vector<Input>& inputs, const gemma4::PassOptions& options) {
  std::lock_guard<std::mutex> lock(mu_);
  return run_locked(inputs, options);
}

std::vector<Session::Output> Session::run_locked(const std::vector<Input>& inputs, const gemma4::PassOptions& options) {
  if (inputs.empty()) throw Error(code::INVALID_ARG, "a pass needs at least one sequence");
  // Rows grouped by adapter (one LoRA product per group); outputs go back in input order.
  std::vector<size_t> order(inputs.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<const LoraAdapter*> adapter_of(inputs.size());
  std::set<int> seen;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    Sequence& s = live(in.seq);
    if (!seen.insert(in.seq).second)
      throw Error(code::INVALID_ARG, "sequence " + std::to_string(in.seq) + " appears twice in one pass");
    if (in.tokens.empty()) throw Error(code::INVALID_ARG, "sequence " + std::to_string(in.seq) + ": no tokens to append");
    if (s.cache->n_past() + static_cast<int64_t>(in.tokens.size()) > max_tokens_)
      throw Error(code::CONTEXT_OVERFLOW, "sequence " + std::to_string(in.seq) + " would hold " +
                                              std::to_string(s.cache->n_past() + static_cast<int64_t>(in.tokens.size())) +
                                              " tokens but at most " + std::to_string(max_tokens_) +
                                              " are allowed (the model's context is " +
                                              std::to_string(model_->hparams().n_ctx_train) + " tokens)");
    adapter_of[i] = s.adapter.get();
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return adapter_of[a] < adapter_of[b]; });

  std::vector<gemma4::SequencePass> pass(inputs.size());
  std::vector<std::shared_ptr<const LoraAdapter>> holds;  // the adapters stay alive (and "in use") during the pass
  for (size_t k = 0; k < order.size(); ++k) {
    const Input& in = inputs[order[k]];
    Sequence& s = seqs_.at(in.seq);
    gemma4::SequencePass& p = pass[k];
    p.cache = s.cache.get();
    p.adapter = s.adapter.get();
    if (s.adapter) holds.push_back(s.adapter);
    p.tokens = in.tokens;
    p.overrides = in.overrides;
    p.read = in.read;
    p.logits = in.logits;
  }
  // The pass reads the mapped file: if it was truncated or rewritten meanwhile (MappedFile), the result is
  // discarded with ERR_NLA_IO, and the model refuses every later pass the same way.
  const GgufFile& file = model_->file();
  try {
    file.check_intact();
    gemma4::forward(model_->weights(), model_->backend(), *ws_, pass, options);
    file.check_intact();
  } catch (...) {
    for (gemma4::SequencePass& p : pass) p.cache->rollback();
    ws_->reset();
    file.check_intact();  // a symptom of a file that changed under the pass is reported as the I/O error it is
    throw;
  }
  std::vector<Output> out(inputs.size());
  for (size_t k = 0; k < order.size(); ++k) {
    Output& o = out[order[k]];
    o.first_row = pass[k].first_row;
    o.rows = pass[k].rows;
    o.hidden = std::move(pass[k].hidden);
    o.logits = std::move(pass[k].logits_out);
  }
  ws_->reset();
  return out;
}

std::vector<Session::Output> Session::run_prompts(const std::vector<Input>& prompts, int adapter_id,
                                                  const gemma4::PassOptions& options, int64_t max_pass_tokens) {
  std::vector<Output> out(prompts.size());
  if (prompts.empty()) return out;
  if (max_pass_tokens <= 0) max_pass_tokens = kDefaultPassTokens;
  for (const Input& p : prompts) {
    if (p.tokens.empty()) throw Error(code::INVALID_ARG, "forward: the token list is empty");
    if (static_cast<int64_t>(p.tokens.size()) > max_tokens_)
      throw Error(code::CONTEXT_OVERFLOW, "the prompt has " + std::to_string(p.tokens.size()) + " tokens but at most " +
                                              std::to_string(max_tokens_) + " are allowed (the model's context is " +
                                              std::to_string(model_->hparams().n_ctx_train) + " tokens)");
    for (const auto& ov : p.overrides)
      if (ov.position < 0 || ov.position >= static_cast<int64_t>(p.tokens.size()))
        throw Error(code::INVALID_ARG, "embedding override position " + std::to_string(ov.position) + " is outside the prompt");
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<const LoraAdapter> adapter = adapter_id ? model_->adapter(adapter_id) : nullptr;
  struct Work { size_t index; int seq; int64_t done; };
  std::deque<Work> work;  // stable addresses
  const auto drop = [&] {
    for (const Work& w : work)
      if (w.seq) seqs_.erase(w.seq);
  };
  try {
    size_t next = 0;
    std::vector<Work*> active;
    while (next < prompts.size() || !active.empty()) {
      // Fill the pass: the unfinished prompts first (a long prompt continues), then new ones while they fit.
      int64_t budget = max_pass_tokens;
      std::vector<Input> inputs;
      std::vector<std::pair<Work*, int64_t>> taken;  // (prompt, tokens taken)
      auto take = [&](Work& w) {
        const Input& p = prompts[w.index];
        const int64_t left = static_cast<int64_t>(p.tokens.size()) - w.done;
        const int64_t n = std::min(left, budget);
        Input in;
        in.seq = w.seq;
        in.tokens.assign(p.tokens.begin() + w.done, p.tokens.begin() + w.done + n);
        for (const auto& ov : p.overrides)
          if (ov.position >= w.done && ov.position < w.done + n) in.overrides.push_back({ov.position - w.done, ov.values});
        const bool final_chunk = n == left;
        // every row is read (Read::All), or only the last chunk's
        in.read = final_chunk || p.read == Read::All ? p.read : Read::None;
        in.logits = p.logits && in.read != Read::None;
        inputs.push_back(std::move(in));
        taken.emplace_back(&w, n);
        budget -= n;
      };
      for (Work* w : active)
        if (budget > 0) take(*w);
      while (budget > 0 && next < prompts.size()) {
        work.push_back(Work{next++, 0, 0});
        Work& w = work.back();
        const int id = next_seq_++;
        seqs_[id] = Sequence{std::make_unique<gemma4::KvCache>(model_->hparams()), adapter};
        w.seq = id;
        take(w);
      }
      std::vector<Output> got = run_locked(inputs, options);
      active.clear();
      for (size_t i = 0; i < inputs.size(); ++i) {
        Work* w = taken[i].first;
        const Input& p = prompts[w->index];
        const int64_t n = static_cast<int64_t>(inputs[i].tokens.size());
        Output& o = out[w->index];
        if (p.read == Read::All) {
          // rows of every chunk, concatenated
          if (o.hidden.empty()) o.hidden.resize(got[i].hidden.size());
          for (size_t c = 0; c < got[i].hidden.size(); ++c)
            o.hidden[c].insert(o.hidden[c].end(), got[i].hidden[c].begin(), got[i].hidden[c].end());
          o.logits.insert(o.logits.end(), got[i].logits.begin(), got[i].logits.end());
          o.first_row = 0;
          o.rows += got[i].rows;
        } else if (inputs[i].read != Read::None) {
          o = std::move(got[i]);
          o.first_row += w->done;
        }
        w->done += n;
        if (w->done < static_cast<int64_t>(p.tokens.size())) {
          active.push_back(w);
        } else {
          seqs_.erase(w->seq);
          w->seq = 0;
        }
      }
    }
  } catch (...) {
    drop();
    throw;
  }
  return out;
}

}  // namespace nla
