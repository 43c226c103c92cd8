// A persistent pool of worker threads for data-parallel loops.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace nla {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads <= 1: everything runs on the caller
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Profiling: loops run on the pool, and the time their callers waited for the other threads' last chunks.
  uint64_t loops() const { return loops_.load(std::memory_order_relaxed); }
  uint64_t wait_ns() const { return wait_ns_.load(std::memory_order_relaxed); }
  void reset_counters() {
    loops_.store(0);
    wait_ns_.store(0);
  }
  // Splits [0, n) into contiguous chunks of at least `grain` items and runs fn(begin, end, thread_index)
  // on all threads (the caller takes part); chunks are handed out dynamically (a few per thread), so a
  // thread slowed by other load on the machine takes fewer. Returns when every chunk is done.
  // Callers on several threads take turns (one loop at a time runs on the pool); a call from inside a loop
  // of this pool runs inline on the calling thread.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void worker(int index);
  void run_chunks(int index);
  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::mutex call_mu_;  // one parallel_for at a time
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<uint64_t> loops_{0}, wait_ns_{0};
  bool stop_ = false;
};

}  // namespace nla
