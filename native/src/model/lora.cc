// LoRA adapter kernels: PEFT's initialization of A, keyed dropout masks, and the two small GEMM
// chains of the adapter forward / backward. Products go through sgemm (kernels/matmul.h) on the
// calling thread; the element-wise passes split fixed blocks over OpenMP threads, so every bit is
// independent of the thread count. Must never draw unkeyed randomness.
#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/common.h"
#include "kernels/gradstats.h"
#include "kernels/matmul.h"
#include "kernels/parallel.h"

namespace ua {

namespace {

// XORed into the key's high word so the LoRA streams never coincide with the gradient noise
// stream (same seed, same counter layout) or with each other.
constexpr uint32_t kLoraInitDomain = 0x4c6f5241u;     // "LoRA"
constexpr uint32_t kLoraDropoutDomain = 0x44726f70u;  // "Drop"

constexpr float kTwoPow24Inv = 1.0f / 16777216.0f;

inline void block(uint32_t out[4], uint64_t b, uint32_t c2, uint32_t c3, uint64_t seed, uint32_t domain) {
  const uint32_t ctr[4] = {static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), c2, c3};
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32) ^ domain};
  philox4x32_10(out, ctr, key);
}

// Threshold on the 24-bit integer (w >> 8): kept iff (w >> 8) * 2^-24 >= p, i.e. (w >> 8) >= ceil(p 2^24).
inline uint32_t keep_threshold(float p) {
  return static_cast<uint32_t>(std::ceil(static_cast<double>(p) * 16777216.0));
}

// Applies out[i] (op)= keep(base + i) ? in[i] * inv : 0 over [0, count); one Philox call per
// aligned group of 4 global indices.
template <bool Accumulate>
void apply_mask(float* out, const float* in, int64_t base, int64_t count, float p, uint64_t seed, uint32_t step_key,
                uint32_t stream) {
  if (count <= 0) return;
  const uint32_t thr = keep_threshold(p);
  const float inv = 1.0f / (1.0f - p);
  const int64_t b0 = base / 4, b1 = (base + count - 1) / 4;
#pragma omp parallel for schedule(static) num_threads(threads_for(count))
  for (int64_t b = b0; b <= b1; ++b) {
    uint32_t w[4];
    block(w, static_cast<uint64_t>(b), step_key, stream, seed, kLoraDropoutDomain);
    const int64_t lo = std::max(base, b * 4), hi = std::min(base + count, b * 4 + 4);
    for (int64_t g = lo; g < hi; ++g) {
      const int64_t i = g - base;
      const float v = (w[g - b * 4] >> 8) >= thr ? in[i] * inv : 0.f;
      if (Accumulate)
        out[i] += v;
      else
        out[i] = v;
    }
  }
}

}  // namespace

const char* lora_module_name(int m) {
  static const char* names[kLoraModules] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return m >= 0 && m < kLoraModules ? names[m] : nullptr;
}

const char* lora_module_parent(int m) { return m >= 0 && m < kLoraO + 1 ? "self_attn" : (m < kLoraModules ? "mlp" : nullptr); }

void validate_lora_config(const LoraConfig& c) {
  if (c.rank < 1) throw std::invalid_argument("lora rank: must be a positive integer, got " + std::to_string(c.rank));
  if (!(c.alpha > 0) || !std::isfinite(c.alpha))
    throw std::invalid_argument("lora alpha: must be a finite number > 0, got " + std::to_string(c.alpha));
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw std::invalid_argument("lora dropout: must be in [0, 1), got " + std::to_string(c.dropout));
  if (c.targets == 0) throw std::invalid_argument("lora targets: at least one module is needed");
  if (c.targets >> kLoraModules) throw std::invalid_argument("lora targets: unknown module bit set");
}

void lora_init_a(float* A, int64_t r, int64_t in, uint64_t seed, uint64_t tensor) {
  const int64_t count = r * in;
  const float bound = 1.0f / std::sqrt(static_cast<float>(in));
  const int64_t nblocks = (count + 3) / 4;
#pragma omp parallel for schedule(static) num_threads(threads_for(count))
  for (int64_t b = 0; b < nblocks; ++b) {
    uint32_t w[4];
    block(w, static_cast<uint64_t>(b), 0, static_cast<uint32_t>(tensor), seed, kLoraInitDomain);
    const int64_t lo = b * 4, hi = std::min(count, lo + 4);
    for (int64_t i = lo; i < hi; ++i) {
      const float u = (static_cast<float>(w[i - lo] >> 8) + 0.5f) * kTwoPow24Inv;  // (0, 1)
      A[i] = bound * (2.f * u - 1.f);
    }
  }
}

bool lora_keep(uint64_t seed, uint32_t step_key, uint32_t stream, int64_t i, float p) {
  uint32_t w[4];
  block(w, static_cast<uint64_t>(i / 4), step_key, stream, seed, kLoraDropoutDomain);
  return (w[i % 4] >> 8) >= keep_threshold(p);
}

void lora_dropout_forward(float* xd, const float* x, int64_t base, int64_t count, float p, uint64_t seed,
                          uint32_t step_key, uint32_t stream) {
  apply_mask<false>(xd, x, base, count, p, seed, step_key, stream);
}

void lora_dropout_backward(float* dx, const float* dxd, int64_t base, int64_t count, float p, uint64_t seed,
                           uint32_t step_key, uint32_t stream) {
  apply_mask<true>(dx, dxd, base, count, p, seed, step_key, stream);
}

void lora_forward(float* y, float* u, const float* xd, const float* A, const float* B, int64_t n, int64_t in,
                  int64_t out, int64_t r, float scale) {
  matmul(u, xd, A, n, r, in, false, true, 1.f, 0.f);     // u[n, r] = xd A^T
  matmul(y, u, B, n, out, r, false, true, scale, 1.f);   // y[n, out] += s u B^T
}

void lora_backward(float* dxd, bool accumulate, float* dA, float* dB, float* du, const float* dy, const float* u,
                   const float* xd, const float* A, const float* B, int64_t n, int64_t in, int64_t out, int64_t r,
                   float scale) {
  matmul(dB, dy, u, out, r, n, true, false, scale, 1.f);  // dB[out, r] += s dy^T u
  matmul(du, dy, B, n, r, out, false, false, scale, 0.f); // du[n, r] = s dy B
  matmul(dA, du, xd, r, in, n, true, false, 1.f, 1.f);    // dA[r, in] += du^T xd
  if (dxd) matmul(dxd, du, A, n, in, r, false, false, 1.f, accumulate ? 1.f : 0.f);  // dxd (+)= du A
}

}  // namespace ua
