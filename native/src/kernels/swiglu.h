// SwiGLU activation: out = silu(gate) * up, silu(x) = x * sigmoid(x).
// gate, up, out: [count]
#pragma once
#include "common.h"

namespace ua {

void swiglu_forward(float* out, const float* gate, const float* up, int64_t count);

// dgate += dout * up * silu'(gate);  dup += dout * silu(gate). Either nullable.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t count);

}  // namespace ua
