#include "runtime/verbalizer.h"

#include <algorithm>
#include <cmath>

namespace nla {

int64_t find_injection_site(const std::vector<int32_t>& prompt, const InjectionMarker& m) {
  std::vector<int64_t> sites;
  int64_t markers = 0;
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] != m.token) continue;
    ++markers;
    const bool left_ok = m.left < 0 || (i > 0 && prompt[i - 1] == m.left);
    const bool right_ok = m.right < 0 || (i + 1 < prompt.size() && prompt[i + 1] == m.right);
    if (left_ok && right_ok) sites.push_back(static_cast<int64_t>(i));
  }
  if (sites.size() == 1) return sites[0];
  const std::string what = "the AV prompt has " + std::to_string(markers) + " marker token(s) " + std::to_string(m.token);
  if (sites.empty())
    throw Error(code::INJECTION, what + (markers ? " but none between tokens " + std::to_string(m.left) + " and " + std::to_string(m.right) +
                                                       " (the template or the vocabulary does not match the marker ids)"
                                                 : " (the template must contain the marker exactly once)"));
  throw Error(code::INJECTION, what + " with the expected neighbours at " + std::to_string(sites.size()) +
                                   " places; the injection site must be unique");
}

Verbalizer::Verbalizer(std::shared_ptr<Session> session, VerbalizerSpec spec) : session_(std::move(session)), spec_(std::move(spec)) {
  const int32_t V = session_->model().hparams().n_vocab;
  for (int32_t t : spec_.prompt)
    if (t < 0 || t >= V) throw Error(code::INVALID_ARG, "the AV prompt has token " + std::to_string(t) + ", outside the vocabulary");
  if (!(spec_.injection_norm >= 0) || !std::isfinite(spec_.injection_norm))
    throw Error(code::INVALID_ARG, "the injection norm must be a finite number >= 0");
  site_ = find_injection_site(spec_.prompt, spec_.marker);
  if (static_cast<int64_t>(spec_.prompt.size()) >= session_->max_tokens())
    throw Error(code::CONTEXT_OVERFLOW, "the AV prompt (" + std::to_string(spec_.prompt.size()) +
                                            " tokens) leaves no room to generate within " + std::to_string(session_->max_tokens()) + " tokens");
  if (spec_.adapter_id) session_->model().adapter(spec_.adapter_id);  // ERR_NLA_ADAPTER_NOT_LOADED now, not later
}

Verbalizer::~Verbalizer() {
  if (prefix_seq_ && session_->has_sequence(prefix_seq_)) session_->remove_sequence(prefix_seq_);
}

std::vector<Verbalizer::Result> Verbalizer::run(const std::vector<std::vector<float>>& activations, const Options& o) {
  std::lock_guard<std::mutex> lock(mu_);
  const Model& model = session_->model();
  const int64_t d = model.hparams().n_embd;
  const int64_t room = session_->max_tokens() - static_cast<int64_t>(spec_.prompt.size());
  if (o.max_new_tokens <= 0) throw Error(code::INVALID_ARG, "maxTokens must be at least 1");
  if (o.max_new_tokens > room)
    throw Error(code::CONTEXT_OVERFLOW, "maxTokens " + std::to_string(o.max_new_tokens) + " does not fit: the AV prompt takes " +
                                            std::to_string(spec_.prompt.size()) + " of the " + std::to_string(session_->max_tokens()) +
                                            " tokens a sequence may hold, leaving " + std::to_string(room));
  // The activations, scaled: v / ‖v‖ · norm (norm 0: as given).
  std::vector<std::vector<float>> injected(activations.size());
  for (size_t i = 0; i < activations.size(); ++i) {
    const std::vector<float>& v = activations[i];
    if (static_cast<int64_t>(v.size()) != d)
      throw Error(code::INVALID_ARG, "activation " + std::to_string(i) + " has " + std::to_string(v.size()) +
                                         " values, expected d_model = " + std::to_string(d));
    double ss = 0;
    for (float x : v) {
      if (!std::isfinite(x)) throw Error(code::INVALID_ARG, "activation " + std::to_string(i) + " has a non-finite value");
      ss += static_cast<double>(x) * x;
    }
    if (!(ss > 0)) throw Error(code::INVALID_ARG, "activation " + std::to_string(i) + " is all zeros: it has no direction to inject");
    const double k = spec_.injection_norm > 0 ? spec_.injection_norm / std::sqrt(ss) : 1.0;
    injected[i].resize(v.size());
    for (size_t j = 0; j < v.size(); ++j) injected[i][j] = static_cast<float>(v[j] * k);
  }
  std::vector<Result> results(activations.size());
  if (activations.empty()) return results;

  gemma4::PassOptions pass;
  pass.gelu = model.options().gelu;
  pass.should_abort = o.should_abort;
  // The prompt before the marker, once.
  if (site_ > 0 && !prefix_seq_) {
    const int seq = session_->add_sequence(spec_.adapter_id);
    try {
      Session::Input in;
      in.seq = seq;
      in.tokens.assign(spec_.prompt.begin(), spec_.prompt.begin() + site_);
      in.read = Session::Read::None;
      session_->run({in}, pass);
    } catch (...) {
      session_->remove_sequence(seq);
      throw;
    }
    prefix_seq_ = seq;
  }
  std::vector<int> seqs(activations.size(), 0);
  const auto cleanup = [&] {
    for (int s : seqs)
      if (s && session_->has_sequence(s)) session_->remove_sequence(s);
  };
  try {
    // From the marker on, every activation in one pass.
    std::vector<Session::Input> inputs(activations.size());
    for (size_t i = 0; i < activations.size(); ++i) {
      seqs[i] = prefix_seq_ ? session_->fork_sequence(prefix_seq_) : session_->add_sequence(spec_.adapter_id);
      inputs[i].seq = seqs[i];
      inputs[i].tokens.assign(spec_.prompt.begin() + site_, spec_.prompt.end());
      inputs[i].overrides.push_back({0, std::move(injected[i])});
      inputs[i].read = Session::Read::Last;
      inputs[i].logits = true;
    }
    std::vector<Sampler> samplers;
    for (size_t i = 0; i < activations.size(); ++i) {
      SamplerParams p = o.sampler;
      p.seed = o.sampler.seed + i;
      samplers.emplace_back(p);
    }
    const gemma4::Tokenizer& tok = model.tokenizer();
    std::vector<size_t> live(activations.size());
    for (size_t i = 0; i < live.size(); ++i) live[i] = i;
    std::vector<Session::Output> out = session_->run(inputs, pass);
    const int64_t V = model.hparams().n_vocab;
    while (!live.empty()) {
      std::vector<size_t> still;
      std::vector<Session::Input> step;
      for (size_t k = 0; k < live.size(); ++k) {
        const size_t i = live[k];
        Result& r = results[i];
        const int32_t t = samplers[i].sample(out[k].logits.data(), V);
        if (std::find(spec_.eog.begin(), spec_.eog.end(), t) != spec_.eog.end()) {
          r.finish = Finish::Eos;
          continue;
        }
        r.tokens.push_back(t);
        if (o.on_token) o.on_token(i, t);
        if (!o.stop.empty()) {
          const std::string text = tok.decode(r.tokens, false);
          if (std::any_of(o.stop.begin(), o.stop.end(), [&](const std::string& s) { return !s.empty() && text.find(s) != std::string::npos; })) {
            r.finish = Finish::Stop;
            continue;
          }
        }
        if (static_cast<int>(r.tokens.size()) >= o.max_new_tokens) {
          r.finish = Finish::Length;
          continue;
        }
        still.push_back(i);
        Session::Input in;
        in.seq = seqs[i];
        in.tokens = {t};
        in.read = Session::Read::Last;
        in.logits = true;
        step.push_back(std::move(in));
      }
      // Finished sequences leave now; the others decode on together.
      for (size_t i : live)
        if (std::find(still.begin(), still.end(), i) == still.end() && session_->has_sequence(seqs[i])) {
          session_->remove_sequence(seqs[i]);
          seqs[i] = 0;
        }
      live = std::move(still);
      if (live.empty()) break;
      out = session_->run(step, pass);
    }
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
  return results;
}

}  // namespace nla
