// RMSNorm forward/backward (Llama/Qwen): y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps).
// x, y, dx, dy: [n, dim], w, dw: [dim], rstd: [n]
// Row statistics are accumulated in double; dw is reduced over fixed row blocks so its bits never
// depend on the thread count. Must never allocate per row.
#include "rmsnorm.h"

#include <cmath>
#include <vector>

#include "bf16.h"
#include "parallel.h"

namespace ua {

namespace {

inline float row_rstd(const float* xr, int64_t dim, float eps) {
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t j = 0; j < dim; ++j) ss += static_cast<double>(xr[j]) * xr[j];
  return static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + static_cast<double>(eps)));
}

}  // namespace

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t dim, float eps) {
  if (n < 0 || dim <= 0) throw ShapeError("rmsnorm_forward: need n >= 0 and dim > 0");
#pragma omp parallel for num_threads(threads_for(n * dim)) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    const float rs = row_rstd(xr, dim, eps);
    rstd[r] = rs;
    for (int64_t j = 0; j < dim; ++j) yr[j] = (xr[j] * rs) * w[j];
  }
}

void rmsnorm_forward_bf16(uint16_t* y16, float* rstd, const float* x, const float* w, int64_t n, int64_t dim, float eps) {
  if (n < 0 || dim <= 0) throw ShapeError("rmsnorm_forward_bf16: need n >= 0 and dim > 0");
#pragma omp parallel for num_threads(threads_for(n * dim)) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * dim;
    uint16_t* yr = y16 + r * dim;
    const float rs = row_rstd(xr, dim, eps);
    rstd[r] = rs;
    for (int64_t j = 0; j < dim; ++j) yr[j] = f32_to_bf16_bits((xr[j] * rs) * w[j]);
  }
}

// dx_j += r w_j dy_j - x_j r^3 / dim * sum_k dy_k w_k x_k ;  dw_j += dy_j x_j r
static inline void row_dx(float* dxr, const float* dyr, const float* xr, const float* w, float rs, int64_t dim) {
  double dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < dim; ++j) dot += static_cast<double>(dyr[j]) * w[j] * xr[j];
  const float c = static_cast<float>(static_cast<double>(rs) * rs * rs * dot / static_cast<double>(dim));
  for (int64_t j = 0; j < dim; ++j) dxr[j] += rs * w[j] * dyr[j] - c * xr[j];
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                      int64_t n, int64_t dim) {
  if (n < 0 || dim <= 0) throw ShapeError("rmsnorm_backward: need n >= 0 and dim > 0");
  if (dw) {
    std::vector<double> sum(static_cast<size_t>(dim));
    blocked_row_reduce(sum.data(), n, dim, [&](double* acc, int64_t r) {
      const float* xr = x + r * dim;
      const float* dyr = dy + r * dim;
      const float rs = rstd[r];
      if (dx) row_dx(dx + r * dim, dyr, xr, w, rs, dim);
      for (int64_t j = 0; j < dim; ++j) acc[j] += static_cast<double>(dyr[j] * xr[j] * rs);
    });
    for (int64_t j = 0; j < dim; ++j) dw[j] += static_cast<float>(sum[j]);
  } else if (dx) {
#pragma omp parallel for num_threads(threads_for(n * dim)) schedule(static)
    for (int64_t r = 0; r < n; ++r) row_dx(dx + r * dim, dy + r * dim, x + r * dim, w, rstd[r], dim);
  }
}

}  // namespace ua
