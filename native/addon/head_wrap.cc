// NativeHead: the AR's linear head in the engine (reconstruct applies it inside the job).
#include "addon/wraps.h"

namespace nla_addon {

Napi::Function HeadWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeHead", {InstanceMethod("apply", &HeadWrap::Apply)});
}

// apply(h: Float32Array) -> Float32Array (synchronous: one product of d² values).
Napi::Value HeadWrap::Apply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw make_error(env, nla::code::INVALID_ARG, "apply(h: Float32Array)");
  Napi::Float32Array h = info[0].As<Napi::Float32Array>();
  if (static_cast<int64_t>(h.ElementLength()) != head->in_dim())
    throw make_error(env, nla::code::INVALID_ARG, "h has " + std::to_string(h.ElementLength()) + " values, the head expects " +
                                                      std::to_string(head->in_dim()));
  std::vector<float> x(h.Data(), h.Data() + h.ElementLength()), y(static_cast<size_t>(head->out_dim()));
  NLA_SYNC(env, head->apply(x.data(), y.data()));
  return to_js(env, y.data(), y.size());
}

}  // namespace nla_addon
