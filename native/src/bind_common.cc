// Bindings for thread control, build information, the native call counters and the raw matmul
// (used by `bench gemm` and tests).
#include <omp.h>

#include "kernels/matmul.h"
#include "napi_util.h"

namespace ua {

namespace {

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

// matmul(C, A, B, M, N, K, transA, transB, alpha, beta) -> Promise<void>
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    int64_t M = GetInt(info, 3, "M"), N = GetInt(info, 4, "N"), K = GetInt(info, 5, "K");
    bool ta = GetBool(info, 6, "transA"), tb = GetBool(info, 7, "transB");
    float alpha = static_cast<float>(GetNumber(info, 8, "alpha"));
    float beta = static_cast<float>(GetNumber(info, 9, "beta"));
    auto C = GetArray<float>(info, 0, "C", M * N);
    auto A = GetArray<float>(info, 1, "A", M * K);
    auto B = GetArray<float>(info, 2, "B", K * N);
    float *c = C.data;
    const float *a = A.data, *b = B.data;
    return RunAsync(
        info.Env(), [=] { matmul(c, a, b, M, N, K, ta, tb, alpha, beta); }, nullptr, {C.js, A.js, B.js});
  });
}

}  // namespace

void InitCommon(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads, "getThreads"));
  exports.Set("nativeCallCounts", Napi::Function::New(env, NativeCallCounts, "nativeCallCounts"));
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  Napi::Object build = Napi::Object::New(env);
  build.Set("openmp", Napi::Number::New(env, _OPENMP));
  build.Set("blas", Napi::String::New(env, "openblas"));
  exports.Set("build", build);
}

}  // namespace ua
