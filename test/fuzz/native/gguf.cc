// A model file end to end through the runtime's API (runtime/model.h, runtime/requests.h): open the GGUF, bind
// the Gemma-4 weights and tokenizer, then one tiny pass (two tokens, first block) when the model binds.
#include <algorithm>

#include "fuzz_common.h"
#include "runtime/model.h"
#include "runtime/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static nla_fuzz::MemFile file("fuzz.gguf");
  nla::ModelOptions opt;
  opt.path = file.write(data, size);
  opt.threads = 1;
  nla_fuzz::refusal_ok([&] {
    auto model = nla::Model::load(opt);
    std::vector<int32_t> tokens = model->tokenizer().encode("hi", true);
    tokens.resize(std::min<size_t>(tokens.size(), 2));
    if (tokens.empty()) return;
    nla::Session session(model);
    nla::PromptRequest req;
    req.tokens = {tokens};
    req.layer = std::min(1, model->hparams().n_layer - 1);
    const auto out = nla::hidden_states(session, req);
    if (out.size() != 1 || out[0].hidden.size() != 1 ||
        out[0].hidden[0].size() != static_cast<size_t>(model->hparams().n_embd))
      __builtin_trap();
  });
  return 0;
}
