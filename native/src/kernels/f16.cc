// fp32 -> fp16 conversion over arrays (f16.h), bandwidth-bound: split across threads.
#include "f16.h"

#include "parallel.h"

namespace ua {

void f32_to_f16(uint16_t* out, const float* in, int64_t n) {
  if (n < 0) throw ShapeError("f32_to_f16: n must be >= 0");
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_f16_bits(in[i]);
}

}  // namespace ua
