// A model file end to end through the engine's public API (runtime/engine.h): open the GGUF, bind the Gemma-4
// model and tokenizer, then one tiny forward pass (two tokens, first block) when the model binds.
#include <algorithm>

#include "fuzz_common.h"
#include "runtime/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static nla_fuzz::MemFile file("fuzz.gguf");
  nla::EngineOptions opt;
  opt.model_path = file.write(data, size);
  opt.threads = 1;
  nla_fuzz::refusal_ok([&] {
    auto engine = nla::Engine::open(opt);
    std::vector<int32_t> tokens = engine->tokenizer().encode("hi", true);
    tokens.resize(std::min<size_t>(tokens.size(), 2));
    if (tokens.empty()) return;
    const auto states = engine->last_token_states({tokens}, std::min(1, engine->model().hparams().n_layer - 1), nullptr);
    if (states.size() != 1 || states[0].size() != static_cast<size_t>(engine->model().hparams().n_embd)) __builtin_trap();
  });
  return 0;
}
