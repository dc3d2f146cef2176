// SwiGLU: out = silu(gate) * up, with a branch-free exp so the loops vectorize (libm expf does not
// without -ffast-math). gate, up, out: [count]
// Must never change the math beyond fp32 rounding: exp is accurate to a few ulp over its range.
#include "swiglu.h"

#include <algorithm>
#include <cstring>

#include "bf16.h"
#include "parallel.h"

namespace ua {

namespace {

// exp(x) for x clamped to [-87, 88]: x = k ln2 + r, |r| <= ln2/2, degree-7 Taylor for exp(r)
// (truncation < 2e-9 relative), 2^k built in the exponent bits. NaN stays NaN through r.
inline float exp_vec(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float t = x * 1.44269504088896341f;
  const float k = (t + 12582912.0f) - 12582912.0f;  // round to nearest integer (|t| < 2^22)
  const float r = (x - k * 0.693145751953125f) - k * 1.42860682030941723e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float g) { return 1.0f / (1.0f + exp_vec(-g)); }

constexpr int64_t kChunk = 16384;

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, int64_t count) {
  if (count < 0) throw ShapeError("swiglu_forward: negative count");
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads_for(count * 8)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i1 = std::min(count, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < i1; ++i) {
      const float g = gate[i];
      out[i] = g * sigmoid(g) * up[i];
    }
  }
}

// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g)
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t count) {
  if (count < 0) throw ShapeError("swiglu_backward: negative count");
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads_for(count * 8)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, i1 = std::min(count, (c + 1) * kChunk);
    if (dgate && dup) {  // the usual case: one pass, one sigmoid per element
      for (int64_t i = i0; i < i1; ++i) {
        const float g = gate[i], s = sigmoid(g), d = dout[i];
        dgate[i] += d * up[i] * (s * (1.0f + g * (1.0f - s)));
        dup[i] += d * (g * s);
      }
    } else if (dgate) {
      for (int64_t i = i0; i < i1; ++i) {
        const float g = gate[i], s = sigmoid(g);
        dgate[i] += dout[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
      }
    } else if (dup) {
      for (int64_t i = i0; i < i1; ++i) {
        const float g = gate[i];
        dup[i] += dout[i] * (g * sigmoid(g));
      }
    }
  }
}

// bf16 variants: the same exp and formulas on the bf16-rounded values.
void swiglu_forward_bf16(uint16_t* act16, uint16_t* gate16, uint16_t* up16, const float* gate, const float* up,
                         int64_t count) {
  if (count < 0) throw ShapeError("swiglu_forward_bf16: negative count");
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads_for(count * 8)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i1 = std::min(count, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < i1; ++i) {
      const uint16_t gb = f32_to_bf16_bits(gate[i]), ub = f32_to_bf16_bits(up[i]);
      gate16[i] = gb;
      up16[i] = ub;
      const float g = bf16_bits_to_f32(gb);
      act16[i] = f32_to_bf16_bits(g * sigmoid(g) * bf16_bits_to_f32(ub));
    }
  }
}

void swiglu_act_bf16(uint16_t* act16, const uint16_t* gate16, const uint16_t* up16, int64_t count) {
  if (count < 0) throw ShapeError("swiglu_act_bf16: negative count");
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads_for(count * 8)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i1 = std::min(count, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < i1; ++i) {
      const float g = bf16_bits_to_f32(gate16[i]);
      act16[i] = f32_to_bf16_bits(g * sigmoid(g) * bf16_bits_to_f32(up16[i]));
    }
  }
}

namespace {

// One chunk of swiglu_backward_bf16; the fp32 outputs as a template switch so every variant's loop
// vectorizes (a per-element null check does not).
template <bool kGate32, bool kUp32>
void backward_bf16_range(uint16_t* dgate16, uint16_t* dup16, float* dgate, float* dup, const float* dout,
                         const uint16_t* gate16, const uint16_t* up16, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    const float g = bf16_bits_to_f32(gate16[i]), s = sigmoid(g), d = dout[i];
    const float dg = d * bf16_bits_to_f32(up16[i]) * (s * (1.0f + g * (1.0f - s)));
    const float du = d * (g * s);
    dgate16[i] = f32_to_bf16_bits(dg);
    dup16[i] = f32_to_bf16_bits(du);
    if constexpr (kGate32) dgate[i] = dg;
    if constexpr (kUp32) dup[i] = du;
  }
}

}  // namespace

void swiglu_backward_bf16(uint16_t* dgate16, uint16_t* dup16, float* dgate, float* dup, const float* dout,
                          const uint16_t* gate16, const uint16_t* up16, int64_t count) {
  if (count < 0) throw ShapeError("swiglu_backward_bf16: negative count");
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads_for(count * 8)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, i1 = std::min(count, (c + 1) * kChunk);
    if (dgate && dup) backward_bf16_range<true, true>(dgate16, dup16, dgate, dup, dout, gate16, up16, i0, i1);
    else if (dgate) backward_bf16_range<true, false>(dgate16, dup16, dgate, dup, dout, gate16, up16, i0, i1);
    else if (dup) backward_bf16_range<false, true>(dgate16, dup16, dgate, dup, dout, gate16, up16, i0, i1);
    else backward_bf16_range<false, false>(dgate16, dup16, dgate, dup, dout, gate16, up16, i0, i1);
  }
}

}  // namespace ua
