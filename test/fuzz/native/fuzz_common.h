// Shared by the libFuzzer harnesses of the native parsers (test/fuzz/native/*.cc). Each harness defines
// LLVMFuzzerTestOneInput; built with -fsanitize=fuzzer it is a fuzzer, linked with replay_main.cc it replays
// files (the regression corpus that npm test runs). A harness may only let nla::Error escape its parser: that
// is the typed refusal every bad input must get. Anything else (another exception, a crash, a sanitizer report,
// a hang, unbounded memory) is a finding.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace nla_fuzz {

// An in-memory file (memfd) the readers open by path (/proc/self/fd/N), rewritten for each input: the readers
// take paths, and a real file per input would make the fuzzer I/O bound.
class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  const std::string& write(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// Writes a regular file (the PEFT loader reads a directory of named files).
inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

// Runs `fn`; an nla::Error is the expected refusal and is swallowed, anything else propagates (a finding).
template <class Fn>
void refusal_ok(Fn&& fn) {
  try {
    fn();
  } catch (const nla::Error&) {
  }
}

}  // namespace nla_fuzz
