// Gradient statistics and the gradient-policy operations on a flat gradient buffer.
// grad: [total], tensors: spans into it; per_tensor_mean_abs: [ntensors]
// Every reduction runs over fixed blocks of kBlock elements per tensor, combined in block order in
// double, and the noise is a pure function of (seed, step, tensor, index): the bits never depend on
// the thread count or the process. Must never draw randomness from any other source.
#include "gradstats.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "parallel.h"

namespace ua {

namespace {

constexpr int64_t kBlock = 16384;

struct BlockStats {
  double sum_abs = 0;
  double sum_sq = 0;
  float max_abs = 0;
  int64_t nonfinite = 0;
};

BlockStats block_stats(const float* g, int64_t len) {
  double s1 = 0, s2 = 0;
  float mx = 0;
  int64_t nf = 0;
#pragma omp simd reduction(+ : s1, s2, nf) reduction(max : mx)
  for (int64_t i = 0; i < len; ++i) {
    const float a = std::fabs(g[i]);
    const bool finite = a <= FLT_MAX;  // false for NaN and Inf
    const float af = finite ? a : 0.f;
    s1 += af;
    s2 += static_cast<double>(af) * af;
    mx = std::max(mx, af);
    nf += finite ? 0 : 1;
  }
  return {s1, s2, mx, nf};
}

// Philox4x32 constants (Salmon et al.): round multipliers and the Weyl key increments.
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

inline void philox(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c[0], hi0, lo0);
    mulhilo(kM1, c[2], hi1, lo1);
    const uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
  }
}

// Four standard normals for block `b` of the stream (seed, step, tensor): counter = (b lo, b hi,
// step, tensor) (low 32 bits each), key = seed; two Box-Muller pairs in double.
inline void normals4(double z[4], uint64_t seed, uint64_t step, uint64_t tensor, uint64_t b) {
  uint32_t c[4] = {static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), static_cast<uint32_t>(step),
                   static_cast<uint32_t>(tensor)};
  philox(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  constexpr double k2pow32 = 4294967296.0, kTwoPi = 6.283185307179586476925;
  for (int pair = 0; pair < 2; ++pair) {
    const double u1 = (static_cast<double>(c[2 * pair]) + 1.0) / k2pow32;  // (0, 1]: log is finite
    const double u2 = static_cast<double>(c[2 * pair + 1]) / k2pow32;      // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    z[2 * pair] = r * std::cos(kTwoPi * u2);
    z[2 * pair + 1] = r * std::sin(kTwoPi * u2);
  }
}

}  // namespace

void philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
  std::memcpy(out, ctr, 4 * sizeof(uint32_t));
  philox(out, key[0], key[1]);
}

GradStats grad_stats(double* per_tensor_mean_abs, const float* grad, const TensorSpan* tensors, int64_t ntensors) {
  if (ntensors < 0) throw ShapeError("grad_stats: negative tensor count");
  // One work item per (tensor, block), in tensor order then block order.
  std::vector<int64_t> first(static_cast<size_t>(ntensors) + 1, 0);
  for (int64_t t = 0; t < ntensors; ++t) {
    if (tensors[t].numel < 0 || tensors[t].offset < 0) throw ShapeError("grad_stats: negative span");
    first[t + 1] = first[t] + (tensors[t].numel + kBlock - 1) / kBlock;
  }
  const int64_t nitems = first[ntensors];
  std::vector<BlockStats> items(static_cast<size_t>(nitems));
  std::vector<int64_t> owner(static_cast<size_t>(nitems));
  for (int64_t t = 0; t < ntensors; ++t)
    for (int64_t k = first[t]; k < first[t + 1]; ++k) owner[k] = t;
  int64_t total = 0;
  for (int64_t t = 0; t < ntensors; ++t) total += tensors[t].numel;
#pragma omp parallel for num_threads(threads_for(total)) schedule(dynamic, 4)
  for (int64_t k = 0; k < nitems; ++k) {
    const TensorSpan& s = tensors[owner[k]];
    const int64_t start = (k - first[owner[k]]) * kBlock;
    items[k] = block_stats(grad + s.offset + start, std::min(kBlock, s.numel - start));
  }
  GradStats out;
  double mean_sum = 0, sum_sq = 0;
  int64_t counted = 0;
  for (int64_t t = 0; t < ntensors; ++t) {
    double sum_abs = 0;
    for (int64_t k = first[t]; k < first[t + 1]; ++k) {
      sum_abs += items[k].sum_abs;
      sum_sq += items[k].sum_sq;
      out.max_abs = std::max(out.max_abs, static_cast<double>(items[k].max_abs));
      out.nonfinite += items[k].nonfinite;
    }
    // An empty tensor has no mean |g|: it reports 0 and does not count in grad_mean.
    const double mean_abs = tensors[t].numel > 0 ? sum_abs / static_cast<double>(tensors[t].numel) : 0.0;
    if (per_tensor_mean_abs) per_tensor_mean_abs[t] = mean_abs;
    if (tensors[t].numel > 0) {
      mean_sum += mean_abs;
      ++counted;
    }
  }
  out.grad_mean = counted > 0 ? mean_sum / static_cast<double>(counted) : 0.0;
  out.l2_norm = std::sqrt(sum_sq);
  return out;
}

float philox_normal(uint64_t seed, uint64_t step, uint64_t tensor, uint64_t i) {
  double z[4];
  normals4(z, seed, step, tensor, i / 4);
  return static_cast<float>(z[i % 4]);
}

void add_noise(float* g, int64_t n, float std, uint64_t seed, uint64_t step, uint64_t tensor) {
  if (n < 0) throw ShapeError("add_noise: negative n");
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for num_threads(threads_for(n * 16)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    double z[4];
    normals4(z, seed, step, tensor, static_cast<uint64_t>(b));
    const int64_t i0 = b * 4, len = std::min<int64_t>(4, n - i0);
    for (int64_t j = 0; j < len; ++j) g[i0 + j] += std * static_cast<float>(z[j]);
  }
}

void scale(float* g, int64_t n, float factor) {
  if (n < 0) throw ShapeError("scale: negative n");
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) g[i] *= factor;
}

void centralize(float* g, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) throw ShapeError("centralize: negative dimension");
  if (cols == 0) return;
#pragma omp parallel for num_threads(threads_for(rows * cols)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* gr = g + r * cols;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < cols; ++j) s += gr[j];
    const float mean = static_cast<float>(s / static_cast<double>(cols));
    for (int64_t j = 0; j < cols; ++j) gr[j] -= mean;
  }
}

float clip_by_global_norm(float* g, int64_t n, double norm, double max_norm) {
  if (n < 0) throw ShapeError("clip_by_global_norm: negative n");
  if (!(norm > max_norm)) return 1.0f;
  const float factor = static_cast<float>(max_norm / (norm + 1e-6));
  scale(g, n, factor);
  return factor;
}

void zero(float* g, int64_t n) {
  if (n < 0) throw ShapeError("zero: negative n");
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) g[i] = 0.f;
}

}  // namespace ua
