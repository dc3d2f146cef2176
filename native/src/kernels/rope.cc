// Rotary position embedding (rotate-half, HF Llama/Qwen2), applied in place.
// x: [n, heads, d], pos: [n] global position ids
// Angles are pos * inv_freq in double, then cos/sin in double (rounded to float once), so long
// positions keep their precision. Must never assume positions start at 0 or are contiguous.
#include "rope.h"

#include <cmath>
#include <vector>

#include "parallel.h"

namespace ua {

// sign = +1: forward rotation R; sign = -1: its transpose R^T (rotation by -angle).
static void rope_apply(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta, float sign,
                       const char* what) {
  if (n < 0 || heads < 0 || d <= 0) throw ShapeError(std::string(what) + ": need n, heads >= 0 and d > 0");
  if (d % 2 != 0) throw ShapeError(std::string(what) + ": head dim d must be even, got " + std::to_string(d));
  if (!(theta > 0.f)) throw ShapeError(std::string(what) + ": theta must be positive");
  const int64_t half = d / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(d));
  const int nt = threads_for(n * heads * d * 4);
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      const double p = static_cast<double>(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const double a = p * inv_freq[i];
        cs[i] = static_cast<float>(std::cos(a));
        sn[i] = sign * static_cast<float>(std::sin(a));
      }
      float* xt = x + t * heads * d;
      for (int64_t h = 0; h < heads; ++h) {
        float* lo = xt + h * d;
        float* hi = lo + half;
        for (int64_t i = 0; i < half; ++i) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * cs[i] - b * sn[i];
          hi[i] = b * cs[i] + a * sn[i];
        }
      }
    }
  }
}

void rope_forward(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta) {
  rope_apply(x, pos, n, heads, d, theta, 1.f, "rope_forward");
}

void rope_backward(float* dx, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta) {
  rope_apply(dx, pos, n, heads, d, theta, -1.f, "rope_backward");
}

}  // namespace ua
