// Private SIMD helpers for the attention and LM-head kernels: a register-blocked block product and
// a fast vectorized exp2. Single-threaded building blocks: they never start threads, never allocate
// and never call BLAS (they run inside OpenMP regions).
//
// block_gemm: C[M, N] (= or +=) A B, where A is addressed A[r * ars + k * aks] (so the same routine
// serves A and A^T) and B is row-major [K, N] with row stride ldb. Sized for flash-attention
// blocks (M, N, K <= a few hundred).
//
// exp2: 2^x = 2^n * 2^f with n = round(x), f in [-0.5, 0.5]; 2^f by its degree-6 Taylor polynomial
// of e^(f ln 2) (truncation error < 1.2e-7 relative, about 2e-7 with float rounding), then
// scaled by 2^n with vscalefps. Inputs are clamped below at -200 so -inf (a masked score) gives
// exactly 0, never NaN. NaN inputs stay NaN.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ua::simd {

#if defined(__AVX512F__)

inline __m512 exp2_ps(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-200.f), x);  // max(a, NaN) returns NaN: NaN propagates
  x = _mm512_min_ps(_mm512_set1_ps(127.f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.5403530393381606e-04f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

template <int MR, int NV>
inline void gemm_tile(float* C, int64_t ldc, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb,
                      int64_t K, __mmask16 last, bool accumulate) {
  // Accumulators start at zero and C is added at the end: with every loop fully unrolled GCC keeps
  // all MR * NV accumulators in registers (a conditional load-or-zero start made it spill them).
  __m512 c[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
    bv[NV - 1] = _mm512_maskz_loadu_ps(last, b + 16 * (NV - 1));
    const float* a = A + k * aks;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * ars]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(av, bv[v], c[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = C + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v)
      _mm512_storeu_ps(cr + 16 * v, accumulate ? _mm512_add_ps(c[r][v], _mm512_loadu_ps(cr + 16 * v)) : c[r][v]);
    const __m512 tail = c[r][NV - 1];
    _mm512_mask_storeu_ps(cr + 16 * (NV - 1), last,
                          accumulate ? _mm512_add_ps(tail, _mm512_maskz_loadu_ps(last, cr + 16 * (NV - 1))) : tail);
  }
}

using TileFn = void (*)(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t, __mmask16,
                        bool);

template <int NV>
inline void gemm_panel(float* C, int64_t ldc, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb,
                       int64_t M, int64_t K, __mmask16 last, bool accumulate) {
  constexpr int MR = 6;
  static const TileFn rest[MR] = {nullptr, gemm_tile<1, NV>, gemm_tile<2, NV>, gemm_tile<3, NV>, gemm_tile<4, NV>,
                                  gemm_tile<5, NV>};
  int64_t r = 0;
  for (; r + MR <= M; r += MR)
    gemm_tile<MR, NV>(C + r * ldc, ldc, A + r * ars, ars, aks, B, ldb, K, last, accumulate);
  if (r < M) rest[M - r](C + r * ldc, ldc, A + r * ars, ars, aks, B, ldb, K, last, accumulate);
}

inline void block_gemm(float* C, int64_t ldc, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb,
                       int64_t M, int64_t N, int64_t K, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  for (int64_t n0 = 0; n0 < N; n0 += 64) {
    const int64_t w = N - n0 < 64 ? N - n0 : 64;
    const int nv = static_cast<int>((w + 15) / 16);
    const __mmask16 last = tail_mask(w - 16 * (nv - 1));
    float* c = C + n0;
    const float* b = B + n0;
    switch (nv) {
      case 1: gemm_panel<1>(c, ldc, A, ars, aks, b, ldb, M, K, last, accumulate); break;
      case 2: gemm_panel<2>(c, ldc, A, ars, aks, b, ldb, M, K, last, accumulate); break;
      case 3: gemm_panel<3>(c, ldc, A, ars, aks, b, ldb, M, K, last, accumulate); break;
      default: gemm_panel<4>(c, ldc, A, ars, aks, b, ldb, M, K, last, accumulate); break;
    }
  }
}

// max over x[0..n)
inline float row_max(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + j));
  if (j < n) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail_mask(n - j), x + j));
  return _mm512_reduce_max_ps(m);
}

// x[j] = 2^(x[j] * t - sub); returns the sum of the results.
inline float exp2_affine_sum(float* x, int64_t n, float t, float sub) {
  const __m512 vt = _mm512_set1_ps(t), vs = _mm512_set1_ps(sub);
  __m512 acc = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 e = exp2_ps(_mm512_fmsub_ps(_mm512_loadu_ps(x + j), vt, vs));
    _mm512_storeu_ps(x + j, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (j < n) {
    const __mmask16 mk = tail_mask(n - j);
    const __m512 e = exp2_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(mk, x + j), vt, vs));
    _mm512_mask_storeu_ps(x + j, mk, e);
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mk, e));
  }
  return _mm512_reduce_add_ps(acc);
}

// y[j] = x[j] * (y[j] - sub) * t   (dS = P * (dP - D) * scale)
inline void mul_sub_scale(float* y, const float* x, int64_t n, float sub, float t) {
  const __m512 vt = _mm512_set1_ps(t), vs = _mm512_set1_ps(sub);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + j), vt),
                                          _mm512_sub_ps(_mm512_loadu_ps(y + j), vs)));
  if (j < n) {
    const __mmask16 mk = tail_mask(n - j);
    _mm512_mask_storeu_ps(y + j, mk, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + j), vt),
                                                   _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, y + j), vs)));
  }
}

#else  // portable fallback: same contracts, plain loops

inline void block_gemm(float* C, int64_t ldc, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb,
                       int64_t M, int64_t N, int64_t K, bool accumulate) {
  for (int64_t r = 0; r < M; ++r) {
    float* c = C + r * ldc;
    if (!accumulate)
      for (int64_t j = 0; j < N; ++j) c[j] = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const float a = A[r * ars + k * aks];
      const float* b = B + k * ldb;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

inline float row_max(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

inline float exp2_affine_sum(float* x, int64_t n, float t, float sub) {
  float s = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = std::exp2(x[j] * t - sub);
    s += x[j];
  }
  return s;
}

inline void mul_sub_scale(float* y, const float* x, int64_t n, float sub, float t) {
  for (int64_t j = 0; j < n; ++j) y[j] = x[j] * t * (y[j] - sub);
}

#endif

}  // namespace ua::simd
