// Bindings for thread control, build information, the native call counters, the raw matrix products (fp32 and bf16, used by
// `bench gemm` and tests), the fp32 <-> bf16 conversions and the arithmetic peak probes.
// Must never let a product read or write past a buffer: every operand's length is checked
// against its rows and leading dimension first.
#include <omp.h>

#include "kernels/bf16.h"
#include "kernels/matmul.h"
#include "kernels/peak.h"
#include "napi_util.h"

namespace ua {

namespace {

// Sizes are capped so products of two of them stay exact in int64 and in JS numbers.
constexpr int64_t kMaxDim = int64_t(1) << 31;

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    int64_t n = GetInt(info, 0, "threads", 1, 1024);
    set_num_threads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), num_threads());
}

// nativeCallCounts() -> { [binding]: count }: the async calls queued since the addon loaded (every
// worker hop, by binding name; the single-kernel bindings count as "kernel").
Napi::Value NativeCallCounts(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  for (const auto& [name, count] : AsyncCallCounts()) o.Set(name, Napi::Number::New(info.Env(), count));
  return o;
}

// Elements an operand of `rows` stored rows of `cols` with leading dimension `ld` spans.
int64_t Span(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

template <typename T>
ArrayArg<T> GetOperand(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t rows, int64_t cols,
                       int64_t ld, bool exact) {
  auto a = GetArray<T>(info, i, what, exact ? rows * cols : -1);
  const int64_t need = Span(rows, cols, ld);
  if (a.length < need)
    Fail("ERR_SHAPE", std::string(what) + ": expected at least " + std::to_string(need) + " elements (" +
                          std::to_string(rows) + " rows of " + std::to_string(cols) + ", leading dimension " +
                          std::to_string(ld) + "), got " + std::to_string(a.length));
  return a;
}

struct ProductArgs {
  int64_t M, N, K, lda, ldb, ldc;
  bool ta, tb, exact;
  float alpha, beta;
};

// (C, A, B, M, N, K, transA, transB, alpha, beta[, lda, ldb, ldc]); without leading dimensions the
// operands must be exactly their matrices' sizes.
ProductArgs GetProductArgs(const Napi::CallbackInfo& info) {
  ProductArgs p;
  p.M = GetInt(info, 3, "M", 0, kMaxDim), p.N = GetInt(info, 4, "N", 0, kMaxDim), p.K = GetInt(info, 5, "K", 0, kMaxDim);
  p.ta = GetBool(info, 6, "transA"), p.tb = GetBool(info, 7, "transB");
  p.alpha = static_cast<float>(GetNumber(info, 8, "alpha"));
  p.beta = static_cast<float>(GetNumber(info, 9, "beta"));
  p.exact = info.Length() <= 10 || info[10].IsUndefined();
  if (p.exact) {
    p.lda = p.ta ? p.M : p.K, p.ldb = p.tb ? p.K : p.N, p.ldc = p.N;
  } else {
    p.lda = GetInt(info, 10, "lda", 1, kMaxDim), p.ldb = GetInt(info, 11, "ldb", 1, kMaxDim);
    p.ldc = GetInt(info, 12, "ldc", 1, kMaxDim);
    if (p.lda < (p.ta ? p.M : p.K) || p.ldb < (p.tb ? p.K : p.N) || p.ldc < p.N)
      Fail("ERR_ARG", "leading dimensions must be at least the stored rows' lengths (lda >= " +
                          std::to_string(p.ta ? p.M : p.K) + ", ldb >= " + std::to_string(p.tb ? p.K : p.N) +
                          ", ldc >= " + std::to_string(p.N) + ")");
  }
  return p;
}

// matmul / matmulBf16 / matmulOpenblas(C, A, B, M, N, K, transA, transB, alpha, beta[, lda, ldb, ldc]) -> Promise<void>
template <typename In, typename Run>
Napi::Value Product(const Napi::CallbackInfo& info, Run run) {
  return Guard(info, [&]() -> Napi::Value {
    const ProductArgs p = GetProductArgs(info);
    auto C = GetOperand<float>(info, 0, "C", p.M, p.N, p.ldc, p.exact);
    auto A = GetOperand<In>(info, 1, "A", p.ta ? p.K : p.M, p.ta ? p.M : p.K, p.lda, p.exact);
    auto B = GetOperand<In>(info, 2, "B", p.tb ? p.N : p.K, p.tb ? p.K : p.N, p.ldb, p.exact);
    float* c = C.data;
    const In *a = A.data, *b = B.data;
    return RunAsync(info.Env(), [=] { run(c, a, b, p); }, nullptr, {C.js, A.js, B.js});
  });
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return Product<float>(info, [](float* c, const float* a, const float* b, const ProductArgs& p) {
    matmul_ld(c, p.ldc, a, p.lda, b, p.ldb, p.M, p.N, p.K, p.ta, p.tb, p.alpha, p.beta);
  });
}

Napi::Value MatmulBf16(const Napi::CallbackInfo& info) {
  return Product<uint16_t>(info, [](float* c, const uint16_t* a, const uint16_t* b, const ProductArgs& p) {
    matmul_bf16_ld(c, p.ldc, a, p.lda, b, p.ldb, p.M, p.N, p.K, p.ta, p.tb, p.alpha, p.beta);
  });
}

Napi::Value MatmulOpenblas(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (info.Length() > 10 && !info[10].IsUndefined()) Fail("ERR_ARG", "matmulOpenblas takes no leading dimensions");
    return Product<float>(info, [](float* c, const float* a, const float* b, const ProductArgs& p) {
      matmul_openblas(c, a, b, p.M, p.N, p.K, p.ta, p.tb, p.alpha, p.beta);
    });
  });
}

// f32ToBf16(out: Uint16Array, in: Float32Array, portable: boolean) -> Promise<void>
Napi::Value F32ToBf16(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto in = GetArray<float>(info, 1, "in");
    auto out = GetArray<uint16_t>(info, 0, "out", in.length);
    const bool portable = GetBool(info, 2, "portable");
    uint16_t* o = out.data;
    const float* i = in.data;
    const int64_t n = in.length;
    return RunAsync(
        info.Env(), [=] { portable ? f32_to_bf16_portable(o, i, n) : f32_to_bf16(o, i, n); }, nullptr,
        {out.js, in.js});
  });
}

// bf16ToF32(out: Float32Array, in: Uint16Array) -> Promise<void>
Napi::Value Bf16ToF32(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto in = GetArray<uint16_t>(info, 1, "in");
    auto out = GetArray<float>(info, 0, "out", in.length);
    float* o = out.data;
    const uint16_t* i = in.data;
    const int64_t n = in.length;
    return RunAsync(info.Env(), [=] { bf16_to_f32(o, i, n); }, nullptr, {out.js, in.js});
  });
}

// matmulImpl(bf16, M, N, K, transA, transB) -> Promise<string> (creates the primitive: off the main thread)
Napi::Value MatmulImpl(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const bool bf16 = GetBool(info, 0, "bf16");
    const int64_t M = GetInt(info, 1, "M", 0, kMaxDim), N = GetInt(info, 2, "N", 0, kMaxDim),
                  K = GetInt(info, 3, "K", 0, kMaxDim);
    const bool ta = GetBool(info, 4, "transA"), tb = GetBool(info, 5, "transB");
    auto impl = std::make_shared<std::string>();
    return RunAsync(
        info.Env(), [=] { *impl = matmul_impl(bf16, M, N, K, ta, tb); },
        [impl](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *impl); }, {});
  });
}

// gemmInfo() -> { onednn: string, avx512bf16: boolean } (what the products run on, after DNNL_MAX_CPU_ISA)
Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("onednn", Napi::String::New(info.Env(), onednn_info()));
    o.Set("avx512bf16", Napi::Boolean::New(info.Env(), use_avx512bf16()));
    return o;
  });
}

// measurePeak(kind: 'fp32' | 'bf16', threads, secondsPerRep, reps) -> Promise<{available, gflops, seconds, reps, threads, isa}>
Napi::Value MeasurePeak(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsString()) Fail("ERR_ARG", "kind: expected 'fp32' or 'bf16'");
    const std::string k = info[0].As<Napi::String>().Utf8Value();
    if (k != "fp32" && k != "bf16") Fail("ERR_ARG", "kind: expected 'fp32' or 'bf16', got '" + k + "'");
    const PeakKind kind = k == "fp32" ? PeakKind::fp32_fma : PeakKind::bf16_dot;
    const int threads = static_cast<int>(GetInt(info, 1, "threads", 1, 1024));
    const double seconds = GetNumber(info, 2, "secondsPerRep");
    if (!(seconds > 0 && seconds <= 10)) Fail("ERR_ARG", "secondsPerRep: expected a number in (0, 10]");
    const int reps = static_cast<int>(GetInt(info, 3, "reps", 1, 100));
    auto res = std::make_shared<PeakResult>();
    return RunAsync(
        info.Env(), [=] { *res = measure_peak(kind, threads, seconds, reps); },
        [res](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("available", Napi::Boolean::New(env, res->available));
          o.Set("gflops", Napi::Number::New(env, res->gflops));
          o.Set("seconds", Napi::Number::New(env, res->seconds));
          o.Set("reps", Napi::Number::New(env, res->reps));
          o.Set("threads", Napi::Number::New(env, res->threads));
          o.Set("isa", Napi::String::New(env, res->isa));
          return o;
        },
        {});
  });
}

}  // namespace

void InitCommon(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads, "getThreads"));
  exports.Set("nativeCallCounts", Napi::Function::New(env, NativeCallCounts, "nativeCallCounts"));
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  exports.Set("matmulBf16", Napi::Function::New(env, MatmulBf16, "matmulBf16"));
  exports.Set("matmulOpenblas", Napi::Function::New(env, MatmulOpenblas, "matmulOpenblas"));
  exports.Set("matmulImpl", Napi::Function::New(env, MatmulImpl, "matmulImpl"));
  exports.Set("f32ToBf16", Napi::Function::New(env, F32ToBf16, "f32ToBf16"));
  exports.Set("bf16ToF32", Napi::Function::New(env, Bf16ToF32, "bf16ToF32"));
  exports.Set("gemmInfo", Napi::Function::New(env, GemmInfo, "gemmInfo"));
  exports.Set("measurePeak", Napi::Function::New(env, MeasurePeak, "measurePeak"));
  Napi::Object build = Napi::Object::New(env);
  build.Set("openmp", Napi::Number::New(env, _OPENMP));
  build.Set("blas", Napi::String::New(env, "onednn+openblas"));
  exports.Set("build", build);
}

}  // namespace ua
