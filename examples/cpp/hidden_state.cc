// Using the engine from C++ alone (no Node): load a Gemma-4 GGUF and an optional PEFT adapter,
// tokenize a text, run blocks 0..L and print the block-L output at the last token.
//
//   cmake -S . -B build-cpp -DNLA_BUILD_EXAMPLES=ON && cmake --build build-cpp --target nla_hidden_state
//   build-cpp/nla_hidden_state model.gguf 17 "text" [adapter_dir]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/engine.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.gguf LAYER TEXT [ADAPTER_DIR]\n", argv[0]);
    return 2;
  }
  try {
    nla::EngineOptions options;
    options.model_path = argv[1];
    auto engine = nla::Engine::open(options);
    std::shared_ptr<const nla::LoraAdapter> adapter;
    if (argc > 4) adapter = engine->load_adapter(argv[4]);
    const std::vector<int32_t> tokens = engine->tokenizer().encode(argv[3], /*add_bos=*/true);
    const int layer = std::atoi(argv[2]);
    const auto states = engine->last_token_states({tokens}, layer, adapter.get());
    std::printf("%zu tokens, block %d output at the last token (%s):\n", tokens.size(), layer,
                engine->backend_description().c_str());
    for (size_t i = 0; i < states[0].size(); ++i) std::printf("%s%.6f", i ? " " : "", states[0][i]);
    std::printf("\n");
    return 0;
  } catch (const nla::Error& e) {
    std::fprintf(stderr, "%s: %s\n", e.code.c_str(), e.what());
    return 1;
  }
}
