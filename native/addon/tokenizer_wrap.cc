// NativeTokenizer: the Gemma-4 tokenizer of a vocabulary GGUF (a full model or a vocab-only file).
#include "addon/wraps.h"

namespace nla_addon {

Napi::Function TokenizerWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeTokenizer",
                     {InstanceMethod("encode", &TokenizerWrap::Encode), InstanceMethod("decode", &TokenizerWrap::Decode),
                      InstanceMethod("info", &TokenizerWrap::Info)});
}

Napi::Value TokenizerWrap::Encode(const Napi::CallbackInfo& info) { return encode_with(*state->tokenizer, info); }
Napi::Value TokenizerWrap::Decode(const Napi::CallbackInfo& info) { return decode_with(*state->tokenizer, info); }

Napi::Value TokenizerWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("nVocab", state->tokenizer->n_vocab());
  o.Set("bos", state->tokenizer->bos_id());
  o.Set("eos", state->tokenizer->eos_id());
  return o;
}

Napi::Value encode_with(const nla::gemma4::Tokenizer& tok, const Napi::CallbackInfo& info) {
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

Napi::Value decode_with(const nla::gemma4::Tokenizer& tok, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int32_t> ids;
  NLA_SYNC(env, ids = to_tokens(info.Length() > 0 ? info[0] : env.Undefined()));
  const bool special = info.Length() > 1 ? info[1].ToBoolean().Value() : false;
  std::string s;
  NLA_SYNC(env, s = tok.decode(ids, special));
  return Napi::String::New(env, s);
}

}  // namespace nla_addon
