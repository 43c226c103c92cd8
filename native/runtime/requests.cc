#include "runtime/requests.h"

#include <cmath>

namespace nla {

std::vector<int32_t> tokenize_bounded(const Model& model, const std::string& text, int64_t max_tokens, bool add_bos,
                                      bool parse_special) {
  const uint64_t bound = static_cast<uint64_t>(max_tokens) * model.tokenizer().max_token_bytes();
  if (text.size() > bound)
    throw Error(code::CONTEXT_OVERFLOW, "the text is " + std::to_string(text.size()) + " bytes, more than " +
                                            std::to_string(max_tokens) + " tokens can hold; at most " +
                                            std::to_string(max_tokens) + " tokens are supported");
  std::vector<int32_t> ids = model.tokenizer().encode(text, add_bos, parse_special);
  if (static_cast<int64_t>(ids.size()) > max_tokens)
    throw Error(code::CONTEXT_OVERFLOW, "the prompt is " + std::to_string(ids.size()) + " tokens long but at most " +
                                            std::to_string(max_tokens) + " are supported (the model's context is " +
                                            std::to_string(model.hparams().n_ctx_train) + ")");
  return ids;
}

std::vector<Session::Output> hidden_states(Session& session, const PromptRequest& r) {
  const Model& m = session.model();
  const int layer = r.layer < 0 ? m.hparams().n_layer - 1 : r.layer;
  if (layer >= m.hparams().n_layer)
    throw Error(code::INVALID_ARG, "layer " + std::to_string(layer) + " does not exist: the model has " +
                                       std::to_string(m.hparams().n_layer) + " blocks");
  std::vector<Session::Input> prompts(r.texts.empty() ? r.tokens.size() : r.texts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    prompts[i].tokens = r.texts.empty() ? r.tokens[i] : tokenize_bounded(m, r.texts[i], session.max_tokens());
    prompts[i].read = r.read;
    if (r.should_abort && r.should_abort()) throw Error(code::ABORTED, "the request was aborted");
  }
  gemma4::PassOptions o;
  o.last_layer = layer;
  o.capture_layers = {layer};
  o.gelu = r.gelu;
  o.should_abort = r.should_abort;
  return session.run_prompts(prompts, r.adapter_id, o, r.max_pass_tokens);
}

std::vector<std::vector<float>> reconstruct(Session& session, const PromptRequest& request, const LinearHead& head) {
  const int64_t d = session.model().hparams().n_embd;
  if (head.in_dim() != d)
    throw Error(code::HEAD_INVALID, "the head reads " + std::to_string(head.in_dim()) + " values but the model's d_model is " +
                                        std::to_string(d));
  PromptRequest r = request;
  r.read = Session::Read::Last;
  std::vector<Session::Output> states = hidden_states(session, r);
  std::vector<std::vector<float>> out(states.size());
  for (size_t i = 0; i < states.size(); ++i) {
    const std::vector<float>& h = states[i].hidden[0];
    for (float v : h)
      if (!std::isfinite(v))
        throw Error(request.adapter_id ? code::ADAPTER_INVALID : code::MODEL_INVALID,
                    std::string("the model") + (request.adapter_id ? " with this adapter" : "") +
                        " produced a non-finite hidden state (its weights overflow on this input)");
    out[i].resize(static_cast<size_t>(head.out_dim()));
    head.apply(h.data(), out[i].data());
  }
  return out;
}

}  // namespace nla
