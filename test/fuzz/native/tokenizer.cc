// The Gemma-4 tokenizer on arbitrary bytes: encode (with and without special-token parsing), decode the ids,
// decode arbitrary ids. The vocabulary is loaded once from $NLA_FUZZ_VOCAB (a vocab GGUF: the real Gemma-4 one
// or the small synthetic one scripts/fuzz.sh writes).
#include <cstdlib>
#include <cstring>
#include <memory>

#include "formats/gguf.h"
#include "fuzz_common.h"
#include "models/gemma4/tokenizer.h"

namespace {
std::unique_ptr<nla::GgufFile> g_file;
std::unique_ptr<nla::gemma4::Tokenizer> g_tok;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = std::getenv("NLA_FUZZ_VOCAB");
  if (!path || !*path) {
    std::fprintf(stderr, "tokenizer harness: set NLA_FUZZ_VOCAB to a vocabulary GGUF\n");
    std::exit(2);
  }
  g_file = nla::GgufFile::open(path);
  g_tok = nla::gemma4::Tokenizer::from_gguf(*g_file);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_tok) LLVMFuzzerInitialize(nullptr, nullptr);
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (bool special : {true, false}) {
    const std::vector<int32_t> ids = g_tok->encode(text, true, special);
    for (int32_t id : ids)
      if (id < 0 || id >= g_tok->n_vocab()) __builtin_trap();
    (void)g_tok->decode(ids, true);
    (void)g_tok->decode(ids, false);
  }
  // arbitrary ids: invalid ones are refused with nla::Error
  std::vector<int32_t> raw(size / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
  nla_fuzz::refusal_ok([&] { (void)g_tok->decode(raw, true); });
  return 0;
}
