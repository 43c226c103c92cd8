// A read-only memory mapping of a whole regular file (the GGUF and safetensors readers share it).
#pragma once
#include <cstdint>
#include <string>

namespace nla {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`. Throws nla::Error(code::IO) naming the path if it cannot be opened, is not a
  // regular file, or cannot be mapped. An empty file maps to data() == nullptr, size() == 0.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  void release();
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace nla
