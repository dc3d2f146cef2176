// SwiGLU: out = silu(gate) * up, with a branch-free exp so the loops vectorize (libm expf does not
// without -ffast-math). gate, up, out: [count]
// Must never change the math beyond fp32 rounding: exp is accurate to a few ulp over its range.
#include "swiglu.h"

#include <algorithm>
#include <cstring>

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

}  // namespace ua
