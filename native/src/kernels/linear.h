// Linear layer with PyTorch weight layout: y = x W^T + b.
// x: [n, in], W: [out, in], b: [out] (nullable), y: [n, out]
#pragma once
#include "common.h"

namespace ua {

void linear_forward(float* y, const float* x, const float* W, const float* b,
                    int64_t n, int64_t in, int64_t out);

// dx[n,in] += dy W;  dW[out,in] += dy^T x;  db[out] += sum_rows(dy).
// Any of dx, dW, db may be nullptr to skip it.
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const float* W,
                     int64_t n, int64_t in, int64_t out);

}  // namespace ua
