// Shared basics of the engine: the one error type every part throws.
#pragma once
#include <stdexcept>
#include <string>

namespace nla {

// Every failure the engine reports carries a stable code (the same strings the
// TypeScript layer exposes as NlaError.code) and a message that names the
// offending file, field, tensor or option.
struct Error : std::runtime_error {
  std::string code;
  Error(std::string code_, const std::string& message)
      : std::runtime_error(message), code(std::move(code_)) {}
};

// Error codes used by the engine (documented in README.md).
namespace code {
inline constexpr const char* IO = "ERR_NLA_IO";                      // cannot open/read/mmap a file
inline constexpr const char* GGUF_MALFORMED = "ERR_NLA_GGUF_MALFORMED";  // truncated / inconsistent GGUF
inline constexpr const char* UNSUPPORTED_TYPE = "ERR_NLA_UNSUPPORTED_TENSOR_TYPE";
inline constexpr const char* UNSUPPORTED_ARCH = "ERR_NLA_UNSUPPORTED_ARCH";
inline constexpr const char* MODEL_INVALID = "ERR_NLA_MODEL_INVALID";    // missing tensor / bad shape / bad hparam
inline constexpr const char* ADAPTER_INVALID = "ERR_NLA_ADAPTER_INVALID"; // malformed adapter files
inline constexpr const char* ADAPTER_MISMATCH = "ERR_NLA_ADAPTER_MISMATCH"; // adapter does not fit the model
inline constexpr const char* ADAPTER_NOT_LOADED = "ERR_NLA_ADAPTER_NOT_LOADED"; // an adapter id that is not loaded
inline constexpr const char* ADAPTER_IN_USE = "ERR_NLA_ADAPTER_IN_USE";   // unloading an adapter a session uses
inline constexpr const char* SEQUENCE_FINISHED = "ERR_NLA_SEQUENCE_FINISHED"; // a step on a removed sequence
inline constexpr const char* INJECTION = "ERR_NLA_INJECTION";  // the AV prompt's injection site is missing or ambiguous
inline constexpr const char* INVALID_ARG = "ERR_NLA_INVALID_ARG";
inline constexpr const char* CONTEXT_OVERFLOW = "ERR_NLA_CONTEXT_OVERFLOW";
inline constexpr const char* TOKENIZER = "ERR_NLA_TOKENIZER";
inline constexpr const char* ABORTED = "ERR_NLA_ABORTED";
inline constexpr const char* NO_CUDA = "ERR_NLA_NO_CUDA";
inline constexpr const char* OOM = "ERR_NLA_OUT_OF_MEMORY";
inline constexpr const char* HEAD_INVALID = "ERR_NLA_HEAD_INVALID";
inline constexpr const char* INTERNAL = "ERR_NLA_INTERNAL";
}  // namespace code

}  // namespace nla
