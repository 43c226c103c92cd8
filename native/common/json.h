// A small strict JSON (RFC 8259) reader for the few JSON documents the engine
// reads: PEFT adapter_config.json and safetensors headers. Objects keep their
// keys in file order (PEFT's rank_pattern/alpha_pattern are matched in order).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nla {

// Thrown by Json::parse (with the byte offset, line and column of the problem)
// and by the typed accessors on a type mismatch (offset = npos). Callers that
// read a particular file catch it and rethrow nla::Error naming file and field.
struct JsonError : std::runtime_error {
  static constexpr size_t npos = static_cast<size_t>(-1);
  size_t offset = npos;       // byte offset into the parsed text
  size_t line = 0, column = 0;  // 1-based, for messages
  std::string reason;         // the message without the position
  JsonError(std::string reason_, size_t offset_, size_t line_, size_t column_);
  explicit JsonError(std::string reason_);
};

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;  // file order; keys are unique (duplicates are a parse error)

  static constexpr int kDefaultMaxDepth = 64;

  // Parses one complete JSON text (surrounding whitespace allowed, nothing else).
  // Strict: no comments, no trailing commas, no NaN/Infinity, no leading zeros,
  // no raw control characters or invalid UTF-8 in strings, no lone surrogates,
  // no duplicate object keys. Nesting deeper than max_depth is an error.
  static Json parse(std::string_view text, int max_depth = kDefaultMaxDepth);

  Json() = default;  // null
  static Json make_bool(bool b);
  static Json make_number(double v, std::string lexeme = {});
  static Json make_string(std::string s);
  static Json make_array(Array a = {});
  static Json make_object(Object o = {});

  Type type() const { return type_; }
  static const char* type_name(Type t);  // "null", "boolean", "number", "string", "array", "object"
  const char* type_name() const { return type_name(type_); }

  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }
  // A number written without fraction or exponent (e.g. 64, -3; not 64.0 or 6.4e1).
  bool is_integer() const;

  // Typed accessors: throw JsonError("expected X, got Y") on a mismatch.
  bool as_bool() const;
  double as_number() const;
  // Exact integer value of an integer-lexeme number; throws if the number has a
  // fraction/exponent or does not fit. (Doubles lose precision above 2^53;
  // safetensors offsets need the exact value.)
  int64_t as_int64() const;
  uint64_t as_uint64() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;
  // The number as written in the source (empty for numbers made in code).
  const std::string& number_lexeme() const { return str_; }

  // Object lookup: nullptr if absent; throws JsonError if this is not an object.
  const Json* find(std::string_view key) const;
  // Object lookup that throws JsonError("missing key K") if absent.
  const Json& at(std::string_view key) const;
  // Array element; throws JsonError if not an array or out of range.
  const Json& at(size_t index) const;
  size_t size() const;  // elements of an array / members of an object; throws otherwise

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;  // string value, or a number's lexeme
  std::shared_ptr<const Array> arr_;   // immutable once built; shared on copy
  std::shared_ptr<const Object> obj_;
  void expect(Type t) const;
};

}  // namespace nla
