// safetensors reader: open + convert every tensor (sizes bounded by the file, which the fuzzer bounds).
#include "formats/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static nla_fuzz::MemFile file("fuzz.safetensors");
  const std::string& path = file.write(data, size);
  nla_fuzz::refusal_ok([&] {
    auto st = nla::SafetensorsFile::open(path, nla::code::HEAD_INVALID);
    for (const auto& t : st->tensors()) {
      if (t.offset + t.nbytes > st->file_size()) __builtin_trap();
      nla_fuzz::refusal_ok([&] { (void)st->to_f32(t); });
    }
  });
  return 0;
}
