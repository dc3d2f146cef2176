// SwiGLU activation: out = silu(gate) * up, silu(x) = x * sigmoid(x).
// gate, up, out: [count]
#pragma once
#include "common.h"

namespace ua {

void swiglu_forward(float* out, const float* gate, const float* up, int64_t count);

// dgate += dout * up * silu'(gate);  dup += dout * silu(gate). Either nullable.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t count);

// bf16 variants (bit patterns, bf16.h), for the bf16 model, which saves gate and up in bf16:
// forward: gate16 = bf16(gate), up16 = bf16(up), act16 = bf16(silu(gate16) * up16), so the
// activation is a function of the saved values alone and swiglu_act_bf16 recomputes its bits.
void swiglu_forward_bf16(uint16_t* act16, uint16_t* gate16, uint16_t* up16, const float* gate, const float* up,
                         int64_t count);
void swiglu_act_bf16(uint16_t* act16, const uint16_t* gate16, const uint16_t* up16, int64_t count);
// dgate = dout * up * silu'(gate), dup = dout * silu(gate) from the saved bf16 gate and up, in fp32,
// WRITTEN (not accumulated) as bf16 to dgate16 / dup16 and, when non-null, as fp32 to dgate / dup.
void swiglu_backward_bf16(uint16_t* dgate16, uint16_t* dup16, float* dgate, float* dup, const float* dout,
                          const uint16_t* gate16, const uint16_t* up16, int64_t count);

}  // namespace ua
