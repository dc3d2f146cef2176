// What the model's binding files share (bind_model.cc: construction, buffers, forward/backward;
// bind_model_lora.cc: LoRA adapters; bind_model_sp.cc: Ulysses sequence parallelism;
// bind_model_zero.cc: ZeRO stage 3's parameter shards): the
// Napi::ObjectWrap over LlamaModel, its busy-flag worker and the config readers. Thin glue only:
// validation, state checks (ERR_STATE for backward-without-forward and concurrent calls) and
// promise plumbing. Must never run model math on the main thread.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "model/llama.h"
#include "model/ulysses_backend.h"
#include "napi_util.h"

namespace ua {

// Keys of a JS config object (ERR_CONFIG naming the key when missing or of the wrong type).
int64_t ConfigInt(const Napi::Object& o, const char* key);
double ConfigNumber(const Napi::Object& o, const char* key);
bool ConfigBool(const Napi::Object& o, const char* key);

// The Float32Array over `count` floats of native storage, made on first use and kept in `ref`
// (its ArrayBuffer keeps the storage alive after the model dies).
Napi::Value CachedFloats(Napi::Env env, Napi::Reference<Napi::Float32Array>& ref, const std::shared_ptr<FloatStorage>& s,
                         int64_t count);

// Queues `work` like RunAsync and keeps the model marked busy until the promise settles (the flag
// is cleared on the main thread, so "busy" is exactly "a call's promise is pending").
Napi::Promise RunModelAsync(Napi::Env env, const char* name, const std::shared_ptr<std::atomic<bool>>& busy,
                            PromiseWorker::Work work, PromiseWorker::Result result, const std::vector<Napi::Value>& pins);

// A LlamaModel from the JS config object (src/engine/modelConfig.ts ModelConfig); ERR_CONFIG
// naming the key. The CPU model and the CUDA model's host side (bind_cuda_model.cc) both use it.
std::shared_ptr<LlamaModel> NewLlamaModel(const Napi::Value& config);

// forward(tokens, labels, positions, docLens|null, normalizer, tokenLoss|null, dropoutKey|null,
// tokenArgmax|null), validated against the model's config and attended token count; `pins`
// holds every JS input the work reads or writes.
struct ForwardCall {
  ArrayArg<int32_t> tokens, labels, positions, docs, targmax;
  ArrayArg<float> tloss;
  double normalizer = 1;
  int64_t dkey = -1, n = 0;
  std::vector<Napi::Value> pins;
};
ForwardCall ReadForwardCall(const Napi::CallbackInfo& info, const LlamaConfig& c,
                            const std::function<int64_t(int64_t)>& attended_tokens);
Napi::Value ForwardResultObject(Napi::Env env, const ForwardResult& r);

// loraDropoutMask(seed, stepKey, layer, module, count, p) (bind_model_lora.cc).
Napi::Value LoraDropoutMask(const Napi::CallbackInfo& info);

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);
  // The JS view table ({name, offset, numel, shape}[]); the CUDA model's binding shares it.
  static Napi::Array ViewArray(Napi::Env env, const std::vector<ParamView>& vs);

  // For the inference session (bind_generate.cc), which shares the model and its busy flag.
  const std::shared_ptr<LlamaModel>& model() const { return model_; }
  const std::shared_ptr<std::atomic<bool>>& busy() const { return busy_; }

 private:
  // Claims the model for one call (ERR_STATE if another call is running).
  void Claim(const char* what);

  // core (bind_model.cc)
  Napi::Value Views(const Napi::CallbackInfo& info);
  Napi::Value Params(const Napi::CallbackInfo& info);
  Napi::Value Grads(const Napi::CallbackInfo& info);
  Napi::Value NumParams(const Napi::CallbackInfo& info);
  Napi::Value HasForward(const Napi::CallbackInfo& info);
  Napi::Value FinalHidden(const Napi::CallbackInfo& info);
  Napi::Value ActivationBytes(const Napi::CallbackInfo& info);
  Napi::Value SetProfiling(const Napi::CallbackInfo& info);
  Napi::Value Profile(const Napi::CallbackInfo& info);
  Napi::Value SetCheckpointing(const Napi::CallbackInfo& info);
  Napi::Value SetMlpTiling(const Napi::CallbackInfo& info);
  Napi::Value MlpTile(const Napi::CallbackInfo& info);
  Napi::Value SetBf16(const Napi::CallbackInfo& info);
  Napi::Value Bf16(const Napi::CallbackInfo& info);
  Napi::Value WeightsChanged(const Napi::CallbackInfo& info);
  Napi::Value Init(const Napi::CallbackInfo& info);
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);

  // LoRA (bind_model_lora.cc)
  Napi::Value AttachLora(const Napi::CallbackInfo& info);
  Napi::Value InitLora(const Napi::CallbackInfo& info);
  Napi::Value LoraViews(const Napi::CallbackInfo& info);
  Napi::Value LoraParams(const Napi::CallbackInfo& info);
  Napi::Value LoraGrads(const Napi::CallbackInfo& info);
  Napi::Value LoraNumParams(const Napi::CallbackInfo& info);
  Napi::Value SetAdaptersEnabled(const Napi::CallbackInfo& info);
  Napi::Value AdaptersEnabled(const Napi::CallbackInfo& info);

  // sequence parallelism (bind_model_sp.cc)
  Napi::Value SetSequenceParallel(const Napi::CallbackInfo& info);
  Napi::Value ClearSequenceParallel(const Napi::CallbackInfo& info);
  Napi::Value SequenceParallelStats(const Napi::CallbackInfo& info);

  // ZeRO stage 3 (bind_model_zero.cc)
  Napi::Value ShardParameters(const Napi::CallbackInfo& info);
  Napi::Value ShardedParams(const Napi::CallbackInfo& info);
  Napi::Value ShardedGrads(const Napi::CallbackInfo& info);
  Napi::Value GatherParameters(const Napi::CallbackInfo& info);
  Napi::Value ReleaseParameters(const Napi::CallbackInfo& info);
  Napi::Value TakeParameterPart(const Napi::CallbackInfo& info);
  Napi::Value ShardStats(const Napi::CallbackInfo& info);

  std::shared_ptr<LlamaModel> model_;
  std::shared_ptr<UlyssesAttention> ulysses_;
  std::shared_ptr<std::atomic<bool>> busy_;
  Napi::Reference<Napi::Float32Array> params_js_, grads_js_, lora_params_js_, lora_grads_js_, shard_params_js_, shard_grads_js_;
  int64_t last_n_ = 0;
};

}  // namespace ua
