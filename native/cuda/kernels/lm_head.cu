// The per-row part of the fused LM head + cross-entropy on the GPU (the CPU's
// kernels/lm_head_ce.cc): over a chunk of logits rows, the log-sum-exp, the token loss and the
// argmax (forward), and the gradient of the loss with respect to the logits, in place
// (backward). The logits chunk itself, and the products with the head after it, are cuBLAS
// products issued by the caller (cuda_model.cu, host_ops.cu), so [n, vocab] never exists.
#include <cmath>

#include "cuda/kernels/common.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/runtime.cuh"

namespace ua::cuda {

namespace {

constexpr int kThreads = 256;
constexpr float kLog2e = 1.4426950408889634f;

// One block per row: max (NaN noted), argmax (lowest id among equal maxima), then the sum of
// exp(x - max) as the CPU computes it, exp2(x log2e - max log2e).
__global__ void CeForwardKernel(float* lse, float* loss, int32_t* argmax, const float* logits, int64_t ld,
                                const int32_t* labels, int64_t vocab) {
  const int64_t r = blockIdx.x;
  const float* x = logits + r * ld;
  __shared__ float sv[kThreads];
  __shared__ int32_t si[kThreads];
  __shared__ int snan[kThreads];
  __shared__ float ssum[32];
  float best = -INFINITY;
  int32_t bi = INT32_MAX;
  int has_nan = 0;
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
    const float v = x[j];
    if (v != v) has_nan = 1;
    else if (v > best || bi == INT32_MAX) best = v, bi = static_cast<int32_t>(j);
  }
  sv[threadIdx.x] = best;
  si[threadIdx.x] = bi;
  snan[threadIdx.x] = has_nan;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) {
      const float ov = sv[threadIdx.x + w];
      const int32_t oi = si[threadIdx.x + w];
      if (oi != INT32_MAX && (si[threadIdx.x] == INT32_MAX || ov > sv[threadIdx.x] ||
                              (ov == sv[threadIdx.x] && oi < si[threadIdx.x]))) {
        sv[threadIdx.x] = ov;
        si[threadIdx.x] = oi;
      }
      snan[threadIdx.x] |= snan[threadIdx.x + w];
    }
    __syncthreads();
  }
  const float m = sv[0];
  const bool nan_row = snan[0] != 0;
  float sum = 0.f;
  if (!nan_row && isfinite(m)) {
    const float sub = m * kLog2e;
    for (int64_t j = threadIdx.x; j < vocab; j += kThreads) sum += exp2f(fmaf(x[j], kLog2e, -sub));
  }
  sum = block_sum(sum, ssum);
  if (threadIdx.x == 0) {
    const float L = nan_row ? NAN : (isfinite(m) ? m + logf(sum) : m);
    const int32_t y = labels[r];
    const float target = (y >= 0 && y < vocab) ? x[y] : 0.f;
    if (lse) lse[r] = L;
    if (loss) loss[r] = y >= 0 ? L - target : 0.f;
    if (argmax) argmax[r] = si[0] == INT32_MAX ? 0 : si[0];
  }
}

__global__ void CeBackwardKernel(float* logits, int64_t ld, const int32_t* labels, const float* lse,
                                 const float* weight, int64_t c, int64_t vocab) {
  UA_GRID_STRIDE(i, c * vocab) {
    const int64_t r = i / vocab, j = i - r * vocab;
    float* x = logits + r * ld + j;
    const float w = weight[r];
    if (w == 0.f) {
      *x = 0.f;
      continue;
    }
    float gval = exp2f(fmaf(*x, kLog2e, -lse[r] * kLog2e)) * w;
    if (j == labels[r]) gval -= w;
    *x = gval;
  }
}

}  // namespace

void ce_rows_forward(float* lse, float* loss, int32_t* argmax, const float* logits, int64_t ld, const int32_t* labels,
                     int64_t c, int64_t vocab, cudaStream_t s) {
  if (c <= 0) return;
  CeForwardKernel<<<static_cast<unsigned>(c), kThreads, 0, s>>>(lse, loss, argmax, logits, ld, labels, vocab);
  UA_LAUNCHED("ce_rows_forward");
}

void ce_rows_backward(float* logits, int64_t ld, const int32_t* labels, const float* lse, const float* weight, int64_t c,
                      int64_t vocab, cudaStream_t s) {
  if (c <= 0) return;
  CeBackwardKernel<<<grid_for(c * vocab, kThreads), kThreads, 0, s>>>(logits, ld, labels, lse, weight, c, vocab);
  UA_LAUNCHED("ce_rows_backward");
}

}  // namespace ua::cuda
