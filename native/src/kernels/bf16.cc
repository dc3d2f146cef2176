// fp32 <-> bf16 conversions (bf16.h) with an AVX512-BF16 path chosen at run time.
// The addon is compiled with -march=native, but the AVX512-BF16 code carries its own target
// attribute and runs only when use_avx512bf16() says so, so the same source builds and runs on a
// CPU without the instructions. Must never let the two paths round differently.
#include "bf16.h"

#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>

#include "parallel.h"

namespace ua {

bool use_avx512bf16() {
  static const bool ok = [] {
    if (!__builtin_cpu_supports("avx512bf16")) return false;
    const unsigned want = dnnl_cpu_isa_avx512_core_bf16;
    return (static_cast<unsigned>(dnnl_get_effective_cpu_isa()) & want) == want;
  }();
  return ok;
}

namespace {

// Elements per parallel block: large enough that a block amortizes its scheduling.
constexpr int64_t kBlock = int64_t(1) << 14;

void portable_range(uint16_t* out, const float* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16_bits(in[i]);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void avx512bf16_range(uint16_t* out,
                                                                                      const float* in,
                                                                                      int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(in + i), hi = _mm512_loadu_ps(in + i + 16);
    // vcvtne2ps2bf16 puts its second operand in the low half.
    const __m512bh packed = _mm512_cvtne2ps_pbh(hi, lo);
    _mm512_storeu_si512(reinterpret_cast<void*>(out + i), reinterpret_cast<const __m512i&>(packed));
  }
  portable_range(out + i, in + i, n - i);
}

template <typename Range>
void blocked(uint16_t* out, const float* in, int64_t n, Range range) {
  if (n <= 0) return;
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t i0 = b * kBlock;
    range(out + i0, in + i0, std::min(kBlock, n - i0));
  }
}

}  // namespace

void f32_to_bf16(uint16_t* out, const float* in, int64_t n) {
  if (n < 0) throw ShapeError("f32_to_bf16: negative length");
  if (use_avx512bf16()) blocked(out, in, n, avx512bf16_range);
  else blocked(out, in, n, portable_range);
}

void f32_to_bf16_portable(uint16_t* out, const float* in, int64_t n) {
  if (n < 0) throw ShapeError("f32_to_bf16_portable: negative length");
  blocked(out, in, n, portable_range);
}

void bf16_to_f32(float* out, const uint16_t* in, int64_t n) {
  if (n < 0) throw ShapeError("bf16_to_f32: negative length");
  if (n == 0) return;
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t i1 = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < i1; ++i) out[i] = bf16_bits_to_f32(in[i]);
  }
}

}  // namespace ua
