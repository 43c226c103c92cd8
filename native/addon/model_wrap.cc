// NativeModel: a loaded model (shared, immutable), its tokenizer and adapters, and requests that run on a
// fresh session each (the TypeScript classes keep a session of their own instead).
#include <map>

#include "addon/wraps.h"
#include "runtime/requests.h"

namespace nla_addon {

namespace {

nla::GeluMode gelu_arg(Napi::Object o, nla::GeluMode fallback) {
  if (!o.Has("gelu") || !o.Get("gelu").IsString()) return fallback;
  return o.Get("gelu").As<Napi::String>().Utf8Value() == "fp16-table" ? nla::GeluMode::Fp16Table : nla::GeluMode::Exact;
}

}  // namespace

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {InstanceMethod("info", &ModelWrap::Info), InstanceMethod("tokenize", &ModelWrap::Tokenize),
                      InstanceMethod("decode", &ModelWrap::Decode), InstanceMethod("loadAdapter", &ModelWrap::LoadAdapter),
                      InstanceMethod("unloadAdapter", &ModelWrap::UnloadAdapter),
                      InstanceMethod("forward", &ModelWrap::Forward), InstanceMethod("hiddenStates", &ModelWrap::HiddenStates),
                      InstanceMethod("reconstruct", &ModelWrap::Reconstruct),
                      InstanceMethod("createSession", &ModelWrap::CreateSession), InstanceMethod("prefetch", &ModelWrap::Prefetch),
                      InstanceMethod("close", &ModelWrap::Close)});
}

std::shared_ptr<nla::Model> ModelWrap::live(Napi::Env env) const {
  if (!model) throw make_error(env, "ERR_NLA_CLOSED", "the model was closed");
  return model;
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Model> m = live(env);
  const auto& hp = m->hparams();
  const nla::GgufFile& f = m->file();
  Napi::Object o = Napi::Object::New(env);
  o.Set("path", f.path());
  o.Set("ggufVersion", f.version());
  o.Set("tensorCount", Napi::Number::New(env, static_cast<double>(f.tensors().size())));
  o.Set("fileSize", Napi::Number::New(env, static_cast<double>(f.file_size())));
  o.Set("name", f.has("general.name") ? f.get_string("general.name") : std::string());
  o.Set("architecture", "gemma4");
  o.Set("nLayer", hp.n_layer);
  o.Set("nEmbd", hp.n_embd);
  o.Set("nVocab", hp.n_vocab);
  o.Set("nCtxTrain", hp.n_ctx_train);
  o.Set("headDimFull", hp.head_dim_full);
  o.Set("headDimSwa", hp.head_dim_swa);
  o.Set("slidingWindow", hp.sliding_window);
  o.Set("nKvShared", hp.n_kv_shared);
  o.Set("pleDim", hp.ple_dim);
  o.Set("finalSoftcap", hp.final_softcap);
  Napi::Array swa = Napi::Array::New(env), ff = Napi::Array::New(env), heads = Napi::Array::New(env);
  for (int i = 0; i < hp.n_layer; ++i) {
    swa.Set(i, Napi::Boolean::New(env, hp.is_swa[i]));
    ff.Set(i, hp.n_ff[i]);
    heads.Set(i, hp.n_head[i]);
  }
  o.Set("slidingLayers", swa);
  o.Set("feedForward", ff);
  o.Set("heads", heads);
  o.Set("weightTypes", m->weights().weight_types_summary());
  o.Set("backend", m->backend().name());
  o.Set("backendDescription", m->backend().description());
  o.Set("threads", m->options().threads);
  o.Set("nVocabTokenizer", m->tokenizer().n_vocab());
  o.Set("bos", m->tokenizer().bos_id());
  o.Set("eos", m->tokenizer().eos_id());
  return o;
}

Napi::Value ModelWrap::Tokenize(const Napi::CallbackInfo& info) { return encode_with(live(info.Env())->tokenizer(), info); }
Napi::Value ModelWrap::Decode(const Napi::CallbackInfo& info) { return decode_with(live(info.Env())->tokenizer(), info); }

Napi::Value ModelWrap::LoadAdapter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Model> m = live(env);
  if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, nla::code::INVALID_ARG, "adapter dir must be a string");
  const std::string dir = info[0].As<Napi::String>().Utf8Value();
  auto id = std::make_shared<int>(0);
  auto* data = env.GetInstanceData<AddonData>();
  Job* job = new Job(
      env, "nla-ar:loadAdapter", [m, dir, id] { *id = m->load_adapter(dir); },
      [m, id, data](Napi::Env env) -> Napi::Value {
        Napi::Object obj = data->adapter_ctor.New({});
        AdapterWrap* a = AdapterWrap::Unwrap(obj);
        a->model = m;
        a->id = *id;
        return obj;
      });
  job->Keep(info.This());
  job->Queue();
  return job->Promise();
}

Napi::Value ModelWrap::UnloadAdapter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Model> m = live(env);
  const int id = info.Length() > 0 ? adapter_arg(env, info[0], *m) : 0;
  if (id == 0) throw make_error(env, nla::code::INVALID_ARG, "unloadAdapter needs a loaded adapter");
  NLA_SYNC(env, m->unload_adapter(id));
  return env.Undefined();
}

// forward(prompts: Int32Array[], options, abortFlag?) -> Promise<Array<Array<{layer, rows, firstRow, cols, data, name?}>>>
// Options: lastLayer, captureLayers, allTokens, adapter, overrides (per prompt: [{position, values}]), gelu,
// observe (debug names; those prompts then run one per pass), logits (adds {layer: -1, name: 'logits'}),
// maxPassTokens (the batching budget: prompts share passes up to it, longer ones are cut into chunks).
Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Model> m = live(env);
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject())
    throw make_error(env, nla::code::INVALID_ARG, "forward(prompts, options[, abortFlag])");
  Napi::Array arr = info[0].As<Napi::Array>();
  Napi::Object o = info[1].As<Napi::Object>();
  std::vector<nla::Session::Input> prompts(arr.Length());
  nla::gemma4::PassOptions base;
  int adapter = 0;
  auto observe_names = std::make_shared<std::vector<std::string>>();
  bool logits = false;
  int64_t max_pass = nla::Session::kDefaultPassTokens;
  NLA_SYNC(env, {
    max_pass = get_int(o, "maxPassTokens", static_cast<int32_t>(nla::Session::kDefaultPassTokens));
    for (uint32_t i = 0; i < arr.Length(); ++i) prompts[i].tokens = to_tokens(arr.Get(i));
    base.last_layer = get_int(o, "lastLayer", -1);
    if (o.Has("captureLayers") && o.Get("captureLayers").IsArray()) {
      Napi::Array c = o.Get("captureLayers").As<Napi::Array>();
      for (uint32_t i = 0; i < c.Length(); ++i) base.capture_layers.push_back(c.Get(i).ToNumber().Int32Value());
    }
    const bool all = get_bool(o, "allTokens", false);
    logits = get_bool(o, "logits", false);
    for (auto& p : prompts) {
      p.read = all ? nla::Session::Read::All : nla::Session::Read::Last;
      p.logits = logits;
    }
    if (o.Has("observe") && o.Get("observe").IsArray()) {
      Napi::Array c = o.Get("observe").As<Napi::Array>();
      for (uint32_t i = 0; i < c.Length(); ++i) observe_names->push_back(c.Get(i).ToString().Utf8Value());
    }
    base.gelu = gelu_arg(o, m->options().gelu);
    adapter = o.Has("adapter") ? adapter_arg(env, o.Get("adapter"), *m) : 0;
    if (o.Has("overrides") && o.Get("overrides").IsArray()) {
      Napi::Array per = o.Get("overrides").As<Napi::Array>();
      for (uint32_t i = 0; i < per.Length() && i < prompts.size(); ++i) {
        if (!per.Get(i).IsArray()) continue;
        Napi::Array list = per.Get(i).As<Napi::Array>();
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
          prompts[i].overrides.push_back(std::move(x));
        }
      }
    }
  });
  base.should_abort = abort_check(info, 2);
  struct Captured { int layer; int64_t rows, first, cols; std::vector<float> data; std::string name; };
  auto results = std::make_shared<std::vector<std::vector<Captured>>>(prompts.size());
  const int64_t d = m->hparams().n_embd;
  auto shared_prompts = std::make_shared<std::vector<nla::Session::Input>>(std::move(prompts));
  Job* job = new Job(
      env, "nla-ar:forward",
      [m, shared_prompts, base, adapter, results, d, observe_names, logits, max_pass] {
        nla::Session session(m);
        auto collect = [&](size_t i, nla::Session::Output& out, std::vector<Captured>& named) {
          auto& caps = (*results)[i];
          caps = std::move(named);
          for (size_t c = 0; c < base.capture_layers.size(); ++c)
            caps.push_back(Captured{base.capture_layers[c], out.rows, out.first_row, d, std::move(out.hidden[c]), ""});
          if (logits) {
            const int64_t cols = out.rows > 0 ? static_cast<int64_t>(out.logits.size()) / out.rows : 0;
            caps.push_back(Captured{-1, out.rows, out.first_row, cols, std::move(out.logits), "logits"});
          }
        };
        if (observe_names->empty()) {
          std::vector<nla::Session::Output> outs = session.run_prompts(*shared_prompts, adapter, base, max_pass);
          for (size_t i = 0; i < outs.size(); ++i) {
            std::vector<Captured> none;
            collect(i, outs[i], none);
          }
          return;
        }
        // Observed intermediates hold every row of a pass: one prompt per pass, in one piece.
        for (size_t i = 0; i < shared_prompts->size(); ++i) {
          std::vector<Captured> named;
          nla::gemma4::PassOptions opt = base;
          opt.observe_names = *observe_names;
          opt.observe = [&named](const std::string& name, int64_t rows, int64_t cols, const float* data) {
            named.push_back(Captured{-1, rows, 0, cols, std::vector<float>(data, data + rows * cols), name});
          };
          nla::Session::Input in = (*shared_prompts)[i];
          in.seq = session.add_sequence(adapter);
          std::vector<nla::Session::Output> outs = session.run({in}, opt);
          session.remove_sequence(in.seq);
          collect(i, outs[0], named);
        }
      },
      [results](Napi::Env env) -> Napi::Value {
        Napi::Array all = Napi::Array::New(env, results->size());
        for (size_t i = 0; i < results->size(); ++i) {
          Napi::Array caps = Napi::Array::New(env, (*results)[i].size());
          for (size_t j = 0; j < (*results)[i].size(); ++j) {
            const Captured& c = (*results)[i][j];
            Napi::Object r = Napi::Object::New(env);
            r.Set("layer", c.layer);
            r.Set("rows", Napi::Number::New(env, static_cast<double>(c.rows)));
            r.Set("firstRow", Napi::Number::New(env, static_cast<double>(c.first)));
            r.Set("data", to_js(env, c.data.data(), c.data.size()));
            r.Set("cols", Napi::Number::New(env, static_cast<double>(c.cols)));
            if (!c.name.empty()) r.Set("name", c.name);
            caps.Set(static_cast<uint32_t>(j), r);
          }
          all.Set(static_cast<uint32_t>(i), caps);
        }
        return all;
      });
  job->Keep(info.This());
  job->Keep(info[0]);
  if (info.Length() > 2 && info[2].IsObject()) job->Keep(info[2]);
  job->Queue();
  return job->Promise();
}

Napi::Value ModelWrap::HiddenStates(const Napi::CallbackInfo& info) {
  std::shared_ptr<nla::Model> m = live(info.Env());
  return hidden_states_job(info, std::make_shared<nla::Session>(m), false);
}

Napi::Value ModelWrap::Reconstruct(const Napi::CallbackInfo& info) {
  std::shared_ptr<nla::Model> m = live(info.Env());
  return hidden_states_job(info, std::make_shared<nla::Session>(m), true);
}

// createSession({maxTokens?}) -> NativeSession
Napi::Value ModelWrap::CreateSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Model> m = live(env);
  int64_t max_tokens = 0;
  if (info.Length() > 0 && info[0].IsObject()) NLA_SYNC(env, max_tokens = get_int(info[0].As<Napi::Object>(), "maxTokens", 0));
  std::shared_ptr<nla::Session> s;
  NLA_SYNC(env, s = std::make_shared<nla::Session>(m, max_tokens));
  Napi::Object obj = env.GetInstanceData<AddonData>()->session_ctor.New({});
  SessionWrap::Unwrap(obj)->session = s;
  return obj;
}

// prefetch(lastLayer) -> Promise<bytes>: reads ahead the weights a pass through blocks 0..lastLayer reads.
Napi::Value ModelWrap::Prefetch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<nla::Model> m = live(env);
  const int last = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : m->hparams().n_layer - 1;
  auto bytes = std::make_shared<size_t>(0);
  Job* job = new Job(
      env, "nla-ar:prefetch", [m, last, bytes] { *bytes = m->prefetch(last); },
      [bytes](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(*bytes)); });
  job->Keep(info.This());
  job->Queue();
  return job->Promise();
}

// Drops this handle's reference; sessions and jobs in flight keep the model alive until they finish.
Napi::Value ModelWrap::Close(const Napi::CallbackInfo& info) {
  model.reset();
  return info.Env().Undefined();
}

}  // namespace nla_addon
