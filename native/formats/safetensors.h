// The one safetensors reader of the project (LoRA adapters, linear heads saved
// as .safetensors). The file is mapped read-only and fully validated at open:
// header length, JSON header, every tensor's dtype/shape/data_offsets against
// the data section, no overlapping tensors. After open() succeeds every
// Tensor::data..data+nbytes lies inside the mapping.
//
// Layout (https://huggingface.co/docs/safetensors): u64 little-endian N, then N
// bytes of UTF-8 JSON {"__metadata__": {str: str}?, name: {"dtype", "shape",
// "data_offsets": [begin, end]}...}, then the data section; offsets are relative
// to the start of the data section. Gaps between tensors are tolerated (the
// reference implementation rejects them; nothing here depends on contiguity).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/mapped_file.h"

namespace nla {

class SafetensorsFile {
 public:
  struct Tensor {
    std::string name, dtype;     // dtype as written: "F32", "BF16", ...
    std::vector<int64_t> shape;  // row-major, outermost first ([] is a scalar)
    const uint8_t* data = nullptr;  // inside the mapping; not necessarily aligned
    size_t nbytes = 0;
    uint64_t offset = 0;         // begin, relative to the data section
    int64_t numel() const;
  };

  // Opens and validates `path`. A file that cannot be opened/read throws
  // nla::Error(code::IO); malformed content throws nla::Error(error_code, ...)
  // (e.g. code::ADAPTER_INVALID, code::HEAD_INVALID) naming the file and the
  // tensor or field. error_code must be a string with static storage.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path, const char* error_code);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  uint64_t header_size() const { return header_len_; }  // N
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // In header order.
  const std::vector<Tensor>& tensors() const { return tensors_; }
  // nullptr if absent.
  const Tensor* find(const std::string& name) const;

  // Converts a tensor to f32 (row-major, numel values). Supports F32, F16, BF16
  // and F64; other dtypes throw nla::Error(error_code) naming tensor and dtype.
  // Throws nla::Error(IO) if the file shrank or changed while mapped (the values read are then
  // discarded).
  std::vector<float> to_f32(const Tensor& t) const;
  void check_intact() const { map_.check_intact(); }

  // Bytes per element of a safetensors dtype, 0 if unknown/unsupported
  // (sub-byte types such as F4 are not supported).
  static size_t dtype_size(const std::string& dtype);

  static constexpr uint64_t kMaxHeaderBytes = 100000000;  // same limit as the reference implementation

 private:
  SafetensorsFile() = default;
  void parse_header();
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_;
  const char* error_code_ = code::INTERNAL;
  MappedFile map_;
  const uint8_t* base_ = nullptr;  // map_.data()
  uint64_t size_ = 0;
  uint64_t header_len_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace nla
