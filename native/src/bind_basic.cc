// N-API bindings for the element-wise and GEMM-based layer kernels (linear, embedding, RMSNorm,
// RoPE, SwiGLU, residual). Each validates every argument against lengths derived from the size
// arguments, then runs the kernel off the main thread and returns a Promise<void>.
// Must never touch JS values inside the work lambda, nor accept a buffer shorter than the kernel reads.
#include <cmath>

#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "napi_util.h"

namespace ua {

namespace {

// Sizes are capped so products of two or three of them stay exact in int64 and in JS numbers.
constexpr int64_t kMaxDim = int64_t(1) << 31;
constexpr int64_t kMaxElems = int64_t(1) << 40;

int64_t Dim(const Napi::CallbackInfo& info, size_t i, const char* what) { return GetInt(info, i, what, 0, kMaxDim); }

int64_t Elems(int64_t a, int64_t b, const char* what) {
  if (a != 0 && b > kMaxElems / a) Fail("ERR_ARG", std::string(what) + ": too many elements");
  return a * b;
}

// linearForward(y, x, W, b|null, n, in, out)
Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = Dim(info, 4, "n"), in = Dim(info, 5, "in"), out = Dim(info, 6, "out");
    auto y = GetArray<float>(info, 0, "y", Elems(n, out, "y"));
    auto x = GetArray<float>(info, 1, "x", Elems(n, in, "x"));
    auto W = GetArray<float>(info, 2, "W", Elems(out, in, "W"));
    auto b = GetArray<float>(info, 3, "b", out, true);
    float* py = y.data;
    const float *px = x.data, *pW = W.data, *pb = b.data;
    return RunAsync(
        info.Env(), [=] { linear_forward(py, px, pW, pb, n, in, out); }, nullptr, {y.js, x.js, W.js, b.js});
  });
}

// linearBackward(dx|null, dW|null, db|null, dy, x, W, n, in, out)
Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = Dim(info, 6, "n"), in = Dim(info, 7, "in"), out = Dim(info, 8, "out");
    auto dx = GetArray<float>(info, 0, "dx", Elems(n, in, "dx"), true);
    auto dW = GetArray<float>(info, 1, "dW", Elems(out, in, "dW"), true);
    auto db = GetArray<float>(info, 2, "db", out, true);
    auto dy = GetArray<float>(info, 3, "dy", Elems(n, out, "dy"));
    auto x = GetArray<float>(info, 4, "x", Elems(n, in, "x"));
    auto W = GetArray<float>(info, 5, "W", Elems(out, in, "W"));
    float *pdx = dx.data, *pdW = dW.data, *pdb = db.data;
    const float *pdy = dy.data, *px = x.data, *pW = W.data;
    return RunAsync(
        info.Env(), [=] { linear_backward(pdx, pdW, pdb, pdy, px, pW, n, in, out); }, nullptr,
        {dx.js, dW.js, db.js, dy.js, x.js, W.js});
  });
}

// embeddingForward(y, ids, table, n, vocab, dim); out-of-range ids reject with ERR_SHAPE.
Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = Dim(info, 3, "n"), vocab = Dim(info, 4, "vocab"), dim = Dim(info, 5, "dim");
    auto y = GetArray<float>(info, 0, "y", Elems(n, dim, "y"));
    auto ids = GetArray<int32_t>(info, 1, "ids", n);
    auto table = GetArray<float>(info, 2, "table", Elems(vocab, dim, "table"));
    float* py = y.data;
    const int32_t* pids = ids.data;
    const float* pt = table.data;
    return RunAsync(
        info.Env(), [=] { embedding_forward(py, pids, pt, n, vocab, dim); }, nullptr, {y.js, ids.js, table.js});
  });
}

// embeddingBackward(dtable, dy, ids, n, vocab, dim)
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = Dim(info, 3, "n"), vocab = Dim(info, 4, "vocab"), dim = Dim(info, 5, "dim");
    auto dt = GetArray<float>(info, 0, "dtable", Elems(vocab, dim, "dtable"));
    auto dy = GetArray<float>(info, 1, "dy", Elems(n, dim, "dy"));
    auto ids = GetArray<int32_t>(info, 2, "ids", n);
    float* pdt = dt.data;
    const float* pdy = dy.data;
    const int32_t* pids = ids.data;
    return RunAsync(
        info.Env(), [=] { embedding_backward(pdt, pdy, pids, n, vocab, dim); }, nullptr, {dt.js, dy.js, ids.js});
  });
}

// rmsnormForward(y, rstd, x, w, n, dim, eps)
Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = Dim(info, 4, "n"), dim = GetInt(info, 5, "dim", 1, kMaxDim);
    const double eps = GetNumber(info, 6, "eps");
    if (!(eps >= 0) || !std::isfinite(eps)) Fail("ERR_ARG", "eps: expected a finite non-negative number");
    auto y = GetArray<float>(info, 0, "y", Elems(n, dim, "y"));
    auto rstd = GetArray<float>(info, 1, "rstd", n);
    auto x = GetArray<float>(info, 2, "x", Elems(n, dim, "x"));
    auto w = GetArray<float>(info, 3, "w", dim);
    float *py = y.data, *pr = rstd.data;
    const float *px = x.data, *pw = w.data;
    const float e = static_cast<float>(eps);
    return RunAsync(
        info.Env(), [=] { rmsnorm_forward(py, pr, px, pw, n, dim, e); }, nullptr, {y.js, rstd.js, x.js, w.js});
  });
}

// rmsnormBackward(dx|null, dw|null, dy, x, w, rstd, n, dim)
Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = Dim(info, 6, "n"), dim = GetInt(info, 7, "dim", 1, kMaxDim);
    auto dx = GetArray<float>(info, 0, "dx", Elems(n, dim, "dx"), true);
    auto dw = GetArray<float>(info, 1, "dw", dim, true);
    auto dy = GetArray<float>(info, 2, "dy", Elems(n, dim, "dy"));
    auto x = GetArray<float>(info, 3, "x", Elems(n, dim, "x"));
    auto w = GetArray<float>(info, 4, "w", dim);
    auto rstd = GetArray<float>(info, 5, "rstd", n);
    float *pdx = dx.data, *pdw = dw.data;
    const float *pdy = dy.data, *px = x.data, *pw = w.data, *pr = rstd.data;
    return RunAsync(
        info.Env(), [=] { rmsnorm_backward(pdx, pdw, pdy, px, pw, pr, n, dim); }, nullptr,
        {dx.js, dw.js, dy.js, x.js, w.js, rstd.js});
  });
}

// ropeForward / ropeBackward(x, pos, n, heads, d, theta): in place.
template <bool kForward> Napi::Value Rope(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t n = Dim(info, 2, "n"), heads = Dim(info, 3, "heads"), d = GetInt(info, 4, "d", 2, kMaxDim);
    if (d % 2 != 0) Fail("ERR_SHAPE", "d: the RoPE head dimension must be even, got " + std::to_string(d));
    const double theta = GetNumber(info, 5, "theta");
    if (!(theta > 0) || !std::isfinite(theta)) Fail("ERR_ARG", "theta: expected a finite positive number");
    auto x = GetArray<float>(info, 0, "x", Elems(Elems(n, heads, "x"), d, "x"));
    auto pos = GetArray<int32_t>(info, 1, "pos", n);
    float* px = x.data;
    const int32_t* pp = pos.data;
    const float th = static_cast<float>(theta);
    return RunAsync(
        info.Env(),
        [=] {
          if (kForward)
            rope_forward(px, pp, n, heads, d, th);
          else
            rope_backward(px, pp, n, heads, d, th);
        },
        nullptr, {x.js, pos.js});
  });
}

// swigluForward(out, gate, up, count)
Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t count = GetInt(info, 3, "count", 0, kMaxElems);
    auto out = GetArray<float>(info, 0, "out", count);
    auto gate = GetArray<float>(info, 1, "gate", count);
    auto up = GetArray<float>(info, 2, "up", count);
    float* po = out.data;
    const float *pg = gate.data, *pu = up.data;
    return RunAsync(
        info.Env(), [=] { swiglu_forward(po, pg, pu, count); }, nullptr, {out.js, gate.js, up.js});
  });
}

// swigluBackward(dgate|null, dup|null, dout, gate, up, count)
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t count = GetInt(info, 5, "count", 0, kMaxElems);
    auto dgate = GetArray<float>(info, 0, "dgate", count, true);
    auto dup = GetArray<float>(info, 1, "dup", count, true);
    auto dout = GetArray<float>(info, 2, "dout", count);
    auto gate = GetArray<float>(info, 3, "gate", count);
    auto up = GetArray<float>(info, 4, "up", count);
    float *pdg = dgate.data, *pdu = dup.data;
    const float *pdo = dout.data, *pg = gate.data, *pu = up.data;
    return RunAsync(
        info.Env(), [=] { swiglu_backward(pdg, pdu, pdo, pg, pu, count); }, nullptr,
        {dgate.js, dup.js, dout.js, gate.js, up.js});
  });
}

// residualForward(y, a, b, count)
Napi::Value ResidualForward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t count = GetInt(info, 3, "count", 0, kMaxElems);
    auto y = GetArray<float>(info, 0, "y", count);
    auto a = GetArray<float>(info, 1, "a", count);
    auto b = GetArray<float>(info, 2, "b", count);
    float* py = y.data;
    const float *pa = a.data, *pb = b.data;
    return RunAsync(
        info.Env(), [=] { residual_forward(py, pa, pb, count); }, nullptr, {y.js, a.js, b.js});
  });
}

// residualBackward(da|null, db|null, dy, count)
Napi::Value ResidualBackward(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int64_t count = GetInt(info, 3, "count", 0, kMaxElems);
    auto da = GetArray<float>(info, 0, "da", count, true);
    auto db = GetArray<float>(info, 1, "db", count, true);
    auto dy = GetArray<float>(info, 2, "dy", count);
    float *pda = da.data, *pdb = db.data;
    const float* pdy = dy.data;
    return RunAsync(
        info.Env(), [=] { residual_backward(pda, pdb, pdy, count); }, nullptr, {da.js, db.js, dy.js});
  });
}

}  // namespace

void InitBasic(Napi::Env env, Napi::Object exports) {
  exports.Set("linearForward", Napi::Function::New(env, LinearForward, "linearForward"));
  exports.Set("linearBackward", Napi::Function::New(env, LinearBackward, "linearBackward"));
  exports.Set("embeddingForward", Napi::Function::New(env, EmbeddingForward, "embeddingForward"));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward, "embeddingBackward"));
  exports.Set("rmsnormForward", Napi::Function::New(env, RmsnormForward, "rmsnormForward"));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward, "rmsnormBackward"));
  exports.Set("ropeForward", Napi::Function::New(env, Rope<true>, "ropeForward"));
  exports.Set("ropeBackward", Napi::Function::New(env, Rope<false>, "ropeBackward"));
  exports.Set("swigluForward", Napi::Function::New(env, SwigluForward, "swigluForward"));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward, "swigluBackward"));
  exports.Set("residualForward", Napi::Function::New(env, ResidualForward, "residualForward"));
  exports.Set("residualBackward", Napi::Function::New(env, ResidualBackward, "residualBackward"));
}

}  // namespace ua
