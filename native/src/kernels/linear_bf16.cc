// bf16 linear layer (linear_bf16.h) on the bf16 x bf16 -> fp32 products of matmul.h; the bias
// gradient is linear.cc's deterministic column sum over the fp32 output gradient.
// Must never reduce across rows in a thread-count-dependent order.
#include "linear_bf16.h"

#include <cstring>

#include "linear.h"
#include "matmul.h"
#include "parallel.h"

namespace ua {

void linear_forward_bf16(float* y, const uint16_t* x16, const uint16_t* W16, const float* b, int64_t n, int64_t in,
                         int64_t out, float beta) {
  if (n < 0 || in < 0 || out < 0) throw ShapeError("linear_forward_bf16: negative dimension");
  if (n == 0 || out == 0) return;
  if (b && beta == 0.f) {
    // The bias pre-filled and added by the product (beta = 1), as linear_forward does.
#pragma omp parallel for num_threads(threads_for(n * out)) schedule(static)
    for (int64_t r = 0; r < n; ++r) std::memcpy(y + r * out, b, sizeof(float) * static_cast<size_t>(out));
    matmul_bf16(y, x16, W16, n, out, in, false, true, 1.f, 1.f);
    return;
  }
  matmul_bf16(y, x16, W16, n, out, in, false, true, 1.f, beta);
  if (b) {
#pragma omp parallel for num_threads(threads_for(n * out)) schedule(static)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out; ++j) y[r * out + j] += b[j];
  }
}

void linear_backward_bf16(float* dx, bool accumulate_dx, float* dW, float* db, const uint16_t* dy16, const float* dy,
                          const uint16_t* x16, const uint16_t* W16, int64_t n, int64_t in, int64_t out) {
  if (n < 0 || in < 0 || out < 0) throw ShapeError("linear_backward_bf16: negative dimension");
  if (dx && n > 0 && in > 0) matmul_bf16(dx, dy16, W16, n, in, out, false, false, 1.f, accumulate_dx ? 1.f : 0.f);
  if (dW && out > 0 && in > 0) matmul_bf16(dW, dy16, x16, out, in, n, true, false, 1.f, 1.f);
  if (db && out > 0) linear_backward(nullptr, nullptr, db, dy, nullptr, nullptr, n, in, out);
}

}  // namespace ua
