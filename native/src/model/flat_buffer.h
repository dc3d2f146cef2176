// Helpers for the model's flat, 64-byte-aligned float buffers, shared by llama.cc and
// llama_lora.cc: view alignment and bandwidth-bound copies/fills split across threads.
// OpenMP clauses name the thread count explicitly: omp_set_num_threads() on the JS thread does not
// reach the libuv worker threads these run on. Must never depend on N-API.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/common.h"

namespace ua {
namespace flat {

constexpr int64_t kAlign = 16;  // floats per 64 bytes

inline int64_t RoundUp(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Floats that hold `count` bf16 values (rounded up to the 64-byte view alignment).
inline int64_t HalfFloats(int64_t count) { return RoundUp((count + 1) / 2); }

// Hands out consecutive aligned pieces of an arena: take(count) floats, take16(count) bf16 values.
class Cursor {
 public:
  explicit Cursor(float* p) : p_(p) {}
  float* take(int64_t count) {
    float* r = p_;
    p_ += RoundUp(count);
    return r;
  }
  uint16_t* take16(int64_t count) {
    uint16_t* r = reinterpret_cast<uint16_t*>(p_);
    p_ += HalfFloats(count);
    return r;
  }

 private:
  float* p_;
};

inline void ParallelCopy(float* dst, const float* src, int64_t count) {
  const int64_t block = 1 << 16;
  const int64_t nb = (count + block - 1) / block;
#pragma omp parallel for schedule(static) num_threads(nb > 1 ? num_threads() : 1)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t lo = b * block, hi = std::min(count, lo + block);
    std::memcpy(dst + lo, src + lo, static_cast<size_t>(hi - lo) * sizeof(float));
  }
}

inline void ParallelZero(float* dst, int64_t count) {
  const int64_t block = 1 << 16;
  const int64_t nb = (count + block - 1) / block;
#pragma omp parallel for schedule(static) num_threads(nb > 1 ? num_threads() : 1)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t lo = b * block, hi = std::min(count, lo + block);
    std::memset(dst + lo, 0, static_cast<size_t>(hi - lo) * sizeof(float));
  }
}

// dst[i] += src[i]
inline void ParallelAdd(float* dst, const float* src, int64_t count) {
#pragma omp parallel for schedule(static) num_threads(count > (1 << 15) ? num_threads() : 1)
  for (int64_t i = 0; i < count; ++i) dst[i] += src[i];
}

}  // namespace flat
}  // namespace ua
