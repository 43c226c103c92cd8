// Gemma-4 tokenizer (see docs: design/gemma4.md §6).
//
// encode: special-token split (longest token first, as llama.cpp does) ->
// U+0020 -> U+2581 -> split into runs of '\n' and runs of everything else ->
// BPE over code points by merge rank, leftmost on ties -> byte fallback.
//
// The merge table is keyed by the ids of the two sides, so the BPE loop never
// builds or hashes strings: a symbol carries the id of its text, and a merge
// gives the id of the result directly.
#include "models/gemma4/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string_view>

namespace nla {
namespace gemma4 {

namespace {

constexpr uint64_t kEmptyMerge = ~uint64_t{0};

// FNV-1a over the bytes (so the hash of a concatenation can continue from the
// state of its left part), then a murmur3 finalizer.
constexpr uint64_t kFnvBasis = 1469598103934665603ull;

uint64_t fnv(const char* s, size_t n, uint64_t h = kFnvBasis) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(s[i]);
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t finalize(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

uint64_t hash_bytes(const char* s, size_t n) { return finalize(fnv(s, n)); }

uint64_t hash_pair(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdull;
  key ^= key >> 33;
  key *= 0xc4ceb9fe1a85ec53ull;
  key ^= key >> 33;
  return key;
}

uint64_t pow2_at_least(uint64_t n) {
  uint64_t c = 16;
  while (c < n) c <<= 1;
  return c;
}

// Length of the valid UTF-8 sequence starting at s[0] (at most n bytes), or 0
// if it is not one (bad lead byte, missing/bad continuation, overlong form,
// surrogate, or above U+10FFFF).
size_t utf8_len(const unsigned char* s, size_t n) {
  const unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned cp;
  if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return len;
}

const std::string kSpaceMark = "\xE2\x96\x81";  // U+2581


const GgufValue& string_array(const GgufFile& file, const char* key) {
  const GgufValue* v = file.find(key);
  if (!v) throw Error(code::TOKENIZER, std::string("tokenizer: missing key ") + key + " in " + file.path());
  if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING ||
      v->strings.size() != v->count)
    throw Error(code::TOKENIZER, std::string("tokenizer: ") + key + " is not an array of strings in " + file.path());
  return *v;
}

// Reads an optional token-id key; absent -> fallback. Must name a token.
int32_t read_id(const GgufFile& file, const char* key, int32_t fallback, int32_t n_vocab) {
  int64_t id = fallback;
  if (const GgufValue* v = file.find(key)) {
    if (!gguf_is_integer_type(v->type))
      throw Error(code::TOKENIZER, std::string("tokenizer: ") + key + " is not an integer in " + file.path());
    if (gguf_is_unsigned_type(v->type)) {
      id = v->u > static_cast<uint64_t>(INT32_MAX) ? -1 : static_cast<int64_t>(v->u);
    } else {
      id = v->i;
    }
  }
  if (id < 0 || id >= n_vocab)
    throw Error(code::TOKENIZER, std::string("tokenizer: ") + key + " = " + std::to_string(id) +
                                     " is not a token id (vocab size " + std::to_string(n_vocab) + ") in " +
                                     file.path());
  return static_cast<int32_t>(id);
}

}  // namespace

// ---------------------------------------------------------------------------
// Indexes

void Tokenizer::index_insert(int32_t id) {
  const uint64_t h = hash_bytes(any_text(id).data(), any_text(id).size());
  uint64_t i = h & str_mask_;
  const uint64_t tag = (h >> 32) << 32;
  while (str_slots_[i] != 0) i = (i + 1) & str_mask_;
  str_slots_[i] = tag | static_cast<uint32_t>(id + 1);
}

int32_t Tokenizer::lookup(const char* s, size_t n) const {
  if (n == 1 && static_cast<unsigned char>(s[0]) < 128) return ascii_ids_[static_cast<unsigned char>(s[0])];
  return lookup_hashed(s, n, hash_bytes(s, n));
}

int32_t Tokenizer::lookup_hashed(const char* s, size_t n, uint64_t h) const {
  if (n == 1 && static_cast<unsigned char>(s[0]) < 128) return ascii_ids_[static_cast<unsigned char>(s[0])];
  const uint64_t tag = h >> 32;
  for (uint64_t i = h & str_mask_;; i = (i + 1) & str_mask_) {
    const uint64_t slot = str_slots_[i];
    if (slot == 0) return -1;
    if ((slot >> 32) == tag) {
      const int32_t id = static_cast<int32_t>(static_cast<uint32_t>(slot)) - 1;
      const std::string& t = any_text(id);
      if (t.size() == n && std::memcmp(t.data(), s, n) == 0) return id;
    }
  }
}

// Touches the strings a later lookup_hashed(h) will compare against, so that
// a batch of lookups waits for memory once instead of once per lookup.
void Tokenizer::prefetch_candidates(uint64_t h) const {
  const uint64_t tag = h >> 32;
  for (uint64_t i = h & str_mask_;; i = (i + 1) & str_mask_) {
    const uint64_t slot = str_slots_[i];
    if (slot == 0) return;
    if ((slot >> 32) == tag) {
      const int32_t id = static_cast<int32_t>(static_cast<uint32_t>(slot)) - 1;
      if (id < n_vocab()) __builtin_prefetch(&tokens_[id]);
      return;
    }
  }
}

int32_t Tokenizer::intern(const std::string& s) {
  const int32_t found = lookup(s.data(), s.size());
  if (found >= 0) return found;
  const size_t id = tokens_.size() + extra_strings_.size();
  if (id >= static_cast<size_t>(INT32_MAX - 1)) throw Error(code::TOKENIZER, "tokenizer: too many strings");
  extra_strings_.push_back(s);
  if (s.size() == 1 && static_cast<unsigned char>(s[0]) < 128) ascii_ids_[static_cast<unsigned char>(s[0])] = static_cast<int32_t>(id);
  if ((id + 1) * 2 > str_mask_ + 1) {
    // Grow (load factor stays under 1/2). Re-inserting in id order keeps the
    // first of duplicated strings first in its probe chain.
    const uint64_t cap = pow2_at_least((id + 1) * 4);
    str_slots_.assign(cap, 0);
    str_mask_ = cap - 1;
    for (size_t j = 0; j <= id; ++j) index_insert(static_cast<int32_t>(j));
  } else {
    index_insert(static_cast<int32_t>(id));
  }
  return static_cast<int32_t>(id);
}

const Tokenizer::MergeSlot* Tokenizer::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  for (uint64_t i = hash_pair(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
    const MergeSlot& m = merge_slots_[i];
    if (m.key == key) return &m;
    if (m.key == kEmptyMerge) return nullptr;
  }
}

// ---------------------------------------------------------------------------
// Loading

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  const GgufValue* model = file.find("tokenizer.ggml.model");
  if (!model)
    throw Error(code::TOKENIZER, "tokenizer: missing key tokenizer.ggml.model in " + file.path());
  if (model->type != GgufValueType::STRING)
    throw Error(code::TOKENIZER, "tokenizer: tokenizer.ggml.model is not a string in " + file.path());
  if (model->s != "gemma4")
    throw Error(code::TOKENIZER, "tokenizer: unsupported tokenizer.ggml.model \"" + model->s +
                                     "\" in " + file.path() + " (only \"gemma4\" is supported)");

  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  Tokenizer& t = *tok;

  const GgufValue& tokens = string_array(file, "tokenizer.ggml.tokens");
  if (tokens.strings.empty()) throw Error(code::TOKENIZER, "tokenizer: tokenizer.ggml.tokens is empty in " + file.path());
  if (tokens.strings.size() >= static_cast<size_t>(INT32_MAX / 2))
    throw Error(code::TOKENIZER, "tokenizer: tokenizer.ggml.tokens is too large in " + file.path());
  t.tokens_ = tokens.strings;
  const int32_t n = t.n_vocab();

  t.types_.assign(n, TokenType::NORMAL);
  if (const GgufValue* tt = file.find("tokenizer.ggml.token_type")) {
    if (tt->type != GgufValueType::ARRAY || !gguf_is_integer_type(tt->elem_type) || tt->ints.size() != tt->count)
      throw Error(code::TOKENIZER, "tokenizer: tokenizer.ggml.token_type is not an integer array in " + file.path());
    if (tt->ints.size() != static_cast<size_t>(n))
      throw Error(code::TOKENIZER, "tokenizer: tokenizer.ggml.token_type has " + std::to_string(tt->ints.size()) +
                                       " entries but there are " + std::to_string(n) + " tokens in " + file.path());
    for (int32_t i = 0; i < n; ++i) {
      const int64_t v = tt->ints[i];
      if (v < 0 || v > 6)
        throw Error(code::TOKENIZER, "tokenizer: tokenizer.ggml.token_type[" + std::to_string(i) + "] = " +
                                         std::to_string(v) + " is not a token type in " + file.path());
      t.types_[i] = static_cast<TokenType>(v);
    }
  }

  // String index. Inserted in id order, so a duplicated string resolves to its first id.
  const uint64_t cap = pow2_at_least(static_cast<uint64_t>(n) * 2 + 2);
  t.str_slots_.assign(cap, 0);
  t.str_mask_ = cap - 1;
  for (int32_t i = 0; i < 128; ++i) t.ascii_ids_[i] = -1;
  for (int32_t i = 0; i < n; ++i) {
    const std::string& s = t.tokens_[i];
    if (s.size() == 1 && static_cast<unsigned char>(s[0]) < 128) {
      if (t.ascii_ids_[static_cast<unsigned char>(s[0])] < 0) t.ascii_ids_[static_cast<unsigned char>(s[0])] = i;
    }
    t.index_insert(i);
  }

  // Byte tokens: <0xHH> with uppercase hex, as llama.cpp looks them up.
  t.byte_ids_.assign(256, -1);
  t.byte_value_.assign(n, -1);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
    t.byte_ids_[b] = t.lookup(buf, 6);
  }
  for (int32_t i = 0; i < n; ++i) {
    if (t.types_[i] != TokenType::BYTE) continue;
    const std::string& s = t.tokens_[i];
    if (s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' && std::isxdigit(static_cast<unsigned char>(s[3])) &&
        std::isxdigit(static_cast<unsigned char>(s[4]))) {
      t.byte_value_[i] = static_cast<int16_t>(std::stoi(s.substr(3, 2), nullptr, 16));
    }
  }

  // Merges: "A B" split at the first space at index >= 1. Rank = index; the first
  // occurrence of a pair wins. Sides/results that are not vocab tokens get extra ids.
  const GgufValue& merges = string_array(file, "tokenizer.ggml.merges");
  const size_t n_merges = merges.strings.size();
  if (n_merges >= static_cast<size_t>(INT32_MAX))
    throw Error(code::TOKENIZER, "tokenizer: tokenizer.ggml.merges is too large in " + file.path());
  const uint64_t mcap = pow2_at_least(n_merges * 2 + 2);
  t.merge_slots_.assign(mcap, MergeSlot{kEmptyMerge, 0, 0});
  t.merge_mask_ = mcap - 1;
  // The table is far larger than the caches and merges come in rank order, i.e.
  // random order for the tables: work in batches, prefetching each level of
  // every lookup of the batch before using it.
  struct Pending {
    const char* a;
    const char* b;
    size_t na, nb;
    uint64_t ha, hb, hj;  // hashes of a, b and a+b
    uint64_t key, hk;     // merge key and its hash
    int32_t result;
    bool ok;
  };
  constexpr size_t kBatch = 32;
  Pending pend[kBatch];
  std::string joined;
  for (size_t base = 0; base < n_merges; base += kBatch) {
    const size_t cnt = std::min(kBatch, n_merges - base);
    for (size_t k = 0; k < cnt; ++k) {
      const std::string& m = merges.strings[base + k];
      Pending& p = pend[k];
      const size_t sp = m.find(' ', 1);
      p.ok = sp != std::string::npos;  // an entry without a pair to merge is ignored
      if (!p.ok) continue;
      p.a = m.data();
      p.na = sp;
      p.b = m.data() + sp + 1;
      p.nb = m.size() - sp - 1;
      const uint64_t fa = fnv(p.a, p.na);
      p.ha = finalize(fa);
      p.hb = hash_bytes(p.b, p.nb);
      p.hj = finalize(fnv(p.b, p.nb, fa));
      __builtin_prefetch(&t.str_slots_[p.ha & t.str_mask_]);
      __builtin_prefetch(&t.str_slots_[p.hb & t.str_mask_]);
      __builtin_prefetch(&t.str_slots_[p.hj & t.str_mask_]);
    }
    for (size_t k = 0; k < cnt; ++k) {
      if (!pend[k].ok) continue;
      t.prefetch_candidates(pend[k].ha);
      t.prefetch_candidates(pend[k].hb);
      t.prefetch_candidates(pend[k].hj);
    }
    for (size_t k = 0; k < cnt; ++k) {
      Pending& p = pend[k];
      if (!p.ok) continue;
      int32_t left = t.lookup_hashed(p.a, p.na, p.ha);
      if (left < 0) left = t.intern(std::string(p.a, p.na));
      int32_t right = t.lookup_hashed(p.b, p.nb, p.hb);
      if (right < 0) right = t.intern(std::string(p.b, p.nb));
      joined.assign(p.a, p.na).append(p.b, p.nb);
      p.result = t.lookup_hashed(joined.data(), joined.size(), p.hj);
      if (p.result < 0) p.result = t.intern(joined);
      p.key = (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
      p.hk = hash_pair(p.key);
      __builtin_prefetch(&t.merge_slots_[p.hk & t.merge_mask_]);
    }
    for (size_t k = 0; k < cnt; ++k) {
      const Pending& p = pend[k];
      if (!p.ok) continue;
      uint64_t i = p.hk & t.merge_mask_;
      while (t.merge_slots_[i].key != kEmptyMerge && t.merge_slots_[i].key != p.key) i = (i + 1) & t.merge_mask_;
      if (t.merge_slots_[i].key == p.key) continue;  // duplicate pair: the lower rank stays
      t.merge_slots_[i] = MergeSlot{p.key, static_cast<int32_t>(base + k), p.result};
    }
  }

  t.bos_ = read_id(file, "tokenizer.ggml.bos_token_id", 2, n);
  t.eos_ = read_id(file, "tokenizer.ggml.eos_token_id", 1, n);
  t.unk_ = read_id(file, "tokenizer.ggml.unknown_token_id", 3, n);

  for (int32_t i = 0; i < n; ++i) {
    const TokenType ty = t.types_[i];
    if ((ty == TokenType::CONTROL || ty == TokenType::USER_DEFINED || ty == TokenType::UNKNOWN) &&
        !t.tokens_[i].empty())
      t.specials_.push_back(i);
  }
  std::stable_sort(t.specials_.begin(), t.specials_.end(), [&](int32_t a, int32_t b) {
    return t.tokens_[a].size() > t.tokens_[b].size();
  });
  // The most input bytes one token can stand for: its string, with each U+2581 (3 bytes) standing for a
  // space (1 byte); at least 1 (byte tokens).
  t.max_token_bytes_ = 1;
  for (const std::string& s : t.tokens_) {
    size_t bytes = s.size();
    for (size_t p = s.find("\xE2\x96\x81"); p != std::string::npos; p = s.find("\xE2\x96\x81", p + 3)) bytes -= 2;
    t.max_token_bytes_ = std::max(t.max_token_bytes_, bytes);
  }
  return tok;
}

// ---------------------------------------------------------------------------
// Encoding

// Cuts the text at special tokens, one token at a time, longest first, each
// token at every occurrence in the pieces that are still raw text (this is
// llama.cpp's order, which decides overlaps). piece_ids[i] is the token of
// piece i, or -1 for raw text.
void Tokenizer::split_special(const std::string& text, bool parse_special,
                              std::vector<std::pair<size_t, size_t>>& pieces,
                              std::vector<int32_t>& piece_ids) const {
  pieces.assign(1, {0, text.size()});
  piece_ids.assign(1, -1);
  if (text.empty()) {
    pieces.clear();
    piece_ids.clear();
    return;
  }
  std::vector<std::pair<size_t, size_t>> next_pieces;
  std::vector<int32_t> next_ids;
  const std::string_view all(text);
  for (const int32_t sid : specials_) {
    const TokenType ty = types_[sid];
    if (!parse_special && (ty == TokenType::CONTROL || ty == TokenType::UNKNOWN)) continue;
    const std::string& st = tokens_[sid];
    bool found_any = false;
    for (size_t p = 0; p < pieces.size() && !found_any; ++p) {
      if (piece_ids[p] >= 0) continue;
      const size_t end = pieces[p].first + pieces[p].second;
      const size_t at = all.substr(0, end).find(st, pieces[p].first);
      found_any = at != std::string_view::npos;
    }
    if (!found_any) continue;
    next_pieces.clear();
    next_ids.clear();
    for (size_t p = 0; p < pieces.size(); ++p) {
      if (piece_ids[p] >= 0) {
        next_pieces.push_back(pieces[p]);
        next_ids.push_back(piece_ids[p]);
        continue;
      }
      size_t pos = pieces[p].first;
      const size_t end = pos + pieces[p].second;
      const std::string_view window = all.substr(0, end);
      while (pos < end) {
        const size_t at = window.find(st, pos);
        if (at == std::string_view::npos) break;
        if (at > pos) {
          next_pieces.push_back({pos, at - pos});
          next_ids.push_back(-1);
        }
        next_pieces.push_back({at, st.size()});
        next_ids.push_back(sid);
        pos = at + st.size();
      }
      if (pos < end) {
        next_pieces.push_back({pos, end - pos});
        next_ids.push_back(-1);
      }
    }
    pieces.swap(next_pieces);
    piece_ids.swap(next_ids);
  }
}

void Tokenizer::push_bytes(const char* s, size_t n, std::vector<int32_t>& out) const {
  for (size_t i = 0; i < n; ++i) {
    const int32_t b = byte_ids_[static_cast<unsigned char>(s[i])];
    out.push_back(b >= 0 ? b : unk_);
  }
}

// One run of non-newline text (already normalized), or a run of newlines that
// is not itself a token.
void Tokenizer::bpe(const char* s, size_t n, std::vector<int32_t>& out) const {
  struct Symbol {
    size_t start, len;
    int32_t id;  // id of the text (vocab or extra), -1 if none
    int32_t prev, next;
  };
  struct Pair {
    int32_t rank, left, right, left_id, right_id, result;
  };
  // Min-heap on (rank, left): lowest rank first, leftmost on ties.
  auto later = [](const Pair& a, const Pair& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };

  std::vector<Symbol> sym;
  sym.reserve(n);
  const unsigned char* u = reinterpret_cast<const unsigned char*>(s);
  for (size_t i = 0; i < n;) {
    size_t len = utf8_len(u + i, n - i);
    if (len == 0) len = 1;  // invalid byte: a symbol of its own (ends in byte fallback)
    const int32_t idx = static_cast<int32_t>(sym.size());
    sym.push_back(Symbol{i, len, lookup(s + i, len), idx - 1, idx + 1});
    i += len;
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  std::vector<Pair> heap;
  heap.reserve(sym.size());
  auto add_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const int32_t li = sym[l].id, ri = sym[r].id;
    if (li < 0 || ri < 0) return;
    const MergeSlot* m = find_merge(li, ri);
    if (!m) return;
    heap.push_back(Pair{m->rank, l, r, li, ri, m->result});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) add_pair(i, i + 1);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Pair p = heap.back();
    heap.pop_back();
    Symbol& L = sym[p.left];
    Symbol& R = sym[p.right];
    // Stale if either side has merged since the pair was queued.
    if (L.len == 0 || R.len == 0 || L.next != p.right || L.id != p.left_id || R.id != p.right_id) continue;
    L.len += R.len;
    L.id = p.result;
    L.next = R.next;
    if (R.next >= 0) sym[R.next].prev = p.left;
    R.len = 0;
    add_pair(L.prev, p.left);
    add_pair(p.left, L.next);
  }

  for (int32_t i = 0; i >= 0; i = sym[i].next) {
    const Symbol& x = sym[i];
    if (x.id >= 0 && x.id < n_vocab()) {
      out.push_back(x.id);
    } else {
      push_bytes(s + x.start, x.len, out);
    }
  }
}

void Tokenizer::encode_piece(const char* s, size_t n, std::vector<int32_t>& out) const {
  std::string norm;
  norm.reserve(n + n / 2);
  for (size_t i = 0; i < n; ++i) {
    if (s[i] == ' ') norm += kSpaceMark;
    else norm += s[i];
  }
  const char* p = norm.data();
  const size_t m = norm.size();
  size_t i = 0;
  while (i < m) {
    size_t j = i;
    if (p[i] == '\n') {
      while (j < m && p[j] == '\n') ++j;
      const int32_t whole = lookup(p + i, j - i);
      if (whole >= 0) out.push_back(whole);  // a newline run that is a token (llama.cpp PR #21343)
      else bpe(p + i, j - i, out);
    } else {
      const void* nl = std::memchr(p + i, '\n', m - i);
      j = nl ? static_cast<size_t>(static_cast<const char*>(nl) - p) : m;
      bpe(p + i, j - i, out);
    }
    i = j;
  }
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos) out.push_back(bos_);
  std::vector<std::pair<size_t, size_t>> pieces;
  std::vector<int32_t> ids;
  split_special(text, parse_special, pieces, ids);
  for (size_t k = 0; k < pieces.size(); ++k) {
    if (ids[k] >= 0) out.push_back(ids[k]);
    else encode_piece(text.data() + pieces[k].first, pieces[k].second, out);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Decoding and lookups

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  for (const int32_t id : ids) {
    if (id < 0 || id >= n_vocab())
      throw Error(code::INVALID_ARG, "decode: token id " + std::to_string(id) + " is out of range [0, " +
                                         std::to_string(n_vocab()) + ")");
    const std::string& t = tokens_[id];
    switch (types_[id]) {
      case TokenType::NORMAL: {
        size_t pos = 0;
        for (size_t at; (at = t.find(kSpaceMark, pos)) != std::string::npos; pos = at + kSpaceMark.size()) {
          out.append(t, pos, at - pos);
          out += ' ';
        }
        out.append(t, pos, std::string::npos);
        break;
      }
      case TokenType::BYTE:
        if (byte_value_[id] >= 0) out += static_cast<char>(byte_value_[id]);
        else out += t;
        break;
      case TokenType::USER_DEFINED:
        out += t;
        break;
      case TokenType::CONTROL:
      case TokenType::UNKNOWN:
        if (render_special) out += t;
        break;
      case TokenType::UNUSED:
      case TokenType::UNDEFINED:
        break;  // llama.cpp renders nothing for these
    }
  }
  return out;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    throw Error(code::INVALID_ARG, "token id " + std::to_string(id) + " is out of range [0, " +
                                       std::to_string(n_vocab()) + ")");
  return tokens_[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    throw Error(code::INVALID_ARG, "token id " + std::to_string(id) + " is out of range [0, " +
                                       std::to_string(n_vocab()) + ")");
  return types_[id];
}

int32_t Tokenizer::find_token(const std::string& text) const {
  const int32_t id = lookup(text.data(), text.size());
  return id < n_vocab() ? id : -1;
}

}  // namespace gemma4
}  // namespace nla
