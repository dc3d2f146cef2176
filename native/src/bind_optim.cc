// N-API bindings for AdamW and the gradient-policy kernels (statistics, seeded noise, scale,
// centralize, clip, zero). Buffer work runs off the main thread and returns a Promise; the two Philox
// probes (one number / one block) are synchronous because they cost nanoseconds.
// Must never accept a span that reaches outside the gradient buffer.
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/gradstats.h"
#include "napi_util.h"

namespace ua {

namespace {

constexpr int64_t kMaxElems = int64_t(1) << 40;
constexpr int64_t kMaxKey = (int64_t(1) << 53) - 1;  // exact in a JS number
constexpr int64_t kMaxU32 = 0xFFFFFFFFll;

float GetFinite(const Napi::CallbackInfo& info, size_t i, const char* what) {
  const double d = GetNumber(info, i, what);
  if (!std::isfinite(d)) Fail("ERR_ARG", std::string(what) + ": expected a finite number");
  return static_cast<float>(d);
}

void CheckAdamW(const AdamWParams& p) {
  if (!(p.beta1 >= 0 && p.beta1 < 1)) Fail("ERR_ARG", "beta1: expected a value in [0, 1)");
  if (!(p.beta2 >= 0 && p.beta2 < 1)) Fail("ERR_ARG", "beta2: expected a value in [0, 1)");
  if (!(p.eps > 0)) Fail("ERR_ARG", "eps: expected a positive number");
}

// adamwStep(param, m, v, grad, n, lr, beta1, beta2, eps, weightDecay, step)
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = GetInt(info, 4, "n", 0, kMaxElems);
    AdamWParams p;
    p.lr = GetFinite(info, 5, "lr");
    p.beta1 = GetFinite(info, 6, "beta1");
    p.beta2 = GetFinite(info, 7, "beta2");
    p.eps = GetFinite(info, 8, "eps");
    p.weight_decay = GetFinite(info, 9, "weightDecay");
    p.step = GetInt(info, 10, "step", 1, kMaxKey);
    CheckAdamW(p);
    auto param = GetArray<float>(info, 0, "param", n);
    auto m = GetArray<float>(info, 1, "m", n);
    auto v = GetArray<float>(info, 2, "v", n);
    auto g = GetArray<float>(info, 3, "grad", n);
    float *pp = param.data, *pm = m.data, *pv = v.data;
    const float* pg = g.data;
    return RunAsync(
        info.Env(), "adamwStep", [=] { adamw_step(pp, pm, pv, pg, n, p); }, nullptr, {param.js, m.js, v.js, g.js});
  });
}

// gradStats(grad, spans: Float64Array [offset0, numel0, offset1, numel1, ...])
//   -> Promise<{ gradMean, l2Norm, maxAbs, nonfinite, perTensorMeanAbs: Float64Array }>
Napi::Value GradStatsBinding(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto grad = GetArray<float>(info, 0, "grad");
    auto spans = GetArray<double>(info, 1, "spans");
    if (spans.length % 2 != 0) Fail("ERR_SHAPE", "spans: expected [offset, numel] pairs (an even length)");
    const int64_t nt = spans.length / 2;
    auto tensors = std::make_shared<std::vector<TensorSpan>>(static_cast<size_t>(nt));
    for (int64_t t = 0; t < nt; ++t) {
      const double off = spans.data[2 * t], num = spans.data[2 * t + 1];
      if (!(off >= 0 && num >= 0) || off != std::floor(off) || num != std::floor(num) ||
          off + num > static_cast<double>(grad.length))
        Fail("ERR_SHAPE", "spans[" + std::to_string(t) + "]: offset " + std::to_string(off) + " + numel " +
                              std::to_string(num) + " must be non-negative integers inside the gradient of " +
                              std::to_string(grad.length) + " elements");
      TensorSpan& s = (*tensors)[t];
      s.offset = static_cast<int64_t>(off);
      s.numel = static_cast<int64_t>(num);
      s.rows = s.numel;
      s.cols = 1;
    }
    auto per = std::make_shared<std::vector<double>>(static_cast<size_t>(nt));
    auto stats = std::make_shared<GradStats>();
    const float* pg = grad.data;
    return RunAsync(
        info.Env(), "gradStats", [=] { *stats = grad_stats(per->data(), pg, tensors->data(), nt); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("gradMean", Napi::Number::New(env, stats->grad_mean));
          o.Set("l2Norm", Napi::Number::New(env, stats->l2_norm));
          o.Set("maxAbs", Napi::Number::New(env, stats->max_abs));
          o.Set("nonfinite", Napi::Number::New(env, static_cast<double>(stats->nonfinite)));
          Napi::Float64Array arr = Napi::Float64Array::New(env, static_cast<size_t>(nt));
          for (int64_t t = 0; t < nt; ++t) arr[static_cast<size_t>(t)] = (*per)[static_cast<size_t>(t)];
          o.Set("perTensorMeanAbs", arr);
          return o;
        },
        {grad.js, spans.js});
  });
}

// addNoise(g, n, std, seed, step, tensor): step and tensor are < 2^32 (they key the counter).
Napi::Value AddNoise(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = GetInt(info, 1, "n", 0, kMaxElems);
    const float std = GetFinite(info, 2, "std");
    const uint64_t seed = static_cast<uint64_t>(GetInt(info, 3, "seed", 0, kMaxKey));
    const uint64_t step = static_cast<uint64_t>(GetInt(info, 4, "step", 0, kMaxU32));
    const uint64_t tensor = static_cast<uint64_t>(GetInt(info, 5, "tensor", 0, kMaxU32));
    auto g = GetArray<float>(info, 0, "g", n);
    float* pg = g.data;
    return RunAsync(
        info.Env(), "addNoise", [=] { add_noise(pg, n, std, seed, step, tensor); }, nullptr, {g.js});
  });
}

// philoxNormal(seed, step, tensor, i) -> number (synchronous)
Napi::Value PhiloxNormal(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const uint64_t seed = static_cast<uint64_t>(GetInt(info, 0, "seed", 0, kMaxKey));
    const uint64_t step = static_cast<uint64_t>(GetInt(info, 1, "step", 0, kMaxU32));
    const uint64_t tensor = static_cast<uint64_t>(GetInt(info, 2, "tensor", 0, kMaxU32));
    const uint64_t i = static_cast<uint64_t>(GetInt(info, 3, "i", 0, kMaxKey));
    return Napi::Number::New(info.Env(), philox_normal(seed, step, tensor, i));
  });
}

// philox4x32(c0, c1, c2, c3, k0, k1) -> [x0, x1, x2, x3] (synchronous; known-answer tests)
Napi::Value Philox4x32(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    uint32_t ctr[4], key[2], out[4];
    const char* names[6] = {"c0", "c1", "c2", "c3", "k0", "k1"};
    for (int i = 0; i < 4; ++i) ctr[i] = static_cast<uint32_t>(GetInt(info, i, names[i], 0, kMaxU32));
    for (int i = 0; i < 2; ++i) key[i] = static_cast<uint32_t>(GetInt(info, 4 + i, names[4 + i], 0, kMaxU32));
    philox4x32_10(out, ctr, key);
    Napi::Array a = Napi::Array::New(info.Env(), 4);
    for (uint32_t i = 0; i < 4; ++i) a[i] = Napi::Number::New(info.Env(), out[i]);
    return a;
  });
}

// scale(g, n, factor)
Napi::Value Scale(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = GetInt(info, 1, "n", 0, kMaxElems);
    const float f = GetFinite(info, 2, "factor");
    auto g = GetArray<float>(info, 0, "g", n);
    float* pg = g.data;
    return RunAsync(
        info.Env(), "scale", [=] { scale(pg, n, f); }, nullptr, {g.js});
  });
}

// centralize(g, rows, cols)
Napi::Value Centralize(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t rows = GetInt(info, 1, "rows", 0, kMaxElems), cols = GetInt(info, 2, "cols", 0, kMaxElems);
    if (rows != 0 && cols > kMaxElems / rows) Fail("ERR_ARG", "centralize: too many elements");
    auto g = GetArray<float>(info, 0, "g", rows * cols);
    float* pg = g.data;
    return RunAsync(
        info.Env(), "centralize", [=] { centralize(pg, rows, cols); }, nullptr, {g.js});
  });
}

// clipByGlobalNorm(g, n, norm, maxNorm) -> Promise<number> (the factor applied)
Napi::Value ClipByGlobalNorm(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = GetInt(info, 1, "n", 0, kMaxElems);
    const double norm = GetNumber(info, 2, "norm"), max_norm = GetNumber(info, 3, "maxNorm");
    if (!(norm >= 0) || !std::isfinite(norm)) Fail("ERR_ARG", "norm: expected a finite non-negative number");
    if (!(max_norm > 0) || !std::isfinite(max_norm)) Fail("ERR_ARG", "maxNorm: expected a finite positive number");
    auto g = GetArray<float>(info, 0, "g", n);
    float* pg = g.data;
    auto factor = std::make_shared<float>(1.f);
    return RunAsync(
        info.Env(), "clipByGlobalNorm", [=] { *factor = clip_by_global_norm(pg, n, norm, max_norm); },
        [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *factor); }, {g.js});
  });
}

// zero(g, n)
Napi::Value Zero(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = GetInt(info, 1, "n", 0, kMaxElems);
    auto g = GetArray<float>(info, 0, "g", n);
    float* pg = g.data;
    return RunAsync(
        info.Env(), "zero", [=] { zero(pg, n); }, nullptr, {g.js});
  });
}


}  // namespace

void InitOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("adamwStep", Napi::Function::New(env, AdamwStep, "adamwStep"));
  exports.Set("gradStats", Napi::Function::New(env, GradStatsBinding, "gradStats"));
  exports.Set("addNoise", Napi::Function::New(env, AddNoise, "addNoise"));
  exports.Set("philoxNormal", Napi::Function::New(env, PhiloxNormal, "philoxNormal"));
  exports.Set("philox4x32", Napi::Function::New(env, Philox4x32, "philox4x32"));
  exports.Set("scale", Napi::Function::New(env, Scale, "scale"));
  exports.Set("centralize", Napi::Function::New(env, Centralize, "centralize"));
  exports.Set("clipByGlobalNorm", Napi::Function::New(env, ClipByGlobalNorm, "clipByGlobalNorm"));
  exports.Set("zero", Napi::Function::New(env, Zero, "zero"));
}

}  // namespace ua
