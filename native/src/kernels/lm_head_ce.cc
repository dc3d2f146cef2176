// Fused, chunked LM head + cross-entropy (REFERENCE §4).
// h: [n, dim], W: [vocab, dim], labels: [n], token_loss / lse / token_weight: [n],
// dh: [n, dim], dW: [vocab, dim]; per chunk of c tokens a scratch logits block [c, vocab].
// Must never allocate [n, vocab]: logits live one chunk at a time and are recomputed in the backward.
// sgemm (ua::matmul) is only called from the calling thread, never inside an OpenMP region; the
// per-row softmax work is split over rows, and the loss sum is reduced serially in row order so
// results do not depend on the thread count.
#include "lm_head_ce.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attention_simd.h"
#include "matmul.h"

namespace ua {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int64_t kDefaultChunk = 256;

void check_args(const char* who, const int32_t* labels, int64_t n, int64_t dim, int64_t vocab) {
  if (n < 0 || dim < 1 || vocab < 1) throw ShapeError(std::string(who) + ": need n >= 0, dim >= 1, vocab >= 1");
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] >= vocab)
      throw ShapeError(std::string(who) + ": label " + std::to_string(labels[i]) + " at token " + std::to_string(i) +
                       " is >= vocab " + std::to_string(vocab));
}

int64_t chunk_rows(int64_t chunk, int64_t n) { return std::max<int64_t>(1, std::min(chunk > 0 ? chunk : kDefaultChunk, n)); }

// Row log-sum-exp; overwrites x with 2^((x - max) log2 e) = exp(x - max).
float row_lse_inplace(float* x, int64_t vocab) {
  const float mx = simd::row_max(x, vocab);
  if (!std::isfinite(mx)) return mx;  // inf / NaN logits propagate
  const float sum = simd::exp2_affine_sum(x, vocab, kLog2e, mx * kLog2e);
  return mx + std::log(sum);
}

}  // namespace

CeResult lm_head_ce_forward(float* token_loss, float* lse, const float* h, const float* W, const int32_t* labels,
                            int64_t n, int64_t dim, int64_t vocab, float normalizer, int64_t chunk, int32_t* argmax) {
  check_args("lm_head_ce_forward", labels, n, dim, vocab);
  if (!(normalizer > 0.f) || !std::isfinite(normalizer))
    throw ShapeError("lm_head_ce_forward: normalizer must be finite and > 0");
  CeResult res;
  if (n == 0) return res;
  const int64_t cr = chunk_rows(chunk, n);
  const int nt = std::max(1, num_threads());
  std::vector<float> logits(cr * vocab), row_loss(cr), row_lse(cr);
  double total = 0;
  for (int64_t t0 = 0; t0 < n; t0 += cr) {
    const int64_t c = std::min(cr, n - t0);
    matmul(logits.data(), h + t0 * dim, W, c, vocab, dim, false, true, 1.f, 0.f);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < c; ++r) {
      float* x = logits.data() + r * vocab;
      const int32_t y = labels[t0 + r];
      const float target = y >= 0 ? x[y] : 0.f;
      if (argmax) {
        int64_t best = 0;
        for (int64_t j = 1; j < vocab; ++j)
          if (x[j] > x[best]) best = j;
        argmax[t0 + r] = static_cast<int32_t>(best);
      }
      const float L = row_lse_inplace(x, vocab);
      row_lse[r] = L;
      row_loss[r] = y >= 0 ? L - target : 0.f;
    }
    for (int64_t r = 0; r < c; ++r) {
      if (token_loss) token_loss[t0 + r] = row_loss[r];
      if (lse) lse[t0 + r] = row_lse[r];
      if (labels[t0 + r] >= 0) {
        total += row_loss[r];
        ++res.valid;
      }
    }
  }
  res.loss = total / normalizer;
  return res;
}

void lm_head_ce_backward(float* dh, float* dW, const float* h, const float* W, const int32_t* labels,
                         const float* lse, const float* token_weight, int64_t n, int64_t dim, int64_t vocab,
                         float normalizer, int64_t chunk) {
  check_args("lm_head_ce_backward", labels, n, dim, vocab);
  if (!token_weight && (!(normalizer > 0.f) || !std::isfinite(normalizer)))
    throw ShapeError("lm_head_ce_backward: normalizer must be finite and > 0");
  if (n == 0 || (!dh && !dW)) return;
  const int64_t cr = chunk_rows(chunk, n);
  const int nt = std::max(1, num_threads());
  std::vector<float> G(cr * vocab);
  for (int64_t t0 = 0; t0 < n; t0 += cr) {
    const int64_t c = std::min(cr, n - t0);
    matmul(G.data(), h + t0 * dim, W, c, vocab, dim, false, true, 1.f, 0.f);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < c; ++r) {
      float* x = G.data() + r * vocab;
      const int32_t y = labels[t0 + r];
      const float w = y < 0 ? 0.f : (token_weight ? token_weight[t0 + r] : 1.f / normalizer);
      if (w == 0.f) {
        std::fill(x, x + vocab, 0.f);
        continue;
      }
      // softmax = exp(x - lse); without a saved lse, exp(x - max) / sum gives the same rows.
      float factor = w;
      if (lse) {
        simd::exp2_affine_sum(x, vocab, kLog2e, lse[t0 + r] * kLog2e);
      } else {
        const float mx = simd::row_max(x, vocab);
        factor = w / simd::exp2_affine_sum(x, vocab, kLog2e, mx * kLog2e);
      }
      for (int64_t j = 0; j < vocab; ++j) x[j] *= factor;
      x[y] -= w;
    }
    if (dh) matmul(dh + t0 * dim, G.data(), W, c, dim, vocab, false, false, 1.f, 1.f);
    if (dW) matmul(dW, G.data(), h + t0 * dim, vocab, dim, c, true, false, 1.f, 1.f);
  }
}

}  // namespace ua
