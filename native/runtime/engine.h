// The engine as one object: a mapped GGUF, its Gemma-4 model, its tokenizer and
// a backend. Usable from C++ alone; the Node binding is a thin layer over it.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "models/gemma4/forward.h"
#include "formats/gguf.h"
#include "adapters/lora.h"
#include "models/gemma4/model.h"
#include "models/gemma4/tokenizer.h"

namespace nla {

struct EngineOptions {
  std::string model_path;
  int threads = 0;                 // 0: all hardware threads
  std::string device = "cpu";      // "cpu" or "cuda"
  GeluMode gelu = GeluMode::Exact;
};

class Engine {
 public:
  static std::unique_ptr<Engine> open(const EngineOptions& options);

  const GgufFile& file() const { return *file_; }
  const Gemma4Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const EngineOptions& options() const { return options_; }
  std::string backend_description() const { return backend_->description(); }
  std::string backend_name() const { return backend_->name(); }

  // Loads a PEFT adapter directory and checks it against this model.
  std::shared_ptr<const LoraAdapter> load_adapter(const std::string& dir) const;

  // One forward pass (serialised per engine: the backend's scratch is per engine).
  void forward(const std::vector<int32_t>& tokens, const ForwardOptions& options);

  // The block-`layer` output at the last token of each prompt (what the AR's head reads).
  std::vector<std::vector<float>> last_token_states(const std::vector<std::vector<int32_t>>& prompts, int layer,
                                                     const LoraAdapter* adapter,
                                                     const std::function<bool()>& should_abort = nullptr);

 private:
  Engine() = default;
  EngineOptions options_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Gemma4Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  std::mutex mu_;
};

}  // namespace nla
