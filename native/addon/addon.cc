// Thin Node-API binding over the engine: converts arguments, runs compute on libuv's pool (a Promise per
// request), maps nla::Error codes onto JS errors. Argument validation proper happens in TypeScript (src/);
// the checks here are defensive. The classes live one per file (wraps.h); this file has the module functions.
#include <napi.h>

#include <map>
#include <tuple>

#include "addon/wraps.h"
#include "formats/safetensors.h"

namespace nla_addon {

namespace {

// openModel(path, {threads?, device?: 'cpu'|'cuda', gelu?: 'exact'|'fp16-table'}) -> Promise<NativeModel>
Napi::Value OpenModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, nla::code::INVALID_ARG, "model path must be a string");
  nla::ModelOptions opts;
  opts.path = info[0].As<Napi::String>().Utf8Value();
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    NLA_SYNC(env, opts.threads = get_int(o, "threads", 0));
    if (o.Has("device") && o.Get("device").IsString()) opts.device = o.Get("device").As<Napi::String>().Utf8Value();
    if (o.Has("gelu") && o.Get("gelu").IsString())
      opts.gelu = o.Get("gelu").As<Napi::String>().Utf8Value() == "fp16-table" ? nla::GeluMode::Fp16Table : nla::GeluMode::Exact;
  }
  auto result = std::make_shared<std::shared_ptr<nla::Model>>();
  auto* data = env.GetInstanceData<AddonData>();
  Job* job = new Job(
      env, "nla-ar:openModel", [opts, result] { *result = nla::Model::load(opts); },
      [result, data](Napi::Env env) -> Napi::Value {
        Napi::Object obj = data->model_ctor.New({});
        ModelWrap::Unwrap(obj)->model = *result;
        return obj;
      });
  job->Queue();
  return job->Promise();
}

// openTokenizer(path) -> Promise<NativeTokenizer>
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
        state->tokenizer = nla::gemma4::Tokenizer::from_gguf(*state->file);
      },
      [state, data](Napi::Env env) -> Napi::Value {
        Napi::Object obj = data->tokenizer_ctor.New({});
        TokenizerWrap::Unwrap(obj)->state = state;
        return obj;
      });
  job->Queue();
  return job->Promise();
}

// readSafetensors(path, 'head' | 'adapter') -> Promise<{metadata, tensors: {name: {dtype, shape, data: Float32Array}}}>
Napi::Value ReadSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw make_error(env, nla::code::INVALID_ARG, "path must be a string");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  // The error code malformed content is reported with (a static string, as the reader requires).
  const std::string kind = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "head";
  const char* code = kind == "adapter" ? nla::code::ADAPTER_INVALID : nla::code::HEAD_INVALID;
  struct Out {
    std::map<std::string, std::string> meta;
    std::vector<std::tuple<std::string, std::string, std::vector<int64_t>, std::vector<float>>> t;
  };
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

// createHead(weight: Float32Array, bias: Float32Array, inDim, outDim) -> NativeHead (the arrays are copied)
Napi::Value CreateHead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto f32 = [&](size_t i) {
    if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw make_error(env, nla::code::INVALID_ARG, "createHead(weight: Float32Array, bias: Float32Array, inDim, outDim)");
    Napi::Float32Array a = info[i].As<Napi::Float32Array>();
    return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
  };
  std::vector<float> w = f32(0), b = f32(1);
  if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber())
    throw make_error(env, nla::code::INVALID_ARG, "createHead: inDim and outDim must be numbers");
  std::shared_ptr<const nla::LinearHead> head;
  NLA_SYNC(env, head = std::make_shared<nla::LinearHead>(std::move(w), std::move(b), info[2].As<Napi::Number>().Int64Value(),
                                                         info[3].As<Napi::Number>().Int64Value()));
  Napi::Object obj = env.GetInstanceData<AddonData>()->head_ctor.New({});
  HeadWrap::Unwrap(obj)->head = head;
  return obj;
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
#ifdef NLA_HAVE_CUDA
  return Napi::Number::New(info.Env(), nla::cuda_device_count());
#else
  return Napi::Number::New(info.Env(), -1);
#endif
}

// cudaSelfTest() -> {ok, error?}: a few of this binary's kernels on device 0 against the CPU reference (the
// loader runs it in its child-process probe).
Napi::Value CudaSelfTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef NLA_HAVE_CUDA
  const std::string err = nla::cuda_self_test();
  o.Set("ok", err.empty());
  if (!err.empty()) o.Set("error", err);
#else
  o.Set("ok", false);
  o.Set("error", "this build has no CUDA backend");
#endif
  return o;
}

Napi::Value CpuKernels(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), nla::cpu_kernels_name()); }

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->model_ctor = Napi::Persistent(ModelWrap::Define(env));
  data->session_ctor = Napi::Persistent(SessionWrap::Define(env));
  data->adapter_ctor = Napi::Persistent(AdapterWrap::Define(env));
  data->tokenizer_ctor = Napi::Persistent(TokenizerWrap::Define(env));
  data->head_ctor = Napi::Persistent(HeadWrap::Define(env));
  data->verbalizer_ctor = Napi::Persistent(VerbalizerWrap::Define(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("openModel", Napi::Function::New(env, OpenModel));
  exports.Set("openTokenizer", Napi::Function::New(env, OpenTokenizer));
  exports.Set("readSafetensors", Napi::Function::New(env, ReadSafetensors));
  exports.Set("createHead", Napi::Function::New(env, CreateHead));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("cpuKernels", Napi::Function::New(env, CpuKernels));
  exports.Set("cudaSelfTest", Napi::Function::New(env, CudaSelfTest));
#ifdef NLA_HAVE_CUDA
  exports.Set("variant", Napi::String::New(env, "cuda"));
#else
  exports.Set("variant", Napi::String::New(env, "cpu"));
#endif
  return exports;
}

}  // namespace nla_addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return nla_addon::Init(env, exports); }

NODE_API_MODULE(nla_ar, InitModule)
