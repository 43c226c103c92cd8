// A read-only memory mapping of a whole regular file (the GGUF and safetensors readers share it).
//
// A file mapped here may be truncated or rewritten by someone else while it is mapped (a download
// tool resuming, `cp` over it, a full disk). Reading a page past the new end of file raises SIGBUS,
// which would kill the host process. Every mapping is therefore registered with a SIGBUS handler
// (installed once, chaining to any previous handler for faults outside our mappings) that maps
// zero pages over the faulting page and marks the mapping as faulted, so the faulting read resumes
// and returns zeros. Users of the data must call check_intact() after each step that read it (a
// forward pass, a load step) and discard the result when it throws: from then on the mapping stays
// faulted and every check throws ERR_NLA_IO.
#pragma once
#include <cstdint>
#include <ctime>
#include <string>

namespace nla {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`. Throws nla::Error(code::IO) naming the path if it cannot be opened, is not a
  // regular file (a FIFO, device or directory: refused before any read, so a FIFO cannot block),
  // or cannot be mapped. An empty file maps to data() == nullptr, size() == 0.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  // True once a read of this mapping hit a page past the end of the file (the file shrank while
  // mapped; set by the SIGBUS handler), or check_intact() found the file changed. Lock-free and
  // async-signal-safe; never cleared.
  bool faulted() const;
  // True if the file's size or modification time differs from when it was mapped (one fstat on the
  // descriptor kept open for this: a file replaced by rename keeps its old, intact inode mapped and
  // is not reported).
  bool changed_on_disk() const;
  // Throws nla::Error(code::IO, "<path>: the file changed on disk while mapped ...") if faulted() or
  // changed_on_disk(). Cheap enough to call after every pass.
  void check_intact() const;

  // Number of mappings currently registered with the SIGBUS handler (for tests and soak checks).
  static int live_mappings();

 private:
  void release();
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  int slot_ = -1;   // registry slot (-1: nothing mapped)
  int fd_ = -1;     // kept for changed_on_disk()
  uint64_t st_size_ = 0;
  struct timespec st_mtime_ = {0, 0};
  std::string path_;
};

}  // namespace nla
