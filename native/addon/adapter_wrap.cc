// NativeAdapter: a PEFT LoRA loaded on a model, referred to by its id.
#include "addon/wraps.h"

namespace nla_addon {

Napi::Function AdapterWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeAdapter", {InstanceAccessor("id", &AdapterWrap::Id, nullptr), InstanceMethod("info", &AdapterWrap::Info)});
}

Napi::Value AdapterWrap::Id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id); }

Napi::Value AdapterWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Model> m = model.lock();
  if (!m) throw make_error(env, "ERR_NLA_CLOSED", "the model this adapter was loaded on was closed");
  std::shared_ptr<const nla::LoraAdapter> adapter;
  NLA_SYNC(env, adapter = m->adapter(id));
  Napi::Object o = Napi::Object::New(env);
  const auto& c = adapter->config();
  o.Set("id", id);
  o.Set("dir", adapter->dir());
  o.Set("peftType", c.peft_type);
  o.Set("rank", Napi::Number::New(env, static_cast<double>(c.r)));
  o.Set("alpha", c.lora_alpha);
  o.Set("useRslora", c.use_rslora);
  o.Set("baseModel", c.base_model);
  o.Set("pairs", Napi::Number::New(env, static_cast<double>(adapter->n_pairs())));
  o.Set("maxLayer", adapter->max_layer());
  Napi::Array targets = Napi::Array::New(env);
  for (size_t i = 0; i < c.target_modules.size(); ++i) targets.Set(static_cast<uint32_t>(i), c.target_modules[i]);
  o.Set("targetModules", targets);
  Napi::Array warnings = Napi::Array::New(env);
  for (size_t i = 0; i < adapter->warnings().size(); ++i) warnings.Set(static_cast<uint32_t>(i), adapter->warnings()[i]);
  o.Set("warnings", warnings);
  Napi::Array modules = Napi::Array::New(env);
  uint32_t n = 0;
  for (int il = 0; il <= adapter->max_layer(); ++il)
    for (int t = 0; t < static_cast<int>(nla::LoraTarget::COUNT); ++t)
      if (const auto* p = adapter->get(il, static_cast<nla::LoraTarget>(t))) {
        Napi::Object m = Napi::Object::New(env);
        m.Set("layer", il);
        m.Set("module", nla::lora_target_name(static_cast<nla::LoraTarget>(t)));
        m.Set("rank", Napi::Number::New(env, static_cast<double>(p->rank)));
        m.Set("scale", p->scale);
        modules.Set(n++, m);
      }
  o.Set("modules", modules);
  return o;
}

int adapter_arg(Napi::Env env, Napi::Value v, const nla::Model& model) {
  if (v.IsUndefined() || v.IsNull() || (v.IsBoolean() && !v.As<Napi::Boolean>().Value())) return 0;
  auto* data = env.GetInstanceData<AddonData>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(data->adapter_ctor.Value()))
    throw nla::Error(nla::code::INVALID_ARG, "adapter must be an adapter loaded with loadAdapter()");
  AdapterWrap* a = AdapterWrap::Unwrap(v.As<Napi::Object>());
  if (a->model.lock().get() != &model) throw nla::Error(nla::code::INVALID_ARG, "the adapter was loaded on another model");
  return a->id;
}

}  // namespace nla_addon
