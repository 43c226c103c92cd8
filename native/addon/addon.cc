// Thin Node-API binding over the engine: converts arguments, runs compute on
// libuv's pool (a Promise per job), maps nla::Error codes onto JS errors.
// Argument validation proper happens in TypeScript (src/); the checks here are defensive.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>

#include "runtime/engine.h"
#include "formats/safetensors.h"

namespace {

using nla::Engine;
using nla::LoraAdapter;

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// Runs `fn` with nla::Error / std::exception mapped to (code, message).
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

// A job on libuv's pool settling a Promise. execute() runs off the JS thread and must not touch napi values.
class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, const char* name, std::function<void()> execute, std::function<Napi::Value(Napi::Env)> resolve)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), execute_(std::move(execute)),
        resolve_(std::move(resolve)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  // Keeps JS objects (inputs, wrappers, abort flags) alive until the job settles.
  void Keep(Napi::Value v) { keep_.push_back(Napi::Persistent(v)); }

 protected:
  void Execute() override {
    if (!guarded(execute_, code_, message_)) failed_ = true;
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (failed_) {
      deferred_.Reject(make_error(env, code_, message_).Value());
      return;
    }
    std::string code, message;
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
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> execute_;
  std::function<Napi::Value(Napi::Env)> resolve_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  bool failed_ = false;
  std::string code_, message_;
};

std::function<bool()> abort_check(Napi::Value flag_value) {
  if (!flag_value.IsTypedArray()) return nullptr;
  Napi::TypedArray ta = flag_value.As<Napi::TypedArray>();
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

#define NLA_SYNC(env, body)                                                     \
  do {                                                                          \
    std::string code_, message_;                                                \
    if (!guarded([&] { body; }, code_, message_)) throw make_error(env, code_, message_); \
  } while (0)

// ---------------------------------------------------------------- adapter

class AdapterWrap : public Napi::ObjectWrap<AdapterWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeAdapter", {InstanceMethod("info", &AdapterWrap::Info)});
  }
  AdapterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AdapterWrap>(info) {}
  std::shared_ptr<const LoraAdapter> adapter;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    const auto& c = adapter->config();
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
};

// ---------------------------------------------------------------- tokenizer

struct TokenizerState {
  std::unique_ptr<nla::GgufFile> file;
  std::unique_ptr<nla::Tokenizer> tokenizer;
};

Napi::Value encode_with(const nla::Tokenizer& tok, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, nla::code::INVALID_ARG, "text must be a string");
  const std::string text = info[0].As<Napi::String>().Utf8Value();
  const bool bos = info.Length() > 1 ? info[1].ToBoolean().Value() : true;
  const bool special = info.Length() > 2 ? info[2].ToBoolean().Value() : true;
  std::vector<int32_t> ids;
  NLA_SYNC(env, ids = tok.encode(text, bos, special));
  Napi::Int32Array a = Napi::Int32Array::New(env, ids.size());
  std::copy(ids.begin(), ids.end(), a.Data());
  return a;
}

Napi::Value decode_with(const nla::Tokenizer& tok, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int32_t> ids;
  NLA_SYNC(env, ids = to_tokens(info[0]));
  const bool special = info.Length() > 1 ? info[1].ToBoolean().Value() : false;
  std::string s;
  NLA_SYNC(env, s = tok.decode(ids, special));
  return Napi::String::New(env, s);
}

class TokenizerWrap : public Napi::ObjectWrap<TokenizerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeTokenizer",
                       {InstanceMethod("encode", &TokenizerWrap::Encode), InstanceMethod("decode", &TokenizerWrap::Decode),
                        InstanceMethod("info", &TokenizerWrap::Info)});
  }
  TokenizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TokenizerWrap>(info) {}
  std::shared_ptr<TokenizerState> state;

 private:
  Napi::Value Encode(const Napi::CallbackInfo& info) { return encode_with(*state->tokenizer, info); }
  Napi::Value Decode(const Napi::CallbackInfo& info) { return decode_with(*state->tokenizer, info); }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("nVocab", state->tokenizer->n_vocab());
    o.Set("bos", state->tokenizer->bos_id());
    o.Set("eos", state->tokenizer->eos_id());
    return o;
  }
};

// ---------------------------------------------------------------- model

struct AddonData {
  Napi::FunctionReference model_ctor, adapter_ctor, tokenizer_ctor;
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("info", &ModelWrap::Info), InstanceMethod("tokenize", &ModelWrap::Tokenize),
                        InstanceMethod("decode", &ModelWrap::Decode), InstanceMethod("loadAdapter", &ModelWrap::LoadAdapter),
                        InstanceMethod("forward", &ModelWrap::Forward), InstanceMethod("close", &ModelWrap::Close)});
  }
  ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {}
  std::shared_ptr<Engine> engine;

 private:
  Engine& live(Napi::Env env) {
    if (!engine) throw make_error(env, "ERR_NLA_CLOSED", "the model was closed");
    return *engine;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = live(env);
    const auto& hp = e.model().hparams();
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", e.file().path());
    o.Set("ggufVersion", e.file().version());
    o.Set("tensorCount", Napi::Number::New(env, static_cast<double>(e.file().tensors().size())));
    o.Set("fileSize", Napi::Number::New(env, static_cast<double>(e.file().file_size())));
    o.Set("name", e.file().has("general.name") ? e.file().get_string("general.name") : std::string());
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
    Napi::Array swa = Napi::Array::New(env), ff = Napi::Array::New(env), heads = Napi::Array::New(env);
    for (int i = 0; i < hp.n_layer; ++i) {
      swa.Set(i, Napi::Boolean::New(env, hp.is_swa[i]));
      ff.Set(i, hp.n_ff[i]);
      heads.Set(i, hp.n_head[i]);
    }
    o.Set("slidingLayers", swa);
    o.Set("feedForward", ff);
    o.Set("heads", heads);
    o.Set("weightTypes", e.model().weight_types_summary());
    o.Set("backend", e.backend_name());
    o.Set("backendDescription", e.backend_description());
    o.Set("threads", e.options().threads);
    o.Set("nVocabTokenizer", e.tokenizer().n_vocab());
    o.Set("bos", e.tokenizer().bos_id());
    return o;
  }

  Napi::Value Tokenize(const Napi::CallbackInfo& info) { return encode_with(live(info.Env()).tokenizer(), info); }
  Napi::Value Decode(const Napi::CallbackInfo& info) { return decode_with(live(info.Env()).tokenizer(), info); }

  Napi::Value LoadAdapter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<Engine> e = engine;
    if (!e) throw make_error(env, "ERR_NLA_CLOSED", "the model was closed");
    if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, nla::code::INVALID_ARG, "adapter dir must be a string");
    auto dir = info[0].As<Napi::String>().Utf8Value();
    auto result = std::make_shared<std::shared_ptr<const LoraAdapter>>();
    auto* data = env.GetInstanceData<AddonData>();
    Job* job = new Job(
        env, "nla-ar:loadAdapter", [e, dir, result] { *result = e->load_adapter(dir); },
        [result, data](Napi::Env env) -> Napi::Value {
          Napi::Object obj = data->adapter_ctor.New({});
          AdapterWrap::Unwrap(obj)->adapter = *result;
          return obj;
        });
    job->Keep(info.This());
    job->Queue();
    return job->Promise();
  }

  // forward(prompts: Int32Array[], options, abortFlag?) -> Promise<Array<Array<{layer, rows, firstRow, data}>>>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<Engine> e = engine;
    if (!e) throw make_error(env, "ERR_NLA_CLOSED", "the model was closed");
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject())
      throw make_error(env, nla::code::INVALID_ARG, "forward(prompts, options[, abortFlag])");
    Napi::Array arr = info[0].As<Napi::Array>();
    Napi::Object o = info[1].As<Napi::Object>();
    auto prompts = std::make_shared<std::vector<std::vector<int32_t>>>();
    NLA_SYNC(env, for (uint32_t i = 0; i < arr.Length(); ++i) prompts->push_back(to_tokens(arr.Get(i))));

    nla::ForwardOptions base;
    base.last_layer = o.Has("lastLayer") ? o.Get("lastLayer").ToNumber().Int32Value() : -1;
    if (o.Has("captureLayers") && o.Get("captureLayers").IsArray()) {
      Napi::Array c = o.Get("captureLayers").As<Napi::Array>();
      for (uint32_t i = 0; i < c.Length(); ++i) base.capture_layers.push_back(c.Get(i).ToNumber().Int32Value());
    }
    base.capture_all_tokens = o.Has("allTokens") && o.Get("allTokens").ToBoolean().Value();
    // Debug names to observe ("attn_norm-0", "inp_scaled", ...): returned as captures with layer -1 and `name`.
    auto observe_names = std::make_shared<std::vector<std::string>>();
    if (o.Has("observe") && o.Get("observe").IsArray()) {
      Napi::Array c = o.Get("observe").As<Napi::Array>();
      for (uint32_t i = 0; i < c.Length(); ++i) observe_names->push_back(c.Get(i).ToString().Utf8Value());
    }
    base.gelu = e->options().gelu;
    if (o.Has("gelu") && o.Get("gelu").IsString())
      base.gelu = o.Get("gelu").As<Napi::String>().Utf8Value() == "fp16-table" ? nla::GeluMode::Fp16Table : nla::GeluMode::Exact;
    std::shared_ptr<const LoraAdapter> adapter;
    if (o.Has("adapter") && o.Get("adapter").IsObject()) {
      Napi::Object a = o.Get("adapter").As<Napi::Object>();
      auto* data = env.GetInstanceData<AddonData>();
      if (!a.InstanceOf(data->adapter_ctor.Value())) throw make_error(env, nla::code::INVALID_ARG, "adapter must be a loaded adapter");
      adapter = AdapterWrap::Unwrap(a)->adapter;
    }
    // overrides: Array (per prompt) of Array<{position, values: Float32Array}>
    auto overrides = std::make_shared<std::vector<std::vector<nla::EmbeddingOverride>>>(prompts->size());
    if (o.Has("overrides") && o.Get("overrides").IsArray()) {
      Napi::Array per = o.Get("overrides").As<Napi::Array>();
      for (uint32_t i = 0; i < per.Length() && i < prompts->size(); ++i) {
        if (!per.Get(i).IsArray()) continue;
        Napi::Array list = per.Get(i).As<Napi::Array>();
        for (uint32_t j = 0; j < list.Length(); ++j) {
          Napi::Object ov = list.Get(j).As<Napi::Object>();
          nla::EmbeddingOverride x;
          x.position = ov.Get("position").ToNumber().Int64Value();
          Napi::Value vals = ov.Get("values");
          if (!vals.IsTypedArray() || vals.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
            throw make_error(env, nla::code::INVALID_ARG, "override values must be a Float32Array");
          Napi::Float32Array fa = vals.As<Napi::Float32Array>();
          x.values.assign(fa.Data(), fa.Data() + fa.ElementLength());
          (*overrides)[i].push_back(std::move(x));
        }
      }
    }
    auto should_abort = info.Length() > 2 ? abort_check(info[2]) : nullptr;
    struct Captured { int layer; int64_t rows, first; std::vector<float> data; std::string name; int64_t cols = 0; };
    auto results = std::make_shared<std::vector<std::vector<Captured>>>(prompts->size());
    const int64_t d = e->model().hparams().n_embd;
    Job* job = new Job(
        env, "nla-ar:forward",
        [e, prompts, base, adapter, overrides, should_abort, results, d, observe_names] {
          for (size_t i = 0; i < prompts->size(); ++i) {
            nla::ForwardOptions opt = base;
            opt.adapter = adapter.get();
            opt.overrides = (*overrides)[i];
            opt.should_abort = should_abort;
            auto& out = (*results)[i];
            opt.on_hidden = [&out, d](int layer, int64_t rows, int64_t first, const float* data) {
              out.push_back(Captured{layer, rows, first, std::vector<float>(data, data + rows * d), "", d});
            };
            if (!observe_names->empty()) {
              opt.observe_names = *observe_names;
              opt.observe = [&out](const std::string& name, int64_t rows, int64_t cols, const float* data) {
                out.push_back(Captured{-1, rows, 0, std::vector<float>(data, data + rows * cols), name, cols});
              };
            }
            e->forward((*prompts)[i], opt);
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
    if (o.Has("adapter") && o.Get("adapter").IsObject()) job->Keep(o.Get("adapter"));
    job->Queue();
    return job->Promise();
  }

  // Drops this handle's reference; jobs in flight keep the engine alive until they finish.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    engine.reset();
    return info.Env().Undefined();
  }
};

// ---------------------------------------------------------------- module functions

Napi::Value OpenModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, nla::code::INVALID_ARG, "model path must be a string");
  nla::EngineOptions opts;
  opts.model_path = info[0].As<Napi::String>().Utf8Value();
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("threads")) opts.threads = o.Get("threads").ToNumber().Int32Value();
    if (o.Has("device") && o.Get("device").IsString()) opts.device = o.Get("device").As<Napi::String>().Utf8Value();
    if (o.Has("gelu") && o.Get("gelu").IsString())
      opts.gelu = o.Get("gelu").As<Napi::String>().Utf8Value() == "fp16-table" ? nla::GeluMode::Fp16Table : nla::GeluMode::Exact;
  }
  auto result = std::make_shared<std::shared_ptr<Engine>>();
  auto* data = env.GetInstanceData<AddonData>();
  Job* job = new Job(
      env, "nla-ar:openModel", [opts, result] { *result = Engine::open(opts); },
      [result, data](Napi::Env env) -> Napi::Value {
        Napi::Object obj = data->model_ctor.New({});
        ModelWrap::Unwrap(obj)->engine = *result;
        return obj;
      });
  job->Queue();
  return job->Promise();
}

Napi::Value OpenTokenizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, nla::code::INVALID_ARG, "vocabulary path must be a string");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  auto state = std::make_shared<TokenizerState>();
  auto* data = env.GetInstanceData<AddonData>();
  Job* job = new Job(
      env, "nla-ar:openTokenizer",
      [path, state] {
        state->file = nla::GgufFile::open(path);
        state->tokenizer = nla::Tokenizer::from_gguf(*state->file);
      },
      [state, data](Napi::Env env) -> Napi::Value {
        Napi::Object obj = data->tokenizer_ctor.New({});
        TokenizerWrap::Unwrap(obj)->state = state;
        return obj;
      });
  job->Queue();
  return job->Promise();
}

// readSafetensors(path, errorCode) -> Promise<{metadata, tensors: {name: {dtype, shape, data: Float32Array}}}>
Napi::Value ReadSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, nla::code::INVALID_ARG, "path must be a string");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  // The error code malformed content is reported with (a static string, as the reader requires).
  const std::string kind = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "head";
  const char* code = kind == "adapter" ? nla::code::ADAPTER_INVALID : nla::code::HEAD_INVALID;
  struct Out { std::map<std::string, std::string> meta; std::vector<std::tuple<std::string, std::string, std::vector<int64_t>, std::vector<float>>> t; };
  auto out = std::make_shared<Out>();
  Job* job = new Job(
      env, "nla-ar:readSafetensors",
      [path, code, out] {
        auto f = nla::SafetensorsFile::open(path, code);
        out->meta = f->metadata();
        for (const auto& t : f->tensors()) out->t.emplace_back(t.name, t.dtype, t.shape, f->to_f32(t));
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        Napi::Object meta = Napi::Object::New(env);
        for (const auto& [k, v] : out->meta) meta.Set(k, v);
        Napi::Object tensors = Napi::Object::New(env);
        for (const auto& [name, dtype, shape, data] : out->t) {
          Napi::Object t = Napi::Object::New(env);
          t.Set("dtype", dtype);
          Napi::Array s = Napi::Array::New(env, shape.size());
          for (size_t i = 0; i < shape.size(); ++i) s.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(shape[i])));
          t.Set("shape", s);
          t.Set("data", to_js(env, data.data(), data.size()));
          tensors.Set(name, t);
        }
        r.Set("metadata", meta);
        r.Set("tensors", tensors);
        return r;
      });
  job->Queue();
  return job->Promise();
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
#ifdef NLA_HAVE_CUDA
  return Napi::Number::New(info.Env(), nla::cuda_device_count());
#else
  return Napi::Number::New(info.Env(), -1);
#endif
}

Napi::Value CpuKernels(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), nla::select_cpu_kernels()); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->model_ctor = Napi::Persistent(ModelWrap::Define(env));
  data->adapter_ctor = Napi::Persistent(AdapterWrap::Define(env));
  data->tokenizer_ctor = Napi::Persistent(TokenizerWrap::Define(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("openModel", Napi::Function::New(env, OpenModel));
  exports.Set("openTokenizer", Napi::Function::New(env, OpenTokenizer));
  exports.Set("readSafetensors", Napi::Function::New(env, ReadSafetensors));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("cpuKernels", Napi::Function::New(env, CpuKernels));
#ifdef NLA_HAVE_CUDA
  exports.Set("variant", Napi::String::New(env, "cuda"));
#else
  exports.Set("variant", Napi::String::New(env, "cpu"));
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(nla_ar, Init)
