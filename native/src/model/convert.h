// Element-type conversion for checkpoint loading: F32 / F16 / BF16 little-endian bytes -> float.
// Pure C++, no N-API. Must never read past `count` elements of the source.
#pragma once
#include <cstdint>

namespace ua {

enum class SrcType { F32, F16, BF16 };

// dst: [count] floats; src: count * (4 | 2 | 2) bytes (no alignment required).
void convert_to_f32(float* dst, const uint8_t* src, int64_t count, SrcType type);

// Scalar helpers (exposed for tests): IEEE half and bfloat16 bit patterns to float.
float half_to_float(uint16_t h);
float bf16_to_float(uint16_t b);

}  // namespace ua
