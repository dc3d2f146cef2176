// Residual connection y = a + b and its backward (da += dy, db += dy). a, b, y: [count]
// Must never assume y is distinct from a or b (element-wise, in place is fine).
#include "residual.h"

#include <algorithm>

#include "parallel.h"

namespace ua {

namespace {
constexpr int64_t kChunk = 16384;
}

void residual_forward(float* y, const float* a, const float* b, int64_t count) {
  if (count < 0) throw ShapeError("residual_forward: negative count");
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads_for(count)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i1 = std::min(count, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < i1; ++i) y[i] = a[i] + b[i];
  }
}

void residual_backward(float* da, float* db, const float* dy, int64_t count) {
  if (count < 0) throw ShapeError("residual_backward: negative count");
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads_for(count)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, i1 = std::min(count, (c + 1) * kChunk);
    if (da)
      for (int64_t i = i0; i < i1; ++i) da[i] += dy[i];
    if (db)
      for (int64_t i = i0; i < i1; ++i) db[i] += dy[i];
  }
}

}  // namespace ua
