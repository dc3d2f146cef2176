// Bindings of the Llama-family model (a Napi::ObjectWrap over model/llama.h, LoRA adapters
// included: attach, init, buffers, enable switch, the dropout mask for tests) and the async
// F16/BF16 -> F32 conversion used by the safetensors loader. Thin: validation, state checks
// (ERR_STATE for backward-without-forward and concurrent calls) and promise plumbing only.
// Never runs model math on the main thread; never lets a C++ exception escape.
#include <atomic>
#include <cmath>
#include <memory>
#include <string>

#include "bind_comm.h"
#include "comm/comm_error.h"
#include "kernels/lm_head_ce.h"
#include "model/convert.h"
#include "model/llama.h"
#include "model/ulysses_backend.h"
#include "napi_util.h"

namespace ua {

namespace {

int64_t ConfigInt(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) Fail("ERR_CONFIG", std::string(key) + ": expected an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)))
    Fail("ERR_CONFIG", std::string(key) + ": expected an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

double ConfigNumber(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) Fail("ERR_CONFIG", std::string(key) + ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool ConfigBool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) Fail("ERR_CONFIG", std::string(key) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

// The model-family fields of the config object (src/engine/modelConfig.ts ModelConfig): the
// resolved rope (every default already applied there), qwen3's q/k norm and the per-layer sliding
// windows. Range checks happen in validate_config.
void ReadFamilyConfig(const Napi::Object& o, LlamaConfig& c) {
  Napi::Value rv = o.Get("rope");
  if (!rv.IsObject()) Fail("ERR_CONFIG", "rope: expected the resolved rope object");
  Napi::Object r = rv.As<Napi::Object>();
  Napi::Value tv = r.Get("type");
  const std::string type = tv.IsString() ? tv.As<Napi::String>().Utf8Value() : "";
  if (type == "default") c.rope.type = RopeType::kDefault;
  else if (type == "linear") c.rope.type = RopeType::kLinear;
  else if (type == "dynamic") c.rope.type = RopeType::kDynamic;
  else if (type == "llama3") c.rope.type = RopeType::kLlama3;
  else if (type == "yarn") c.rope.type = RopeType::kYarn;
  else Fail("ERR_CONFIG", "rope.type: expected default, linear, dynamic, llama3 or yarn, got '" + type + "'");
  c.rope.factor = ConfigNumber(r, "factor");
  c.rope.low_freq_factor = ConfigNumber(r, "lowFreqFactor");
  c.rope.high_freq_factor = ConfigNumber(r, "highFreqFactor");
  c.rope.original_max_pos = ConfigNumber(r, "originalMaxPositionEmbeddings");
  c.rope.beta_fast = ConfigNumber(r, "betaFast");
  c.rope.beta_slow = ConfigNumber(r, "betaSlow");
  c.rope.truncate = ConfigBool(r, "truncate");
  c.rope.attention_factor = ConfigNumber(r, "attentionFactor");
  c.rope.max_pos = static_cast<double>(ConfigInt(o, "maxPositionEmbeddings"));
  c.qk_norm = ConfigBool(o, "qkNorm");
  Napi::Value wv = o.Get("layerWindows");
  if (!wv.IsArray()) Fail("ERR_CONFIG", "layerWindows: expected an array of per-layer windows");
  Napi::Array w = wv.As<Napi::Array>();
  for (uint32_t i = 0; i < w.Length(); ++i) {
    Napi::Value x = w.Get(i);
    if (!x.IsNumber() || x.As<Napi::Number>().DoubleValue() != std::floor(x.As<Napi::Number>().DoubleValue()))
      Fail("ERR_CONFIG", "layerWindows[" + std::to_string(i) + "]: expected an integer");
    c.layer_window.push_back(static_cast<int64_t>(x.As<Napi::Number>().DoubleValue()));
  }
}

// A Float32Array over native storage; the ArrayBuffer keeps the storage alive after the model dies.
Napi::Float32Array ExternalFloats(Napi::Env env, const std::shared_ptr<FloatStorage>& s, int64_t count) {
  auto* keep = new std::shared_ptr<FloatStorage>(s);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      env, s->data, static_cast<size_t>(count) * sizeof(float),
      [](Napi::Env, void*, std::shared_ptr<FloatStorage>* hint) { delete hint; }, keep);
  return Napi::Float32Array::New(env, static_cast<size_t>(count), ab, 0);
}

// A PromiseWorker that keeps its model marked busy until the promise settles: the flag is
// cleared on the main thread (OnOK / OnError), so "busy" is exactly "a call's promise is pending".
class ModelWorker : public PromiseWorker {
 public:
  ModelWorker(Napi::Env env, std::shared_ptr<std::atomic<bool>> busy, Work work, Result result,
              const std::vector<Napi::Value>& pins)
      : PromiseWorker(env, std::move(work), std::move(result), pins), busy_(std::move(busy)) {}
  void OnOK() override {
    busy_->store(false);
    PromiseWorker::OnOK();
  }
  void OnError(const Napi::Error& e) override {
    busy_->store(false);
    PromiseWorker::OnError(e);
  }

 private:
  std::shared_ptr<std::atomic<bool>> busy_;
};

Napi::Promise RunModelAsync(Napi::Env env, const std::shared_ptr<std::atomic<bool>>& busy, PromiseWorker::Work work,
                            PromiseWorker::Result result, const std::vector<Napi::Value>& pins) {
  auto* w = new ModelWorker(env, busy, std::move(work), std::move(result), pins);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Model",
                       {InstanceMethod("views", &ModelWrap::Views), InstanceMethod("params", &ModelWrap::Params),
                        InstanceMethod("grads", &ModelWrap::Grads), InstanceMethod("numParams", &ModelWrap::NumParams),
                        InstanceMethod("init", &ModelWrap::Init), InstanceMethod("zeroGrad", &ModelWrap::ZeroGrad),
                        InstanceMethod("setCheckpointing", &ModelWrap::SetCheckpointing),
                        InstanceMethod("forward", &ModelWrap::Forward),
                        InstanceMethod("backward", &ModelWrap::Backward),
                        InstanceMethod("hasForward", &ModelWrap::HasForward),
                        InstanceMethod("activationBytes", &ModelWrap::ActivationBytes),
                        InstanceMethod("setProfiling", &ModelWrap::SetProfiling),
                        InstanceMethod("profile", &ModelWrap::Profile),
                        InstanceMethod("setSequenceParallel", &ModelWrap::SetSequenceParallel),
                        InstanceMethod("clearSequenceParallel", &ModelWrap::ClearSequenceParallel),
                        InstanceMethod("sequenceParallelStats", &ModelWrap::SequenceParallelStats),
                        InstanceMethod("attachLora", &ModelWrap::AttachLora),
                        InstanceMethod("initLora", &ModelWrap::InitLora),
                        InstanceMethod("loraViews", &ModelWrap::LoraViews),
                        InstanceMethod("loraParams", &ModelWrap::LoraParams),
                        InstanceMethod("loraGrads", &ModelWrap::LoraGrads),
                        InstanceMethod("loraNumParams", &ModelWrap::LoraNumParams),
                        InstanceMethod("setAdaptersEnabled", &ModelWrap::SetAdaptersEnabled),
                        InstanceMethod("adaptersEnabled", &ModelWrap::AdaptersEnabled)});
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Guard(info, [&]() -> Napi::Value {
      if (!info[0].IsObject()) Fail("ERR_CONFIG", "Model: expected a config object");
      Napi::Object o = info[0].As<Napi::Object>();
      LlamaConfig c;
      c.vocab = ConfigInt(o, "vocabSize");
      c.hidden = ConfigInt(o, "hiddenSize");
      c.intermediate = ConfigInt(o, "intermediateSize");
      c.layers = ConfigInt(o, "numHiddenLayers");
      c.heads = ConfigInt(o, "numAttentionHeads");
      c.kv_heads = ConfigInt(o, "numKeyValueHeads");
      c.head_dim = ConfigInt(o, "headDim");
      c.rope_theta = static_cast<float>(ConfigNumber(o, "ropeTheta"));
      c.rms_eps = static_cast<float>(ConfigNumber(o, "rmsNormEps"));
      c.tie_embeddings = ConfigBool(o, "tieWordEmbeddings");
      c.qkv_bias = ConfigBool(o, "qkvBias");
      c.o_bias = ConfigBool(o, "oBias");
      c.init_range = static_cast<float>(ConfigNumber(o, "initializerRange"));
      ReadFamilyConfig(o, c);
      try {
        model_ = std::make_shared<LlamaModel>(c);
      } catch (const std::invalid_argument& e) {
        Fail("ERR_CONFIG", e.what());
      }
      busy_ = std::make_shared<std::atomic<bool>>(false);
      return info.Env().Undefined();
    });
  }

 private:
  // Claims the model for one async call (ERR_STATE if another call is running).
  void Claim(const char* what) {
    bool expected = false;
    if (!busy_->compare_exchange_strong(expected, true))
      Fail("ERR_STATE", std::string(what) + ": another call on this model is still running");
  }

  static Napi::Array ViewArray(Napi::Env env, const std::vector<ParamView>& vs) {
    Napi::Array arr = Napi::Array::New(env, vs.size());
    for (size_t i = 0; i < vs.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", vs[i].name);
      o.Set("offset", Napi::Number::New(env, static_cast<double>(vs[i].offset)));
      o.Set("numel", Napi::Number::New(env, static_cast<double>(vs[i].numel)));
      Napi::Array shape = Napi::Array::New(env, vs[i].shape.size());
      for (size_t j = 0; j < vs[i].shape.size(); ++j)
        shape.Set(static_cast<uint32_t>(j), Napi::Number::New(env, static_cast<double>(vs[i].shape[j])));
      o.Set("shape", shape);
      arr.Set(static_cast<uint32_t>(i), o);
    }
    return arr;
  }

  Napi::Value Views(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return ViewArray(info.Env(), model_->views()); });
  }

  // attachLora({rank, alpha, dropout, targets: bitmask, seed}): allocates zeroed adapters and
  // freezes the base model (sync: an allocation; initLora fills them off the main thread).
  Napi::Value AttachLora(const Napi::CallbackInfo& info) {
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
  Napi::Value InitLora(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      uint64_t seed = static_cast<uint64_t>(GetInt(info, 0, "seed", 0, (int64_t(1) << 53)));
      if (!model_->has_lora()) Fail("ERR_STATE", "initLora: no adapters attached");
      Claim("initLora");
      auto m = model_;
      return RunModelAsync(
          info.Env(), busy_, [m, seed] { m->init_lora(seed); }, nullptr, {info.This()});
    });
  }

  Napi::Value LoraViews(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value { return ViewArray(info.Env(), model_->lora_views()); });
  }

  Napi::Value LoraParams(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (!model_->has_lora()) return info.Env().Null();
      if (lora_params_js_.IsEmpty())
        lora_params_js_ = Napi::Persistent(ExternalFloats(info.Env(), model_->lora_params(), model_->lora_flat_size()));
      return lora_params_js_.Value();
    });
  }

  Napi::Value LoraGrads(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (!model_->has_lora()) return info.Env().Null();
      if (lora_grads_js_.IsEmpty())
        lora_grads_js_ = Napi::Persistent(ExternalFloats(info.Env(), model_->lora_grads(), model_->lora_flat_size()));
      return lora_grads_js_.Value();
    });
  }

  Napi::Value LoraNumParams(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model_->lora_num_params()));
  }

  Napi::Value SetAdaptersEnabled(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      bool on = GetBool(info, 0, "enabled");
      if (!model_->has_lora()) Fail("ERR_STATE", "setAdaptersEnabled: no adapters attached");
      Claim("setAdaptersEnabled");
      model_->set_adapters_enabled(on);
      busy_->store(false);
      return info.Env().Undefined();
    });
  }

  Napi::Value AdaptersEnabled(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), model_->adapters_enabled());
  }

  Napi::Value Params(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (params_js_.IsEmpty())
        params_js_ = Napi::Persistent(ExternalFloats(info.Env(), model_->params(), model_->flat_size()));
      return params_js_.Value();
    });
  }

  Napi::Value Grads(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (grads_js_.IsEmpty())
        grads_js_ = Napi::Persistent(ExternalFloats(info.Env(), model_->grads(), model_->flat_size()));
      return grads_js_.Value();
    });
  }

  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model_->num_params()));
  }

  Napi::Value HasForward(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), model_->has_forward());
  }

  Napi::Value ActivationBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model_->activation_bytes()));
  }

  Napi::Value SetProfiling(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      bool on = GetBool(info, 0, "profiling");
      Claim("setProfiling");
      model_->set_profiling(on);
      model_->reset_profile();
      busy_->store(false);
      return info.Env().Undefined();
    });
  }

  // Seconds per category since profiling was switched on (read between calls).
  Napi::Value Profile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    for (int c = 0; c < kProfCount; ++c) o.Set(profile_name(c), Napi::Number::New(env, model_->profile()[c]));
    return o;
  }

  Napi::Value SetCheckpointing(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      bool on = GetBool(info, 0, "checkpointing");
      Claim("setCheckpointing");
      model_->set_checkpointing(on);
      busy_->store(false);
      return info.Env().Undefined();
    });
  }

  // init(seed) -> Promise<void>
  Napi::Value Init(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      uint64_t seed = static_cast<uint64_t>(GetInt(info, 0, "seed", 0, (int64_t(1) << 53)));
      Claim("init");
      auto m = model_;
      return RunModelAsync(
          info.Env(), busy_,
          [m, seed] {
            m->init(seed);
          },
          nullptr, {info.This()});
    });
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      Claim("zeroGrad");
      auto m = model_;
      return RunModelAsync(
          info.Env(), busy_,
          [m] {
            m->zero_grad();
          },
          nullptr, {info.This()});
    });
  }

  // forward(tokens, labels, positions, docLens|null, normalizer, tokenLoss|null, dropoutKey|null, tokenArgmax|null)
  //   -> Promise<{loss, valid}>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      const LlamaConfig& c = model_->config();
      auto tokens = GetArray<int32_t>(info, 0, "tokens");
      const int64_t n = tokens.length;
      if (n < 1) Fail("ERR_SHAPE", "tokens: expected at least one token");
      auto labels = GetArray<int32_t>(info, 1, "labels", n);
      auto positions = GetArray<int32_t>(info, 2, "positions", n);
      auto docs = GetArray<int32_t>(info, 3, "docLens", -1, true);
      double normalizer = GetNumber(info, 4, "normalizer");
      if (!(normalizer > 0) || !std::isfinite(normalizer))
        Fail("ERR_ARG", "normalizer: expected a finite number > 0, got " + std::to_string(normalizer));
      auto tloss = GetArray<float>(info, 5, "tokenLoss", n, true);
      // dropoutKey: undefined/null = no LoRA dropout (evaluation), else a uint32 mask key
      const int64_t dkey = info[6].IsUndefined() || info[6].IsNull() ? -1 : GetInt(info, 6, "dropoutKey", 0, 0xffffffffLL);
      auto targmax = GetArray<int32_t>(info, 7, "tokenArgmax", n, true);
      // Negative lengths mark padding runs (attend to nothing); the sum of |len| must be the
      // attended length (n for local attention; the global length under sequence parallelism).
      int64_t sum = 0;
      for (int64_t i = 0; i < docs.length; ++i) sum += docs.data[i] < 0 ? -int64_t(docs.data[i]) : docs.data[i];
      const int64_t attended = model_->attended_tokens(n);
      if (docs.data && sum != attended)
        Fail("ERR_SHAPE", "docLens: lengths sum to " + std::to_string(sum) + ", expected " + std::to_string(attended) +
                              " (the attended token count)");
      for (int64_t i = 0; i < n; ++i) {
        if (tokens.data[i] < 0 || tokens.data[i] >= c.vocab)
          Fail("ERR_ARG", "tokens[" + std::to_string(i) + "]: id " + std::to_string(tokens.data[i]) +
                              " is outside [0, " + std::to_string(c.vocab) + ")");
        int32_t lb = labels.data[i];
        if (lb >= c.vocab || (lb < 0 && lb != kIgnoreIndex))
          Fail("ERR_ARG", "labels[" + std::to_string(i) + "]: " + std::to_string(lb) + " is neither -100 nor in [0, " +
                              std::to_string(c.vocab) + ")");
        if (positions.data[i] < 0)
          Fail("ERR_ARG", "positions[" + std::to_string(i) + "]: expected >= 0, got " +
                              std::to_string(positions.data[i]));
      }
      Claim("forward");
      auto m = model_;
      auto result = std::make_shared<ForwardResult>();
      const int32_t *tk = tokens.data, *lb = labels.data, *ps = positions.data, *dl = docs.data;
      const int64_t nd = docs.length;
      float* tl = tloss.data;
      int32_t* am = targmax.data;
      const float nz = static_cast<float>(normalizer);
      last_n_ = n;
      std::vector<Napi::Value> pins{info.This(), tokens.js, labels.js, positions.js};
      if (docs.data) pins.push_back(docs.js);
      if (tloss.data) pins.push_back(tloss.js);
      if (targmax.data) pins.push_back(targmax.js);
      return RunModelAsync(
          info.Env(), busy_,
          [=] {
            try {
              *result = m->forward(tk, lb, ps, n, dl, nd, nz, tl, dkey, am);
            } catch (const comm::CommError& e) {  // Ulysses attention: keep the ERR_COMM_* code
              throw CodedError(e.code, e.what());
            }
          },
          [result](Napi::Env env) -> Napi::Value {
            Napi::Object o = Napi::Object::New(env);
            o.Set("loss", Napi::Number::New(env, result->loss));
            o.Set("valid", Napi::Number::New(env, static_cast<double>(result->valid)));
            return o;
          },
          pins);
    });
  }

  // backward(tokenWeight|null) -> Promise<void>
  Napi::Value Backward(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      if (busy_->load()) Fail("ERR_STATE", "backward: another call on this model is still running");
      if (!model_->has_forward()) Fail("ERR_STATE", "backward: call forward first (no forward since the last backward)");
      auto w = GetArray<float>(info, 0, "tokenWeight", last_n_, true);
      Claim("backward");
      auto m = model_;
      const float* wp = w.data;
      std::vector<Napi::Value> pins{info.This()};
      if (w.data) pins.push_back(w.js);
      return RunModelAsync(
          info.Env(), busy_,
          [=] {
            try {
              m->backward(wp);
            } catch (const comm::CommError& e) {
              throw CodedError(e.code, e.what());
            }
          },
          nullptr, pins);
    });
  }

  // setSequenceParallel(commHandle): Ulysses attention over the SP group (its size is P; the
  // model then takes n = s/P tokens and global docLens). Refuses head layouts P cannot split.
  Napi::Value SetSequenceParallel(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      auto c = CommunicatorFromHandle(info, 0);
      const LlamaConfig& cfg = model_->config();
      std::shared_ptr<UlyssesAttention> b;
      try {
        b = std::make_shared<UlyssesAttention>(c, cfg.heads, cfg.kv_heads);
      } catch (const comm::CommError& e) {
        Fail(e.code == "ERR_COMM_ARG" ? "ERR_CONFIG" : e.code, e.what());
      }
      Claim("setSequenceParallel");
      if (model_->has_forward()) {
        // The pending backward would run with the other backend's layouts.
        busy_->store(false);
        Fail("ERR_STATE", "setSequenceParallel: a forward awaits its backward; run backward first");
      }
      model_->set_attention_backend(b);
      ulysses_ = b;
      busy_->store(false);
      return info.Env().Undefined();
    });
  }

  Napi::Value ClearSequenceParallel(const Napi::CallbackInfo& info) {
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
  Napi::Value SequenceParallelStats(const Napi::CallbackInfo& info) {
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

  std::shared_ptr<LlamaModel> model_;
  std::shared_ptr<UlyssesAttention> ulysses_;
  std::shared_ptr<std::atomic<bool>> busy_;
  Napi::Reference<Napi::Float32Array> params_js_, grads_js_, lora_params_js_, lora_grads_js_;
  int64_t last_n_ = 0;
};

// loraDropoutMask(seed, stepKey, layer, module, count, p) -> Uint8Array [count], 1 where kept: the
// mask the model applies to module `module` of layer `layer` (for reference implementations in tests).
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

// convertToF32(dst: Float32Array, src: Uint8Array, dtype: 'F32'|'F16'|'BF16') -> Promise<void>
Napi::Value ConvertToF32(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[2].IsString()) Fail("ERR_ARG", "dtype: expected 'F32', 'F16' or 'BF16'");
    std::string dt = info[2].As<Napi::String>().Utf8Value();
    SrcType t;
    int64_t width;
    if (dt == "F32") {
      t = SrcType::F32;
      width = 4;
    } else if (dt == "F16") {
      t = SrcType::F16;
      width = 2;
    } else if (dt == "BF16") {
      t = SrcType::BF16;
      width = 2;
    } else {
      Fail("ERR_DTYPE", "dtype: unsupported '" + dt + "' (expected F32, F16 or BF16)");
    }
    auto dst = GetArray<float>(info, 0, "dst");
    auto src = GetArray<uint8_t>(info, 1, "src", dst.length * width);
    float* d = dst.data;
    const uint8_t* s = src.data;
    const int64_t count = dst.length;
    return RunAsync(
        info.Env(), [=] { convert_to_f32(d, s, count, t); }, nullptr, {dst.js, src.js});
  });
}

}  // namespace

void InitModel(Napi::Env env, Napi::Object exports) {
  exports.Set("Model", ModelWrap::Define(env));
  exports.Set("convertToF32", Napi::Function::New(env, ConvertToF32, "convertToF32"));
  exports.Set("loraDropoutMask", Napi::Function::New(env, LoraDropoutMask, "loraDropoutMask"));
}

}  // namespace ua
