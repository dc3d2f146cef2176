// Bindings of ZeRO stage 3's parameter shards (see bind_model.h, model/param_shards.h):
// installing them over the world communicator (or none, for a world of one), the packed part
// buffers as Float32Arrays, and gathering / releasing the whole parameter set for checkpoints.
// Must never shard a model with a pending forward, or run a collective on the main thread.
#include <string>
#include <vector>

#include "bind_comm.h"
#include "bind_model.h"
#include "model/param_shards.h"

namespace ua {

// shardParameters(commHandle | null, rank, world, dp, block, chunks: number[], gatherCommHandle | null)
Napi::Value ModelWrap::ShardParameters(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::shared_ptr<comm::Communicator> c;
    if (!info[0].IsNull() && !info[0].IsUndefined()) c = CommunicatorFromHandle(info, 0);
    ShardLayout l;
    l.rank = static_cast<int>(GetInt(info, 1, "rank", 0, 1 << 20));
    l.world = static_cast<int>(GetInt(info, 2, "world", 1, 1 << 20));
    l.dp = static_cast<int>(GetInt(info, 3, "dp", 1, 1 << 20));
    l.block = static_cast<int>(GetInt(info, 4, "block", 1, 1 << 20));
    if (!info[5].IsArray()) Fail("ERR_ARG", "shardParameters: chunks must be an array of integers");
    Napi::Array a = info[5].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value v = a.Get(i);
      if (!v.IsNumber()) Fail("ERR_ARG", "shardParameters: chunks[" + std::to_string(i) + "] is not a number");
      l.chunks.push_back(static_cast<int64_t>(v.As<Napi::Number>().DoubleValue()));
    }
    std::shared_ptr<comm::Communicator> g;
    if (info.Length() > 6 && !info[6].IsNull() && !info[6].IsUndefined()) g = CommunicatorFromHandle(info, 6);
    std::shared_ptr<ParamShards> s;
    try {
      s = std::make_shared<ParamShards>(c, l, model_->views(), g);
    } catch (const std::invalid_argument& e) {
      Fail("ERR_ARG", e.what());
    }
    Claim("shardParameters");
    try {
      model_->set_param_shards(s);
    } catch (const std::logic_error& e) {
      busy_->store(false);
      Fail("ERR_STATE", e.what());
    }
    busy_->store(false);
    return info.Env().Undefined();
  });
}

Napi::Value ModelWrap::ShardedParams(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto& s = model_->param_shards();
    if (!s) return info.Env().Null();
    return CachedFloats(info.Env(), shard_params_js_, s->params(), s->part_length());
  });
}

Napi::Value ModelWrap::ShardedGrads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const auto& s = model_->param_shards();
    if (!s) return info.Env().Null();
    return CachedFloats(info.Env(), shard_grads_js_, s->grads(), s->part_length());
  });
}

// gatherParameters() -> Promise: a collective over the world
Napi::Value ModelWrap::GatherParameters(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!model_->param_shards()) Fail("ERR_STATE", "gatherParameters: the parameters are not sharded");
    Claim("gatherParameters");
    auto m = model_;
    return RunModelAsync(info.Env(), "model.gatherParameters", busy_, [m] { m->gather_all_params(); }, nullptr, {info.This()});
  });
}

Napi::Value ModelWrap::ReleaseParameters(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!model_->param_shards()) Fail("ERR_STATE", "releaseParameters: the parameters are not sharded");
    Claim("releaseParameters");
    model_->release_all_params();
    busy_->store(false);
    return info.Env().Undefined();
  });
}

// takeParameterPart() -> Promise: this rank's part from the (just loaded) full parameters
Napi::Value ModelWrap::TakeParameterPart(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!model_->param_shards()) Fail("ERR_STATE", "takeParameterPart: the parameters are not sharded");
    Claim("takeParameterPart");
    auto m = model_;
    return RunModelAsync(info.Env(), "model.takeParameterPart", busy_, [m] { m->take_param_part(); }, nullptr, {info.This()});
  });
}

// shardStats() -> {partLength, peakResidentBytes, bufferBytes} | null
Napi::Value ModelWrap::ShardStats(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const auto& s = model_->param_shards();
    if (!s) return env.Null();
    if (busy_->load()) Fail("ERR_STATE", "shardStats: a call on this model is still running");
    Napi::Object o = Napi::Object::New(env);
    o.Set("partLength", Napi::Number::New(env, static_cast<double>(s->part_length())));
    o.Set("peakResidentBytes", Napi::Number::New(env, static_cast<double>(s->peak_resident_bytes())));
    o.Set("bufferBytes", Napi::Number::New(env, static_cast<double>(s->buffer_bytes())));
    return o;
  });
}

}  // namespace ua
