// The one GGUF reader (v2 and v3) over a read-only mmap. Everything is
// validated against the file size before any tensor data is touched; a
// malformed file raises nla::Error(code::GGUF_MALFORMED) naming the field.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/mapped_file.h"
#include "formats/quant.h"

namespace nla {

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// One metadata value. Scalars are widened into i/u/f; arrays keep their element
// type and are materialised into the vector matching their kind.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  GgufValueType elem_type = GgufValueType::UINT8;  // for ARRAY
  int64_t i = 0;            // signed ints and bool
  uint64_t u = 0;           // unsigned ints
  double f = 0;             // floats
  std::string s;            // STRING
  std::vector<int64_t> ints;        // integer and bool arrays (u64 values > INT64_MAX are rejected as malformed)
  std::vector<double> floats;       // float arrays
  std::vector<std::string> strings; // string arrays
  // Arrays of arrays are parsed and skipped (size only); their element vectors stay empty.
  uint64_t count = 0;               // array length
};

struct TensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ggml order: ne[0] is contiguous
  uint32_t type_id = 0;          // raw ggml type id from the file
  GgmlType type() const { return static_cast<GgmlType>(type_id); }
  uint64_t offset = 0;           // relative to the data section
  size_t nbytes = 0;             // computed from type + shape (0 for unsupported types? no: computed from traits when block size known)
  const uint8_t* data = nullptr; // pointer into the mapping (already bounds-checked)
  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t nrows() const { return ne[1] * ne[2] * ne[3]; }
};

// Kinds of metadata value types (shared by the reader and the tokenizer).
bool gguf_is_integer_type(GgufValueType t);
bool gguf_is_unsigned_type(GgufValueType t);

class GgufFile {
 public:
  // Opens and validates. Throws nla::Error (IO or GGUF_MALFORMED).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint32_t alignment() const { return alignment_; }
  // Throws nla::Error(IO) if the file was truncated or rewritten while mapped (see MappedFile):
  // call after every step that read tensor data (a forward pass) and discard that step's result.
  void check_intact() const { map_.check_intact(); }

  // Metadata.
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: throw nla::Error(MODEL_INVALID) naming the key if absent or of an incompatible type.
  // Integer getters accept any integer type whose value fits; float getters accept any numeric type.
  std::string get_string(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  // Array getters (throw if absent or not an array of a compatible kind).
  const std::vector<int64_t>& get_int_array(const std::string& key) const;
  const std::vector<double>& get_float_array(const std::string& key) const;
  const std::vector<std::string>& get_string_array(const std::string& key) const;

  // Tensors, in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* tensor(const std::string& name) const;  // nullptr if absent

 private:
  GgufFile() = default;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t size_ = 0;
  uint32_t alignment_ = 32;
  MappedFile map_;
  std::map<std::string, GgufValue> kv_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  friend struct GgufParser;
};

}  // namespace nla
