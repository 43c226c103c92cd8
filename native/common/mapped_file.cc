#include "common/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <utility>

#include "common/error.h"

namespace nla {

namespace {

// ---- the registry of live mappings, read by the SIGBUS handler -------------------------------
// A fixed array of slots, so the handler only reads atomics (no locks, no allocation). Writers
// (map/unmap) serialise on a mutex; the handler may run concurrently with them on another thread,
// which is safe because a slot is published (used = 1) only after begin/end are set and retired
// (used = 0) before the memory is unmapped.
constexpr int kSlots = 1024;

struct Slot {
  std::atomic<uint32_t> used{0};
  std::atomic<uintptr_t> begin{0}, end{0};
  std::atomic<uint32_t> faulted{0};
};

Slot g_slots[kSlots];
std::mutex g_registry_mu;
std::atomic<int> g_live{0};
uintptr_t g_page_size = 4096;
struct sigaction g_previous;

static_assert(std::atomic<uintptr_t>::is_always_lock_free, "the SIGBUS handler needs lock-free atomics");

// Faults outside our mappings go to whoever handled SIGBUS before us, or get the default action.
void chain(int sig, siginfo_t* info, void* context) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) {
      g_previous.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // Default action (ignoring a synchronous fault would re-fault forever): restore it and re-raise;
  // the signal is delivered when this handler returns.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  raise(sig);
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info ? info->si_addr : nullptr);
  if (info && info->si_code > 0) {  // a fault, not a kill(): only those can be ours
    for (Slot& s : g_slots) {
      if (s.used.load(std::memory_order_acquire) == 0) continue;
      const uintptr_t b = s.begin.load(std::memory_order_relaxed), e = s.end.load(std::memory_order_relaxed);
      if (addr < b || addr >= e) continue;
      // Zero pages from the faulting page to the end of the mapping: the read resumes (and reads 0),
      // and later reads past the new end of file do not fault one page at a time.
      const uintptr_t page = addr & ~(g_page_size - 1);
      const uintptr_t stop = (e + g_page_size - 1) & ~(g_page_size - 1);
      void* r = mmap(reinterpret_cast<void*>(page), stop - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (r == MAP_FAILED) break;  // cannot repair: let the fault take its course
      s.faulted.store(1, std::memory_order_release);
      errno = saved_errno;
      return;
    }
  }
  errno = saved_errno;
  chain(sig, info, context);
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    const long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0) g_page_size = static_cast<uintptr_t>(ps);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

int register_mapping(const uint8_t* data, uint64_t size) {
  install_handler();
  std::lock_guard<std::mutex> lock(g_registry_mu);
  for (int i = 0; i < kSlots; ++i) {
    Slot& s = g_slots[i];
    if (s.used.load(std::memory_order_relaxed)) continue;
    s.begin.store(reinterpret_cast<uintptr_t>(data), std::memory_order_relaxed);
    s.end.store(reinterpret_cast<uintptr_t>(data) + size, std::memory_order_relaxed);
    s.faulted.store(0, std::memory_order_relaxed);
    s.used.store(1, std::memory_order_release);
    g_live.fetch_add(1, std::memory_order_relaxed);
    return i;
  }
  return -1;
}

void unregister_mapping(int slot) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  g_slots[slot].used.store(0, std::memory_order_release);
  g_live.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever. It changes nothing for a
  // regular file, the only kind accepted below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error(code::IO, path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(code::IO, path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(code::IO, path + ": not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > std::numeric_limits<size_t>::max()) {
    ::close(fd);
    throw Error(code::IO, path + ": file too large to map");
  }
  if (size > 0) {
    void* m = mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    const int e = errno;
    if (m == MAP_FAILED) {
      ::close(fd);
      throw Error(code::IO, path + ": cannot mmap " + std::to_string(size) + " bytes: " + std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(m);
    slot_ = register_mapping(data_, size);
    if (slot_ < 0) {
      munmap(m, static_cast<size_t>(size));
      ::close(fd);
      data_ = nullptr;
      throw Error(code::IO, path + ": cannot map more than " + std::to_string(kSlots) + " files at once");
    }
  }
  fd_ = fd;
  size_ = size;
  st_size_ = size;
  st_mtime_ = st.st_mtim;
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    slot_ = std::exchange(other.slot_, -1);
    fd_ = std::exchange(other.fd_, -1);
    st_size_ = other.st_size_;
    st_mtime_ = other.st_mtime_;
    path_ = std::move(other.path_);
  }
  return *this;
}

bool MappedFile::faulted() const {
  return slot_ >= 0 && g_slots[slot_].faulted.load(std::memory_order_acquire) != 0;
}

bool MappedFile::changed_on_disk() const {
  if (fd_ < 0) return false;
  struct stat st;
  if (fstat(fd_, &st) != 0) return true;
  return static_cast<uint64_t>(st.st_size) != st_size_ || st.st_mtim.tv_sec != st_mtime_.tv_sec ||
         st.st_mtim.tv_nsec != st_mtime_.tv_nsec;
}

void MappedFile::check_intact() const {
  if (slot_ < 0) return;  // nothing mapped
  std::atomic<uint32_t>& flag = g_slots[slot_].faulted;
  // Latched: once seen changed, the mapping stays unusable even if the file is put back.
  if (flag.load(std::memory_order_acquire) == 0 && changed_on_disk()) {
    uint32_t expected = 0;
    flag.compare_exchange_strong(expected, 2, std::memory_order_acq_rel);
  }
  switch (flag.load(std::memory_order_acquire)) {
    case 0: return;
    case 1:
      throw Error(code::IO, path_ + ": the file changed on disk while mapped (it was truncated: reads past its new "
                                    "end returned zeros, so the result was discarded); load it again");
    default:
      throw Error(code::IO, path_ + ": the file changed on disk while mapped (its size or modification time differs "
                                    "from when it was loaded); load it again");
  }
}

int MappedFile::live_mappings() { return g_live.load(std::memory_order_relaxed); }

void MappedFile::release() {
  if (slot_ >= 0) unregister_mapping(slot_);  // retire before unmapping: no fault can be ours after this
  if (data_) munmap(const_cast<uint8_t*>(data_), static_cast<size_t>(size_));
  if (fd_ >= 0) ::close(fd_);
  data_ = nullptr;
  size_ = 0;
  slot_ = -1;
  fd_ = -1;
}

}  // namespace nla
