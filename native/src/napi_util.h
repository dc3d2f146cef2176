// Thin N-API helpers shared by the bind_*.cc files: the mapping of the addon's CodedError
// (error.h) to JS errors with `code`, argument validation and a promise-returning worker that
// runs plain C++ off the main thread.
// Rule: Execute() never touches JS values; every JS input used by the work is pinned by a
// reference until the promise settles.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "error.h"
#include "kernels/common.h"

namespace ua {

inline Napi::Error MakeCodedError(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

[[noreturn]] inline void Fail(const std::string& code, const std::string& msg) { throw CodedError(code, msg); }

// Typed-array argument access. `what` names the argument in error messages.
template <typename T> struct TypedArrayTraits;
template <> struct TypedArrayTraits<float> {
  static constexpr napi_typedarray_type type = napi_float32_array;
  static constexpr const char* name = "Float32Array";
};
template <> struct TypedArrayTraits<int32_t> {
  static constexpr napi_typedarray_type type = napi_int32_array;
  static constexpr const char* name = "Int32Array";
};
template <> struct TypedArrayTraits<uint16_t> {  // bf16 bit patterns
  static constexpr napi_typedarray_type type = napi_uint16_array;
  static constexpr const char* name = "Uint16Array";
};
template <> struct TypedArrayTraits<uint8_t> {
  static constexpr napi_typedarray_type type = napi_uint8_array;
  static constexpr const char* name = "Uint8Array";
};
template <> struct TypedArrayTraits<double> {
  static constexpr napi_typedarray_type type = napi_float64_array;
  static constexpr const char* name = "Float64Array";
};

// A validated typed-array argument: pointer + length, plus the JS object to pin.
template <typename T> struct ArrayArg {
  T* data = nullptr;
  int64_t length = 0;
  Napi::Value js;
};

// expected < 0: any length. allow_null: undefined/null gives {nullptr, 0}.
template <typename T>
ArrayArg<T> GetArray(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t expected = -1,
                     bool allow_null = false) {
  Napi::Value v = info[i];
  if (allow_null && (v.IsUndefined() || v.IsNull())) return {};
  if (!v.IsTypedArray()) Fail("ERR_DTYPE", std::string(what) + ": expected a " + TypedArrayTraits<T>::name);
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != TypedArrayTraits<T>::type)
    Fail("ERR_DTYPE", std::string(what) + ": expected a " + TypedArrayTraits<T>::name);
  int64_t len = static_cast<int64_t>(ta.ElementLength());
  if (expected >= 0 && len != expected)
    Fail("ERR_SHAPE", std::string(what) + ": expected " + std::to_string(expected) + " elements, got " +
                          std::to_string(len));
  ArrayArg<T> a;
  a.data = reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  a.length = len;
  a.js = v;
  return a;
}

inline int64_t GetInt(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t min = 0,
                      int64_t max = INT64_MAX) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) Fail("ERR_ARG", std::string(what) + ": expected an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)))
    Fail("ERR_ARG", std::string(what) + ": expected an integer, got " + std::to_string(d));
  int64_t x = static_cast<int64_t>(d);
  if (x < min || x > max)
    Fail("ERR_ARG", std::string(what) + ": expected a value in [" + std::to_string(min) + ", " +
                        std::to_string(max) + "], got " + std::to_string(x));
  return x;
}

inline double GetNumber(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) Fail("ERR_ARG", std::string(what) + ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline bool GetBool(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) Fail("ERR_ARG", std::string(what) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

// Async calls queued so far, by binding name (main thread only): the worker hops that
// `nativeCallCounts()` reports (bench step: native calls per optimizer step).
inline std::map<std::string, double>& AsyncCallCounts() {
  static std::map<std::string, double> counts;
  return counts;
}

// Runs `work` on the libuv thread pool and settles a promise with `result(env)`.
// Exceptions from work become coded rejections (a CodedError keeps its code; bad_alloc ->
// ERR_NO_MEMORY; anything else -> ERR_NATIVE). `name` (the binding's JS name) names the async
// resource and counts the call.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Result = std::function<Napi::Value(Napi::Env)>;

  PromiseWorker(Napi::Env env, const char* name, Work work, Result result, const std::vector<Napi::Value>& pins)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        result_(std::move(result)) {
    for (const auto& v : pins)
      if (v.IsObject()) pins_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    ++AsyncCallCounts()[name];
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const CodedError& e) {
      code_ = e.code;
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "ERR_NO_MEMORY";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "ERR_NATIVE";
      SetError(e.what());
    } catch (...) {
      code_ = "ERR_NATIVE";
      SetError("unknown native error");
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    deferred_.Reject(MakeCodedError(Env(), code_.empty() ? "ERR_NATIVE" : code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Result result_;
  std::vector<Napi::ObjectReference> pins_;
  std::string code_;
};

// Queue work and return its promise. `pins`: JS values whose memory the work reads or writes.
inline Napi::Promise RunAsync(Napi::Env env, const char* name, PromiseWorker::Work work, PromiseWorker::Result result,
                              const std::vector<Napi::Value>& pins) {
  auto* w = new PromiseWorker(env, name, std::move(work), std::move(result), pins);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// The single-kernel bindings (bind_basic.cc, bind_attention.cc, matmul) count under "kernel": a
// training step never calls them (the model runs its kernels natively).
inline Napi::Promise RunAsync(Napi::Env env, PromiseWorker::Work work, PromiseWorker::Result result,
                              const std::vector<Napi::Value>& pins) {
  return RunAsync(env, "kernel", std::move(work), std::move(result), pins);
}

// Wraps a binding body so validation failures become coded JS exceptions (sync) instead of crashes.
template <typename F> Napi::Value Guard(const Napi::CallbackInfo& info, F&& body) {
  Napi::Env env = info.Env();
  try {
    return body();
  } catch (const CodedError& e) {
    throw MakeCodedError(env, e.code, e.what());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw MakeCodedError(env, "ERR_NO_MEMORY", "out of memory");
  } catch (const std::exception& e) {
    throw MakeCodedError(env, "ERR_NATIVE", e.what());
  }
}

// Each bind_*.cc file defines one of these; addon.cc calls them all.
void InitCommon(Napi::Env env, Napi::Object exports);     // bind_common.cc: threads, matmul, bf16, peaks, build info, call counts
void InitBasic(Napi::Env env, Napi::Object exports);      // bind_basic.cc: linear, embedding, norms, rope, ...
void InitOptim(Napi::Env env, Napi::Object exports);      // bind_optim.cc: AdamW, gradient stats, policy ops
void InitAttention(Napi::Env env, Napi::Object exports);  // bind_attention.cc: flash attention, LM head + CE
void InitModel(Napi::Env env, Napi::Object exports);      // bind_model*.cc: the Llama-family model
void InitConvert(Napi::Env env, Napi::Object exports);    // bind_convert.cc: F16/BF16 -> F32
void InitComm(Napi::Env env, Napi::Object exports);       // bind_comm.cc: Gloo communicator, Ulysses all-to-all
void InitGenerate(Napi::Env env, Napi::Object exports);   // bind_generate.cc: KV-cache inference sessions (after InitModel)
void InitMmap(Napi::Env env, Napi::Object exports);       // bind_mmap.cc: read-only file mappings (token cache)
void InitCuda(Napi::Env env, Napi::Object exports);       // bind_cuda.cc: CUDA availability, run-time library search

}  // namespace ua
