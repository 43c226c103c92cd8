// The regular expressions of PEFT configs (target_modules / exclude_modules as a
// string, rank_pattern / alpha_pattern keys), matched in time linear in the text.
//
// PEFT matches them with Python's `re`. adapter_config.json comes from the internet,
// so a backtracking engine (std::regex: recursive, exponential on `(a*)*b`) is a
// crash and a hang waiting to happen. This is a Thompson-NFA simulation over the
// subset of Python's syntax such patterns use, with hard limits on pattern size,
// nesting and program size; anything else is refused (ERR_NLA_ADAPTER_INVALID).
//
// Supported (Python semantics, on ASCII text): literals and escaped punctuation,
// `.`, classes `[...]` / `[^...]` with ranges and \d \w \s \D \W \S (also outside
// classes), \t \n \r \f \v \a \xHH, groups `(...)` `(?:...)` `(?P<name>...)`, `|`,
// `* + ? {m} {m,} {,n} {m,n}` and their lazy forms (laziness does not change whether
// a full match exists), anchors `^ $ \A \Z \b \B`.
// Refused: backreferences, lookaround, inline flags, possessive quantifiers,
// conditionals, \u \U \N, octal escapes, non-ASCII pattern bytes.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nla {

class PeftRegex {
 public:
  static constexpr size_t kMaxPatternBytes = 4096;
  static constexpr int kMaxNesting = 32;          // groups inside groups
  static constexpr size_t kMaxProgram = 20000;    // NFA instructions after expanding {m,n}
  static constexpr int kMaxRepeat = 1000;         // largest m or n in {m,n}

  // Full: Python re.fullmatch. Prefix: re.match (anchored at the start only).
  enum class Mode : uint8_t { Full, Prefix };

  // Compiles `pattern`. Throws nla::Error(ADAPTER_INVALID,
  // what + ": cannot compile regex \"<pattern>\": <reason>").
  static PeftRegex compile(std::string_view pattern, const std::string& what, Mode mode = Mode::Full);
  // PEFT's rank_pattern/alpha_pattern rule, textually as PEFT builds it:
  // re.match(rf"(.*\.)?({key})$", module).
  static PeftRegex compile_pattern_key(std::string_view key, const std::string& what);

  // Matches `text` (ASCII module names) in O(|text| * program_size()). `steps`, when
  // given, is incremented by the work done (NFA states visited), so a caller can bound
  // the total over many matches.
  bool matches(std::string_view text, uint64_t* steps = nullptr) const;

  size_t program_size() const { return prog_.size(); }

  enum class Op : uint8_t { Byte, Split, Jmp, Assert, Match };
  enum class Cond : uint8_t { Begin, EndOrNewline, End, WordBoundary, NotWordBoundary };
  struct Inst {
    Op op = Op::Match;
    Cond cond = Cond::Begin;  // Assert
    uint32_t x = 0, y = 0;    // Split: both targets; Jmp: x; Byte: class index in x
  };

 private:
  PeftRegex() = default;
  Mode mode_ = Mode::Full;
  std::vector<Inst> prog_;
  std::vector<std::array<uint64_t, 4>> classes_;  // 256-bit byte sets
  friend struct RegexCompiler;
};

}  // namespace nla
