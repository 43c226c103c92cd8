// NativeVerbalizer: the AV on a session — activations in, generated token ids out, each token also reported
// as it comes (for streaming) through a thread-safe function.
#include "addon/wraps.h"

namespace nla_addon {

Napi::Function VerbalizerWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeVerbalizer",
                     {InstanceAccessor("site", &VerbalizerWrap::Site, nullptr), InstanceMethod("generate", &VerbalizerWrap::Generate),
                      InstanceMethod("close", &VerbalizerWrap::Close)});
}

Napi::Value VerbalizerWrap::Site(const Napi::CallbackInfo& info) {
  if (!verbalizer) throw make_error(info.Env(), "ERR_NLA_CLOSED", "the verbalizer was closed");
  return Napi::Number::New(info.Env(), static_cast<double>(verbalizer->site()));
}

namespace {

struct TokenEvent {
  size_t item;
  int32_t token;
};

}  // namespace

// generate(activations: Float32Array[], {maxTokens?, temperature?, topK?, topP?, seed?, stop?: string[]},
//          onToken?: (item, token) => void, abortFlag?) -> Promise<[{tokens: Int32Array, finish: 'eos'|'length'|'stop'}]>
Napi::Value VerbalizerWrap::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!verbalizer) throw make_error(env, "ERR_NLA_CLOSED", "the verbalizer was closed");
  std::shared_ptr<nla::Verbalizer> v = verbalizer;
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject())
    throw make_error(env, nla::code::INVALID_ARG, "generate(activations, options[, onToken, abortFlag])");
  auto acts = std::make_shared<std::vector<std::vector<float>>>();
  nla::Verbalizer::Options opt;
  NLA_SYNC(env, {
    Napi::Array arr = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value x = arr.Get(i);
      if (!x.IsTypedArray() || x.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw nla::Error(nla::code::INVALID_ARG, "activations must be Float32Arrays");
      Napi::Float32Array f = x.As<Napi::Float32Array>();
      acts->emplace_back(f.Data(), f.Data() + f.ElementLength());
    }
    Napi::Object o = info[1].As<Napi::Object>();
    opt.max_new_tokens = get_int(o, "maxTokens", 120);
    if (o.Has("temperature") && o.Get("temperature").IsNumber()) opt.sampler.temperature = o.Get("temperature").As<Napi::Number>().FloatValue();
    opt.sampler.top_k = get_int(o, "topK", 0);
    if (o.Has("topP") && o.Get("topP").IsNumber()) opt.sampler.top_p = o.Get("topP").As<Napi::Number>().FloatValue();
    if (o.Has("seed") && o.Get("seed").IsNumber()) opt.sampler.seed = static_cast<uint64_t>(o.Get("seed").As<Napi::Number>().Int64Value());
    if (o.Has("stop") && o.Get("stop").IsArray()) {
      Napi::Array st = o.Get("stop").As<Napi::Array>();
      for (uint32_t i = 0; i < st.Length(); ++i) opt.stop.push_back(st.Get(i).ToString().Utf8Value());
    }
    nla::Sampler check(opt.sampler);  // invalid sampling options fail here, on the caller's stack
    (void)check;
  });
  opt.should_abort = abort_check(info, 3);
  std::shared_ptr<Napi::ThreadSafeFunction> tsfn;
  if (info.Length() > 2 && info[2].IsFunction()) {
    // Released when the last reference goes (the job's), whether the job ran or not.
    tsfn = std::shared_ptr<Napi::ThreadSafeFunction>(
        new Napi::ThreadSafeFunction(Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "nla-ar:onToken", 0, 1)),
        [](Napi::ThreadSafeFunction* f) {
          f->Release();
          delete f;
        });
    opt.on_token = [tsfn](size_t item, int32_t token) {
      auto* ev = new TokenEvent{item, token};
      const napi_status st = tsfn->NonBlockingCall(ev, [](Napi::Env env, Napi::Function cb, TokenEvent* e) {
        try {
          if (env && cb) cb.Call({Napi::Number::New(env, static_cast<double>(e->item)), Napi::Number::New(env, e->token)});
        } catch (...) {
          // a throwing listener must not take the job down
        }
        delete e;
      });
      if (st != napi_ok) delete ev;
    };
  }
  auto out = std::make_shared<std::vector<nla::Verbalizer::Result>>();
  Job* job = new Job(
      env, "nla-ar:verbalize",
      [v, acts, opt, out] { *out = v->run(*acts, opt); },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Array all = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); ++i) {
          const nla::Verbalizer::Result& r = (*out)[i];
          Napi::Object o = Napi::Object::New(env);
          Napi::Int32Array t = Napi::Int32Array::New(env, r.tokens.size());
          std::copy(r.tokens.begin(), r.tokens.end(), t.Data());
          o.Set("tokens", t);
          o.Set("finish", r.finish == nla::Verbalizer::Finish::Eos ? "eos" : r.finish == nla::Verbalizer::Finish::Stop ? "stop" : "length");
          all.Set(static_cast<uint32_t>(i), o);
        }
        return all;
      });
  job->Keep(info.This());
  job->Keep(info[0]);
  if (info.Length() > 3 && info[3].IsObject()) job->Keep(info[3]);
  job->Queue();
  return job->Promise();
}

Napi::Value VerbalizerWrap::Close(const Napi::CallbackInfo& info) {
  verbalizer.reset();
  return info.Env().Undefined();
}

}  // namespace nla_addon
