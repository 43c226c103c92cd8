// Gemma-4 tokenizer built from a GGUF vocabulary (tokenizer.ggml.model = "gemma4"):
// special-token split, U+2581 for spaces, newline runs, rank-ordered BPE on
// code points, <0xHH> byte fallback, BOS. Also decode.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/gguf.h"

namespace nla {
namespace gemma4 {

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
  // The most bytes of input text one token can cover: a text of B bytes has at least B / max_token_bytes()
  // tokens, so an over-long input is refused before it is tokenized.
  size_t max_token_bytes() const { return max_token_bytes_; }
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  const std::string& token_text(int32_t id) const;   // raw vocab string (with U+2581)
  TokenType token_type(int32_t id) const;
  // Exact lookup of a vocab string (first id if duplicated); -1 if absent.
  int32_t find_token(const std::string& text) const;

 private:
  Tokenizer() = default;

  // One entry of the merge table, keyed by the ids of its two sides.
  struct MergeSlot {
    uint64_t key = 0;     // (left id << 32) | right id; ~0 = empty
    int32_t rank = 0;     // index in tokenizer.ggml.merges (first occurrence wins)
    int32_t result = 0;   // id of left + right
  };

  // String -> id over the vocab and the extra strings (ids >= n_vocab).
  int32_t lookup(const char* s, size_t n) const;
  int32_t lookup_hashed(const char* s, size_t n, uint64_t hash) const;
  void prefetch_candidates(uint64_t hash) const;
  int32_t intern(const std::string& s);  // lookup, else add as an extra string
  void index_insert(int32_t id);
  const std::string& any_text(int32_t id) const {
    return id < n_vocab() ? tokens_[id] : extra_strings_[id - n_vocab()];
  }
  const MergeSlot* find_merge(int32_t left, int32_t right) const;
  void split_special(const std::string& text, bool parse_special,
                     std::vector<std::pair<size_t, size_t>>& pieces, std::vector<int32_t>& piece_ids) const;
  void encode_piece(const char* s, size_t n, std::vector<int32_t>& out) const;
  void bpe(const char* s, size_t n, std::vector<int32_t>& out) const;
  void push_bytes(const char* s, size_t n, std::vector<int32_t>& out) const;

  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  // Strings that occur as a side or result of a merge but are not vocab tokens
  // (none in the real vocab). Symbols holding them end in byte fallback.
  std::vector<std::string> extra_strings_;
  std::vector<uint64_t> str_slots_;  // (hash high bits << 32) | (id + 1); 0 = empty
  uint64_t str_mask_ = 0;
  std::vector<MergeSlot> merge_slots_;
  uint64_t merge_mask_ = 0;
  int32_t ascii_ids_[128];           // id of each one-byte ASCII string, -1 if absent
  std::vector<int32_t> specials_;  // CONTROL/USER_DEFINED/UNKNOWN ids sorted by byte length, longest first
  int32_t bos_ = 2, eos_ = 1, unk_ = 3;
  size_t max_token_bytes_ = 1;
  std::vector<int32_t> byte_ids_;   // id of <0xHH> for each byte (-1 if missing)
  std::vector<int16_t> byte_value_; // for BYTE tokens: the byte they stand for, else -1
  friend struct TokenizerBuilder;
};

}  // namespace gemma4
}  // namespace nla
