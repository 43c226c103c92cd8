// NativeSession: one caller's sequences and KV caches on a model, and the requests run on them.
#include "addon/wraps.h"
#include "runtime/requests.h"

namespace nla_addon {

Napi::Function SessionWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeSession",
                     {InstanceMethod("addSequence", &SessionWrap::AddSequence),
                      InstanceMethod("removeSequence", &SessionWrap::RemoveSequence),
                      InstanceMethod("nPast", &SessionWrap::NPast), InstanceMethod("sequences", &SessionWrap::Sequences),
                      InstanceMethod("run", &SessionWrap::Run), InstanceMethod("hiddenStates", &SessionWrap::HiddenStates),
                      InstanceMethod("reconstruct", &SessionWrap::Reconstruct),
                      InstanceMethod("createVerbalizer", &SessionWrap::CreateVerbalizer),
                      InstanceMethod("kvBytes", &SessionWrap::KvBytes),
                      InstanceMethod("close", &SessionWrap::Close)});
}

std::shared_ptr<nla::Session> SessionWrap::live(Napi::Env env) const {
  if (!session) throw make_error(env, "ERR_NLA_CLOSED", "the session was closed");
  return session;
}

Napi::Value SessionWrap::AddSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Session> s = live(env);
  int id = 0;
  NLA_SYNC(env, {
    const int adapter = info.Length() > 0 ? adapter_arg(env, info[0], s->model()) : 0;
    id = s->add_sequence(adapter);
  });
  return Napi::Number::New(env, id);
}

Napi::Value SessionWrap::RemoveSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Session> s = live(env);
  if (info.Length() < 1 || !info[0].IsNumber()) throw make_error(env, nla::code::INVALID_ARG, "removeSequence(id)");
  NLA_SYNC(env, s->remove_sequence(info[0].As<Napi::Number>().Int32Value()));
  return env.Undefined();
}

Napi::Value SessionWrap::NPast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Session> s = live(env);
  if (info.Length() < 1 || !info[0].IsNumber()) throw make_error(env, nla::code::INVALID_ARG, "nPast(id)");
  int32_t n = 0;
  NLA_SYNC(env, n = s->n_past(info[0].As<Napi::Number>().Int32Value()));
  return Napi::Number::New(env, n);
}

Napi::Value SessionWrap::Sequences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int> ids = live(env)->sequences();
  Napi::Array a = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); ++i) a.Set(static_cast<uint32_t>(i), ids[i]);
  return a;
}

Napi::Value SessionWrap::KvBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, static_cast<double>(live(env)->kv_bytes()));
}

// run(inputs: [{seq, tokens: Int32Array, overrides?, read?: 'none'|'last'|'all', logits?}], options: {lastLayer?,
// captureLayers?, gelu?}, abortFlag?) -> Promise<[{firstRow, rows, hidden: Float32Array[], logits?: Float32Array}]>
Napi::Value SessionWrap::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Session> s = live(env);
  if (info.Length() < 1 || !info[0].IsArray()) throw make_error(env, nla::code::INVALID_ARG, "run(inputs[, options, abortFlag])");
  Napi::Array arr = info[0].As<Napi::Array>();
  auto inputs = std::make_shared<std::vector<nla::Session::Input>>(arr.Length());
  nla::gemma4::PassOptions opt;
  opt.gelu = s->model().options().gelu;
  NLA_SYNC(env, {
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      if (!arr.Get(i).IsObject()) throw nla::Error(nla::code::INVALID_ARG, "each input must be {seq, tokens}");
      Napi::Object o = arr.Get(i).As<Napi::Object>();
      nla::Session::Input& in = (*inputs)[i];
      in.seq = get_int(o, "seq", 0);
      in.tokens = to_tokens(o.Get("tokens"));
      const std::string read = o.Has("read") && o.Get("read").IsString() ? o.Get("read").As<Napi::String>().Utf8Value() : "last";
      if (read != "none" && read != "last" && read != "all") throw nla::Error(nla::code::INVALID_ARG, "read must be 'none', 'last' or 'all'");
      in.read = read == "none" ? nla::Session::Read::None : read == "all" ? nla::Session::Read::All : nla::Session::Read::Last;
      in.logits = get_bool(o, "logits", false);
      if (o.Has("overrides") && o.Get("overrides").IsArray()) {
        Napi::Array list = o.Get("overrides").As<Napi::Array>();
        for (uint32_t j = 0; j < list.Length(); ++j) {
          if (!list.Get(j).IsObject()) throw nla::Error(nla::code::INVALID_ARG, "an override must be {position, values}");
          Napi::Object ov = list.Get(j).As<Napi::Object>();
          nla::gemma4::EmbeddingOverride x;
          x.position = ov.Get("position").ToNumber().Int64Value();
          Napi::Value vals = ov.Get("values");
          if (!vals.IsTypedArray() || vals.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
            throw nla::Error(nla::code::INVALID_ARG, "override values must be a Float32Array");
          Napi::Float32Array fa = vals.As<Napi::Float32Array>();
          x.values.assign(fa.Data(), fa.Data() + fa.ElementLength());
          in.overrides.push_back(std::move(x));
        }
      }
    }
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      opt.last_layer = get_int(o, "lastLayer", -1);
      if (o.Has("captureLayers") && o.Get("captureLayers").IsArray()) {
        Napi::Array c = o.Get("captureLayers").As<Napi::Array>();
        for (uint32_t i = 0; i < c.Length(); ++i) opt.capture_layers.push_back(c.Get(i).ToNumber().Int32Value());
      }
      if (o.Has("gelu") && o.Get("gelu").IsString())
        opt.gelu = o.Get("gelu").As<Napi::String>().Utf8Value() == "fp16-table" ? nla::GeluMode::Fp16Table : nla::GeluMode::Exact;
    }
  });
  opt.should_abort = abort_check(info, 2);
  auto outs = std::make_shared<std::vector<nla::Session::Output>>();
  Job* job = new Job(
      env, "nla-ar:sessionRun", [s, inputs, opt, outs] { *outs = s->run(*inputs, opt); },
      [outs](Napi::Env env) -> Napi::Value {
        Napi::Array all = Napi::Array::New(env, outs->size());
        for (size_t i = 0; i < outs->size(); ++i) {
          const nla::Session::Output& o = (*outs)[i];
          Napi::Object r = Napi::Object::New(env);
          r.Set("firstRow", Napi::Number::New(env, static_cast<double>(o.first_row)));
          r.Set("rows", Napi::Number::New(env, static_cast<double>(o.rows)));
          Napi::Array hidden = Napi::Array::New(env, o.hidden.size());
          for (size_t c = 0; c < o.hidden.size(); ++c) hidden.Set(static_cast<uint32_t>(c), to_js(env, o.hidden[c].data(), o.hidden[c].size()));
          r.Set("hidden", hidden);
          if (!o.logits.empty()) r.Set("logits", to_js(env, o.logits.data(), o.logits.size()));
          all.Set(static_cast<uint32_t>(i), r);
        }
        return all;
      });
  job->Keep(info.This());
  job->Keep(info[0]);
  if (info.Length() > 2 && info[2].IsObject()) job->Keep(info[2]);
  job->Queue();
  return job->Promise();
}

Napi::Value SessionWrap::HiddenStates(const Napi::CallbackInfo& info) { return hidden_states_job(info, live(info.Env()), false); }
Napi::Value SessionWrap::Reconstruct(const Napi::CallbackInfo& info) { return hidden_states_job(info, live(info.Env()), true); }

// createVerbalizer({prompt: Int32Array, marker: {token, left, right}, adapter?, injectionNorm, eog: Int32Array})
//   -> NativeVerbalizer (throws ERR_NLA_INJECTION when the prompt has no unique injection site)
Napi::Value SessionWrap::CreateVerbalizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Session> s = live(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw make_error(env, nla::code::INVALID_ARG, "createVerbalizer(spec)");
  Napi::Object o = info[0].As<Napi::Object>();
  std::shared_ptr<nla::Verbalizer> v;
  NLA_SYNC(env, {
    nla::VerbalizerSpec spec;
    spec.prompt = to_tokens(o.Get("prompt"));
    if (!o.Has("marker") || !o.Get("marker").IsObject()) throw nla::Error(nla::code::INVALID_ARG, "spec.marker must be {token, left, right}");
    Napi::Object m = o.Get("marker").As<Napi::Object>();
    spec.marker.token = get_int(m, "token", -1);
    spec.marker.left = get_int(m, "left", -1);
    spec.marker.right = get_int(m, "right", -1);
    spec.adapter_id = o.Has("adapter") ? adapter_arg(env, o.Get("adapter"), s->model()) : 0;
    if (o.Has("injectionNorm") && o.Get("injectionNorm").IsNumber())
      spec.injection_norm = o.Get("injectionNorm").As<Napi::Number>().FloatValue();
    if (o.Has("eog")) spec.eog = to_tokens(o.Get("eog"));
    v = std::make_shared<nla::Verbalizer>(s, std::move(spec));
  });
  Napi::Object obj = env.GetInstanceData<AddonData>()->verbalizer_ctor.New({});
  VerbalizerWrap::Unwrap(obj)->verbalizer = v;
  return obj;
}

Napi::Value SessionWrap::Close(const Napi::CallbackInfo& info) {
  session.reset();
  return info.Env().Undefined();
}

// hiddenStates(prompts: (string | Int32Array)[], {layer?, adapter?, allTokens?, gelu?, maxPassTokens?}, abortFlag?)
//   -> Promise<[{firstRow, rows, data: Float32Array(rows × n_embd)}]>
// reconstruct(prompts: (string | Int32Array)[], {layer?, adapter?, head, gelu?, maxPassTokens?}, abortFlag?)
//   -> Promise<Float32Array[]>
// Strings are tokenized in the job (BOS, special tokens parsed), with the session's token limit.
Napi::Value hidden_states_job(const Napi::CallbackInfo& info, std::shared_ptr<nla::Session> s, bool reconstruct) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject())
    throw make_error(env, nla::code::INVALID_ARG, reconstruct ? "reconstruct(prompts, options[, abortFlag])" : "hiddenStates(prompts, options[, abortFlag])");
  Napi::Array arr = info[0].As<Napi::Array>();
  Napi::Object o = info[1].As<Napi::Object>();
  auto req = std::make_shared<nla::PromptRequest>();
  std::shared_ptr<const nla::LinearHead> head;
  NLA_SYNC(env, {
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr.Get(i);
      if (v.IsString()) req->texts.push_back(v.As<Napi::String>().Utf8Value());
      else req->tokens.push_back(to_tokens(v));
    }
    if (!req->texts.empty() && !req->tokens.empty())
      throw nla::Error(nla::code::INVALID_ARG, "prompts must be all strings or all Int32Arrays");
    req->layer = get_int(o, "layer", -1);
    req->adapter_id = o.Has("adapter") ? adapter_arg(env, o.Get("adapter"), s->model()) : 0;
    req->read = get_bool(o, "allTokens", false) ? nla::Session::Read::All : nla::Session::Read::Last;
    req->gelu = s->model().options().gelu;
    if (o.Has("gelu") && o.Get("gelu").IsString())
      req->gelu = o.Get("gelu").As<Napi::String>().Utf8Value() == "fp16-table" ? nla::GeluMode::Fp16Table : nla::GeluMode::Exact;
    req->max_pass_tokens = get_int(o, "maxPassTokens", static_cast<int32_t>(nla::Session::kDefaultPassTokens));
    if (reconstruct) {
      auto* data = env.GetInstanceData<AddonData>();
      if (!o.Has("head") || !o.Get("head").IsObject() || !o.Get("head").As<Napi::Object>().InstanceOf(data->head_ctor.Value()))
        throw nla::Error(nla::code::INVALID_ARG, "reconstruct needs a head (a NativeHead)");
      head = HeadWrap::Unwrap(o.Get("head").As<Napi::Object>())->head;
    }
  });
  req->should_abort = abort_check(info, 2);
  if (reconstruct) {
    auto out = std::make_shared<std::vector<std::vector<float>>>();
    Job* job = new Job(
        env, "nla-ar:reconstruct", [s, req, head, out] { *out = nla::reconstruct(*s, *req, *head); },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Array all = Napi::Array::New(env, out->size());
          for (size_t i = 0; i < out->size(); ++i) all.Set(static_cast<uint32_t>(i), to_js(env, (*out)[i].data(), (*out)[i].size()));
          return all;
        });
    job->Keep(info.This());
    if (info.Length() > 2 && info[2].IsObject()) job->Keep(info[2]);
    job->Queue();
    return job->Promise();
  }
  auto out = std::make_shared<std::vector<nla::Session::Output>>();
  Job* job = new Job(
      env, "nla-ar:hiddenStates", [s, req, out] { *out = nla::hidden_states(*s, *req); },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array all = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); ++i) {
          const nla::Session::Output& x = (*out)[i];
          Napi::Object r = Napi::Object::New(env);
          r.Set("firstRow", Napi::Number::New(env, static_cast<double>(x.first_row)));
          r.Set("rows", Napi::Number::New(env, static_cast<double>(x.rows)));
          r.Set("data", to_js(env, x.hidden[0].data(), x.hidden[0].size()));
          all.Set(static_cast<uint32_t>(i), r);
        }
        return all;
      });
  job->Keep(info.This());
  if (info.Length() > 2 && info[2].IsObject()) job->Keep(info[2]);
  job->Queue();
  return job->Promise();
}

}  // namespace nla_addon
