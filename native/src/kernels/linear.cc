// Linear layer y = x W^T + b on OpenBLAS sgemm; backward = two sgemms + a deterministic column sum.
// x: [n, in], W: [out, in], b: [out], y: [n, out]
// Must never reduce across rows in a thread-count-dependent order (db uses fixed row blocks).
#include "linear.h"

#include <cstring>
#include <vector>

#include "matmul.h"
#include "parallel.h"

namespace ua {

static void check_sizes(const char* what, int64_t n, int64_t in, int64_t out) {
  if (n < 0 || in < 0 || out < 0)
    throw ShapeError(std::string(what) + ": negative dimension (n=" + std::to_string(n) + ", in=" +
                     std::to_string(in) + ", out=" + std::to_string(out) + ")");
}

void linear_forward(float* y, const float* x, const float* W, const float* b, int64_t n, int64_t in, int64_t out) {
  check_sizes("linear_forward", n, in, out);
  if (n == 0 || out == 0) return;
  if (b) {
    // Pre-filling y with the bias and running sgemm with beta = 1 costs one write pass, the same
    // as the zeroing pass sgemm does for beta = 0, so the bias is free.
#pragma omp parallel for num_threads(threads_for(n * out)) schedule(static)
    for (int64_t r = 0; r < n; ++r) std::memcpy(y + r * out, b, sizeof(float) * static_cast<size_t>(out));
    matmul(y, x, W, n, out, in, false, true, 1.f, 1.f);
  } else {
    matmul(y, x, W, n, out, in, false, true, 1.f, 0.f);
  }
}

void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W, int64_t n,
                     int64_t in, int64_t out) {
  check_sizes("linear_backward", n, in, out);
  if (dx && n > 0 && in > 0) matmul(dx, dy, W, n, in, out, false, false, 1.f, 1.f);   // [n,out]x[out,in]
  if (dW && out > 0 && in > 0) matmul(dW, dy, x, out, in, n, true, false, 1.f, 1.f);  // [out,n]x[n,in]
  if (db && out > 0) {
    std::vector<double> sum(static_cast<size_t>(out));
    blocked_row_reduce(sum.data(), n, out, [&](double* acc, int64_t r) {
      const float* d = dy + r * out;
      for (int64_t j = 0; j < out; ++j) acc[j] += d[j];
    });
    for (int64_t j = 0; j < out; ++j) db[j] += static_cast<float>(sum[j]);
  }
}

}  // namespace ua
