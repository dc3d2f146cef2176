// Addon entry point: registers every binding family. Kept tiny on purpose.
#include "napi_util.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ua::InitCommon(env, exports);
  ua::InitBasic(env, exports);
  ua::InitOptim(env, exports);
  ua::InitAttention(env, exports);
  ua::InitModel(env, exports);
  ua::InitGenerate(env, exports);
  ua::InitConvert(env, exports);
  ua::InitComm(env, exports);
  ua::InitMmap(env, exports);
  ua::InitCuda(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(ulysses_native, Init)
