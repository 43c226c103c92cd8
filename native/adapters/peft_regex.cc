// Parser (Python `re` syntax subset) -> small AST -> Thompson NFA; see peft_regex.h.
#include "adapters/peft_regex.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "common/error.h"

namespace nla {

namespace {

using ByteSet = std::array<uint64_t, 4>;

void set_add(ByteSet& s, unsigned c) { s[c >> 6] |= uint64_t{1} << (c & 63); }
void set_range(ByteSet& s, unsigned lo, unsigned hi) {
  for (unsigned c = lo; c <= hi; ++c) set_add(s, c);
}
bool set_has(const ByteSet& s, unsigned c) { return (s[c >> 6] >> (c & 63)) & 1; }
void set_union(ByteSet& a, const ByteSet& b) {
  for (int i = 0; i < 4; ++i) a[i] |= b[i];
}
ByteSet set_complement(const ByteSet& s) {
  ByteSet r;
  for (int i = 0; i < 4; ++i) r[i] = ~s[i];
  return r;
}

bool is_word(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// \d \w \s as Python applies them to ASCII text (str.isspace() also holds for \x1c-\x1f).
ByteSet class_of(char k) {
  ByteSet s{};
  switch (k) {
    case 'd': case 'D': set_range(s, '0', '9'); break;
    case 'w': case 'W':
      set_range(s, 'a', 'z');
      set_range(s, 'A', 'Z');
      set_range(s, '0', '9');
      set_add(s, '_');
      break;
    case 's': case 'S':
      for (unsigned c : {' ', '\t', '\n', '\r', '\f', '\v'}) set_add(s, c);
      set_range(s, 0x1c, 0x1f);
      break;
  }
  return (k >= 'A' && k <= 'Z') ? set_complement(s) : s;
}

struct Node {
  enum Kind : uint8_t { Empty, Set, Concat, Alt, Repeat, Assert } kind = Empty;
  PeftRegex::Cond cond = PeftRegex::Cond::Begin;
  uint32_t cls = 0;
  int min = 0, max = 0;  // Repeat; max < 0: unbounded
  std::vector<uint32_t> kids;
};

std::string shown(std::string_view pattern) {
  std::string s(pattern.substr(0, 80));
  if (pattern.size() > 80) s += "...";
  return s;
}

}  // namespace

struct RegexCompiler {
  std::string_view p;
  size_t pos = 0;
  std::string what, display;
  PeftRegex& re;
  size_t shift = 0;  // length of text PEFT puts before the user's pattern (not counted in positions)
  std::vector<Node> nodes;

  [[noreturn]] void fail(const std::string& why) const {
    const std::string at = pos >= shift ? " (at position " + std::to_string(pos - shift) + ")" : "";
    throw Error(code::ADAPTER_INVALID, what + ": cannot compile regex \"" + display + "\": " + why + at);
  }

  bool at_end() const { return pos >= p.size(); }
  char peek() const { return p[pos]; }

  uint32_t add(Node n) {
    nodes.push_back(std::move(n));
    return static_cast<uint32_t>(nodes.size() - 1);
  }
  std::map<ByteSet, uint32_t> class_index;  // one copy of each distinct set
  uint32_t add_set(const ByteSet& s) {
    auto [it, inserted] = class_index.emplace(s, static_cast<uint32_t>(re.classes_.size()));
    if (inserted) re.classes_.push_back(s);
    Node n;
    n.kind = Node::Set;
    n.cls = it->second;
    return add(std::move(n));
  }
  uint32_t add_literal(unsigned char c) {
    ByteSet s{};
    set_add(s, c);
    return add_set(s);
  }
  uint32_t add_assert(PeftRegex::Cond c) {
    Node n;
    n.kind = Node::Assert;
    n.cond = c;
    return add(std::move(n));
  }

  // ---- grammar: alt := concat ('|' concat)* ; concat := (atom quantifier*)* --------------

  uint32_t parse_alt(int depth) {
    Node alt;
    alt.kind = Node::Alt;
    alt.kids.push_back(parse_concat(depth));
    while (!at_end() && peek() == '|') {
      ++pos;
      alt.kids.push_back(parse_concat(depth));
    }
    if (alt.kids.size() == 1) return alt.kids[0];
    return add(std::move(alt));
  }

  uint32_t parse_concat(int depth) {
    Node cat;
    cat.kind = Node::Concat;
    while (!at_end() && peek() != '|' && peek() != ')') {
      uint32_t atom = parse_atom(depth);
      bool repeated = false;
      for (;;) {
        int lo = 0, hi = 0;
        if (!parse_quantifier(lo, hi)) break;
        if (repeated) fail("multiple repeat");
        if (nodes[atom].kind == Node::Assert) fail("nothing to repeat");
        if (!at_end() && peek() == '?') ++pos;  // lazy: same set of full matches
        else if (!at_end() && peek() == '+') fail("possessive quantifiers are not supported");
        Node r;
        r.kind = Node::Repeat;
        r.min = lo;
        r.max = hi;
        r.kids.push_back(atom);
        atom = add(std::move(r));
        repeated = true;
      }
      cat.kids.push_back(atom);
    }
    if (cat.kids.size() == 1) return cat.kids[0];
    if (cat.kids.empty()) return add(Node{});
    return add(std::move(cat));
  }

  // Reads a quantifier at pos if there is one. A '{' that does not form {m}, {m,}, {,n}, {m,n}
  // is a literal, as in Python.
  bool parse_quantifier(int& lo, int& hi) {
    if (at_end()) return false;
    const char c = peek();
    if (c == '*') { ++pos; lo = 0; hi = -1; return true; }
    if (c == '+') { ++pos; lo = 1; hi = -1; return true; }
    if (c == '?') { ++pos; lo = 0; hi = 1; return true; }
    if (c != '{') return false;
    size_t q = pos + 1;
    auto digits = [&](int& out, bool& any) {
      any = false;
      out = 0;
      while (q < p.size() && p[q] >= '0' && p[q] <= '9') {
        any = true;
        if (out <= PeftRegex::kMaxRepeat) out = out * 10 + (p[q] - '0');
        ++q;
      }
    };
    bool has_lo, has_hi = false;
    int l, h = 0;
    digits(l, has_lo);
    bool comma = false;
    if (q < p.size() && p[q] == ',') {
      comma = true;
      ++q;
      digits(h, has_hi);
    }
    if (q >= p.size() || p[q] != '}' || (!has_lo && !comma)) return false;  // literal '{' ("{}" too)
    pos = q + 1;
    lo = has_lo ? l : 0;
    hi = comma ? (has_hi ? h : -1) : lo;
    if (lo > PeftRegex::kMaxRepeat || hi > PeftRegex::kMaxRepeat)
      fail("repeat count above " + std::to_string(PeftRegex::kMaxRepeat));
    if (hi >= 0 && hi < lo) fail("min repeat greater than max repeat");
    return true;
  }

  uint32_t parse_atom(int depth) {
    const unsigned char c = static_cast<unsigned char>(peek());
    if (c >= 0x80) fail("non-ASCII bytes are not supported in patterns");
    switch (c) {
      case '(': return parse_group(depth);
      case '[': return parse_class();
      case '.': {
        ++pos;
        ByteSet s{};
        set_range(s, 0, 255);
        s['\n' >> 6] &= ~(uint64_t{1} << ('\n' & 63));
        return add_set(s);
      }
      case '^': ++pos; return add_assert(PeftRegex::Cond::Begin);
      case '$': ++pos; return add_assert(PeftRegex::Cond::EndOrNewline);
      case '\\': return parse_escape();
      case '*': case '+': case '?': fail("nothing to repeat");
      case '{': {
        int lo, hi;
        const size_t save = pos;
        if (parse_quantifier(lo, hi)) {
          pos = save;
          fail("nothing to repeat");
        }
        ++pos;
        return add_literal(c);
      }
      default: ++pos; return add_literal(c);
    }
  }

  uint32_t parse_group(int depth) {
    if (depth + 1 > PeftRegex::kMaxNesting) fail("groups nested deeper than " + std::to_string(PeftRegex::kMaxNesting));
    ++pos;  // '('
    if (!at_end() && peek() == '?') {
      ++pos;
      if (!at_end() && peek() == ':') {
        ++pos;
      } else if (p.substr(pos, 2) == "P<") {
        pos += 2;
        const size_t start = pos;
        while (!at_end() && (is_word(static_cast<unsigned char>(peek())))) ++pos;
        if (at_end() || peek() != '>' || pos == start || (p[start] >= '0' && p[start] <= '9')) fail("bad group name");
        ++pos;
      } else {
        fail("(?" + std::string(p.substr(pos, 1)) +
             "...) is not supported (lookaround, backreferences, flags and conditionals are refused)");
      }
    }
    const uint32_t inner = parse_alt(depth + 1);
    if (at_end() || peek() != ')') fail("missing ), unterminated subpattern");
    ++pos;
    // A group is an atom of its own: (^)* and (?:a*)* are valid where ^* and a** are not.
    Node group;
    group.kind = Node::Concat;
    group.kids.push_back(inner);
    return add(std::move(group));
  }

  // One escape's meaning: a byte (returns true, sets byte), or a class (returns false, sets set).
  // In a class, \b is a backspace and anchors are errors; outside, anchors are handled by the caller.
  bool escape_value(bool in_class, unsigned char& byte, ByteSet& set) {
    if (pos + 1 >= p.size()) fail("bad escape (end of pattern)");
    const char k = p[pos + 1];
    pos += 2;
    switch (k) {
      case 'd': case 'D': case 'w': case 'W': case 's': case 'S': set = class_of(k); return false;
      case 't': byte = '\t'; return true;
      case 'n': byte = '\n'; return true;
      case 'r': byte = '\r'; return true;
      case 'f': byte = '\f'; return true;
      case 'v': byte = '\v'; return true;
      case 'a': byte = '\a'; return true;
      case 'b':
        if (in_class) { byte = '\b'; return true; }
        break;
      case 'x': {
        auto hex = [](char h) -> int {
          if (h >= '0' && h <= '9') return h - '0';
          if (h >= 'a' && h <= 'f') return h - 'a' + 10;
          if (h >= 'A' && h <= 'F') return h - 'A' + 10;
          return -1;
        };
        if (pos + 2 > p.size() || hex(p[pos]) < 0 || hex(p[pos + 1]) < 0) fail("incomplete escape \\x");
        const int v = hex(p[pos]) * 16 + hex(p[pos + 1]);
        if (v >= 0x80) fail("non-ASCII escapes are not supported");
        pos += 2;
        byte = static_cast<unsigned char>(v);
        return true;
      }
      default: break;
    }
    if (k >= '0' && k <= '9') fail("backreferences and octal escapes are not supported");
    if ((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z')) {
      pos -= 2;
      fail(std::string("bad or unsupported escape \\") + k);
    }
    if (static_cast<unsigned char>(k) >= 0x80) fail("non-ASCII bytes are not supported in patterns");
    byte = static_cast<unsigned char>(k);  // escaped punctuation or space: itself
    return true;
  }

  uint32_t parse_escape() {
    if (pos + 1 < p.size()) {
      switch (p[pos + 1]) {
        case 'A': pos += 2; return add_assert(PeftRegex::Cond::Begin);
        case 'Z': pos += 2; return add_assert(PeftRegex::Cond::End);
        case 'b': pos += 2; return add_assert(PeftRegex::Cond::WordBoundary);
        case 'B': pos += 2; return add_assert(PeftRegex::Cond::NotWordBoundary);
        default: break;
      }
    }
    unsigned char byte = 0;
    ByteSet set{};
    if (escape_value(false, byte, set)) return add_literal(byte);
    return add_set(set);
  }

  uint32_t parse_class() {
    const size_t open = pos;
    ++pos;  // '['
    bool negate = false;
    if (!at_end() && peek() == '^') {
      negate = true;
      ++pos;
    }
    ByteSet s{};
    bool first = true;
    for (;;) {
      if (at_end()) {
        pos = open;
        fail("unterminated character set");
      }
      if (peek() == ']' && !first) {
        ++pos;
        break;
      }
      first = false;
      unsigned char lo = 0;
      ByteSet item{};
      bool lo_is_byte = item_value(lo, item);
      if (pos + 1 < p.size() && peek() == '-' && p[pos + 1] != ']') {
        ++pos;  // '-'
        unsigned char hi = 0;
        ByteSet hi_set{};
        const bool hi_is_byte = item_value(hi, hi_set);
        if (!lo_is_byte || !hi_is_byte || hi < lo) fail("bad character range");
        set_range(s, lo, hi);
        continue;
      }
      if (lo_is_byte) set_add(s, lo);
      else set_union(s, item);
    }
    return add_set(negate ? set_complement(s) : s);
  }

  bool item_value(unsigned char& byte, ByteSet& set) {
    if (at_end()) fail("unterminated character set");
    const unsigned char c = static_cast<unsigned char>(peek());
    if (c >= 0x80) fail("non-ASCII bytes are not supported in patterns");
    if (c == '\\') {
      if (pos + 1 < p.size() && (p[pos + 1] == 'A' || p[pos + 1] == 'Z' || p[pos + 1] == 'B'))
        fail(std::string("bad escape \\") + p[pos + 1] + " in a character set");
      return escape_value(true, byte, set);
    }
    ++pos;
    byte = c;
    return true;
  }

  // ---- code generation -------------------------------------------------------------------

  uint32_t emit(PeftRegex::Inst inst) {
    if (re.prog_.size() >= PeftRegex::kMaxProgram)
      fail("the pattern expands to more than " + std::to_string(PeftRegex::kMaxProgram) + " NFA states");
    re.prog_.push_back(inst);
    return static_cast<uint32_t>(re.prog_.size() - 1);
  }
  uint32_t here() const { return static_cast<uint32_t>(re.prog_.size()); }

  void gen(uint32_t id) {
    const Node& n = nodes[id];
    using Op = PeftRegex::Op;
    switch (n.kind) {
      case Node::Empty: return;
      case Node::Set: emit({Op::Byte, {}, n.cls, 0}); return;
      case Node::Assert: emit({Op::Assert, n.cond, 0, 0}); return;
      case Node::Concat:
        for (uint32_t k : n.kids) gen(k);
        return;
      case Node::Alt: {
        std::vector<uint32_t> jumps;
        for (size_t i = 0; i + 1 < n.kids.size(); ++i) {
          const uint32_t split = emit({Op::Split, {}, 0, 0});
          re.prog_[split].x = here();
          gen(n.kids[i]);
          jumps.push_back(emit({Op::Jmp, {}, 0, 0}));
          re.prog_[split].y = here();
        }
        gen(n.kids.back());
        for (uint32_t j : jumps) re.prog_[j].x = here();
        return;
      }
      case Node::Repeat: {
        const uint32_t body = n.kids[0];
        for (int i = 0; i < n.min; ++i) gen(body);
        if (n.max < 0) {
          const uint32_t loop = emit({Op::Split, {}, 0, 0});
          re.prog_[loop].x = here();
          gen(body);
          emit({Op::Jmp, {}, loop, 0});
          re.prog_[loop].y = here();
        } else {
          std::vector<uint32_t> splits;  // x{0,k} as (x(x(x)?)?)?: every skip goes to the end
          for (int i = n.min; i < n.max; ++i) {
            const uint32_t split = emit({Op::Split, {}, 0, 0});
            re.prog_[split].x = here();
            splits.push_back(split);
            gen(body);
          }
          for (uint32_t s : splits) re.prog_[s].y = here();
        }
        return;
      }
    }
  }

  void compile() {
    if (p.size() > PeftRegex::kMaxPatternBytes + 16)
      fail("longer than " + std::to_string(PeftRegex::kMaxPatternBytes) + " bytes");
    const uint32_t root = parse_alt(0);
    if (!at_end()) fail("unbalanced parenthesis");
    gen(root);
    emit({PeftRegex::Op::Match, {}, 0, 0});
  }
};

PeftRegex PeftRegex::compile(std::string_view pattern, const std::string& what, Mode mode) {
  PeftRegex re;
  re.mode_ = mode;
  RegexCompiler c{pattern, 0, what, shown(pattern), re, 0, {}, {}};
  if (pattern.size() > kMaxPatternBytes) c.fail("longer than " + std::to_string(kMaxPatternBytes) + " bytes");
  c.compile();
  return re;
}

PeftRegex PeftRegex::compile_pattern_key(std::string_view key, const std::string& what) {
  PeftRegex re;
  re.mode_ = Mode::Prefix;
  static constexpr std::string_view kBefore = "(.*\\.)?(";
  const std::string full = std::string(kBefore) + std::string(key) + ")$";
  RegexCompiler c{full, 0, what, shown(key), re, kBefore.size(), {}, {}};
  if (key.size() > kMaxPatternBytes) c.fail("longer than " + std::to_string(kMaxPatternBytes) + " bytes");
  c.compile();
  return re;
}

namespace {
// Per-thread scratch for matches(): sets of program counters as lists plus generation marks (a pc is in the
// set being built when mark[pc] == its generation), so a match costs what it visits, not the program's size.
struct MatchScratch {
  std::vector<uint32_t> mark;
  std::vector<uint32_t> cur, next, stack;
  uint32_t gen = 0;
  uint32_t fresh_generation(size_t n) {
    if (mark.size() < n) mark.resize(n, 0);
    if (++gen == 0) {  // wrapped: forget every old mark
      std::fill(mark.begin(), mark.end(), 0);
      gen = 1;
    }
    return gen;
  }
};
thread_local MatchScratch t_scratch;
}  // namespace

bool PeftRegex::matches(std::string_view text, uint64_t* steps) const {
  MatchScratch& s = t_scratch;
  const size_t n = prog_.size();
  std::vector<uint32_t>& mark = s.mark;
  std::vector<uint32_t>& stack = s.stack;
  uint64_t visited = 0;
  const size_t len = text.size();
  s.cur.clear();
  stack.clear();

  auto holds = [&](Cond c, size_t pos) {
    switch (c) {
      case Cond::Begin: return pos == 0;
      case Cond::End: return pos == len;
      case Cond::EndOrNewline: return pos == len || (pos + 1 == len && text[pos] == '\n');
      case Cond::WordBoundary:
      case Cond::NotWordBoundary: {
        // Python's \B never matches in an empty string (its \b does not either: no word there).
        if (len == 0) return false;
        const bool before = pos > 0 && is_word(static_cast<unsigned char>(text[pos - 1]));
        const bool after = pos < len && is_word(static_cast<unsigned char>(text[pos]));
        return (before != after) == (c == Cond::WordBoundary);
      }
    }
    return false;
  };
  // Epsilon closure without recursion (a chain of splits can be as long as the program). `gen` marks the set.
  auto closure = [&](std::vector<uint32_t>& set, uint32_t gen, uint32_t start, size_t pos) {
    stack.push_back(start);
    while (!stack.empty()) {
      const uint32_t pc = stack.back();
      stack.pop_back();
      if (mark[pc] == gen) continue;
      mark[pc] = gen;
      set.push_back(pc);
      ++visited;
      const Inst& in = prog_[pc];
      switch (in.op) {
        case Op::Split: stack.push_back(in.y); stack.push_back(in.x); break;
        case Op::Jmp: stack.push_back(in.x); break;
        case Op::Assert: if (holds(in.cond, pos)) stack.push_back(pc + 1); break;
        case Op::Byte: case Op::Match: break;
      }
    }
  };
  auto has_match = [&](const std::vector<uint32_t>& set) {
    for (uint32_t pc : set)
      if (prog_[pc].op == Op::Match) return true;
    return false;
  };

  bool result = false;
  closure(s.cur, s.fresh_generation(n), 0, 0);
  for (size_t pos = 0;; ++pos) {
    if (mode_ == Mode::Prefix && has_match(s.cur)) {
      result = true;
      break;
    }
    if (pos == len) {
      result = has_match(s.cur);
      break;
    }
    const unsigned char ch = static_cast<unsigned char>(text[pos]);
    s.next.clear();
    const uint32_t gen = s.fresh_generation(n);
    for (uint32_t pc : s.cur) {
      const Inst& in = prog_[pc];
      if (in.op == Op::Byte && set_has(classes_[in.x], ch)) closure(s.next, gen, pc + 1, pos + 1);
    }
    std::swap(s.cur, s.next);
    if (s.cur.empty()) break;
  }
  if (steps) *steps += visited + len;
  return result;
}

}  // namespace nla
