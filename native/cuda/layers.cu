// DeviceMask and LmHead (layers.cuh).
#include <algorithm>

#include "cuda/layers.cuh"

namespace ua::cuda {

void DeviceMask::upload(const AttnMaskHost& m, cudaStream_t s) {
  const int64_t n = static_cast<int64_t>(m.lo.size());
  lo_.upload(m.lo.data(), n, s);
  hi_.upload(m.hi.data(), n, s);
  qlo_.upload(m.qlo.data(), n, s);
  qhi_.upload(m.qhi.data(), n, s);
}

int64_t LmHead::rows(int64_t n, int64_t vocab) const {
  return std::max<int64_t>(1, std::min<int64_t>(n, kLogitsBudget / std::max<int64_t>(vocab, 1)));
}

void LmHead::forward(Blas& blas, float* loss, float* lse, int32_t* argmax, const void* h, const void* W, Precision p,
                     const int32_t* labels, int64_t n, int64_t dim, int64_t vocab, cudaStream_t s) {
  if (n <= 0) return;
  const int64_t cr = rows(n, vocab);
  logits_.reserve(cr * vocab);
  for (int64_t t0 = 0; t0 < n; t0 += cr) {
    const int64_t c = std::min(cr, n - t0);
    blas.gemm(logits_.get(), vocab, offset_rows(h, t0 * dim, p), dim, W, dim, c, vocab, dim, false, true, 1.f, 0.f, p);
    ce_rows_forward(lse + t0, loss + t0, argmax ? argmax + t0 : nullptr, logits_.get(), vocab, labels + t0, c, vocab, s);
  }
}

void LmHead::backward(Blas& blas, float* dh, float* dW, const void* h, const void* W, Precision p, const int32_t* labels,
                      const float* lse, const float* weight, int64_t n, int64_t dim, int64_t vocab, cudaStream_t s) {
  if (n <= 0 || (!dh && !dW)) return;
  const int64_t cr = rows(n, vocab);
  logits_.reserve(cr * vocab);
  if (p == Precision::kBF16) logits16_.reserve(cr * vocab);
  for (int64_t t0 = 0; t0 < n; t0 += cr) {
    const int64_t c = std::min(cr, n - t0);
    const void* hc = offset_rows(h, t0 * dim, p);
    blas.gemm(logits_.get(), vocab, hc, dim, W, dim, c, vocab, dim, false, true, 1.f, 0.f, p);
    ce_rows_backward(logits_.get(), vocab, labels + t0, lse + t0, weight + t0, c, vocab, s);
    // The products take the gradient in the operands' precision (bf16: rounded once, RNE).
    const void* G = logits_.get();
    if (p == Precision::kBF16) {
      f32_to_bf16(logits16_.get(), logits_.get(), c * vocab, s);
      G = logits16_.get();
    }
    if (dh) blas.gemm(dh + t0 * dim, dim, G, vocab, W, dim, c, dim, vocab, false, false, 1.f, 1.f, p);
    if (dW) blas.gemm(dW, dim, G, vocab, hc, dim, vocab, dim, c, true, false, 1.f, 1.f, p);
  }
}

}  // namespace ua::cuda
