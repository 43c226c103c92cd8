// Gemma-4 tokenizer built from a GGUF vocabulary (tokenizer.ggml.model = "gemma4"):
// special-token split, U+2581 for spaces, newline runs, rank-ordered BPE on
// code points, <0xHH> byte fallback, BOS. Also decode.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gguf.h"

namespace nla {

enum class TokenType : int32_t { UNDEFINED = 0, NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 };

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from the file (a full model or a vocab-only GGUF).
  // Throws nla::Error(TOKENIZER) if the model is not "gemma4" or keys are missing/inconsistent.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);

  // parse_special: match CONTROL tokens in text (USER_DEFINED are always matched).
  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special = true) const;
  // render_special: emit the text of CONTROL tokens too. Invalid ids throw nla::Error(INVALID_ARG).
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  const std::string& token_text(int32_t id) const;   // raw vocab string (with U+2581)
  TokenType token_type(int32_t id) const;
  // Exact lookup of a vocab string (first id if duplicated); -1 if absent.
  int32_t find_token(const std::string& text) const;

 private:
  Tokenizer() = default;
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // key: left + ' ' + right
  std::vector<int32_t> specials_;  // CONTROL/USER_DEFINED/UNKNOWN ids sorted by byte length, longest first
  int32_t bos_ = 2, eos_ = 1, unk_ = 3;
  int32_t byte_base_ = -1;          // id of <0x00> if the 256 byte tokens are contiguous, else -1
  std::vector<int32_t> byte_ids_;   // id of <0xHH> for each byte (-1 if missing)
  friend struct TokenizerBuilder;
};

}  // namespace nla
