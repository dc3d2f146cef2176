// Bindings of generation with a KV cache (model/llama_infer.h): the InferSession class over a
// Model instance, whose calls share the model's busy flag (a session never runs while a forward,
// backward or another session call on the same model does), and attentionCachedForward, the
// cached-attention kernel alone (for its reference test). Thin glue: validation and promise
// plumbing; never runs model math on the main thread, never lets a C++ exception escape.
#include <atomic>
#include <memory>
#include <string>

#include "bind_model.h"
#include "kernels/attention_cached.h"
#include "model/llama_infer.h"

namespace ua {

namespace {

class InferWrap : public Napi::ObjectWrap<InferWrap> {
 public:
  static Napi::Function Define(Napi::Env env, Napi::FunctionReference* model_ctor) {
    return DefineClass(env, "InferSession",
                       {InstanceMethod("length", &InferWrap::Length), InstanceMethod("tokens", &InferWrap::Tokens),
                        InstanceMethod("truncate", &InferWrap::Truncate), InstanceMethod("append", &InferWrap::Append),
                        InstanceMethod("cacheBytes", &InferWrap::CacheBytes)},
                       model_ctor);
  }

  // new InferSession(model: Model)
  explicit InferWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InferWrap>(info) {
    Guard(info, [&]() -> Napi::Value {
      auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
      if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(ctor->Value()))
        Fail("ERR_ARG", "InferSession: expected a native Model");
      ModelWrap* m = Napi::ObjectWrap<ModelWrap>::Unwrap(info[0].As<Napi::Object>());
      busy_ = m->busy();
      Claim("InferSession");
      try {
        infer_ = std::make_shared<LlamaInfer>(m->model());
      } catch (...) {
        busy_->store(false);
        throw;
      }
      busy_->store(false);
      vocab_ = m->model()->config().vocab;
      return info.Env().Undefined();
    });
  }

 private:
  void Claim(const char* what) {
    bool expected = false;
    if (!busy_->compare_exchange_strong(expected, true))
      Fail("ERR_STATE", std::string(what) + ": another call on this model is still running");
  }
  void Idle(const char* what) {
    if (busy_->load()) Fail("ERR_STATE", std::string(what) + ": another call on this model is still running");
  }

  Napi::Value Length(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Idle("length");
      return Napi::Number::New(info.Env(), static_cast<double>(infer_->length()));
    });
  }

  Napi::Value Tokens(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Idle("tokens");
      const auto& t = infer_->tokens();
      Napi::Int32Array out = Napi::Int32Array::New(info.Env(), t.size());
      for (size_t i = 0; i < t.size(); ++i) out[i] = t[i];
      return out;
    });
  }

  Napi::Value CacheBytes(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Idle("cacheBytes");
      return Napi::Number::New(info.Env(), static_cast<double>(infer_->cache_bytes()));
    });
  }

  // truncate(length)
  Napi::Value Truncate(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Idle("truncate");
      const int64_t len = GetInt(info, 0, "length", 0, infer_->length());
      infer_->truncate(len);
      return info.Env().Undefined();
    });
  }

  // append(tokens: Int32Array [n], logits: Float32Array [vocab] or [n * vocab], allLogits) -> Promise<void>
  Napi::Value Append(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto tokens = GetArray<int32_t>(info, 0, "tokens");
      const int64_t n = tokens.length;
      if (n < 1) Fail("ERR_SHAPE", "tokens: expected at least one token");
      const bool all = GetBool(info, 2, "allLogits");
      auto logits = GetArray<float>(info, 1, "logits", all ? n * vocab_ : vocab_);
      for (int64_t i = 0; i < n; ++i)
        if (tokens.data[i] < 0 || tokens.data[i] >= vocab_)
          Fail("ERR_ARG", "tokens[" + std::to_string(i) + "]: id " + std::to_string(tokens.data[i]) + " is outside [0, " +
                              std::to_string(vocab_) + ")");
      Claim("append");
      auto s = infer_;
      const int32_t* tk = tokens.data;
      float* lg = logits.data;
      return RunModelAsync(
          info.Env(), "infer.append", busy_, [=] { s->append(tk, n, lg, all); }, nullptr,
          {info.This(), tokens.js, logits.js});
    });
  }

  std::shared_ptr<LlamaInfer> infer_;
  std::shared_ptr<std::atomic<bool>> busy_;
  int64_t vocab_ = 0;
};

// attentionCachedForward(out, q, k, v, n, past, H, Hkv, d, window, scale) -> Promise<void>
Napi::Value AttentionCachedForward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = GetInt(info, 4, "n", 1);
    const int64_t past = GetInt(info, 5, "past", 0);
    const int64_t H = GetInt(info, 6, "H", 1), Hkv = GetInt(info, 7, "Hkv", 1), d = GetInt(info, 8, "d", 1);
    const int64_t window = GetInt(info, 9, "window", 0);
    const double scale = GetNumber(info, 10, "scale");
    if (H % Hkv != 0) Fail("ERR_SHAPE", "H must be a multiple of Hkv");
    auto out = GetArray<float>(info, 0, "out", n * H * d);
    auto q = GetArray<float>(info, 1, "q", n * H * d);
    auto k = GetArray<float>(info, 2, "k", (past + n) * Hkv * d);
    auto v = GetArray<float>(info, 3, "v", (past + n) * Hkv * d);
    float* o = out.data;
    const float *qp = q.data, *kp = k.data, *vp = v.data;
    const float sc = static_cast<float>(scale);
    return RunAsync(
        info.Env(), [=] { attention_cached_forward(o, qp, kp, vp, n, past, H, Hkv, d, window, sc); }, nullptr,
        {out.js, q.js, k.js, v.js});
  });
}

}  // namespace

void InitGenerate(Napi::Env env, Napi::Object exports) {
  // The Model constructor (InitModel ran first) tells a native Model from any other object.
  auto* model_ctor = new Napi::FunctionReference(Napi::Persistent(exports.Get("Model").As<Napi::Function>()));
  env.AddCleanupHook([model_ctor] { delete model_ctor; });
  exports.Set("InferSession", InferWrap::Define(env, model_ctor));
  exports.Set("attentionCachedForward", Napi::Function::New(env, AttentionCachedForward, "attentionCachedForward"));
}

}  // namespace ua
