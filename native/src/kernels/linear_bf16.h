// Linear layer with bf16 operands (REFERENCE §6): y = x W^T + b as a bf16 x bf16 -> fp32 product
// (matmul_bf16), bias and output fp32; the backward takes the output gradient in bf16 for its two
// products and in fp32 for the bias sum. PyTorch weight layout.
// x16: [n, in], W16: [out, in], b: [out] (nullable), y: [n, out]; dy16 / dy: [n, out].
#pragma once
#include "common.h"

namespace ua {

// y = x16 W16^T + b (beta == 0: y is overwritten; beta == 1: y += ..., the residual folded in).
void linear_forward_bf16(float* y, const uint16_t* x16, const uint16_t* W16, const float* b, int64_t n, int64_t in,
                         int64_t out, float beta = 0.f);

// dx[n,in] = dy16 W16 (accumulate: +=);  dW[out,in] += dy16^T x16;  db[out] += sum_rows(dy).
// Any of dx, dW, db may be nullptr to skip it (dy only matters for db).
void linear_backward_bf16(float* dx, bool accumulate_dx, float* dW, float* db, const uint16_t* dy16, const float* dy,
                          const uint16_t* x16, const uint16_t* W16, int64_t n, int64_t in, int64_t out);

}  // namespace ua
