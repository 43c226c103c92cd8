#include "runtime/model.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "backends/profile.h"

namespace nla {

std::shared_ptr<Model> Model::load(const ModelOptions& options) {
  std::shared_ptr<Model> m(new Model());
  m->options_ = options;
  m->file_ = GgufFile::open(options.path);
  try {
    m->weights_ = gemma4::Weights::load(*m->file_);
    m->tokenizer_ = gemma4::Tokenizer::from_gguf(*m->file_);
  } catch (const Error&) {
    m->file_->check_intact();  // values read as zeros from a shrunk file: report the I/O, not their symptoms
    throw;
  }
  m->file_->check_intact();
  if (m->tokenizer_->n_vocab() > m->hparams().n_vocab)
    throw Error(code::MODEL_INVALID, options.path + ": the vocabulary has " + std::to_string(m->tokenizer_->n_vocab()) +
                                         " tokens but token_embd has only " + std::to_string(m->hparams().n_vocab) + " rows");
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  m->options_.threads = threads;  // report what is used
  if (options.device == "cpu") {
    m->backend_ = make_cpu_backend(threads);
  } else if (options.device == "cuda") {
#ifdef NLA_HAVE_CUDA
    m->backend_ = make_cuda_backend(0);
#else
    throw Error(code::NO_CUDA, "this build of nla-ar has no CUDA backend");
#endif
  } else {
    throw Error(code::INVALID_ARG, "unknown device '" + options.device + "' (expected cpu or cuda)");
  }
  if (options.profile) m->backend_ = std::make_unique<ProfilingBackend>(std::move(m->backend_));
  return m;
}

#ifdef MADV_POPULATE_READ
constexpr int kPopulateRead = MADV_POPULATE_READ;
#else
constexpr int kPopulateRead = 22;  // Linux's value; older headers lack it, older kernels answer EINVAL
#endif

size_t Model::prefetch(int last) const {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t total = 0;
  // Merge neighbouring ranges, ask the kernel to read them ahead, then touch every page in order: the faults come
  // in file order, so the kernel's readahead turns them into large sequential reads.
  std::vector<std::pair<uintptr_t, uintptr_t>> spans;
  for (const auto& [p, n] : weights_->ranges_for(last)) {
    const uintptr_t b = reinterpret_cast<uintptr_t>(p) & ~(page - 1), e = reinterpret_cast<uintptr_t>(p) + n;
    if (!spans.empty() && b <= spans.back().second + (1u << 20)) spans.back().second = std::max(spans.back().second, e);
    else spans.emplace_back(b, e);
  }
  for (const auto& [b, e] : spans) madvise(reinterpret_cast<void*>(b), e - b, MADV_WILLNEED);
  volatile uint8_t sink = 0;
  for (const auto& [b, e] : spans) {
    // Linux ≥ 5.14 populates the page tables in one call (no fault per page); elsewhere, or if it fails (a file
    // that shrank: the touch below then meets the mapping's SIGBUS guard), every page is touched in order.
    if (madvise(reinterpret_cast<void*>(b), e - b, kPopulateRead) != 0)
      for (uintptr_t a = b; a < e; a += page) sink = sink + *reinterpret_cast<const volatile uint8_t*>(a);
    total += e - b;
  }
  (void)sink;
  return total;
}

std::string Model::profile_json(bool reset) const {
  auto* p = dynamic_cast<ProfilingBackend*>(backend_.get());
  return p ? p->report_json(reset) : "{}";
}

Model::~Model() = default;

int Model::load_adapter(const std::string& dir) {
  std::shared_ptr<const LoraAdapter> a = LoraAdapter::load_peft_dir(dir);
  a->validate(hparams().n_layer, [&](int il, LoraTarget t) { return weights_->projection_shape(il, static_cast<int>(t)); });
  std::lock_guard<std::mutex> lock(adapters_mu_);
  const int id = next_adapter_id_++;
  adapters_[id] = std::move(a);
  return id;
}

std::shared_ptr<const LoraAdapter> Model::adapter(int id) const {
  std::lock_guard<std::mutex> lock(adapters_mu_);
  auto it = adapters_.find(id);
  if (it == adapters_.end())
    throw Error(code::ADAPTER_NOT_LOADED, "adapter " + std::to_string(id) + " is not loaded on this model");
  return it->second;
}

void Model::unload_adapter(int id) {
  std::lock_guard<std::mutex> lock(adapters_mu_);
  auto it = adapters_.find(id);
  if (it == adapters_.end())
    throw Error(code::ADAPTER_NOT_LOADED, "adapter " + std::to_string(id) + " is not loaded on this model");
  // Sessions hold a reference for every sequence (and every pass in flight) that uses the adapter.
  if (it->second.use_count() > 1)
    throw Error(code::ADAPTER_IN_USE, "adapter " + std::to_string(id) + " (" + it->second->dir() +
                                          ") is in use by a session; finish or remove its sequences first");
  adapters_.erase(it);
}

std::vector<int> Model::adapter_ids() const {
  std::lock_guard<std::mutex> lock(adapters_mu_);
  std::vector<int> ids;
  for (const auto& [id, a] : adapters_) ids.push_back(id);
  return ids;
}

}  // namespace nla
