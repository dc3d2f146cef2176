// Bindings for flash attention (forward, backward, fp64 reference, scratch high-water mark) and the
// fused LM head + cross-entropy. Thin: validate every argument (coded errors naming the argument),
// then run the kernel off the main thread. Must never run kernel work on the main thread.
#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_bf16.h"
#include "kernels/lm_head_ce.h"
#include "napi_util.h"

namespace ua {

namespace {

struct AttnArgs {
  AttnShape sh;
  ArrayArg<int32_t> docs;
};

// Reads (docLens, s, H, Hkv, d, causal, scale[, window]) starting at argument `i`; window
// (sliding window, 0 or absent: none) is optional so older callers keep working.
AttnArgs GetAttnArgs(const Napi::CallbackInfo& info, size_t i) {
  AttnArgs a;
  a.sh.s = GetInt(info, i + 1, "s", 0, int64_t{1} << 31);
  a.sh.H = GetInt(info, i + 2, "H", 1, 4096);
  a.sh.Hkv = GetInt(info, i + 3, "Hkv", 1, 4096);
  a.sh.d = GetInt(info, i + 4, "d", 1, 4096);
  a.sh.causal = GetBool(info, i + 5, "causal");
  const double scale = GetNumber(info, i + 6, "scale");
  if (!std::isfinite(scale) || scale < 0)
    Fail("ERR_ARG", "scale: expected a finite number >= 0 (0 means 1/sqrt(d)), got " + std::to_string(scale));
  a.sh.scale = static_cast<float>(scale);
  if (info.Length() > i + 7 && !info[i + 7].IsUndefined() && !info[i + 7].IsNull()) {
    a.sh.window = GetInt(info, i + 7, "window", 0, int64_t{1} << 31);
    if (a.sh.window > 0 && !a.sh.causal) Fail("ERR_ARG", "window: a sliding window needs causal attention");
  }
  if (a.sh.H % a.sh.Hkv != 0)
    Fail("ERR_SHAPE", "H: expected a multiple of Hkv (" + std::to_string(a.sh.Hkv) + "), got " + std::to_string(a.sh.H));
  a.docs = GetArray<int32_t>(info, i, "docLens", -1, true);
  if (a.docs.data) {
    int64_t total = 0;
    for (int64_t j = 0; j < a.docs.length; ++j) total += std::llabs(static_cast<long long>(a.docs.data[j]));
    if (total != a.sh.s)
      Fail("ERR_SHAPE", "docLens: absolute lengths must sum to s = " + std::to_string(a.sh.s) + ", got " +
                            std::to_string(total));
  }
  return a;
}

// flashAttentionForward(out, lse, q, k, v, docLens|null, s, H, Hkv, d, causal, scale[, window]) -> Promise<void>
Napi::Value FlashForward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    AttnArgs a = GetAttnArgs(info, 5);
    const AttnShape sh = a.sh;
    const int64_t nq = sh.s * sh.H * sh.d, nkv = sh.s * sh.Hkv * sh.d;
    auto out = GetArray<float>(info, 0, "out", nq);
    auto lse = GetArray<float>(info, 1, "lse", sh.H * sh.s);
    auto q = GetArray<float>(info, 2, "q", nq);
    auto k = GetArray<float>(info, 3, "k", nkv);
    auto v = GetArray<float>(info, 4, "v", nkv);
    float *o = out.data, *l = lse.data;
    const float *qp = q.data, *kp = k.data, *vp = v.data;
    const int32_t* docs = a.docs.data;
    const int64_t nd = a.docs.length;
    return RunAsync(
        info.Env(), [=] { flash_attention_forward(o, l, qp, kp, vp, docs, nd, sh); }, nullptr,
        {out.js, lse.js, q.js, k.js, v.js, a.docs.js});
  });
}

// flashAttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, docLens|null, s, H, Hkv, d, causal, scale[, window])
Napi::Value FlashBackward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    AttnArgs a = GetAttnArgs(info, 9);
    const AttnShape sh = a.sh;
    const int64_t nq = sh.s * sh.H * sh.d, nkv = sh.s * sh.Hkv * sh.d;
    auto dq = GetArray<float>(info, 0, "dq", nq);
    auto dk = GetArray<float>(info, 1, "dk", nkv);
    auto dv = GetArray<float>(info, 2, "dv", nkv);
    auto dout = GetArray<float>(info, 3, "dout", nq);
    auto q = GetArray<float>(info, 4, "q", nq);
    auto k = GetArray<float>(info, 5, "k", nkv);
    auto v = GetArray<float>(info, 6, "v", nkv);
    auto out = GetArray<float>(info, 7, "out", nq);
    auto lse = GetArray<float>(info, 8, "lse", sh.H * sh.s);
    float *gq = dq.data, *gk = dk.data, *gv = dv.data;
    const float *go = dout.data, *qp = q.data, *kp = k.data, *vp = v.data, *op = out.data, *lp = lse.data;
    const int32_t* docs = a.docs.data;
    const int64_t nd = a.docs.length;
    return RunAsync(
        info.Env(), [=] { flash_attention_backward(gq, gk, gv, go, qp, kp, vp, op, lp, docs, nd, sh); }, nullptr,
        {dq.js, dk.js, dv.js, dout.js, q.js, k.js, v.js, out.js, lse.js, a.docs.js});
  });
}

// flashAttentionForwardBf16(out, lse, q, k, v, docLens|null, s, H, Hkv, d, causal, scale[, window]):
// out, q, k, v are bf16 bit patterns (Uint16Array), lse fp32.
Napi::Value FlashForwardBf16(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    AttnArgs a = GetAttnArgs(info, 5);
    const AttnShape sh = a.sh;
    if (sh.d % 2 != 0) Fail("ERR_SHAPE", "d: bf16 attention needs an even head dim, got " + std::to_string(sh.d));
    const int64_t nq = sh.s * sh.H * sh.d, nkv = sh.s * sh.Hkv * sh.d;
    auto out = GetArray<uint16_t>(info, 0, "out", nq);
    auto lse = GetArray<float>(info, 1, "lse", sh.H * sh.s);
    auto q = GetArray<uint16_t>(info, 2, "q", nq);
    auto k = GetArray<uint16_t>(info, 3, "k", nkv);
    auto v = GetArray<uint16_t>(info, 4, "v", nkv);
    uint16_t* o = out.data;
    float* l = lse.data;
    const uint16_t *qp = q.data, *kp = k.data, *vp = v.data;
    const int32_t* docs = a.docs.data;
    const int64_t nd = a.docs.length;
    return RunAsync(
        info.Env(), [=] { flash_attention_forward_bf16(o, l, qp, kp, vp, docs, nd, sh); }, nullptr,
        {out.js, lse.js, q.js, k.js, v.js, a.docs.js});
  });
}

// flashAttentionBackwardBf16(dq, dk, dv, dout, q, k, v, out, lse, docLens|null, s, H, Hkv, d, causal, scale[, window]):
// gradients and lse fp32, the rest bf16 bit patterns.
Napi::Value FlashBackwardBf16(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    AttnArgs a = GetAttnArgs(info, 9);
    const AttnShape sh = a.sh;
    if (sh.d % 2 != 0) Fail("ERR_SHAPE", "d: bf16 attention needs an even head dim, got " + std::to_string(sh.d));
    const int64_t nq = sh.s * sh.H * sh.d, nkv = sh.s * sh.Hkv * sh.d;
    auto dq = GetArray<float>(info, 0, "dq", nq);
    auto dk = GetArray<float>(info, 1, "dk", nkv);
    auto dv = GetArray<float>(info, 2, "dv", nkv);
    auto dout = GetArray<uint16_t>(info, 3, "dout", nq);
    auto q = GetArray<uint16_t>(info, 4, "q", nq);
    auto k = GetArray<uint16_t>(info, 5, "k", nkv);
    auto v = GetArray<uint16_t>(info, 6, "v", nkv);
    auto out = GetArray<uint16_t>(info, 7, "out", nq);
    auto lse = GetArray<float>(info, 8, "lse", sh.H * sh.s);
    float *gq = dq.data, *gk = dk.data, *gv = dv.data;
    const uint16_t *go = dout.data, *qp = q.data, *kp = k.data, *vp = v.data, *op = out.data;
    const float* lp = lse.data;
    const int32_t* docs = a.docs.data;
    const int64_t nd = a.docs.length;
    return RunAsync(
        info.Env(), [=] { flash_attention_backward_bf16(gq, gk, gv, go, qp, kp, vp, op, lp, docs, nd, sh); }, nullptr,
        {dq.js, dk.js, dv.js, dout.js, q.js, k.js, v.js, out.js, lse.js, a.docs.js});
  });
}

Napi::Value AttnBf16Impl(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), attention_bf16_impl()); }

// attentionReference(out, q, k, v, docLens|null, s, H, Hkv, d, causal, scale[, window]) -> Promise<void>
Napi::Value AttnReference(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    AttnArgs a = GetAttnArgs(info, 4);
    const AttnShape sh = a.sh;
    const int64_t nq = sh.s * sh.H * sh.d, nkv = sh.s * sh.Hkv * sh.d;
    auto out = GetArray<float>(info, 0, "out", nq);
    auto q = GetArray<float>(info, 1, "q", nq);
    auto k = GetArray<float>(info, 2, "k", nkv);
    auto v = GetArray<float>(info, 3, "v", nkv);
    float* o = out.data;
    const float *qp = q.data, *kp = k.data, *vp = v.data;
    const int32_t* docs = a.docs.data;
    const int64_t nd = a.docs.length;
    return RunAsync(
        info.Env(), [=] { attention_reference_forward(o, qp, kp, vp, docs, nd, sh); }, nullptr,
        {out.js, q.js, k.js, v.js, a.docs.js});
  });
}

Napi::Value ScratchPeak(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(attention_scratch_peak_bytes()));
}

Napi::Value ResetScratchPeak(const Napi::CallbackInfo& info) {
  attention_reset_scratch_peak();
  return info.Env().Undefined();
}

struct CeArgs {
  int64_t n, dim, vocab, chunk;
  double normalizer;
};

// Reads (n, dim, vocab, normalizer, chunk) starting at argument `i` and checks labels.
CeArgs GetCeArgs(const Napi::CallbackInfo& info, size_t i, const ArrayArg<int32_t>& labels, bool need_normalizer) {
  CeArgs c;
  c.n = GetInt(info, i, "n", 0);
  c.dim = GetInt(info, i + 1, "dim", 1);
  c.vocab = GetInt(info, i + 2, "vocab", 1, INT32_MAX);
  c.normalizer = GetNumber(info, i + 3, "normalizer");
  c.chunk = GetInt(info, i + 4, "chunk", 0);
  if (need_normalizer && (!std::isfinite(c.normalizer) || c.normalizer <= 0))
    Fail("ERR_ARG", "normalizer: expected a finite number > 0 (global count of valid tokens), got " +
                        std::to_string(c.normalizer));
  if (labels.length != c.n)
    Fail("ERR_SHAPE", "labels: expected " + std::to_string(c.n) + " elements, got " + std::to_string(labels.length));
  for (int64_t t = 0; t < c.n; ++t)
    if (labels.data[t] >= c.vocab)
      Fail("ERR_ARG", "labels: token " + std::to_string(t) + " has label " + std::to_string(labels.data[t]) +
                          " >= vocab " + std::to_string(c.vocab));
  return c;
}

// The LM head + CE kernels of one precision: T is the element type of h and W (float, or uint16_t
// bf16 bit patterns); the losses, statistics and gradients are fp32 either way.
template <typename T>
using CeForwardFn = CeResult (*)(float*, float*, const T*, const T*, const int32_t*, int64_t, int64_t, int64_t, float, int64_t, int32_t*, const VocabSlices*);
template <typename T>
using CeBackwardFn = void (*)(float*, float*, const T*, const T*, const int32_t*, const float*, const float*, int64_t, int64_t, int64_t, float, int64_t, const VocabSlices*);

// lmHeadCeForward[Bf16](tokenLoss|null, lse|null, h, W, labels, n, dim, vocab, normalizer, chunk[, argmax|null])
//   -> Promise<{ loss, valid }>; the Bf16 variant takes h and W as bf16 bit patterns (Uint16Array).
template <typename T, CeForwardFn<T> kernel>
Napi::Value CeForward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto labels = GetArray<int32_t>(info, 4, "labels");
    const CeArgs c = GetCeArgs(info, 5, labels, true);
    auto tl = GetArray<float>(info, 0, "tokenLoss", c.n, true);
    auto lse = GetArray<float>(info, 1, "lse", c.n, true);
    auto h = GetArray<T>(info, 2, "h", c.n * c.dim);
    auto W = GetArray<T>(info, 3, "W", c.vocab * c.dim);
    auto am = GetArray<int32_t>(info, 10, "argmax", c.n, true);
    float *tlp = tl.data, *lp = lse.data;
    const T *hp = h.data, *wp = W.data;
    const int32_t* yp = labels.data;
    int32_t* amp = am.data;
    auto res = std::make_shared<CeResult>();
    return RunAsync(
        info.Env(),
        [=] { *res = kernel(tlp, lp, hp, wp, yp, c.n, c.dim, c.vocab, static_cast<float>(c.normalizer), c.chunk, amp, nullptr); },
        [res](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("loss", Napi::Number::New(env, res->loss));
          o.Set("valid", Napi::Number::New(env, static_cast<double>(res->valid)));
          return o;
        },
        {tl.js, lse.js, h.js, W.js, labels.js, am.js});
  });
}

// lmHeadCeBackward[Bf16](dh|null, dW|null, h, W, labels, lse|null, tokenWeight|null, n, dim, vocab, normalizer, chunk):
// dh and dW fp32 (accumulated); the Bf16 variant takes h and W as bf16 bit patterns.
template <typename T, CeBackwardFn<T> kernel>
Napi::Value CeBackward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto labels = GetArray<int32_t>(info, 4, "labels");
    const bool has_weight = !(info[6].IsUndefined() || info[6].IsNull());
    const CeArgs c = GetCeArgs(info, 7, labels, !has_weight);
    auto dh = GetArray<float>(info, 0, "dh", c.n * c.dim, true);
    auto dW = GetArray<float>(info, 1, "dW", c.vocab * c.dim, true);
    auto h = GetArray<T>(info, 2, "h", c.n * c.dim);
    auto W = GetArray<T>(info, 3, "W", c.vocab * c.dim);
    auto lse = GetArray<float>(info, 5, "lse", c.n, true);
    auto tw = GetArray<float>(info, 6, "tokenWeight", c.n, true);
    float *dhp = dh.data, *dwp = dW.data;
    const T *hp = h.data, *wp = W.data;
    const float *lp = lse.data, *twp = tw.data;
    const int32_t* yp = labels.data;
    const float norm = has_weight ? 1.f : static_cast<float>(c.normalizer);
    return RunAsync(
        info.Env(),
        [=] { kernel(dhp, dwp, hp, wp, yp, lp, twp, c.n, c.dim, c.vocab, norm, c.chunk, nullptr); }, nullptr,
        {dh.js, dW.js, h.js, W.js, labels.js, lse.js, tw.js});
  });
}

}  // namespace

void InitAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("flashAttentionForward", Napi::Function::New(env, FlashForward, "flashAttentionForward"));
  exports.Set("flashAttentionBackward", Napi::Function::New(env, FlashBackward, "flashAttentionBackward"));
  exports.Set("flashAttentionForwardBf16", Napi::Function::New(env, FlashForwardBf16, "flashAttentionForwardBf16"));
  exports.Set("flashAttentionBackwardBf16", Napi::Function::New(env, FlashBackwardBf16, "flashAttentionBackwardBf16"));
  exports.Set("attentionBf16Impl", Napi::Function::New(env, AttnBf16Impl, "attentionBf16Impl"));
  exports.Set("attentionReference", Napi::Function::New(env, AttnReference, "attentionReference"));
  exports.Set("attentionScratchPeak", Napi::Function::New(env, ScratchPeak, "attentionScratchPeak"));
  exports.Set("attentionResetScratchPeak", Napi::Function::New(env, ResetScratchPeak, "attentionResetScratchPeak"));
  exports.Set("lmHeadCeForward", Napi::Function::New(env, CeForward<float, lm_head_ce_forward>, "lmHeadCeForward"));
  exports.Set("lmHeadCeBackward", Napi::Function::New(env, CeBackward<float, lm_head_ce_backward>, "lmHeadCeBackward"));
  exports.Set("lmHeadCeForwardBf16", Napi::Function::New(env, CeForward<uint16_t, lm_head_ce_forward_bf16>, "lmHeadCeForwardBf16"));
  exports.Set("lmHeadCeBackwardBf16", Napi::Function::New(env, CeBackward<uint16_t, lm_head_ce_backward_bf16>, "lmHeadCeBackwardBf16"));
}

}  // namespace ua
