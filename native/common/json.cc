// Strict RFC 8259 JSON reader; see json.h.
#include "common/json.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>
#include <unordered_set>

namespace nla {

JsonError::JsonError(std::string reason_, size_t offset_, size_t line_, size_t column_)
    : std::runtime_error(reason_ + " at line " + std::to_string(line_) + ", column " + std::to_string(column_) +
                         " (byte " + std::to_string(offset_) + ")"),
      offset(offset_), line(line_), column(column_), reason(std::move(reason_)) {}

JsonError::JsonError(std::string reason_) : std::runtime_error(reason_), reason(std::move(reason_)) {}

namespace {

std::string describe_byte(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  static const char* hex = "0123456789abcdef";
  return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(std::string_view text, int max_depth) : s_(text), max_depth_(max_depth) {}

  Json parse_document() {
    skip_ws();
    Json v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected " + describe_byte(byte()) + " after the JSON value");
    return v;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  int max_depth_;

  [[noreturn]] void fail(const std::string& reason) const { fail_at(reason, pos_); }
  [[noreturn]] void fail_at(const std::string& reason, size_t at) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw JsonError(reason, at, line, col);
  }

  bool at_end() const { return pos_ >= s_.size(); }
  unsigned char byte() const { return static_cast<unsigned char>(s_[pos_]); }

  void skip_ws() {
    while (!at_end()) {
      const char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') ++pos_;
      else break;
    }
  }

  void expect_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) fail("invalid literal (expected '" + std::string(lit) + "')");
    pos_ += lit.size();
  }

  Json parse_value(int depth) {
    if (at_end()) fail("unexpected end of input (expected a value)");
    switch (s_[pos_]) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Json::make_string(parse_string());
      case 't': expect_literal("true"); return Json::make_bool(true);
      case 'f': expect_literal("false"); return Json::make_bool(false);
      case 'n': expect_literal("null"); return Json();
      default:
        if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) return parse_number();
        fail("unexpected " + describe_byte(byte()) + " (expected a value)");
    }
  }

  void check_depth(int depth) {
    if (depth > max_depth_) fail("nesting deeper than " + std::to_string(max_depth_) + " levels");
  }

  Json parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Json::Object members;
    std::unordered_set<std::string> seen;  // duplicate keys are ambiguous (a tensor listed twice): reject
    skip_ws();
    if (!at_end() && s_[pos_] == '}') {
      ++pos_;
      return Json::make_object(std::move(members));
    }
    for (;;) {
      skip_ws();
      if (at_end()) fail("unexpected end of input in object (expected a key)");
      if (s_[pos_] != '"') fail("unexpected " + describe_byte(byte()) + " in object (expected a string key)");
      const size_t key_pos = pos_;
      std::string key = parse_string();
      if (!seen.insert(key).second) fail_at("duplicate object key \"" + key + "\"", key_pos);
      skip_ws();
      if (at_end()) fail("unexpected end of input in object (expected ':')");
      if (s_[pos_] != ':') fail("unexpected " + describe_byte(byte()) + " in object (expected ':')");
      ++pos_;
      skip_ws();
      Json v = parse_value(depth);
      members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (at_end()) fail("unexpected end of input in object (expected ',' or '}')");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return Json::make_object(std::move(members));
      }
      fail("unexpected " + describe_byte(byte()) + " in object (expected ',' or '}')");
    }
  }

  Json parse_array(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    Json::Array items;
    skip_ws();
    if (!at_end() && s_[pos_] == ']') {
      ++pos_;
      return Json::make_array(std::move(items));
    }
    for (;;) {
      skip_ws();
      items.push_back(parse_value(depth));
      skip_ws();
      if (at_end()) fail("unexpected end of input in array (expected ',' or ']')");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return Json::make_array(std::move(items));
      }
      fail("unexpected " + describe_byte(byte()) + " in array (expected ',' or ']')");
    }
  }

  uint32_t parse_hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_ + i];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else fail_at("invalid hex digit in \\u escape", pos_ + i);
    }
    pos_ += 4;
    return v;
  }

  // Validates one UTF-8 sequence starting at pos_ (a byte >= 0x80) and appends it.
  void copy_utf8(std::string& out) {
    const size_t start = pos_;
    const unsigned char c0 = byte();
    int len;
    uint32_t cp;
    if (c0 >= 0xC2 && c0 <= 0xDF) { len = 2; cp = c0 & 0x1F; }
    else if (c0 >= 0xE0 && c0 <= 0xEF) { len = 3; cp = c0 & 0x0F; }
    else if (c0 >= 0xF0 && c0 <= 0xF4) { len = 4; cp = c0 & 0x07; }
    else fail("invalid UTF-8 lead " + describe_byte(c0) + " in string");
    if (s_.size() - pos_ < static_cast<size_t>(len)) fail("truncated UTF-8 sequence in string");
    for (int i = 1; i < len; ++i) {
      const unsigned char c = static_cast<unsigned char>(s_[pos_ + i]);
      if ((c & 0xC0) != 0x80) fail_at("invalid UTF-8 continuation " + describe_byte(c) + " in string", pos_ + i);
      cp = (cp << 6) | (c & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) fail("overlong UTF-8 sequence in string");
    if (cp >= 0xD800 && cp <= 0xDFFF) fail("UTF-8-encoded surrogate in string");
    if (cp > 0x10FFFF) fail("UTF-8 code point above U+10FFFF in string");
    out.append(s_.data() + start, static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
  }

  std::string parse_string() {
    const size_t open = pos_;
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail_at("unterminated string", open);
      const unsigned char c = byte();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("unescaped control character " + describe_byte(c) + " in string");
      if (c >= 0x80) {
        copy_utf8(out);
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      const size_t esc = pos_;
      ++pos_;
      if (at_end()) fail_at("unterminated escape in string", esc);
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("lone low surrogate in \\u escape", esc);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.size() - pos_ < 2 || s_[pos_] != '\\' || s_[pos_ + 1] != 'u')
              fail_at("high surrogate in \\u escape not followed by a low surrogate", esc);
            pos_ += 2;
            const uint32_t lo = parse_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail_at("high surrogate in \\u escape not followed by a low surrogate", esc);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail_at("invalid escape \\" + std::string(1, e) + " in string", esc);
      }
    }
  }

  Json parse_number() {
    const size_t start = pos_;
    auto digit = [&] { return !at_end() && s_[pos_] >= '0' && s_[pos_] <= '9'; };
    if (s_[pos_] == '-') ++pos_;
    if (!digit()) fail("invalid number (expected a digit)");
    if (s_[pos_] == '0') {
      ++pos_;
      if (digit()) fail_at("invalid number (leading zero)", start);
    } else {
      while (digit()) ++pos_;
    }
    if (!at_end() && s_[pos_] == '.') {
      ++pos_;
      if (!digit()) fail("invalid number (expected a digit after '.')");
      while (digit()) ++pos_;
    }
    if (!at_end() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (!at_end() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digit()) fail("invalid number (expected a digit in the exponent)");
      while (digit()) ++pos_;
    }
    const std::string_view lex = s_.substr(start, pos_ - start);
    double v = 0;
    // from_chars does not accept a leading '+', and is locale-independent (strtod is not).
    const auto r = std::from_chars(lex.data(), lex.data() + lex.size(), v);
    if (r.ec == std::errc::result_out_of_range) {
      // Overflow or underflow: JSON has no infinities; reject overflow, keep underflow as 0.
      // Decide by the exponent sign: a huge magnitude has a positive effective exponent.
      const size_t epos = lex.find_first_of("eE");
      const bool neg_exp = epos != std::string_view::npos && epos + 1 < lex.size() && lex[epos + 1] == '-';
      if (!neg_exp) fail_at("number out of range", start);
      v = 0;
    } else if (r.ec != std::errc() || r.ptr != lex.data() + lex.size()) {
      fail_at("invalid number", start);
    }
    return Json::make_number(v, std::string(lex));
  }
};

}  // namespace

Json Json::parse(std::string_view text, int max_depth) { return Parser(text, max_depth).parse_document(); }

Json Json::make_bool(bool b) {
  Json j;
  j.type_ = Type::Bool;
  j.bool_ = b;
  return j;
}
Json Json::make_number(double v, std::string lexeme) {
  Json j;
  j.type_ = Type::Number;
  j.num_ = v;
  j.str_ = std::move(lexeme);
  return j;
}
Json Json::make_string(std::string s) {
  Json j;
  j.type_ = Type::String;
  j.str_ = std::move(s);
  return j;
}
Json Json::make_array(Array a) {
  Json j;
  j.type_ = Type::Array;
  j.arr_ = std::make_shared<const Array>(std::move(a));
  return j;
}
Json Json::make_object(Object o) {
  Json j;
  j.type_ = Type::Object;
  j.obj_ = std::make_shared<const Object>(std::move(o));
  return j;
}

const char* Json::type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "boolean";
    case Type::Number: return "number";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}

void Json::expect(Type t) const {
  if (type_ != t) throw JsonError(std::string("expected ") + type_name(t) + ", got " + type_name(type_));
}

bool Json::is_integer() const {
  return type_ == Type::Number && (str_.empty() ? (std::isfinite(num_) && std::floor(num_) == num_)
                                                : str_.find_first_of(".eE") == std::string::npos);
}

bool Json::as_bool() const {
  expect(Type::Bool);
  return bool_;
}
double Json::as_number() const {
  expect(Type::Number);
  return num_;
}

int64_t Json::as_int64() const {
  expect(Type::Number);
  if (!is_integer()) throw JsonError("expected an integer, got " + (str_.empty() ? std::to_string(num_) : str_));
  if (str_.empty()) {
    if (num_ < -9.2233720368547758e18 || num_ >= 9.2233720368547758e18) throw JsonError("integer out of range");
    return static_cast<int64_t>(num_);
  }
  int64_t v = 0;
  const auto r = std::from_chars(str_.data(), str_.data() + str_.size(), v);
  if (r.ec != std::errc() || r.ptr != str_.data() + str_.size())
    throw JsonError("integer " + str_ + " out of the 64-bit signed range");
  return v;
}

uint64_t Json::as_uint64() const {
  expect(Type::Number);
  if (!is_integer()) throw JsonError("expected an integer, got " + (str_.empty() ? std::to_string(num_) : str_));
  if (str_.empty()) {
    if (num_ < 0 || num_ >= 1.8446744073709552e19) throw JsonError("expected a non-negative 64-bit integer");
    return static_cast<uint64_t>(num_);
  }
  if (str_[0] == '-') {
    if (str_ == "-0") return 0;
    throw JsonError("expected a non-negative integer, got " + str_);
  }
  uint64_t v = 0;
  const auto r = std::from_chars(str_.data(), str_.data() + str_.size(), v);
  if (r.ec != std::errc() || r.ptr != str_.data() + str_.size())
    throw JsonError("integer " + str_ + " out of the 64-bit unsigned range");
  return v;
}

const std::string& Json::as_string() const {
  expect(Type::String);
  return str_;
}
const Json::Array& Json::as_array() const {
  expect(Type::Array);
  return *arr_;
}
const Json::Object& Json::as_object() const {
  expect(Type::Object);
  return *obj_;
}

const Json* Json::find(std::string_view key) const {
  for (const auto& m : as_object())
    if (m.first == key) return &m.second;
  return nullptr;
}

const Json& Json::at(std::string_view key) const {
  const Json* v = find(key);
  if (!v) throw JsonError("missing key \"" + std::string(key) + "\"");
  return *v;
}

const Json& Json::at(size_t index) const {
  const Array& a = as_array();
  if (index >= a.size())
    throw JsonError("index " + std::to_string(index) + " out of range (array has " + std::to_string(a.size()) +
                    " elements)");
  return a[index];
}

size_t Json::size() const {
  if (type_ == Type::Array) return arr_->size();
  if (type_ == Type::Object) return obj_->size();
  throw JsonError(std::string("expected array or object, got ") + type_name(type_));
}

}  // namespace nla
