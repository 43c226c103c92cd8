// Shared pieces of the Node-API binding: errors, the job that runs engine work off the JS thread and settles a
// Promise, argument conversions, and the per-environment data (class constructors).
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"

namespace nla_addon {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message);

// Runs fn with nla::Error / std::exception mapped to (code, message). Returns false on failure.
template <class Fn>
bool guarded(Fn&& fn, std::string& code, std::string& message) {
  try {
    fn();
    return true;
  } catch (const nla::Error& e) {
    code = e.code;
    message = e.what();
  } catch (const std::bad_alloc&) {
    code = nla::code::OOM;
    message = "out of memory";
  } catch (const std::exception& e) {
    code = nla::code::INTERNAL;
    message = e.what();
  }
  return false;
}

// Runs body on the JS thread, turning engine errors into JS exceptions with their code.
#define NLA_SYNC(env, body)                                                                  \
  do {                                                                                       \
    std::string code_, message_;                                                             \
    if (!::nla_addon::guarded([&] { body; }, code_, message_)) throw ::nla_addon::make_error(env, code_, message_); \
  } while (0)

// One request on libuv's pool settling a Promise. execute() runs off the JS thread and must not touch napi
// values; resolve() builds the result on the JS thread. Nothing escapes the completion callbacks: when the
// environment is shutting down (a worker thread terminated mid-call) creating values fails, and the job then
// settles nothing instead of taking the process down.
class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, const char* name, std::function<void()> execute, std::function<Napi::Value(Napi::Env)> resolve);
  Napi::Promise Promise() { return deferred_.Promise(); }
  // Keeps JS objects (inputs, wrappers, abort flags) alive until the job settles.
  void Keep(Napi::Value v) { keep_.push_back(Napi::Persistent(v)); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> execute_;
  std::function<Napi::Value(Napi::Env)> resolve_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  bool failed_ = false;
  std::string code_, message_;
};

// A cancellation flag shared with JS (an Int32Array over a SharedArrayBuffer; nonzero: abort), or null.
std::function<bool()> abort_check(const Napi::CallbackInfo& info, size_t index);

std::vector<int32_t> to_tokens(Napi::Value v);
Napi::Float32Array to_js(Napi::Env env, const float* data, size_t n);
int32_t get_int(Napi::Object o, const char* key, int32_t fallback);
bool get_bool(Napi::Object o, const char* key, bool fallback);

struct AddonData {
  Napi::FunctionReference model_ctor, adapter_ctor, tokenizer_ctor, session_ctor, head_ctor, verbalizer_ctor;
};

}  // namespace nla_addon
