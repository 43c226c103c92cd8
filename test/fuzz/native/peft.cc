// PEFT adapter folder: adapter_config.json + adapter_model.safetensors, loaded and validated against a fake model.
// Input: u32 little-endian length n, n bytes of config, then the safetensors bytes.
#include <cstring>
#include <string>

#include "adapters/lora.h"
#include "fuzz_common.h"

static std::string g_dir;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/nla-fuzz-peft.XXXXXX";
  if (!mkdtemp(tmpl)) std::abort();
  g_dir = tmpl;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (g_dir.empty()) LLVMFuzzerInitialize(nullptr, nullptr);
  uint32_t n = 0;
  if (size >= 4) std::memcpy(&n, data, 4);
  const size_t cfg_len = size >= 4 ? std::min<size_t>(n, size - 4) : size;
  const uint8_t* cfg = size >= 4 ? data + 4 : data;
  nla_fuzz::write_file(g_dir + "/adapter_config.json", cfg, cfg_len);
  nla_fuzz::write_file(g_dir + "/adapter_model.safetensors", cfg + cfg_len, size - (cfg - data) - cfg_len);
  nla_fuzz::refusal_ok([&] {
    auto ad = nla::LoraAdapter::load_peft_dir(g_dir);
    ad->validate(4, [](int, nla::LoraTarget) { return std::pair<int64_t, int64_t>{4, 6}; });
    for (int il = 0; il <= ad->max_layer(); ++il)
      for (int t = 0; t < static_cast<int>(nla::LoraTarget::COUNT); ++t)
        if (const auto* p = ad->get(il, static_cast<nla::LoraTarget>(t)))
          if (p->a.size() != static_cast<size_t>(p->rank * p->in) || p->b.size() != static_cast<size_t>(p->out * p->rank))
            __builtin_trap();
  });
  return 0;
}
