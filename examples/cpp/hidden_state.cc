// Using the engine from C++ alone (no Node): load a Gemma-4 GGUF and an optional PEFT adapter,
// tokenize a text, run blocks 0..L and print the block-L output at the last token.
//
//   cmake -S . -B build-cpp -DNLA_BUILD_EXAMPLES=ON && cmake --build build-cpp --target nla_hidden_state
//   build-cpp/nla_hidden_state model.gguf 17 "text" [adapter_dir]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/requests.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.gguf LAYER TEXT [ADAPTER_DIR]\n", argv[0]);
    return 2;
  }
  try {
    nla::ModelOptions options;
    options.path = argv[1];
    std::shared_ptr<nla::Model> model = nla::Model::load(options);  // shared, immutable; any number of sessions
    nla::Session session(model);                                     // this caller's state
    nla::PromptRequest request;
    request.texts = {argv[3]};                                       // tokenized with BOS
    request.layer = std::atoi(argv[2]);
    if (argc > 4) request.adapter_id = model->load_adapter(argv[4]);
    const std::vector<nla::Session::Output> states = nla::hidden_states(session, request);
    const std::vector<float>& h = states[0].hidden[0];
    std::printf("block %d output at the last token (%s):\n", request.layer, model->backend().description().c_str());
    for (size_t i = 0; i < h.size(); ++i) std::printf("%s%.6f", i ? " " : "", h[i]);
    std::printf("\n");
    return 0;
  } catch (const nla::Error& e) {
    std::fprintf(stderr, "%s: %s\n", e.code.c_str(), e.what());
    return 1;
  }
}
