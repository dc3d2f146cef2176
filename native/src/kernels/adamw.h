// AdamW (decoupled weight decay, PyTorch semantics) on flat buffers.
#pragma once
#include "common.h"

namespace ua {

struct AdamWParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.f;
  int64_t step = 1;  // 1-based step number after this update (bias correction)
};

// p -= lr * wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
void adamw_step(float* param, float* m, float* v, const float* grad, int64_t n, const AdamWParams& p);

}  // namespace ua
