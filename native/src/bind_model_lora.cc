// Bindings of the model's LoRA adapters (see bind_model.h): attach (allocates zeroed adapters and
// freezes the base), seeded init, the adapter buffers with their PEFT-named views, the enable
// switch (DPO's reference pass), and the dropout mask a module draws (for reference
// implementations in tests). Must never touch the adapters while a model call is running.
#include <string>

#include "bind_model.h"

namespace ua {

// attachLora({rank, alpha, dropout, targets: bitmask, seed}): allocates zeroed adapters and
// freezes the base model (sync: an allocation; initLora fills them off the main thread).
Napi::Value ModelWrap::AttachLora(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsObject()) Fail("ERR_CONFIG", "attachLora: expected a config object");
    Napi::Object o = info[0].As<Napi::Object>();
    LoraConfig c;
    c.rank = ConfigInt(o, "rank");
    c.alpha = static_cast<float>(ConfigNumber(o, "alpha"));
    c.dropout = static_cast<float>(ConfigNumber(o, "dropout"));
    const int64_t targets = ConfigInt(o, "targets");
    const int64_t seed = ConfigInt(o, "seed");
    if (targets < 0 || targets >= (int64_t(1) << kLoraModules)) Fail("ERR_CONFIG", "targets: bad module bitmask");
    if (seed < 0) Fail("ERR_CONFIG", "seed: expected a non-negative integer");
    c.targets = static_cast<uint32_t>(targets);
    c.seed = static_cast<uint64_t>(seed);
    Claim("attachLora");
    try {
      if (model_->has_forward()) throw std::logic_error("attachLora: a forward awaits its backward; run backward first");
      model_->attach_lora(c);
    } catch (const std::invalid_argument& e) {
      busy_->store(false);
      Fail(model_->has_lora() ? "ERR_STATE" : "ERR_CONFIG", e.what());
    } catch (const std::logic_error& e) {
      busy_->store(false);
      Fail("ERR_STATE", e.what());
    }
    busy_->store(false);
    return info.Env().Undefined();
  });
}

// initLora(seed) -> Promise<void>
Napi::Value ModelWrap::InitLora(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    uint64_t seed = static_cast<uint64_t>(GetInt(info, 0, "seed", 0, (int64_t(1) << 53)));
    if (!model_->has_lora()) Fail("ERR_STATE", "initLora: no adapters attached");
    Claim("initLora");
    auto m = model_;
    return RunModelAsync(info.Env(), "model.initLora", busy_, [m, seed] { m->init_lora(seed); }, nullptr, {info.This()});
  });
}

Napi::Value ModelWrap::LoraViews(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return ViewArray(info.Env(), model_->lora_views()); });
}

Napi::Value ModelWrap::LoraParams(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!model_->has_lora()) return info.Env().Null();
    return CachedFloats(info.Env(), lora_params_js_, model_->lora_params(), model_->lora_flat_size());
  });
}

Napi::Value ModelWrap::LoraGrads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!model_->has_lora()) return info.Env().Null();
    return CachedFloats(info.Env(), lora_grads_js_, model_->lora_grads(), model_->lora_flat_size());
  });
}

Napi::Value ModelWrap::LoraNumParams(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->lora_num_params()));
}

Napi::Value ModelWrap::SetAdaptersEnabled(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    bool on = GetBool(info, 0, "enabled");
    if (!model_->has_lora()) Fail("ERR_STATE", "setAdaptersEnabled: no adapters attached");
    Claim("setAdaptersEnabled");
    model_->set_adapters_enabled(on);
    busy_->store(false);
    return info.Env().Undefined();
  });
}

Napi::Value ModelWrap::AdaptersEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), model_->adapters_enabled());
}

// loraDropoutMask(seed, stepKey, layer, module, count, p) -> Uint8Array [count], 1 where kept: the
// mask the model applies to module `module` of layer `layer`.
Napi::Value LoraDropoutMask(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const uint64_t seed = static_cast<uint64_t>(GetInt(info, 0, "seed", 0, (int64_t(1) << 53)));
    const uint32_t key = static_cast<uint32_t>(GetInt(info, 1, "stepKey", 0, 0xffffffffLL));
    const int64_t layer = GetInt(info, 2, "layer", 0, (int64_t(1) << 28));
    const int64_t module = GetInt(info, 3, "module", 0, kLoraModules - 1);
    const int64_t count = GetInt(info, 4, "count", 0, int64_t(1) << 31);
    const double p = GetNumber(info, 5, "p");
    if (!(p >= 0 && p < 1)) Fail("ERR_ARG", "p: expected a number in [0, 1)");
    Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i)
      out[static_cast<size_t>(i)] = lora_keep(seed, key, static_cast<uint32_t>(layer * 8 + module), i, static_cast<float>(p)) ? 1 : 0;
    return out;
  });
}

}  // namespace ua
