// Attention of new queries over a KV cache (see attention_cached.h): a two-pass softmax per
// (token, head) over the visible keys, in double.
#include "attention_cached.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "parallel.h"

namespace ua {

void attention_cached_forward(float* out, const float* q, const float* k, const float* v, int64_t n, int64_t past,
                              int64_t H, int64_t Hkv, int64_t d, int64_t window, float scale) {
  if (n < 0 || past < 0 || H <= 0 || Hkv <= 0 || d <= 0 || window < 0)
    throw ShapeError("attention_cached_forward: need n, past, window >= 0 and H, Hkv, d > 0");
  if (H % Hkv != 0)
    throw ShapeError("attention_cached_forward: H (" + std::to_string(H) + ") must be a multiple of Hkv (" +
                     std::to_string(Hkv) + ")");
  const int64_t group = H / Hkv, kv_row = Hkv * d, q_row = H * d;
  const double sc = scale > 0 ? static_cast<double>(scale) : 1.0 / std::sqrt(static_cast<double>(d));
  const int64_t tasks = n * H;
  // Work is about keys x d per task: go parallel only when it pays.
  const int nt = threads_for(tasks * (past + n) * d);
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> score(static_cast<size_t>(past + n));
    std::vector<double> acc(static_cast<size_t>(d));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t i = t / H, h = t % H, kh = h / group;
      const int64_t p = past + i;
      const int64_t j0 = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
      const float* qi = q + i * q_row + h * d;
      double mx = -INFINITY;
      for (int64_t j = j0; j <= p; ++j) {
        const float* kj = k + j * kv_row + kh * d;
        double dot = 0;
        for (int64_t e = 0; e < d; ++e) dot += static_cast<double>(qi[e]) * kj[e];
        dot *= sc;
        score[static_cast<size_t>(j)] = dot;
        mx = std::max(mx, dot);
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      double z = 0;
      for (int64_t j = j0; j <= p; ++j) {
        const double w = std::exp(score[static_cast<size_t>(j)] - mx);
        z += w;
        const float* vj = v + j * kv_row + kh * d;
        for (int64_t e = 0; e < d; ++e) acc[static_cast<size_t>(e)] += w * vj[e];
      }
      float* oi = out + i * q_row + h * d;
      for (int64_t e = 0; e < d; ++e) oi[e] = static_cast<float>(acc[static_cast<size_t>(e)] / z);
    }
  }
}

}  // namespace ua
