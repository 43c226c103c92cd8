#include "addon/common.h"

namespace nla_addon {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Job::Job(Napi::Env env, const char* name, std::function<void()> execute, std::function<Napi::Value(Napi::Env)> resolve)
    : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), execute_(std::move(execute)),
      resolve_(std::move(resolve)) {}

void Job::Execute() {
  if (!guarded(execute_, code_, message_)) failed_ = true;
}

void Job::OnOK() {
  try {
    Napi::Env env = Env();
    if (failed_) {
      deferred_.Reject(make_error(env, code_, message_).Value());
      return;
    }
    Napi::Value result;
    try {
      result = resolve_(env);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
      return;
    } catch (const std::exception& e) {
      deferred_.Reject(make_error(env, nla::code::INTERNAL, e.what()).Value());
      return;
    }
    deferred_.Resolve(result);
  } catch (...) {
    // The environment is going away (napi calls fail): nobody is left to settle the promise for.
  }
}

void Job::OnError(const Napi::Error& e) {
  try {
    deferred_.Reject(e.Value());
  } catch (...) {
  }
}

std::function<bool()> abort_check(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsTypedArray()) return nullptr;
  Napi::TypedArray ta = info[index].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_int32_array || ta.ElementLength() < 1) return nullptr;
  auto* flag = reinterpret_cast<std::atomic<int32_t>*>(ta.As<Napi::Int32Array>().Data());
  return [flag] { return flag->load(std::memory_order_relaxed) != 0; };
}

std::vector<int32_t> to_tokens(Napi::Value v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw nla::Error(nla::code::INVALID_ARG, "token lists must be Int32Arrays");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Float32Array to_js(Napi::Env env, const float* data, size_t n) {
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  std::copy(data, data + n, a.Data());
  return a;
}

int32_t get_int(Napi::Object o, const char* key, int32_t fallback) {
  if (!o.Has(key)) return fallback;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw nla::Error(nla::code::INVALID_ARG, std::string("option ") + key + " must be a number");
  return v.As<Napi::Number>().Int32Value();
}

bool get_bool(Napi::Object o, const char* key, bool fallback) {
  if (!o.Has(key)) return fallback;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return v.ToBoolean().Value();
}

}  // namespace nla_addon
