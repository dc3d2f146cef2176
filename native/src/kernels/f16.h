// IEEE binary16 (half) storage for exported checkpoints: fp32 -> fp16 bit patterns, rounded to
// nearest, ties to even, as PyTorch's .to(torch.float16) does: overflow (|x| >= 65520) becomes
// +-Inf, values below the smallest normal become subnormals (or a signed zero), NaN stays a quiet
// NaN of the same sign with its top payload bits. The reverse (half -> float, exact) is
// model/convert.h's half_to_float. in / out: [n] contiguous.
#pragma once
#include <cstring>

#include "common.h"

namespace ua {

inline uint16_t f32_to_f16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504: Inf
  if (abs >= 0x38800000u) {
    // normal: round the 23-bit mantissa at bit 13, ties to even; rebias the exponent 127 -> 15
    const uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((r - 0x38000000u) >> 13));
  }
  if (abs <= 0x33000000u) return sign;  // at most 2^-25 (half the smallest subnormal): zero
  // subnormal: k units of 2^-24, the value being mantissa * 2^(e - 150)
  const uint32_t e = abs >> 23, m = (abs & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14 .. 24
  uint32_t k = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (k & 1u))) ++k;  // k == 0x400 is the smallest normal: still right
  return static_cast<uint16_t>(sign | k);
}

// out[i] = f16(in[i]), split across threads for large n.
void f32_to_f16(uint16_t* out, const float* in, int64_t n);

}  // namespace ua
