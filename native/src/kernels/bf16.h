// bfloat16 storage: conversions between fp32 and bf16 (uint16_t bit patterns, the top half of
// an fp32), and the one switch that says whether AVX512-BF16 instructions may be used.
// in / out: [n] contiguous.
// fp32 -> bf16 rounds to nearest, ties to even, exactly as the AVX512-BF16 instruction
// vcvtne2ps2bf16 and oneDNN's scalar conversion do: a NaN stays a NaN of the same sign and top
// payload bits with the quiet bit set, +-Inf stays +-Inf, a finite value that rounds past the
// largest bf16 becomes +-Inf, and fp32 denormals become a zero of the same sign.
// Must never give different bits on the AVX512-BF16 path and the portable path.
#pragma once
#include "common.h"

namespace ua {

// True when the CPU has AVX512-BF16 and the process allows it. DNNL_MAX_CPU_ISA (oneDNN's own
// environment switch, read once) caps our kernels exactly as it caps oneDNN: any value below
// AVX512_CORE_BF16 selects the portable paths, which is how the fallback is tested on machines
// that have the instructions.
bool use_avx512bf16();

// bf16 bits of one fp32 value (the portable rule; used by the vector paths for their tails too).
inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  const uint32_t abs = u & 0x7fffffffu;
  const uint32_t nan = (u >> 16) | 0x40u;                    // NaN: quiet, same sign and top payload
  const uint32_t zero = (u >> 16) & 0x8000u;                 // zero / denormal: signed zero
  const uint32_t rne = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // ties to even; overflow carries into Inf
  // Selects rather than branches, so the portable loop vectorizes.
  return static_cast<uint16_t>(abs > 0x7f800000u ? nan : (abs < 0x00800000u ? zero : rne));
}

inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

// out[i] = bf16(in[i]); AVX512-BF16 when use_avx512bf16(), else the portable loop.
void f32_to_bf16(uint16_t* out, const float* in, int64_t n);
// The portable loop alone (what a CPU without AVX512-BF16 runs); bitwise equal to f32_to_bf16.
void f32_to_bf16_portable(uint16_t* out, const float* in, int64_t n);
// out[i] = fp32(in[i]) (exact).
void bf16_to_f32(float* out, const uint16_t* in, int64_t n);

}  // namespace ua
