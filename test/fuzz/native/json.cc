// JSON (adapter_config.json, safetensors headers): parse, then walk every value with the typed accessors.
#include <string_view>

#include "common/json.h"
#include "fuzz_common.h"

namespace {
void walk(const nla::Json& j, int depth) {
  if (depth > 100) __builtin_trap();  // the parser's depth limit must hold
  switch (j.type()) {
    case nla::Json::Type::Array:
      for (size_t i = 0; i < j.size(); ++i) walk(j.at(i), depth + 1);
      break;
    case nla::Json::Type::Object:
      for (const auto& [k, v] : j.as_object()) {
        if (j.find(k) == nullptr) __builtin_trap();
        walk(v, depth + 1);
      }
      break;
    case nla::Json::Type::Number:
      if (j.is_integer()) {
        try {
          (void)j.as_int64();
        } catch (const nla::JsonError&) {
        }
      }
      break;
    default:
      break;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    walk(nla::Json::parse(std::string_view(reinterpret_cast<const char*>(data), size)), 0);
  } catch (const nla::JsonError&) {
  }
  return 0;
}
