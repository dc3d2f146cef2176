// Binding of the F16/BF16/F32 -> F32 conversion the safetensors loader runs off the main thread
// (model/convert.h), and of F32 -> F16 for exported checkpoints (kernels/f16.h). Must never read
// past the source bytes the destination length implies.
#include <string>

#include "kernels/f16.h"
#include "model/convert.h"
#include "napi_util.h"

namespace ua {

namespace {

// convertToF32(dst: Float32Array, src: Uint8Array, dtype: 'F32'|'F16'|'BF16') -> Promise<void>
Napi::Value ConvertToF32(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[2].IsString()) Fail("ERR_ARG", "dtype: expected 'F32', 'F16' or 'BF16'");
    std::string dt = info[2].As<Napi::String>().Utf8Value();
    SrcType t;
    int64_t width;
    if (dt == "F32") {
      t = SrcType::F32;
      width = 4;
    } else if (dt == "F16") {
      t = SrcType::F16;
      width = 2;
    } else if (dt == "BF16") {
      t = SrcType::BF16;
      width = 2;
    } else {
      Fail("ERR_DTYPE", "dtype: unsupported '" + dt + "' (expected F32, F16 or BF16)");
    }
    auto dst = GetArray<float>(info, 0, "dst");
    auto src = GetArray<uint8_t>(info, 1, "src", dst.length * width);
    float* d = dst.data;
    const uint8_t* s = src.data;
    const int64_t count = dst.length;
    return RunAsync(info.Env(), "convertToF32", [=] { convert_to_f32(d, s, count, t); }, nullptr, {dst.js, src.js});
  });
}

// f32ToF16(out: Uint16Array, input: Float32Array) -> Promise<void> (same lengths)
Napi::Value F32ToF16(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto in = GetArray<float>(info, 1, "input");
    auto out = GetArray<uint16_t>(info, 0, "out", in.length);
    uint16_t* o = out.data;
    const float* x = in.data;
    const int64_t n = in.length;
    return RunAsync(info.Env(), "f32ToF16", [=] { f32_to_f16(o, x, n); }, nullptr, {out.js, in.js});
  });
}

}  // namespace

void InitConvert(Napi::Env env, Napi::Object exports) {
  exports.Set("convertToF32", Napi::Function::New(env, ConvertToF32, "convertToF32"));
  exports.Set("f32ToF16", Napi::Function::New(env, F32ToF16, "f32ToF16"));
}

}  // namespace ua
