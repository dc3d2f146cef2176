// Bindings of the model's Ulysses sequence parallelism (see bind_model.h): installing the Ulysses
// attention backend over an SP communicator (refusing head layouts P cannot split, ERR_CONFIG),
// going back to local attention, and the backend's communication counters. Must never swap the
// backend while a forward awaits its backward (the backward would run with other layouts).
#include <string>

#include "bind_comm.h"
#include "bind_model.h"

namespace ua {

// setSequenceParallel(commHandle): Ulysses attention over the SP group (its size is P; the
// model then takes n = s/P tokens and global docLens).
Napi::Value ModelWrap::SetSequenceParallel(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = CommunicatorFromHandle(info, 0);
    const LlamaConfig& cfg = model_->config();
    std::shared_ptr<UlyssesAttention> b;
    try {
      b = std::make_shared<UlyssesAttention>(c, cfg.heads, cfg.kv_heads);
    } catch (const CodedError& e) {
      // an unsplittable head layout is the model config's problem
      Fail(e.code == "ERR_COMM_ARG" ? "ERR_CONFIG" : e.code, e.what());
    }
    Claim("setSequenceParallel");
    if (model_->has_forward()) {
      busy_->store(false);
      Fail("ERR_STATE", "setSequenceParallel: a forward awaits its backward; run backward first");
    }
    model_->set_attention_backend(b);
    ulysses_ = b;
    busy_->store(false);
    return info.Env().Undefined();
  });
}

Napi::Value ModelWrap::ClearSequenceParallel(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Claim("clearSequenceParallel");
    if (model_->has_forward()) {
      busy_->store(false);
      Fail("ERR_STATE", "clearSequenceParallel: a forward awaits its backward; run backward first");
    }
    model_->set_attention_backend(nullptr);
    ulysses_.reset();
    busy_->store(false);
    return info.Env().Undefined();
  });
}

// sequenceParallelStats(reset?) -> {degree, commSeconds, allToAlls, bytes, cacheHits, bufferBytes} | null
Napi::Value ModelWrap::SequenceParallelStats(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!ulysses_) return env.Null();
    if (busy_->load()) Fail("ERR_STATE", "sequenceParallelStats: a call on this model is still running");
    const UlyssesStats& st = ulysses_->stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("degree", Napi::Number::New(env, static_cast<double>(ulysses_->degree())));
    o.Set("commSeconds", Napi::Number::New(env, st.comm_seconds));
    o.Set("allToAlls", Napi::Number::New(env, static_cast<double>(st.alltoalls)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(st.bytes)));
    o.Set("cacheHits", Napi::Number::New(env, static_cast<double>(st.cache_hits)));
    o.Set("bufferBytes", Napi::Number::New(env, static_cast<double>(ulysses_->buffer_bytes())));
    if (info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value()) ulysses_->reset_stats();
    return o;
  });
}

}  // namespace ua
