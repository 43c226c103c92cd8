// A loaded model: the mapped GGUF, its Gemma-4 weights and tokenizer, the backend that runs it, and the
// adapters loaded on it. Immutable after load except for the adapter registry (its own lock), so any number
// of sessions use one Model from any number of threads at once (whisper.cpp's context vs state).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adapters/lora.h"
#include "backends/backend.h"
#include "formats/gguf.h"
#include "models/gemma4/model.h"
#include "models/gemma4/tokenizer.h"

namespace nla {

struct ModelOptions {
  std::string path;
  int threads = 0;              // 0: all hardware threads
  std::string device = "cpu";   // "cpu" or "cuda"
  GeluMode gelu = GeluMode::Exact;
  bool profile = false;         // time every backend operation (backends/profile.h)
};

class Model {
 public:
  // Opens, validates and binds the GGUF and creates the backend. Throws nla::Error.
  static std::shared_ptr<Model> load(const ModelOptions& options);
  ~Model();

  const GgufFile& file() const { return *file_; }
  const gemma4::Weights& weights() const { return *weights_; }
  const gemma4::HParams& hparams() const { return weights_->hparams(); }
  const gemma4::Tokenizer& tokenizer() const { return *tokenizer_; }
  Backend& backend() const { return *backend_; }
  const ModelOptions& options() const { return options_; }  // threads: the number in use
  // With options.profile: the per-op times and work so far as JSON (backends/profile.h); reset: start over.
  // Without: "{}".
  std::string profile_json(bool reset) const;

  // Reads ahead what a pass through blocks 0..last reads in full (large sequential reads, in file order), so a
  // first pass from a cold page cache does not fault the weights in page by page. Returns the bytes covered.
  size_t prefetch(int last) const;

  // Adapters, by id (ids are never reused). load_adapter reads a PEFT folder and checks it against the model.
  int load_adapter(const std::string& dir);
  // The adapter with this id; throws ERR_NLA_ADAPTER_NOT_LOADED for an id that is not (or no longer) loaded.
  std::shared_ptr<const LoraAdapter> adapter(int id) const;
  // Unloads an adapter; throws ERR_NLA_ADAPTER_IN_USE while a session's sequence uses it (the adapter stays).
  void unload_adapter(int id);
  std::vector<int> adapter_ids() const;

 private:
  Model() = default;
  ModelOptions options_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<gemma4::Weights> weights_;
  std::unique_ptr<gemma4::Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  mutable std::mutex adapters_mu_;
  std::map<int, std::shared_ptr<const LoraAdapter>> adapters_;
  int next_adapter_id_ = 1;
};

}  // namespace nla
