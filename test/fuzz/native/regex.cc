// The PEFT pattern matcher (target_modules / rank_pattern / alpha_pattern): compile an arbitrary pattern and
// match it against module names, in both of PEFT's modes. Input: pattern, then '\n', then an optional name.
#include <string>
#include <string_view>

#include "adapters/peft_regex.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string_view pattern = in.substr(0, nl);
  const std::string extra = nl == std::string_view::npos ? std::string() : std::string(in.substr(nl + 1, 256));
  static const char* kNames[] = {"model.language_model.layers.3.self_attn.q_proj", "model.layers.11.mlp.down_proj",
                                 "model.language_model.layers.34.self_attn.o_proj", ""};
  nla_fuzz::refusal_ok([&] {
    const auto full = nla::PeftRegex::compile(pattern, "fuzz");
    const auto key = nla::PeftRegex::compile_pattern_key(pattern, "fuzz");
    if (full.program_size() > nla::PeftRegex::kMaxProgram) __builtin_trap();
    for (const char* name : kNames) {
      uint64_t steps = 0;
      (void)full.matches(name, &steps);
      (void)key.matches(name, &steps);
      // linear time: states visited per byte are bounded by the program size
      if (steps > (full.program_size() + key.program_size() + 2) * (std::string_view(name).size() + 2)) __builtin_trap();
    }
    (void)full.matches(extra);
  });
  return 0;
}
