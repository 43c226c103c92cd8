// The binding's classes, one .cc file each: NativeModel (model_wrap.cc), NativeSession (session_wrap.cc),
// NativeVerbalizer (verbalizer_wrap.cc),
// NativeAdapter (adapter_wrap.cc), NativeTokenizer (tokenizer_wrap.cc), NativeHead (head_wrap.cc). The
// TypeScript declarations of what they expose are in src/native.ts.
#pragma once
#include <napi.h>

#include <memory>

#include "addon/common.h"
#include "formats/gguf.h"
#include "runtime/head.h"
#include "runtime/model.h"
#include "runtime/session.h"
#include "runtime/verbalizer.h"

namespace nla_addon {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {}
  std::shared_ptr<nla::Model> model;  // null once closed

 private:
  std::shared_ptr<nla::Model> live(Napi::Env env) const;
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Tokenize(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value LoadAdapter(const Napi::CallbackInfo& info);
  Napi::Value UnloadAdapter(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value HiddenStates(const Napi::CallbackInfo& info);
  Napi::Value Reconstruct(const Napi::CallbackInfo& info);
  Napi::Value CreateSession(const Napi::CallbackInfo& info);
  Napi::Value Prefetch(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
};

class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {}
  std::shared_ptr<nla::Session> session;  // null once closed

  std::shared_ptr<nla::Session> live(Napi::Env env) const;

 private:
  Napi::Value AddSequence(const Napi::CallbackInfo& info);
  Napi::Value RemoveSequence(const Napi::CallbackInfo& info);
  Napi::Value NPast(const Napi::CallbackInfo& info);
  Napi::Value Sequences(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value HiddenStates(const Napi::CallbackInfo& info);
  Napi::Value Reconstruct(const Napi::CallbackInfo& info);
  Napi::Value CreateVerbalizer(const Napi::CallbackInfo& info);
  Napi::Value KvBytes(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
};

class VerbalizerWrap : public Napi::ObjectWrap<VerbalizerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit VerbalizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VerbalizerWrap>(info) {}
  std::shared_ptr<nla::Verbalizer> verbalizer;  // null once closed

 private:
  Napi::Value Site(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
};

// An adapter loaded on a model, by id. It holds no reference to the adapter itself, so unloading it is not
// blocked by the JS object (passes in flight hold one), and only a weak one to the model, so closing the model
// frees it (its mapping and descriptor) at once rather than when the garbage collector finalizes this object.
class AdapterWrap : public Napi::ObjectWrap<AdapterWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit AdapterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AdapterWrap>(info) {}
  std::weak_ptr<nla::Model> model;
  int id = 0;

 private:
  Napi::Value Id(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
};

struct TokenizerState {
  std::unique_ptr<nla::GgufFile> file;
  std::unique_ptr<nla::gemma4::Tokenizer> tokenizer;
};

class TokenizerWrap : public Napi::ObjectWrap<TokenizerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TokenizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TokenizerWrap>(info) {}
  std::shared_ptr<TokenizerState> state;

 private:
  Napi::Value Encode(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
};

class HeadWrap : public Napi::ObjectWrap<HeadWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit HeadWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HeadWrap>(info) {}
  std::shared_ptr<const nla::LinearHead> head;

 private:
  Napi::Value Apply(const Napi::CallbackInfo& info);
};

// Shared by the model's and the session's calls.
Napi::Value encode_with(const nla::gemma4::Tokenizer& tok, const Napi::CallbackInfo& info);
Napi::Value decode_with(const nla::gemma4::Tokenizer& tok, const Napi::CallbackInfo& info);
// The adapter argument of a call on `model`: a NativeAdapter loaded on it, or none (undefined/null/false) -> 0.
int adapter_arg(Napi::Env env, Napi::Value v, const nla::Model& model);
// hiddenStates / reconstruct jobs on a session (the model's versions use a fresh session).
Napi::Value hidden_states_job(const Napi::CallbackInfo& info, std::shared_ptr<nla::Session> session, bool reconstruct);

}  // namespace nla_addon
