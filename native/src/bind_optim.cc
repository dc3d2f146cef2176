// N-API bindings for AdamW and the gradient-policy kernels (statistics, seeded noise, scale,
// centralize, clip, zero) and for the fused optimizer step that runs the plan and AdamW over every
// span in one call. Buffer work runs off the main thread and returns a Promise; the two Philox
// probes (one number / one block) are synchronous because they cost nanoseconds.
// Must never accept a span that reaches outside the gradient buffer.
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/gradstats.h"
#include "kernels/optimizer_step.h"
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

// Spans as the statistics bindings take them: Float64Array [offset0, numel0, offset1, numel1, ...],
// each inside the gradient of `length` elements.
std::shared_ptr<std::vector<TensorSpan>> GetStatSpans(const Napi::CallbackInfo& info, size_t i, int64_t length) {
  auto spans = GetArray<double>(info, i, "spans");
  if (spans.length % 2 != 0) Fail("ERR_SHAPE", "spans: expected [offset, numel] pairs (an even length)");
  const int64_t nt = spans.length / 2;
  auto tensors = std::make_shared<std::vector<TensorSpan>>(static_cast<size_t>(nt));
  for (int64_t t = 0; t < nt; ++t) {
    const double off = spans.data[2 * t], num = spans.data[2 * t + 1];
    if (!(off >= 0 && num >= 0) || off != std::floor(off) || num != std::floor(num) ||
        off + num > static_cast<double>(length))
      Fail("ERR_SHAPE", "spans[" + std::to_string(t) + "]: offset " + std::to_string(off) + " + numel " +
                            std::to_string(num) + " must be non-negative integers inside the gradient of " +
                            std::to_string(length) + " elements");
    TensorSpan& s = (*tensors)[t];
    s.offset = static_cast<int64_t>(off);
    s.numel = static_cast<int64_t>(num);
    s.rows = s.numel;
    s.cols = 1;
  }
  return tensors;
}

// gradStats(grad, spans: Float64Array [offset0, numel0, offset1, numel1, ...])
//   -> Promise<{ gradMean, l2Norm, maxAbs, nonfinite, perTensorMeanAbs: Float64Array }>
Napi::Value GradStatsBinding(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto grad = GetArray<float>(info, 0, "grad");
    auto spans = GetArray<double>(info, 1, "spans");
    auto tensors = GetStatSpans(info, 1, grad.length);
    const int64_t nt = static_cast<int64_t>(tensors->size());
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

// gradPartialSums(grad, spans) -> Promise<Float64Array [sumAbs, sumSq, maxAbs, nonfinite] per span>
Napi::Value GradPartialSums(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto grad = GetArray<float>(info, 0, "grad");
    auto spans = GetArray<double>(info, 1, "spans");
    auto tensors = GetStatSpans(info, 1, grad.length);
    const int64_t nt = static_cast<int64_t>(tensors->size());
    auto out = std::make_shared<std::vector<GradBlockStats>>(static_cast<size_t>(nt));
    const float* pg = grad.data;
    return RunAsync(
        info.Env(), "gradPartialSums", [=] { grad_partial_sums(out->data(), pg, tensors->data(), nt); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Float64Array arr = Napi::Float64Array::New(env, static_cast<size_t>(4 * nt));
          for (int64_t t = 0; t < nt; ++t) {
            const GradBlockStats& r = (*out)[static_cast<size_t>(t)];
            arr[static_cast<size_t>(4 * t)] = r.sum_abs;
            arr[static_cast<size_t>(4 * t + 1)] = r.sum_sq;
            arr[static_cast<size_t>(4 * t + 2)] = r.max_abs;
            arr[static_cast<size_t>(4 * t + 3)] = static_cast<double>(r.nonfinite);
          }
          return arr;
        },
        {grad.js, spans.js});
  });
}

// addNoise(g, n, std, seed, step, tensor[, first]): first (default 0) is the stream index of g[0]
// (a part of a tensor).
// step and tensor are < 2^32 (they key the counter).
Napi::Value AddNoise(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = GetInt(info, 1, "n", 0, kMaxElems);
    const float std = GetFinite(info, 2, "std");
    const uint64_t seed = static_cast<uint64_t>(GetInt(info, 3, "seed", 0, kMaxKey));
    const uint64_t step = static_cast<uint64_t>(GetInt(info, 4, "step", 0, kMaxU32));
    const uint64_t tensor = static_cast<uint64_t>(GetInt(info, 5, "tensor", 0, kMaxU32));
    const uint64_t first = info.Length() > 6 && !info[6].IsUndefined() ? static_cast<uint64_t>(GetInt(info, 6, "first", 0, kMaxKey)) : 0;
    auto g = GetArray<float>(info, 0, "g", n);
    float* pg = g.data;
    return RunAsync(
        info.Env(), "addNoise", [=] {
          if (first == 0) add_noise(pg, n, std, seed, step, tensor);
          else add_noise_from(pg, n, first, std, seed, step, tensor);
        }, nullptr, {g.js});
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


// A number field of a plain options object (ERR_ARG naming `what.key`).
double Field(const Napi::Object& o, const std::string& what, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) Fail("ERR_ARG", what + "." + key + ": expected a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) Fail("ERR_ARG", what + "." + key + ": expected a finite number");
  return d;
}

int64_t IntField(const Napi::Object& o, const std::string& what, const char* key, int64_t min, int64_t max) {
  const double d = Field(o, what, key);
  if (d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max))
    Fail("ERR_ARG", what + "." + key + ": expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                        "], got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsObject()) Fail("ERR_ARG", std::string(what) + ": expected an object");
  return info[i].As<Napi::Object>();
}

// Columns of optimizerStep's span table, one row per span.
enum SpanColumn { kSpanOffset, kSpanNumel, kSpanRows, kSpanCols, kSpanFlags, kSpanNoiseTensor, kSpanColumns };
constexpr int64_t kSpanCentralize = 1, kSpanDecay = 2;

// optimizerStep(grad, spans: Float64Array [offset, numel, rows, cols, flags, noiseTensor] per span
//   (flags: 1 centralize, 2 weight decay), plan {noiseStd, noiseSeed, noiseStep, scaleFactor,
//   scaleThreshold, clipNorm, l2Norm}, meanAbs: Float64Array [spans] | null, param | null, m | null,
//   v | null, adam {lr, beta1, beta2, eps, weightDecay, step} | null)
//   -> Promise<{ noised, scaled, centralized, clipFactor, normBeforeClip }>
// Without param (m, v and adam null too) only the plan is applied.
Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto grad = GetArray<float>(info, 0, "grad");
    const int64_t n = grad.length;
    auto table = GetArray<double>(info, 1, "spans");
    if (table.length % kSpanColumns != 0)
      Fail("ERR_SHAPE", "spans: expected " + std::to_string(kSpanColumns) + " columns per span, got " +
                            std::to_string(table.length) + " numbers");
    const int64_t nt = table.length / kSpanColumns;
    auto spans = std::make_shared<std::vector<OptimSpan>>(static_cast<size_t>(nt));
    for (int64_t t = 0; t < nt; ++t) {
      const double* row = table.data + t * kSpanColumns;
      const std::string at = "spans[" + std::to_string(t) + "]";
      for (int c = 0; c < kSpanColumns; ++c)
        if (!(row[c] >= 0) || row[c] != std::floor(row[c]) || row[c] > static_cast<double>(kMaxKey))
          Fail("ERR_ARG", at + ": expected non-negative integers, got " + std::to_string(row[c]) + " in column " + std::to_string(c));
      OptimSpan& s = (*spans)[t];
      s.offset = static_cast<int64_t>(row[kSpanOffset]);
      s.numel = static_cast<int64_t>(row[kSpanNumel]);
      s.rows = static_cast<int64_t>(row[kSpanRows]);
      s.cols = static_cast<int64_t>(row[kSpanCols]);
      const int64_t flags = static_cast<int64_t>(row[kSpanFlags]);
      if (flags > (kSpanCentralize | kSpanDecay)) Fail("ERR_ARG", at + ": unknown flag bits " + std::to_string(flags));
      s.centralize = flags & kSpanCentralize;
      s.decay = flags & kSpanDecay;
      if (row[kSpanNoiseTensor] > static_cast<double>(kMaxU32)) Fail("ERR_ARG", at + ": the noise tensor key must be < 2^32");
      s.noise_tensor = static_cast<uint64_t>(row[kSpanNoiseTensor]);
      if (s.offset + s.numel > n)
        Fail("ERR_SHAPE", at + ": [" + std::to_string(s.offset) + ", " + std::to_string(s.offset + s.numel) +
                              ") is outside the gradient of " + std::to_string(n) + " elements");
      if (s.centralize && (s.cols > kMaxElems || s.rows * s.cols != s.numel))
        Fail("ERR_SHAPE", at + ": centralization shape " + std::to_string(s.rows) + " x " + std::to_string(s.cols) +
                              " does not hold its " + std::to_string(s.numel) + " elements");
    }
    Napi::Object po = ObjectArg(info, 2, "plan");
    GradPlan plan;
    plan.noise_std = Field(po, "plan", "noiseStd");
    plan.noise_seed = static_cast<uint64_t>(IntField(po, "plan", "noiseSeed", 0, kMaxKey));
    plan.noise_step = static_cast<uint64_t>(IntField(po, "plan", "noiseStep", 0, kMaxU32));
    plan.scale_factor = Field(po, "plan", "scaleFactor");
    plan.scale_threshold = Field(po, "plan", "scaleThreshold");
    plan.clip_norm = Field(po, "plan", "clipNorm");
    plan.l2_norm = Field(po, "plan", "l2Norm");
    if (plan.clip_norm < 0) Fail("ERR_ARG", "plan.clipNorm: expected a number >= 0 (0: no clipping)");
    if (plan.l2_norm < 0) Fail("ERR_ARG", "plan.l2Norm: expected a number >= 0");
    auto mean_abs = GetArray<double>(info, 3, "meanAbs", -1, true);
    const bool scaling = plan.scale_factor != 1 && plan.scale_threshold > 0;
    if (scaling && mean_abs.length != nt)
      Fail("ERR_SHAPE", "meanAbs: the plan scales by mean |g|: expected " + std::to_string(nt) + " values, got " +
                            std::to_string(mean_abs.length));
    plan.mean_abs = mean_abs.data;
    const bool update = !(info[4].IsUndefined() || info[4].IsNull());
    ArrayArg<float> param, m, v;
    AdamWParams adam;
    std::vector<Napi::Value> pins{grad.js, table.js};
    if (mean_abs.data) pins.push_back(mean_abs.js);
    if (update) {
      param = GetArray<float>(info, 4, "param", n);
      m = GetArray<float>(info, 5, "m", n);
      v = GetArray<float>(info, 6, "v", n);
      Napi::Object ao = ObjectArg(info, 7, "adam");
      adam.lr = static_cast<float>(Field(ao, "adam", "lr"));
      adam.beta1 = static_cast<float>(Field(ao, "adam", "beta1"));
      adam.beta2 = static_cast<float>(Field(ao, "adam", "beta2"));
      adam.eps = static_cast<float>(Field(ao, "adam", "eps"));
      adam.weight_decay = static_cast<float>(Field(ao, "adam", "weightDecay"));
      adam.step = IntField(ao, "adam", "step", 1, kMaxKey);
      CheckAdamW(adam);
      pins.insert(pins.end(), {param.js, m.js, v.js});
    }
    auto fx = std::make_shared<PlanEffects>();
    float *pg = grad.data, *pp = param.data, *pm = m.data, *pv = v.data;
    return RunAsync(
        info.Env(), "optimizerStep",
        [=] { *fx = optimizer_step(pg, n, pp, pm, pv, spans->data(), nt, plan, adam); },
        [fx](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("noised", Napi::Number::New(env, static_cast<double>(fx->noised)));
          o.Set("scaled", Napi::Number::New(env, static_cast<double>(fx->scaled)));
          o.Set("centralized", Napi::Number::New(env, static_cast<double>(fx->centralized)));
          o.Set("clipFactor", Napi::Number::New(env, fx->clip_factor));
          o.Set("normBeforeClip", Napi::Number::New(env, fx->norm_before_clip));
          return o;
        },
        pins);
  });
}

}  // namespace

void InitOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("adamwStep", Napi::Function::New(env, AdamwStep, "adamwStep"));
  exports.Set("gradStats", Napi::Function::New(env, GradStatsBinding, "gradStats"));
  exports.Set("addNoise", Napi::Function::New(env, AddNoise, "addNoise"));
  exports.Set("gradPartialSums", Napi::Function::New(env, GradPartialSums, "gradPartialSums"));
  exports.Set("philoxNormal", Napi::Function::New(env, PhiloxNormal, "philoxNormal"));
  exports.Set("philox4x32", Napi::Function::New(env, Philox4x32, "philox4x32"));
  exports.Set("scale", Napi::Function::New(env, Scale, "scale"));
  exports.Set("centralize", Napi::Function::New(env, Centralize, "centralize"));
  exports.Set("clipByGlobalNorm", Napi::Function::New(env, ClipByGlobalNorm, "clipByGlobalNorm"));
  exports.Set("zero", Napi::Function::New(env, Zero, "zero"));
  exports.Set("optimizerStep", Napi::Function::New(env, OptimizerStep, "optimizerStep"));
}

}  // namespace ua
