// F16 / BF16 / F32 -> F32 conversion used when loading safetensors checkpoints. Handles
// subnormals, infinities and NaN exactly (every half and bfloat16 value is exact in float).
#include "model/convert.h"

#include <cstring>

#include "kernels/common.h"

namespace ua {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal half: normalize the mantissa.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void convert_to_f32(float* dst, const uint8_t* src, int64_t count, SrcType type) {
  if (type == SrcType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(count) * 4);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(count > (1 << 16) ? num_threads() : 1)
  for (int64_t i = 0; i < count; ++i) {
    const uint16_t v = static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8));
    dst[i] = type == SrcType::F16 ? half_to_float(v) : bf16_to_float(v);
  }
}

}  // namespace ua
