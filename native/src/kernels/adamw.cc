// AdamW on flat buffers with PyTorch's semantics (torch.optim.AdamW, single-tensor path):
// decoupled decay p *= 1 - lr*wd first, then the bias-corrected Adam update.
// param, m, v, grad: [n]. Must never read grad outside [0, n) or skip the decay for any element.
#include "adamw.h"

#include <algorithm>
#include <cmath>

#include "parallel.h"

namespace ua {

void adamw_step(float* param, float* m, float* v, const float* grad, int64_t n, const AdamWParams& p) {
  if (n < 0) throw ShapeError("adamw_step: negative n");
  if (p.step < 1) throw ShapeError("adamw_step: step must be >= 1, got " + std::to_string(p.step));
  const double bc1 = 1.0 - std::pow(static_cast<double>(p.beta1), static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(p.beta2), static_cast<double>(p.step));
  const float step_size = static_cast<float>(p.lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = 1.0f - p.lr * p.weight_decay;
  const float b1 = p.beta1, b2 = p.beta2, omb1 = 1.0f - p.beta1, omb2 = 1.0f - p.beta2, eps = p.eps;
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads_for(n * 4)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i1 = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < i1; ++i) {
      const float g = grad[i];
      const float mi = b1 * m[i] + omb1 * g;
      const float vi = b2 * v[i] + omb2 * g * g;
      m[i] = mi;
      v[i] = vi;
      const float denom = std::sqrt(vi) / bc2_sqrt + eps;
      param[i] = param[i] * decay - step_size * (mi / denom);
    }
  }
}

}  // namespace ua
