// RMSNorm (Llama/Qwen): y = x * rsqrt(mean(x^2) + eps) * w, statistics in fp32 (accumulated in double).
// x, y: [n, dim], w: [dim], rstd: [n] (saved for the backward)
#pragma once
#include "common.h"

namespace ua {

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t dim, float eps);

// The same with y rounded to bf16 (bit patterns, bf16.h): y16 = bf16 of what rmsnorm_forward
// writes, rstd identical. For the bf16 model, whose products take bf16 inputs.
void rmsnorm_forward_bf16(uint16_t* y16, float* rstd, const float* x, const float* w, int64_t n, int64_t dim, float eps);

// dx[n,dim] += ..., dw[dim] += ... (either nullable). Deterministic for any thread count.
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                      int64_t n, int64_t dim);

}  // namespace ua
