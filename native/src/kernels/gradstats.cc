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

using BlockStats = GradBlockStats;

// Sixteen independent lanes of double accumulators (a fixed order, so fixed bits), with the
// finite test and |g| done on the integer bits: written this way the loop vectorizes, which the
// branchy float version does not.
BlockStats block_stats(const float* g, int64_t len) {
  constexpr int L = 16;
  double s1[L] = {0}, s2[L] = {0};
  int32_t mx[L] = {0}, nf[L] = {0};
  int64_t i = 0;
  for (; i + L <= len; i += L) {
    int32_t bits[L];
    std::memcpy(bits, g + i, sizeof bits);
    for (int l = 0; l < L; ++l) {
      const int32_t a = bits[l] & 0x7fffffff;     // |g| as bits
      const int32_t finite = a < 0x7f800000;      // 0 for NaN and Inf
      const int32_t ab = a & -finite;             // non-finite -> +0
      float af;
      std::memcpy(&af, &ab, sizeof af);
      s1[l] += static_cast<double>(af);
      s2[l] += static_cast<double>(af) * static_cast<double>(af);
      mx[l] = std::max(mx[l], ab);  // non-negative floats order like their bit patterns
      nf[l] += 1 - finite;
    }
  }
  BlockStats r;
  int32_t mxb = 0;
  for (int l = 0; l < L; ++l) {
    r.sum_abs += s1[l];
    r.sum_sq += s2[l];
    mxb = std::max(mxb, mx[l]);
    r.nonfinite += nf[l];
  }
  for (; i < len; ++i) {
    int32_t a;
    std::memcpy(&a, g + i, sizeof a);
    a &= 0x7fffffff;
    const int32_t finite = a < 0x7f800000, ab = a & -finite;
    float af;
    std::memcpy(&af, &ab, sizeof af);
    r.sum_abs += static_cast<double>(af);
    r.sum_sq += static_cast<double>(af) * static_cast<double>(af);
    mxb = std::max(mxb, ab);
    r.nonfinite += 1 - finite;
  }
  std::memcpy(&r.max_abs, &mxb, sizeof mxb);
  return r;
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

// Normals are produced in batches of kLanes Philox blocks (4 normals each) by plain loops over
// lanes that the compiler vectorizes; add_noise and philox_normal both go through normals_batch,
// so a sampled value always equals what add_noise adds.
constexpr int kLanes = 16;

// ln(u) for u in (0, 1]: u = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1),
// |s| < 0.172, series to s^9 (truncation < 4e-10). Branch-free so it vectorizes.
inline float log_unit(float u) {
  int32_t bits;
  std::memcpy(&bits, &u, sizeof bits);
  int32_t e = ((bits >> 23) & 0xff) - 127;
  int32_t mbits = (bits & 0x007fffff) | 0x3f800000;  // m in [1, 2)
  float m;
  std::memcpy(&m, &mbits, sizeof m);
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return static_cast<float>(e) * 0.693147180559945309f + 2.0f * s * p;
}

// sin and cos of 2 pi t for t in [0, 1): the quadrant comes exactly from t (no pi reduction),
// then Taylor series on [-pi/4, pi/4] (truncation < 3e-8).
inline void sincos_turn(float t, float& sn, float& cs) {
  const float qf = (t * 4.0f + 12582912.0f) - 12582912.0f;  // nearest quadrant 0..4
  const int32_t q = static_cast<int32_t>(qf) & 3;
  const float x = (t - qf * 0.25f) * 6.28318530717958648f;
  const float x2 = x * x;
  float ps = -1.0f / 39916800.0f;
  ps = ps * x2 + 1.0f / 362880.0f;
  ps = ps * x2 - 1.0f / 5040.0f;
  ps = ps * x2 + 1.0f / 120.0f;
  ps = ps * x2 - 1.0f / 6.0f;
  ps = ps * x2 + 1.0f;
  const float s0 = x * ps;
  float pc = 1.0f / 3628800.0f;
  pc = pc * x2 - 1.0f / 40320.0f;
  pc = pc * x2 + 1.0f / 720.0f;
  pc = pc * x2 - 1.0f / 24.0f;
  pc = pc * x2 + 0.5f;
  const float c0 = 1.0f - x2 * pc;
  // Rotate by q quarter turns: (s, c) -> (c, -s) -> (-s, -c) -> (-c, s).
  const float s1 = (q & 1) ? c0 : s0, c1 = (q & 1) ? -s0 : c0;
  sn = (q & 2) ? -s1 : s1;
  cs = (q & 2) ? -c1 : c1;
}

// z[4 * lane + j] = normal j of block (b0 + lane) of the stream (seed, step, tensor).
// Counter = (block lo, block hi, step, tensor) (low 32 bits each), key = seed (lo, hi).
void normals_batch(float z[4 * kLanes], uint64_t seed, uint64_t step, uint64_t tensor, uint64_t b0) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t b = b0 + static_cast<uint64_t>(l);
    c0[l] = static_cast<uint32_t>(b);
    c1[l] = static_cast<uint32_t>(b >> 32);
    c2[l] = static_cast<uint32_t>(step);
    c3[l] = static_cast<uint32_t>(tensor);
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t p0 = static_cast<uint64_t>(kM0) * c0[l];
      const uint64_t p1 = static_cast<uint64_t>(kM1) * c2[l];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c0[l] = n0;
      c1[l] = static_cast<uint32_t>(p1);
      c2[l] = n2;
      c3[l] = static_cast<uint32_t>(p0);
    }
  }
  // Box-Muller on two pairs per block: u1 in (0, 1] from the top 24 bits (so log is finite;
  // the tail is cut at 5.8 sigma), u2 in [0, 1).
  const uint32_t* words[4] = {c0, c1, c2, c3};
  for (int pair = 0; pair < 2; ++pair) {
    const uint32_t* a = words[2 * pair];
    const uint32_t* b = words[2 * pair + 1];
    for (int l = 0; l < kLanes; ++l) {
      const float u1 = static_cast<float>(static_cast<int32_t>(a[l] >> 8) + 1) * 5.9604644775390625e-8f;
      const float u2 = static_cast<float>(static_cast<int32_t>(b[l] >> 8)) * 5.9604644775390625e-8f;
      const float r = std::sqrt(-2.0f * log_unit(u1));
      float sn, cs;
      sincos_turn(u2, sn, cs);
      z[4 * l + 2 * pair] = r * cs;
      z[4 * l + 2 * pair + 1] = r * sn;
    }
  }
}

}  // namespace

void philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
  std::memcpy(out, ctr, 4 * sizeof(uint32_t));
  philox(out, key[0], key[1]);
}

namespace {

// The partial sums of every (tensor, block) item, in tensor order then block order; first[t] ..
// first[t + 1] - 1 are tensor t's items. Computed in parallel, each item on its own: the bits do
// not depend on the thread count.
std::vector<BlockStats> block_items(const char* what, const float* grad, const TensorSpan* tensors, int64_t ntensors,
                                    std::vector<int64_t>& first) {
  if (ntensors < 0) throw ShapeError(std::string(what) + ": negative tensor count");
  first.assign(static_cast<size_t>(ntensors) + 1, 0);
  for (int64_t t = 0; t < ntensors; ++t) {
    if (tensors[t].numel < 0 || tensors[t].offset < 0) throw ShapeError(std::string(what) + ": negative span");
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
  return items;
}

}  // namespace

GradStats grad_stats(double* per_tensor_mean_abs, const float* grad, const TensorSpan* tensors, int64_t ntensors) {
  std::vector<int64_t> first;
  const std::vector<BlockStats> items = block_items("grad_stats", grad, tensors, ntensors, first);
  return combine_grad_blocks(per_tensor_mean_abs, items.data(), first.data(), tensors, ntensors);
}

GradStats combine_grad_blocks(double* per_tensor_mean_abs, const GradBlockStats* items, const int64_t* first,
                              const TensorSpan* tensors, int64_t ntensors) {
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
  const uint64_t block = i / 4, b0 = block - block % kLanes;
  float z[4 * kLanes];
  normals_batch(z, seed, step, tensor, b0);
  return z[4 * (block - b0) + i % 4];
}

void add_noise(float* g, int64_t n, float std, uint64_t seed, uint64_t step, uint64_t tensor) {
  if (n < 0) throw ShapeError("add_noise: negative n");
  constexpr int64_t kBatch = 4 * kLanes;  // elements per batch
  const int64_t batches = (n + kBatch - 1) / kBatch;
#pragma omp parallel for num_threads(threads_for(n * 8)) schedule(static)
  for (int64_t k = 0; k < batches; ++k) {
    float z[kBatch];
    normals_batch(z, seed, step, tensor, static_cast<uint64_t>(k) * kLanes);
    const int64_t i0 = k * kBatch, len = std::min<int64_t>(kBatch, n - i0);
    // Explicit fma: one rounding, whatever the compiler's contraction settings.
    for (int64_t j = 0; j < len; ++j) g[i0 + j] = std::fma(std, z[j], g[i0 + j]);
  }
}

void add_noise_from(float* g, int64_t n, uint64_t first, float std, uint64_t seed, uint64_t step, uint64_t tensor) {
  if (n < 0) throw ShapeError("add_noise_from: negative n");
  if (n == 0) return;
  constexpr int64_t kBatch = 4 * kLanes;
  // batches of the whole tensor's stream that [first, first + n) touches
  const uint64_t k0 = first / kBatch, k1 = (first + static_cast<uint64_t>(n) - 1) / kBatch;
  const int64_t batches = static_cast<int64_t>(k1 - k0 + 1);
#pragma omp parallel for num_threads(threads_for(n * 8)) schedule(static)
  for (int64_t b = 0; b < batches; ++b) {
    const uint64_t k = k0 + static_cast<uint64_t>(b);
    float z[kBatch];
    normals_batch(z, seed, step, tensor, k * kLanes);
    const uint64_t lo = std::max<uint64_t>(first, k * kBatch);
    const uint64_t hi = std::min<uint64_t>(first + static_cast<uint64_t>(n), (k + 1) * kBatch);
    for (uint64_t i = lo; i < hi; ++i) g[i - first] = std::fma(std, z[i - k * kBatch], g[i - first]);
  }
}

void grad_partial_sums(GradBlockStats* out, const float* grad, const TensorSpan* spans, int64_t nspans) {
  std::vector<int64_t> first;
  const std::vector<BlockStats> items = block_items("grad_partial_sums", grad, spans, nspans, first);
  for (int64_t t = 0; t < nspans; ++t) {
    GradBlockStats r;
    for (int64_t k = first[t]; k < first[t + 1]; ++k) {
      r.sum_abs += items[k].sum_abs;
      r.sum_sq += items[k].sum_sq;
      r.max_abs = std::max(r.max_abs, items[k].max_abs);
      r.nonfinite += items[k].nonfinite;
    }
    out[t] = r;
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
