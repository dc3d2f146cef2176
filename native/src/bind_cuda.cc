// Bindings of the CUDA engine's device facts and run-time library search (cuda/api.h,
// device/dynlib.h): what the TS device seam asks before it selects `cuda`, and what the tests
// check on machines without a GPU. The same file compiles whether native/cuda was built by nvcc
// or the addon holds its stub. Must never hand a device pointer to JS, and never throw where a
// GPU is merely absent (availability answers instead).
#include <string>

#include "cuda/api.h"
#include "device/dynlib.h"
#include "napi_util.h"

namespace ua {

namespace {

const dynlib::LibrarySpec& SpecNamed(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) Fail("ERR_ARG", "library: expected 'cublas' or 'nccl'");
  const std::string n = info[i].As<Napi::String>().Utf8Value();
  if (n == "cublas") return dynlib::cublas_spec();
  if (n == "nccl") return dynlib::nccl_spec();
  Fail("ERR_ARG", "library: unknown '" + n + "' (expected 'cublas' or 'nccl')");
}

Napi::Array Strings(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::String::New(env, v[i]));
  return a;
}

// cudaAvailability() -> {built, devices, reason, runtimeVersion, driverVersion, arch}
Napi::Value CudaAvailability(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const cuda::Availability a = cuda::availability();
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("built", Napi::Boolean::New(env, a.built));
    o.Set("devices", Napi::Number::New(env, a.devices));
    o.Set("reason", Napi::String::New(env, a.reason));
    o.Set("runtimeVersion", Napi::Number::New(env, a.runtime_version));
    o.Set("driverVersion", Napi::Number::New(env, a.driver_version));
    o.Set("arch", Napi::String::New(env, a.arch));
    return o;
  });
}

// cudaDeviceInfo(device) -> {index, name, pciBusId, major, minor, multiprocessors, totalBytes, freeBytes}
Napi::Value CudaDeviceInfo(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const cuda::DeviceInfo d = cuda::device_info(static_cast<int>(GetInt(info, 0, "device", 0, 1 << 16)));
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, d.index));
    o.Set("name", Napi::String::New(env, d.name));
    o.Set("pciBusId", Napi::String::New(env, d.pci_bus_id));
    o.Set("major", Napi::Number::New(env, d.major));
    o.Set("minor", Napi::Number::New(env, d.minor));
    o.Set("multiprocessors", Napi::Number::New(env, d.multiprocessors));
    o.Set("totalBytes", Napi::Number::New(env, static_cast<double>(d.total_bytes)));
    o.Set("freeBytes", Napi::Number::New(env, static_cast<double>(d.free_bytes)));
    return o;
  });
}

// cudaLibraries() -> {name, path, error, tried[], version}[] (loads cuBLAS and NCCL, or retries)
Napi::Value CudaLibraries(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const auto libs = cuda::libraries();
    Napi::Array a = Napi::Array::New(env, libs.size());
    for (size_t i = 0; i < libs.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", Napi::String::New(env, libs[i].name));
      o.Set("path", Napi::String::New(env, libs[i].path));
      o.Set("error", Napi::String::New(env, libs[i].error));
      o.Set("tried", Strings(env, libs[i].tried));
      o.Set("version", Napi::String::New(env, libs[i].version));
      a.Set(static_cast<uint32_t>(i), o);
    }
    return a;
  });
}

// deviceLibraryCandidates('cublas'|'nccl') -> string[]: the search order for this environment
Napi::Value DeviceLibraryCandidates(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Strings(info.Env(), dynlib::candidates(SpecNamed(info, 0))); });
}

// deviceLibraryLoad('cublas'|'nccl') -> {path, error, tried[]}: opens the first candidate that loads
Napi::Value DeviceLibraryLoad(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const dynlib::LoadResult& r = dynlib::load(SpecNamed(info, 0));
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", Napi::String::New(env, r.path));
    o.Set("error", Napi::String::New(env, r.error));
    o.Set("tried", Strings(env, r.tried));
    return o;
  });
}

// ncclUniqueId() -> Uint8Array(128): a fresh id for rank 0 to publish through the rendezvous store
Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const std::vector<uint8_t> id = cuda::nccl_unique_id();
    Napi::Uint8Array a = Napi::Uint8Array::New(info.Env(), id.size());
    std::copy(id.begin(), id.end(), a.Data());
    return a;
  });
}

cuda::HostType TypeOf(const Napi::TypedArray& a) {
  switch (a.TypedArrayType()) {
    case napi_float32_array: return cuda::HostType::kF32;
    case napi_int32_array: return cuda::HostType::kI32;
    case napi_uint16_array: return cuda::HostType::kU16;
    case napi_float64_array: return cuda::HostType::kF64;
    default: Fail("ERR_DTYPE", "cuda op buffers: expected Float32Array, Int32Array, Uint16Array or Float64Array");
  }
}

const char* TypeName(cuda::HostType t) {
  switch (t) {
    case cuda::HostType::kF32: return "Float32Array";
    case cuda::HostType::kI32: return "Int32Array";
    case cuda::HostType::kU16: return "Uint16Array";
    case cuda::HostType::kF64: return "Float64Array";
  }
  return "?";
}

// cudaRunOp(name, device, buffers: (TypedArray|null)[], scalars: number[]) -> Promise<number[]>:
// one CUDA kernel op over host buffers, laid out as the CPU binding of the same name (host_ops.cu)
Napi::Value CudaRunOp(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsString()) Fail("ERR_ARG", "name: expected a cuda op name");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    const int device = static_cast<int>(GetInt(info, 1, "device", 0, 1 << 16));
    if (!info[2].IsArray() || !info[3].IsArray()) Fail("ERR_ARG", "cuda op '" + name + "': expected buffers[] and scalars[]");
    Napi::Array jb = info[2].As<Napi::Array>(), js = info[3].As<Napi::Array>();
    std::vector<double> scalars;
    for (uint32_t i = 0; i < js.Length(); ++i) {
      if (!js.Get(i).IsNumber()) Fail("ERR_ARG", "cuda op '" + name + "': scalars[" + std::to_string(i) + "] is not a number");
      scalars.push_back(js.Get(i).As<Napi::Number>().DoubleValue());
    }
    const cuda::OpSignature sig = cuda::op_signature(name, scalars);
    if (jb.Length() != sig.types.size())
      Fail("ERR_ARG", "cuda op '" + name + "': expected " + std::to_string(sig.types.size()) + " buffers, got " + std::to_string(jb.Length()));
    std::vector<cuda::HostBuf> bufs(sig.types.size());
    std::vector<Napi::Value> pins;
    for (uint32_t i = 0; i < jb.Length(); ++i) {
      const std::string what = "cuda op '" + name + "': buffers[" + std::to_string(i) + "]";
      Napi::Value v = jb.Get(i);
      if (v.IsNull() || v.IsUndefined()) {
        if (!sig.optional[i]) Fail("ERR_ARG", what + " is required");
        continue;
      }
      if (!v.IsTypedArray()) Fail("ERR_ARG", what + ": expected a " + std::string(TypeName(sig.types[i])));
      Napi::TypedArray a = v.As<Napi::TypedArray>();
      if (TypeOf(a) != sig.types[i]) Fail("ERR_DTYPE", what + ": expected a " + std::string(TypeName(sig.types[i])));
      const int64_t count = static_cast<int64_t>(a.ElementLength());
      if (sig.counts[i] >= 0 && count != sig.counts[i])
        Fail("ERR_SHAPE", what + ": expected " + std::to_string(sig.counts[i]) + " elements, got " + std::to_string(count));
      bufs[i] = {static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), count, sig.types[i]};
      pins.push_back(v);
    }
    auto out = std::make_shared<std::vector<double>>();
    return RunAsync(
        info.Env(), "cudaRunOp", [=] { *out = cuda::run_op(name, device, bufs, scalars); },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Array a = Napi::Array::New(env, out->size());
          for (size_t i = 0; i < out->size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, (*out)[i]));
          return a;
        },
        pins);
  });
}

// cudaGemmTflops(device, m, n, k, reps) -> Promise<number>: the cuBLAS bf16 (fp32 accumulate) rate
Napi::Value CudaGemmTflops(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const int device = static_cast<int>(GetInt(info, 0, "device", 0, 1 << 16));
    const int64_t m = GetInt(info, 1, "m", 1), n = GetInt(info, 2, "n", 1), k = GetInt(info, 3, "k", 1);
    const int reps = static_cast<int>(GetInt(info, 4, "reps", 1, 1000));
    auto out = std::make_shared<double>(0);
    return RunAsync(
        info.Env(), "cudaGemmTflops", [=] { *out = cuda::gemm_tflops(device, m, n, k, reps); },
        [out](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *out); }, {});
  });
}

}  // namespace

void InitCuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaAvailability", Napi::Function::New(env, CudaAvailability, "cudaAvailability"));
  exports.Set("cudaDeviceInfo", Napi::Function::New(env, CudaDeviceInfo, "cudaDeviceInfo"));
  exports.Set("cudaLibraries", Napi::Function::New(env, CudaLibraries, "cudaLibraries"));
  exports.Set("deviceLibraryCandidates", Napi::Function::New(env, DeviceLibraryCandidates, "deviceLibraryCandidates"));
  exports.Set("deviceLibraryLoad", Napi::Function::New(env, DeviceLibraryLoad, "deviceLibraryLoad"));
  exports.Set("cudaRunOp", Napi::Function::New(env, CudaRunOp, "cudaRunOp"));
  exports.Set("cudaGemmTflops", Napi::Function::New(env, CudaGemmTflops, "cudaGemmTflops"));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId, "ncclUniqueId"));
}

}  // namespace ua
