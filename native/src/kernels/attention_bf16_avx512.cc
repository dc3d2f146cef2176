// Flash attention on AVX512-BF16 (attention_bf16.h): every block product is a vdpbf16ps kernel,
// bf16 x bf16 pairs accumulated into fp32; the softmax and its statistics stay fp32.
// Compiled for AVX512-BF16 whatever the build machine has (the pragma after the includes); runs only when
// use_avx512bf16() holds (attention_bf16.cc decides). Must never be reached on another CPU.
//
// vdpbf16ps works on PAIRS along the inner dimension: C[r, j] += A[r, 2p] B[2p, j] +
// A[r, 2p+1] B[2p+1, j], with A's pair read as one 32-bit word (low half first) and B's pairs
// for 16 columns as 16 words of one row of B's "pair rows" (the VNNI layout). So each operand is
// stored with the pairs of its inner dimension adjacent:
//   - along d (S = Q K^T, dP = dO V^T): Q and dO are read in place ([s, H, d] rows are pairs
//     along d); K and V are "T-packed": per key block, [d/2, nk] words (pair c of key j at
//     c * nk + j), kt / vt below;
//   - along keys (O += P V, dQ += dS K): P and dS are [nq, nk'] bf16 rows (nk' = nk rounded up to
//     even, the pad column 0); V and K are "pair-row packed": per key block, [ceil(nk/2), d] words
//     (keys 2p and 2p+1 of column c at p * d + c, the missing odd key 0), vi / ki below;
//   - along queries (dV += P^T dO, dK += dS^T Q): P and dS are also written pair-row packed over
//     their rows ([ceil(nq/2), nk] words), and dO and Q are pair-row packed per query block.
// Pair-row packed blocks of an odd length take one row more than their tokens, so a packed
// tensor holds s + (number of documents) rows per head: block j0 of document number k starts at
// row j0 + k.
// Work split, masking and block grid are those of the fp32 kernels (attention_common.h), so the
// results are bitwise the same for any thread count.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "attention_bf16_native.h"
#include "attention_simd.h"
#include "bf16.h"

// After the includes: the inline functions of the headers (the standard library's, the shared
// attention helpers) are also compiled in other files without these ISA extensions, and the
// linker keeps one copy of each; a copy compiled here could carry AVX512 code into them.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

namespace ua::attn {

namespace {

using u16 = uint16_t;
using u32 = uint32_t;

inline __m512 dp(__m512 acc, __m512i a, __m512i b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }

// 16 fp32 -> 16 bf16 (round to nearest even; vcvtneps2bf16).
inline __m256i to_bf16(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }

// C[MR, 16 NV] (= or +=) A B over KP pairs: A's pair (r, p) is the word A[r * ars + p * aks]; B's
// pair row p is B[p * ldb .. + 16 NV) (the last vector masked by `last`).
template <int MR, int NV>
inline void tile(float* C, int64_t ldc, const u32* A, int64_t ars, int64_t aks, const u32* B, int64_t ldb, int64_t KP,
                 __mmask16 last, bool accumulate) {
  __m512 c[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < KP; ++p) {
    const u32* b = B + p * ldb;
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) bv[v] = _mm512_loadu_si512(b + 16 * v);
    bv[NV - 1] = _mm512_maskz_loadu_epi32(last, b + 16 * (NV - 1));
    const u32* a = A + p * aks;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(a[r * ars]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] = dp(c[r][v], av, bv[v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = C + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v)
      _mm512_storeu_ps(cr + 16 * v, accumulate ? _mm512_add_ps(c[r][v], _mm512_loadu_ps(cr + 16 * v)) : c[r][v]);
    float* ct = cr + 16 * (NV - 1);
    _mm512_mask_storeu_ps(ct, last, accumulate ? _mm512_add_ps(c[r][NV - 1], _mm512_maskz_loadu_ps(last, ct)) : c[r][NV - 1]);
  }
}

using TileFn = void (*)(float*, int64_t, const u32*, int64_t, int64_t, const u32*, int64_t, int64_t, __mmask16, bool);

template <int NV>
inline void panel(float* C, int64_t ldc, const u32* A, int64_t ars, int64_t aks, const u32* B, int64_t ldb, int64_t M,
                  int64_t KP, __mmask16 last, bool accumulate) {
  constexpr int MR = 6;
  static const TileFn rest[MR] = {nullptr, tile<1, NV>, tile<2, NV>, tile<3, NV>, tile<4, NV>, tile<5, NV>};
  int64_t r = 0;
  for (; r + MR <= M; r += MR) tile<MR, NV>(C + r * ldc, ldc, A + r * ars, ars, aks, B, ldb, KP, last, accumulate);
  if (r < M) rest[M - r](C + r * ldc, ldc, A + r * ars, ars, aks, B, ldb, KP, last, accumulate);
}

// C[M, N] (= or +=) A B, operands as in tile(); N in panels of 64 columns.
void block_dp(float* C, int64_t ldc, const u32* A, int64_t ars, int64_t aks, const u32* B, int64_t ldb, int64_t M,
              int64_t N, int64_t KP, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (KP <= 0) {
    if (!accumulate)
      for (int64_t r = 0; r < M; ++r) std::fill(C + r * ldc, C + r * ldc + N, 0.f);
    return;
  }
  for (int64_t n0 = 0; n0 < N; n0 += 64) {
    const int64_t w = std::min<int64_t>(64, N - n0);
    const int nv = static_cast<int>((w + 15) / 16);
    const __mmask16 last = simd::tail_mask(w - 16 * (nv - 1));
    float* c = C + n0;
    const u32* b = B + n0;
    switch (nv) {
      case 1: panel<1>(c, ldc, A, ars, aks, b, ldb, M, KP, last, accumulate); break;
      case 2: panel<2>(c, ldc, A, ars, aks, b, ldb, M, KP, last, accumulate); break;
      case 3: panel<3>(c, ldc, A, ars, aks, b, ldb, M, KP, last, accumulate); break;
      default: panel<4>(c, ldc, A, ars, aks, b, ldb, M, KP, last, accumulate); break;
    }
  }
}

inline __mmask16 mask16(int64_t n) { return simd::tail_mask(n); }

// p[j] = bf16(2^(x[j] t - sub)), j < n, and p[n] = 0 when n is odd; returns the sum of the fp32 values.
float exp2_to_bf16(u16* p, const float* x, int64_t n, float t, float sub) {
  const __m512 vt = _mm512_set1_ps(t), vs = _mm512_set1_ps(sub);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mk = mask16(n - j);
    const __m512 e = _mm512_maskz_mov_ps(mk, simd::exp2_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(mk, x + j), vt, vs)));
    _mm256_mask_storeu_epi16(p + j, mk, to_bf16(e));
    acc = _mm512_add_ps(acc, e);
  }
  if (n & 1) p[n] = 0;
  return _mm512_reduce_add_ps(acc);
}

// dst[j] = bf16(src[j]), j < n, and dst[n] = 0 when n is odd.
void row_to_bf16(u16* dst, const float* src, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mk = mask16(n - j);
    _mm256_mask_storeu_epi16(dst + j, mk, to_bf16(_mm512_maskz_loadu_ps(mk, src + j)));
  }
  if (n & 1) dst[n] = 0;
}

// dst[j] = bf16(r0[j]) | bf16(r1[j]) << 16 (r1 == nullptr: the high halves are 0), j < n.
void pair_rows_to_bf16(u32* dst, const float* r0, const float* r1, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mk = mask16(n - j);
    const __m512i lo = _mm512_cvtepu16_epi32(to_bf16(_mm512_maskz_loadu_ps(mk, r0 + j)));
    const __m512i hi = r1 ? _mm512_slli_epi32(_mm512_cvtepu16_epi32(to_bf16(_mm512_maskz_loadu_ps(mk, r1 + j))), 16)
                          : _mm512_setzero_si512();
    _mm512_mask_storeu_epi32(dst + j, mk, _mm512_or_si512(lo, hi));
  }
}

// One block of a packed tensor: head h, tokens [j0, j0 + n) of document number doc.
struct PackBlock {
  int64_t h, j0, n, doc;
};

std::vector<PackBlock> pack_blocks(const std::vector<Doc>& docs, int64_t heads, int64_t step) {
  std::vector<PackBlock> out;
  for (int64_t h = 0; h < heads; ++h)
    for (size_t k = 0; k < docs.size(); ++k)
      for (int64_t j0 = docs[k].a; j0 < docs[k].b; j0 += step)
        out.push_back({h, j0, std::min(step, docs[k].b - j0), static_cast<int64_t>(k)});
  return out;
}

// T-pack (see the header): dst per head [s * d/2] words, block [j0, j0 + nk) at j0 * d/2 as
// [d/2, nk]. x: [s, heads, d] bf16.
void pack_t(u32* dst, const u16* x, const std::vector<Doc>& docs, int64_t s, int64_t heads, int64_t d, int nt) {
  const int64_t dp2 = d / 2;
  const std::vector<PackBlock> blocks = pack_blocks(docs, heads, kBk);
  const u32* x32 = reinterpret_cast<const u32*>(x);
  const int64_t nb = static_cast<int64_t>(blocks.size());
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bi = 0; bi < nb; ++bi) {
    const PackBlock& b = blocks[static_cast<size_t>(bi)];
    u32* o = dst + (b.h * s + b.j0) * dp2;
    for (int64_t jj = 0; jj < b.n; ++jj) {
      const u32* src = x32 + ((b.j0 + jj) * heads + b.h) * dp2;
      for (int64_t c = 0; c < dp2; ++c) o[c * b.n + jj] = src[c];
    }
  }
}

// Pair-row pack (see the header): dst per head [(s + ndocs) * d/2] words, block [j0, j0 + n) of
// document k at (j0 + k) * d/2 as [ceil(n/2), d]. x: [s, heads, d] bf16.
void pack_pairs(u32* dst, const u16* x, const std::vector<Doc>& docs, int64_t s, int64_t heads, int64_t d, int nt) {
  const int64_t dp2 = d / 2, rows = s + static_cast<int64_t>(docs.size());
  const std::vector<PackBlock> blocks = pack_blocks(docs, heads, kBk);
  const int64_t nb = static_cast<int64_t>(blocks.size());
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bi = 0; bi < nb; ++bi) {
    const PackBlock& b = blocks[static_cast<size_t>(bi)];
    u32* o = dst + (b.h * rows + b.j0 + b.doc) * dp2;
    for (int64_t p = 0; 2 * p < b.n; ++p) {
      const u16* r0 = x + ((b.j0 + 2 * p) * heads + b.h) * d;
      const u16* r1 = 2 * p + 1 < b.n ? r0 + heads * d : nullptr;
      for (int64_t c = 0; c < d; c += 16) {
        const __mmask16 mk = mask16(d - c);
        const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, r0 + c));
        const __m512i hi = r1 ? _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, r1 + c)), 16)
                              : _mm512_setzero_si512();
        _mm512_mask_storeu_epi32(o + p * d + c, mk, _mm512_or_si512(lo, hi));
      }
    }
  }
}

}  // namespace

void forward_bf16_native(u16* out, float* lse, const u16* q, const u16* k, const u16* v, const std::vector<Doc>& docs,
                         const AttnShape& sh) {
  const int64_t s = sh.s, H = sh.H, Hkv = sh.Hkv, d = sh.d, G = H / Hkv, dp2 = d / 2;
  const int64_t rows = s + static_cast<int64_t>(docs.size());
  const float t = default_scale(sh) * kLog2e;
  const int nt = std::max(1, num_threads());
  std::fill(out, out + s * H * d, u16(0));
  std::fill(lse, lse + H * s, -INFINITY);
  if (docs.empty()) return;

  Scratch<u32> kt(Hkv * s * dp2), vi(Hkv * rows * dp2);
  pack_t(kt.data(), k, docs, s, Hkv, d, nt);
  pack_pairs(vi.data(), v, docs, s, Hkv, d, nt);

  struct Task {
    int64_t h, a, b, doc, i0, j_first, cost;
  };
  std::vector<Task> tasks;
  for (int64_t h = 0; h < H; ++h)
    for (size_t di = 0; di < docs.size(); ++di) {
      const Doc& doc = docs[di];
      for (int64_t i0 = doc.a; i0 < doc.b; i0 += kBq) {
        const int64_t jf = first_key_block(sh, doc.a, i0);
        tasks.push_back({h, doc.a, doc.b, static_cast<int64_t>(di), i0, jf,
                         (sh.causal ? std::min(i0 + kBq, doc.b) : doc.b) - jf});
      }
    }
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& x, const Task& y) { return x.cost > y.cost; });

  // Per thread: S [Bq, Bk] fp32, P [Bq, Bk] bf16, O [Bq, d] fp32, m, l [Bq] (in floats; P takes half its slot).
  const int64_t per_thread = kBq * kBk + kBq * kBk / 2 + kBq * d + 2 * kBq + 16;
  Scratch<float> work(per_thread * nt);
  const int64_t ntasks = static_cast<int64_t>(tasks.size());
  const u32* q32 = reinterpret_cast<const u32*>(q);
  const u32* ktp = kt.data();
  const u32* vip = vi.data();

#pragma omp parallel num_threads(nt)
  {
    float* S = work.data() + per_thread * omp_get_thread_num();
    u16* P = reinterpret_cast<u16*>(S + kBq * kBk);
    float* O = S + kBq * kBk + kBq * kBk / 2;
    float* m = O + kBq * d;
    float* l = m + kBq;
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < ntasks; ++ti) {
      const Task& task = tasks[ti];
      const int64_t h = task.h, hk = h / G, i0 = task.i0, b = task.b;
      const int64_t nq = std::min(kBq, b - i0);
      std::fill(O, O + nq * d, 0.f);
      std::fill(m, m + nq, -INFINITY);
      std::fill(l, l + nq, 0.f);
      const u32* qa = q32 + (i0 * H + h) * dp2;
      const int64_t kend = sh.causal ? i0 + nq : b;
      for (int64_t j0 = task.j_first; j0 < kend; j0 += kBk) {
        const int64_t nk = std::min(kBk, b - j0), nkp = nk + (nk & 1);
        block_dp(S, nk, qa, H * dp2, 1, ktp + (hk * s + j0) * dp2, nk, nq, nk, dp2, false);
        const bool masked = needs_mask(sh, i0, nq, j0, nk);
        for (int64_t r = 0; r < nq; ++r) {
          float* srow = S + r * nk;
          u16* prow = P + r * nkp;
          if (masked) mask_row(srow, sh, i0 + r, j0, nk);
          const float mnew = std::max(m[r], simd::row_max(srow, nk) * t);
          if (mnew == -INFINITY) {  // nothing visible yet in this row
            std::fill(prow, prow + nkp, u16(0));
            continue;
          }
          const float alpha = std::exp2(m[r] - mnew);  // 0 when m was -inf
          const float sum = exp2_to_bf16(prow, srow, nk, t, mnew);
          l[r] = l[r] * alpha + sum;
          if (alpha != 1.f)
            for (int64_t c = 0; c < d; ++c) O[r * d + c] *= alpha;
          m[r] = mnew;
        }
        const u32* vb = vip + (hk * rows + j0 + task.doc) * dp2;
        block_dp(O, d, reinterpret_cast<const u32*>(P), nkp / 2, 1, vb, d, nq, d, nkp / 2, true);
      }
      for (int64_t r = 0; r < nq; ++r) {
        if (!(l[r] > 0.f)) continue;
        u16* dst = out + ((i0 + r) * H + h) * d;
        const __m512 inv = _mm512_set1_ps(1.f / l[r]);
        for (int64_t c = 0; c < d; c += 16) {
          const __mmask16 mk = mask16(d - c);
          _mm256_mask_storeu_epi16(dst + c, mk, to_bf16(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, O + r * d + c), inv)));
        }
        lse[h * s + i0 + r] = (m[r] + std::log2(l[r])) * kLn2;
      }
    }
  }
}

void backward_bf16_native(float* dq, float* dk, float* dv, const u16* dout, const u16* q, const u16* k, const u16* v,
                          const u16* out, const float* lse, const std::vector<Doc>& docs, const AttnShape& sh) {
  if (docs.empty()) return;
  const int64_t s = sh.s, H = sh.H, Hkv = sh.Hkv, d = sh.d, G = H / Hkv, dp2 = d / 2;
  const int64_t rows = s + static_cast<int64_t>(docs.size());
  const float scale = default_scale(sh);
  const float t = scale * kLog2e;
  const int nt = std::max(1, num_threads());

  // dQ partials as in the fp32 kernel: R depends on the shape only.
  const int64_t R = std::min<int64_t>(4, (4 + Hkv - 1) / Hkv);
  Scratch<u32> kt(Hkv * s * dp2), vt(Hkv * s * dp2), ki(Hkv * rows * dp2), qi(H * rows * dp2), doi(H * rows * dp2);
  Scratch<float> dqp(R * H * s * d), Dv(H * s), L2(H * s);
  pack_t(kt.data(), k, docs, s, Hkv, d, nt);
  pack_t(vt.data(), v, docs, s, Hkv, d, nt);
  pack_pairs(ki.data(), k, docs, s, Hkv, d, nt);
  pack_pairs(qi.data(), q, docs, s, H, d, nt);
  pack_pairs(doi.data(), dout, docs, s, H, d, nt);
  {
    float* D = Dv.data();
    float* L = L2.data();
    float* dqa = dqp.data();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < s; ++i)
      for (int64_t h = 0; h < H; ++h) {
        const u16* o = out + (i * H + h) * d;
        const u16* g = dout + (i * H + h) * d;
        double acc = 0;
        for (int64_t c = 0; c < d; ++c)
          acc += static_cast<double>(bf16_bits_to_f32(o[c])) * static_cast<double>(bf16_bits_to_f32(g[c]));
        D[h * s + i] = static_cast<float>(acc);
        L[h * s + i] = lse[h * s + i] * kLog2e;
        for (int64_t r = 0; r < R; ++r)
          std::fill(dqa + ((r * H + h) * s + i) * d, dqa + ((r * H + h) * s + i + 1) * d, 0.f);
      }
  }

  struct Task {
    int64_t hk, a, b, doc, part, cost;
  };
  std::vector<Task> tasks;
  for (int64_t hk = 0; hk < Hkv; ++hk)
    for (size_t di = 0; di < docs.size(); ++di) {
      const Doc& doc = docs[di];
      for (int64_t r = 0; r < R; ++r) {
        if (doc.a + r * kBk >= doc.b) break;
        const int64_t len = doc.b - doc.a;
        tasks.push_back({hk, doc.a, doc.b, static_cast<int64_t>(di), r,
                         len * (sh.window > 0 ? std::min(len, sh.window + kBk) : len)});
      }
    }
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& x, const Task& y) { return x.cost > y.cost; });

  // Per thread (in floats): P, dP [Bq, Bk] fp32; PI, DSI [Bq/2, Bk] words; DS [Bq, Bk] bf16;
  // dK, dV accumulators [Bk, d].
  const int64_t per_thread = 2 * kBq * kBk + 2 * (kBq / 2) * kBk + kBq * kBk / 2 + 2 * kBk * d + 16;
  Scratch<float> work(per_thread * nt);
  const int64_t ntasks = static_cast<int64_t>(tasks.size());
  const u32* q32 = reinterpret_cast<const u32*>(q);
  const u32* do32 = reinterpret_cast<const u32*>(dout);
  const u32 *Kt = kt.data(), *Vt = vt.data(), *Ki = ki.data(), *Qi = qi.data(), *dOi = doi.data();
  const float *D = Dv.data(), *L = L2.data();
  float* dQp = dqp.data();

#pragma omp parallel num_threads(nt)
  {
    float* P = work.data() + per_thread * omp_get_thread_num();
    float* dS = P + kBq * kBk;
    u32* PI = reinterpret_cast<u32*>(dS + kBq * kBk);
    u32* DSI = PI + (kBq / 2) * kBk;
    u16* DS = reinterpret_cast<u16*>(DSI + (kBq / 2) * kBk);
    float* dKa = reinterpret_cast<float*>(DSI + (kBq / 2) * kBk) + kBq * kBk / 2;
    float* dVa = dKa + kBk * d;
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < ntasks; ++ti) {
      const Task& task = tasks[ti];
      const int64_t hk = task.hk, a = task.a, b = task.b, part = task.part;
      float* dQpart = dQp + part * H * s * d;
      for (int64_t j0 = a + part * kBk; j0 < b; j0 += R * kBk) {
        const int64_t nk = std::min(kBk, b - j0), nkp = nk + (nk & 1);
        const u32* ktb = Kt + (hk * s + j0) * dp2;
        const u32* vtb = Vt + (hk * s + j0) * dp2;
        const u32* kib = Ki + (hk * rows + j0 + task.doc) * dp2;
        std::fill(dKa, dKa + nk * d, 0.f);
        std::fill(dVa, dVa + nk * d, 0.f);
        const int64_t iend = sh.window > 0 ? std::min(b, j0 + nk - 1 + sh.window) : b;
        for (int64_t g = 0; g < G; ++g) {
          const int64_t h = hk * G + g;
          for (int64_t i0 = sh.causal ? j0 : a; i0 < iend; i0 += kBq) {
            const int64_t nq = std::min(kBq, b - i0), nqp = (nq + 1) / 2;
            const u32* qa = q32 + (i0 * H + h) * dp2;
            const u32* doa = do32 + (i0 * H + h) * dp2;
            const int64_t prow = h * rows + i0 + task.doc;
            block_dp(P, nk, qa, H * dp2, 1, ktb, nk, nq, nk, dp2, false);  // S = Q K^T
            const bool masked = needs_mask(sh, i0, nq, j0, nk);
            for (int64_t r = 0; r < nq; ++r) {
              float* pr = P + r * nk;
              const float Lr = L[h * s + i0 + r];
              if (Lr == -INFINITY) {  // the row saw nothing in the forward: P = 0
                std::fill(pr, pr + nk, 0.f);
                continue;
              }
              if (masked) mask_row(pr, sh, i0 + r, j0, nk);
              simd::exp2_affine_sum(pr, nk, t, Lr);
            }
            for (int64_t p = 0; p < nqp; ++p)
              pair_rows_to_bf16(PI + p * nk, P + 2 * p * nk, 2 * p + 1 < nq ? P + (2 * p + 1) * nk : nullptr, nk);
            block_dp(dS, nk, doa, H * dp2, 1, vtb, nk, nq, nk, dp2, false);  // dP = dO V^T
            for (int64_t r = 0; r < nq; ++r) {
              simd::mul_sub_scale(dS + r * nk, P + r * nk, nk, D[h * s + i0 + r], scale);  // dS = P (dP - D) scale
              row_to_bf16(DS + r * nkp, dS + r * nk, nk);
            }
            for (int64_t p = 0; p < nqp; ++p)
              pair_rows_to_bf16(DSI + p * nk, dS + 2 * p * nk, 2 * p + 1 < nq ? dS + (2 * p + 1) * nk : nullptr, nk);
            block_dp(dVa, d, PI, 1, nk, dOi + prow * dp2, d, nk, d, nqp, true);   // dV += P^T dO
            block_dp(dKa, d, DSI, 1, nk, Qi + prow * dp2, d, nk, d, nqp, true);   // dK += dS^T Q
            block_dp(dQpart + (h * s + i0) * d, d, reinterpret_cast<const u32*>(DS), nkp / 2, 1, kib, d, nq, d,
                     nkp / 2, true);  // dQ += dS K
          }
        }
        add_kv_block(dk, dv, dKa, dVa, j0, nk, Hkv, hk, d);
      }
    }
  }

  add_dq_parts(dq, dQp, s, H, R, d, nt);
}

}  // namespace ua::attn
