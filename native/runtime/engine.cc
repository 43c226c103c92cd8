#include "runtime/engine.h"

#include <thread>

namespace nla {

std::unique_ptr<Engine> Engine::open(const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  e->file_ = GgufFile::open(options.model_path);
  try {
    e->model_ = Gemma4Model::load(*e->file_);
    e->tokenizer_ = Tokenizer::from_gguf(*e->file_);
  } catch (const Error&) {
    e->file_->check_intact();  // values read as zeros from a shrunk file: report the I/O, not their symptoms
    throw;
  }
  e->file_->check_intact();
  if (e->tokenizer_->n_vocab() > e->model_->hparams().n_vocab)
    throw Error(code::MODEL_INVALID, options.model_path + ": the vocabulary has " + std::to_string(e->tokenizer_->n_vocab()) +
                                         " tokens but token_embd has only " + std::to_string(e->model_->hparams().n_vocab) + " rows");
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  e->options_.threads = threads;  // report what is used
  if (options.device == "cpu") {
    e->backend_ = make_cpu_backend(threads);
  } else if (options.device == "cuda") {
#ifdef NLA_HAVE_CUDA
    e->backend_ = make_cuda_backend(0);
#else
    throw Error(code::NO_CUDA, "this build of nla-ar has no CUDA backend");
#endif
  } else {
    throw Error(code::INVALID_ARG, "unknown device '" + options.device + "' (expected cpu or cuda)");
  }
  return e;
}

std::shared_ptr<const LoraAdapter> Engine::load_adapter(const std::string& dir) const {
  std::shared_ptr<const LoraAdapter> a = LoraAdapter::load_peft_dir(dir);
  a->validate(model_->hparams().n_layer,
              [&](int il, LoraTarget t) { return model_->projection_shape(il, static_cast<int>(t)); });
  return a;
}

void Engine::forward(const std::vector<int32_t>& tokens, const ForwardOptions& options) {
  std::lock_guard<std::mutex> lock(mu_);
  // The pass reads the mapped file: if it was truncated or rewritten meanwhile (MappedFile), the
  // result is discarded with ERR_NLA_IO, and the model refuses every later pass the same way.
  file_->check_intact();
  try {
    nla::forward(*model_, *backend_, tokens, options);
  } catch (const Error&) {
    file_->check_intact();
    throw;
  }
  file_->check_intact();
}

std::vector<std::vector<float>> Engine::last_token_states(const std::vector<std::vector<int32_t>>& prompts, int layer,
                                                          const LoraAdapter* adapter,
                                                          const std::function<bool()>& should_abort) {
  std::vector<std::vector<float>> out;
  out.reserve(prompts.size());
  for (const auto& tokens : prompts) {
    ForwardOptions o;
    o.last_layer = layer;
    o.capture_layers = {layer};
    o.adapter = adapter;
    o.gelu = options_.gelu;
    o.should_abort = should_abort;
    std::vector<float> h;
    o.on_hidden = [&](int, int64_t rows, int64_t, const float* data) {
      h.assign(data + (rows - 1) * model_->hparams().n_embd, data + rows * model_->hparams().n_embd);
    };
    forward(tokens, o);
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace nla
