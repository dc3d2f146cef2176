// Gradient statistics and gradient-policy operations over a flat gradient buffer split into
// named tensors. All reductions are in double with a fixed summation order: the result is
// bitwise identical for any thread count and on every process.
#pragma once
#include "common.h"

namespace ua {

struct TensorSpan {
  int64_t offset = 0;  // element offset in the flat buffer
  int64_t numel = 0;
  int64_t rows = 0;    // first dimension (for centralization of 2-D weights); rows * cols == numel
  int64_t cols = 0;
};

struct GradStats {
  double grad_mean = 0;   // mean over tensors of mean(|g|) (each tensor counts once; REFERENCE §5)
  double l2_norm = 0;     // global L2 norm over finite values
  double max_abs = 0;     // max |g| over finite values
  int64_t nonfinite = 0;  // count of NaN/Inf
};

// per_tensor_mean_abs [ntensors] (nullable).
GradStats grad_stats(double* per_tensor_mean_abs, const float* grad, const TensorSpan* tensors, int64_t ntensors);

// The partial sums of one (tensor, block) item of grad_stats, and their combination in tensor
// order then block order (items first[t] .. first[t + 1] - 1 belong to tensor t): the one
// combination every engine uses (the CUDA one too), so the statistics agree bitwise wherever the
// partial sums do.
struct GradBlockStats {
  double sum_abs = 0;
  double sum_sq = 0;
  float max_abs = 0;
  int64_t nonfinite = 0;
};
GradStats combine_grad_blocks(double* per_tensor_mean_abs, const GradBlockStats* items, const int64_t* first,
                              const TensorSpan* tensors, int64_t ntensors);

// Counter-based Gaussian noise (Philox4x32-10, Box-Muller), keyed by (seed, step, tensor index):
// g[i] = fma(std, N(0,1)_i, g[i]). Identical on every process and for any thread count.
// Stream: element i uses Philox block b = i / 4 with counter (b lo32, b hi32, step lo32, tensor lo32)
// and key (seed lo32, seed hi32); words (x0, x1) and (x2, x3) give two Box-Muller pairs with
// u1 = ((x >> 8) + 1) 2^-24 in (0, 1], u2 = (x >> 8) 2^-24: z = sqrt(-2 ln u1) * (cos, sin)(2 pi u2)
// (fp32 math; |z| <= 5.77 by construction). Bindings limit step and tensor to 32 bits.
void add_noise(float* g, int64_t n, float std, uint64_t seed, uint64_t step, uint64_t tensor);

// The same stream from element `first` on: g[j] gets normal first + j, so a part of a tensor
// (ZeRO's partitioned gradients, REFERENCE §8) receives exactly what add_noise adds to those
// elements of the whole tensor. add_noise_from(g, n, 0, ...) == add_noise(g, n, ...).
void add_noise_from(float* g, int64_t n, uint64_t first, float std, uint64_t seed, uint64_t step, uint64_t tensor);

// Each span's partial sums (finite |g| and g^2 in double, max finite |g|, non-finite count) over
// blocks of the span in block order: what a rank holding only those elements contributes to the
// statistics, to be combined across ranks in a fixed order. out: [nspans].
void grad_partial_sums(GradBlockStats* out, const float* grad, const TensorSpan* spans, int64_t nspans);

// The i-th standard normal of the stream keyed by (seed, step, tensor): exposed for tests.
float philox_normal(uint64_t seed, uint64_t step, uint64_t tensor, uint64_t i);

// The raw Philox4x32-10 block function (Salmon et al., SC'11): out = philox(ctr, key).
// Exposed so tests can check it against the published known-answer vectors.
void philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

// g *= factor
void scale(float* g, int64_t n, float factor);

// Gradient centralization: for a [rows, cols] gradient, subtract from each row its mean over cols.
void centralize(float* g, int64_t rows, int64_t cols);

// Clip by a global norm already computed (reduced): if norm > max_norm, g *= max_norm / (norm + 1e-6).
// Returns the factor applied (1 when no clipping).
float clip_by_global_norm(float* g, int64_t n, double norm, double max_norm);

void zero(float* g, int64_t n);

}  // namespace ua
