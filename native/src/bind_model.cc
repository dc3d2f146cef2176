// Bindings of the Llama-family model, core: construction from a config object, the parameter
// and gradient buffers with their views, seeded init, zeroGrad, forward and backward, profiling
// and activation checkpointing switches. LoRA lives in bind_model_lora.cc, Ulysses sequence
// parallelism in bind_model_sp.cc (see bind_model.h). Never runs model math on the main thread;
// never lets a C++ exception escape.
#include <cmath>
#include <string>

#include "bind_model.h"
#include "kernels/lm_head_ce.h"

namespace ua {

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

Napi::Value CachedFloats(Napi::Env env, Napi::Reference<Napi::Float32Array>& ref, const std::shared_ptr<FloatStorage>& s,
                         int64_t count) {
  if (ref.IsEmpty()) {
    auto* keep = new std::shared_ptr<FloatStorage>(s);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, s->data, static_cast<size_t>(count) * sizeof(float),
        [](Napi::Env, void*, std::shared_ptr<FloatStorage>* hint) { delete hint; }, keep);
    ref = Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(count), ab, 0));
  }
  return ref.Value();
}

std::shared_ptr<LlamaModel> NewLlamaModel(const Napi::Value& config) {
  if (!config.IsObject()) Fail("ERR_CONFIG", "Model: expected a config object");
  Napi::Object o = config.As<Napi::Object>();
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
    return std::make_shared<LlamaModel>(c);
  } catch (const std::invalid_argument& e) {
    Fail("ERR_CONFIG", e.what());
  }
}

ForwardCall ReadForwardCall(const Napi::CallbackInfo& info, const LlamaConfig& c,
                            const std::function<int64_t(int64_t)>& attended_tokens) {
  ForwardCall f;
  f.tokens = GetArray<int32_t>(info, 0, "tokens");
  const int64_t n = f.n = f.tokens.length;
  if (n < 1) Fail("ERR_SHAPE", "tokens: expected at least one token");
  f.labels = GetArray<int32_t>(info, 1, "labels", n);
  f.positions = GetArray<int32_t>(info, 2, "positions", n);
  f.docs = GetArray<int32_t>(info, 3, "docLens", -1, true);
  f.normalizer = GetNumber(info, 4, "normalizer");
  if (!(f.normalizer > 0) || !std::isfinite(f.normalizer))
    Fail("ERR_ARG", "normalizer: expected a finite number > 0, got " + std::to_string(f.normalizer));
  f.tloss = GetArray<float>(info, 5, "tokenLoss", n, true);
  // dropoutKey: undefined/null = no LoRA dropout (evaluation), else a uint32 mask key
  f.dkey = info[6].IsUndefined() || info[6].IsNull() ? -1 : GetInt(info, 6, "dropoutKey", 0, 0xffffffffLL);
  f.targmax = GetArray<int32_t>(info, 7, "tokenArgmax", n, true);
  // Negative lengths mark padding runs (attend to nothing); the sum of |len| must be the
  // attended length (n for local attention; the global length under sequence parallelism).
  int64_t sum = 0;
  for (int64_t i = 0; i < f.docs.length; ++i) sum += f.docs.data[i] < 0 ? -int64_t(f.docs.data[i]) : f.docs.data[i];
  const int64_t attended = attended_tokens(n);
  if (f.docs.data && sum != attended)
    Fail("ERR_SHAPE", "docLens: lengths sum to " + std::to_string(sum) + ", expected " + std::to_string(attended) +
                          " (the attended token count)");
  for (int64_t i = 0; i < n; ++i) {
    if (f.tokens.data[i] < 0 || f.tokens.data[i] >= c.vocab)
      Fail("ERR_ARG", "tokens[" + std::to_string(i) + "]: id " + std::to_string(f.tokens.data[i]) +
                          " is outside [0, " + std::to_string(c.vocab) + ")");
    int32_t lb = f.labels.data[i];
    if (lb >= c.vocab || (lb < 0 && lb != kIgnoreIndex))
      Fail("ERR_ARG", "labels[" + std::to_string(i) + "]: " + std::to_string(lb) + " is neither -100 nor in [0, " +
                          std::to_string(c.vocab) + ")");
    if (f.positions.data[i] < 0)
      Fail("ERR_ARG", "positions[" + std::to_string(i) + "]: expected >= 0, got " + std::to_string(f.positions.data[i]));
  }
  f.pins = {info.This(), f.tokens.js, f.labels.js, f.positions.js};
  if (f.docs.data) f.pins.push_back(f.docs.js);
  if (f.tloss.data) f.pins.push_back(f.tloss.js);
  if (f.targmax.data) f.pins.push_back(f.targmax.js);
  return f;
}

Napi::Value ForwardResultObject(Napi::Env env, const ForwardResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", Napi::Number::New(env, r.loss));
  o.Set("valid", Napi::Number::New(env, static_cast<double>(r.valid)));
  return o;
}

namespace {

class ModelWorker : public PromiseWorker {
 public:
  ModelWorker(Napi::Env env, const char* name, std::shared_ptr<std::atomic<bool>> busy, Work work, Result result,
              const std::vector<Napi::Value>& pins)
      : PromiseWorker(env, name, std::move(work), std::move(result), pins), busy_(std::move(busy)) {}
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

}  // namespace

Napi::Promise RunModelAsync(Napi::Env env, const char* name, const std::shared_ptr<std::atomic<bool>>& busy,
                            PromiseWorker::Work work, PromiseWorker::Result result, const std::vector<Napi::Value>& pins) {
  auto* w = new ModelWorker(env, name, busy, std::move(work), std::move(result), pins);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {InstanceMethod("views", &ModelWrap::Views), InstanceMethod("params", &ModelWrap::Params),
                      InstanceMethod("grads", &ModelWrap::Grads), InstanceMethod("numParams", &ModelWrap::NumParams),
                      InstanceMethod("init", &ModelWrap::Init), InstanceMethod("zeroGrad", &ModelWrap::ZeroGrad),
                      InstanceMethod("setCheckpointing", &ModelWrap::SetCheckpointing),
                      InstanceMethod("setMlpTiling", &ModelWrap::SetMlpTiling),
                      InstanceMethod("mlpTile", &ModelWrap::MlpTile),
                      InstanceMethod("setBf16", &ModelWrap::SetBf16), InstanceMethod("bf16", &ModelWrap::Bf16),
                      InstanceMethod("weightsChanged", &ModelWrap::WeightsChanged),
                      InstanceMethod("forward", &ModelWrap::Forward),
                      InstanceMethod("backward", &ModelWrap::Backward),
                      InstanceMethod("hasForward", &ModelWrap::HasForward),
                      InstanceMethod("finalHidden", &ModelWrap::FinalHidden),
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
                      InstanceMethod("adaptersEnabled", &ModelWrap::AdaptersEnabled),
                      InstanceMethod("shardParameters", &ModelWrap::ShardParameters),
                      InstanceMethod("shardedParams", &ModelWrap::ShardedParams),
                      InstanceMethod("shardedGrads", &ModelWrap::ShardedGrads),
                      InstanceMethod("gatherParameters", &ModelWrap::GatherParameters),
                      InstanceMethod("releaseParameters", &ModelWrap::ReleaseParameters),
                      InstanceMethod("takeParameterPart", &ModelWrap::TakeParameterPart),
                      InstanceMethod("shardStats", &ModelWrap::ShardStats)});
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Guard(info, [&]() -> Napi::Value {
    model_ = NewLlamaModel(info[0]);
    busy_ = std::make_shared<std::atomic<bool>>(false);
    return info.Env().Undefined();
  });
}

void ModelWrap::Claim(const char* what) {
  bool expected = false;
  if (!busy_->compare_exchange_strong(expected, true))
    Fail("ERR_STATE", std::string(what) + ": another call on this model is still running");
}

Napi::Array ModelWrap::ViewArray(Napi::Env env, const std::vector<ParamView>& vs) {
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

Napi::Value ModelWrap::Views(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return ViewArray(info.Env(), model_->views()); });
}

Napi::Value ModelWrap::Params(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() { return CachedFloats(info.Env(), params_js_, model_->params(), model_->flat_size()); });
}

Napi::Value ModelWrap::Grads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() { return CachedFloats(info.Env(), grads_js_, model_->grads(), model_->flat_size()); });
}

Napi::Value ModelWrap::NumParams(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->num_params()));
}

Napi::Value ModelWrap::HasForward(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), model_->has_forward());
}

Napi::Value ModelWrap::ActivationBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->activation_bytes()));
}

Napi::Value ModelWrap::SetProfiling(const Napi::CallbackInfo& info) {
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
Napi::Value ModelWrap::Profile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (int c = 0; c < kProfCount; ++c) o.Set(profile_name(c), Napi::Number::New(env, model_->profile()[c]));
  return o;
}

Napi::Value ModelWrap::SetCheckpointing(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    bool on = GetBool(info, 0, "checkpointing");
    Claim("setCheckpointing");
    model_->set_checkpointing(on);
    busy_->store(false);
    return info.Env().Undefined();
  });
}

// setMlpTiling(rows): 0 off, -1 tile rows from the length, > 0 rows per tile (llama.h). Takes
// effect at the next forward (the activation buffers are laid out again).
Napi::Value ModelWrap::SetMlpTiling(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t rows = GetInt(info, 0, "mlp tile rows", -1);
    Claim("setMlpTiling");
    model_->set_mlp_tiling(rows);
    busy_->store(false);
    return info.Env().Undefined();
  });
}

// Rows per MLP tile of the last forward's buffers (0: untiled).
Napi::Value ModelWrap::MlpTile(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model_->mlp_tile()));
}

// setBf16(on): mixed precision (llama.h); frees the activation buffers and drops a pending backward.
Napi::Value ModelWrap::SetBf16(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    bool on = GetBool(info, 0, "bf16");
    Claim("setBf16");
    model_->set_bf16(on);
    busy_->store(false);
    return info.Env().Undefined();
  });
}

Napi::Value ModelWrap::Bf16(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), model_->bf16()); }

// weightsChanged(): the fp32 parameters were written from JS; the bf16 copy is refreshed at the
// next forward. Allowed while a call runs: the flag is read when the next forward starts.
Napi::Value ModelWrap::WeightsChanged(const Napi::CallbackInfo& info) {
  model_->weights_changed();
  return info.Env().Undefined();
}

// init(seed) -> Promise<void>
Napi::Value ModelWrap::Init(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    uint64_t seed = static_cast<uint64_t>(GetInt(info, 0, "seed", 0, (int64_t(1) << 53)));
    Claim("init");
    auto m = model_;
    return RunModelAsync(info.Env(), "model.init", busy_, [m, seed] { m->init(seed); }, nullptr, {info.This()});
  });
}

Napi::Value ModelWrap::ZeroGrad(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Claim("zeroGrad");
    auto m = model_;
    return RunModelAsync(info.Env(), "model.zeroGrad", busy_, [m] { m->zero_grad(); }, nullptr, {info.This()});
  });
}

// forward(tokens, labels, positions, docLens|null, normalizer, tokenLoss|null, dropoutKey|null, tokenArgmax|null)
//   -> Promise<{loss, valid}>
Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto m = model_;
    const ForwardCall f = ReadForwardCall(info, m->config(), [&](int64_t n) { return m->attended_tokens(n); });
    Claim("forward");
    auto result = std::make_shared<ForwardResult>();
    const int32_t *tk = f.tokens.data, *lb = f.labels.data, *ps = f.positions.data, *dl = f.docs.data;
    const int64_t n = f.n, nd = f.docs.length, dkey = f.dkey;
    float* tl = f.tloss.data;
    int32_t* am = f.targmax.data;
    const float nz = static_cast<float>(f.normalizer);
    last_n_ = n;
    return RunModelAsync(
        info.Env(), "model.forward", busy_, [=] { *result = m->forward(tk, lb, ps, n, dl, nd, nz, tl, dkey, am); },
        [result](Napi::Env env) { return ForwardResultObject(env, *result); }, f.pins);
  });
}

// backward(tokenWeight|null, dHidden|null) -> Promise<void>
Napi::Value ModelWrap::Backward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (busy_->load()) Fail("ERR_STATE", "backward: another call on this model is still running");
    if (!model_->has_forward()) Fail("ERR_STATE", "backward: call forward first (no forward since the last backward)");
    auto w = GetArray<float>(info, 0, "tokenWeight", last_n_, true);
    auto dh = GetArray<float>(info, 1, "dHidden", last_n_ * model_->config().hidden, true);
    Claim("backward");
    auto m = model_;
    const float* wp = w.data;
    const float* dhp = dh.data;
    std::vector<Napi::Value> pins{info.This()};
    if (w.data) pins.push_back(w.js);
    if (dh.data) pins.push_back(dh.js);
    return RunModelAsync(info.Env(), "model.backward", busy_, [=] { m->backward(wp, dhp); }, nullptr, pins);
  });
}

// finalHidden(row, out) -> void: the final norm output of one token of the last forward
Napi::Value ModelWrap::FinalHidden(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (busy_->load()) Fail("ERR_STATE", "finalHidden: another call on this model is still running");
    if (!model_->has_forward()) Fail("ERR_STATE", "finalHidden: call forward first (no forward since the last backward)");
    const int64_t row = info[0].As<Napi::Number>().Int64Value();
    auto out = GetArray<float>(info, 1, "out", model_->config().hidden, false);
    model_->final_hidden(row, out.data);
    return info.Env().Undefined();
  });
}


void InitModel(Napi::Env env, Napi::Object exports) {
  exports.Set("Model", ModelWrap::Define(env));
  exports.Set("loraDropoutMask", Napi::Function::New(env, LoraDropoutMask, "loraDropoutMask"));
}

}  // namespace ua
