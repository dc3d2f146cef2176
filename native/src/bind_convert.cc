// Binding of the F16/BF16/F32 -> F32 conversion the safetensors loader runs off the main thread
// (model/convert.h). Must never read past the source bytes the destination length implies.
#include <string>

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

}  // namespace

void InitConvert(Napi::Env env, Napi::Object exports) {
  exports.Set("convertToF32", Napi::Function::New(env, ConvertToF32, "convertToF32"));
}

}  // namespace ua
