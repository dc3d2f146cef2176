// Placeholder registration; the bindings of this family are added beside their kernels.
#include "napi_util.h"

namespace ua {
void InitModel(Napi::Env env, Napi::Object exports) {}
}  // namespace ua
