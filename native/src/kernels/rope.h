// Rotary position embedding, rotate-half convention (HF Llama/Qwen2):
//   inv_freq[i] = theta^(-2i/d), angle = pos * inv_freq[i],
//   x'[i] = x[i]*cos - x[i+d/2]*sin,  x'[i+d/2] = x[i+d/2]*cos + x[i]*sin   (i < d/2)
// x: [n, heads, d] (in place), pos: [n] global position ids.
#pragma once
#include "common.h"

namespace ua {

void rope_forward(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta);

// Applies the transpose rotation in place: dx <- R^T dx (the backward of rope_forward).
void rope_backward(float* dx, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta);

}  // namespace ua
