#include "common/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NLA_PAUSE() _mm_pause()
#else
#define NLA_PAUSE() std::this_thread::yield()
#endif

namespace nla {

namespace {
// Workers spin this long for the next job before sleeping on the condition variable: the forward pass
// issues a few hundred short parallel loops per prompt, and a futex wake-up costs tens of microseconds.
constexpr auto kSpin = std::chrono::microseconds(100);
// The pool whose loop the current thread is running (nested calls run inline).
thread_local const ThreadPool* t_inside = nullptr;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back(&ThreadPool::worker, this, i);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  cv_start_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run_chunks(int index) {
  const int64_t n = job_n_, chunk = job_chunk_;
  for (;;) {
    const int64_t b = next_.fetch_add(chunk, std::memory_order_relaxed);
    if (b >= n) break;
    (*job_)(b, std::min(n, b + chunk), index);
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin briefly, then sleep until the generation changes.
    const auto until = std::chrono::steady_clock::now() + kSpin;
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen) {
      NLA_PAUSE();
      if (++spins % 256 == 0 && std::chrono::steady_clock::now() > until) {
        std::unique_lock<std::mutex> lock(mu_);
        sleeping_.fetch_add(1);
        cv_start_.wait(lock, [&] { return generation_.load() != seen; });
        sleeping_.fetch_sub(1);
        break;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    t_inside = this;
    run_chunks(index);
    t_inside = nullptr;
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_chunks = (n + grain - 1) / grain;
  if (n_threads_ == 1 || max_chunks == 1 || t_inside == this) {
    fn(0, n, 0);
    return;
  }
  std::lock_guard<std::mutex> turn(call_mu_);
  const ThreadPool* outer = t_inside;
  t_inside = this;
  struct Restore { const ThreadPool* o; ~Restore() { t_inside = o; } } restore{outer};
  // About four chunks per thread (never smaller than grain).
  const int64_t want = static_cast<int64_t>(n_threads_) * 4;
  const int64_t chunk = std::max(grain, (n + want - 1) / want);
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  if (sleeping_.load() > 0) cv_start_.notify_all();
  run_chunks(0);
  // Wait for the workers (spin first: they are usually finishing their last chunk).
  const auto waited = std::chrono::steady_clock::now();
  struct Count {
    ThreadPool* p;
    std::chrono::steady_clock::time_point t0;
    ~Count() {
      p->loops_.fetch_add(1, std::memory_order_relaxed);
      p->wait_ns_.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count()),
                            std::memory_order_relaxed);
    }
  } count{this, waited};
  const auto until = waited + kSpin;
  int spins = 0;
  while (pending_.load(std::memory_order_acquire) != 0) {
    NLA_PAUSE();
    if (++spins % 256 == 0 && std::chrono::steady_clock::now() > until) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_done_.wait(lock, [&] { return pending_.load() == 0; });
      break;
    }
  }
}

}  // namespace nla
