// Fused, chunked LM head + cross-entropy (REFERENCE §4).
// h: [n, dim], W: [vocab, dim], labels: [n], token_loss / lse / token_weight: [n],
// dh: [n, dim], dW: [vocab, dim]; logits are made for c = chunk tokens and kVocabBlock vocabulary
// ids at a time in a scratch block [c, kVocabBlock], vocabulary blocks in the outer loop.
// Why blocks of the vocabulary: a [c, vocab] logits chunk is tens of MB, so the element-wise
// passes after each product ran at memory speed; a [c, kVocabBlock] block stays in cache between
// the product that writes it and the passes (and, in the backward, the two products) that read it.
// The forward keeps a running max and sum per token (the sum is rescaled when a later block holds
// a larger logit); the backward needs no row statistics beyond the forward's lse.
// Must never allocate [n, vocab]: logits live one block at a time and are recomputed in the backward.
// Products (ua::matmul) are only issued from the calling thread, never inside an OpenMP region;
// the per-row work is split over rows, and the loss sum is reduced serially in row order, so
// results do not depend on the thread count.
#include "lm_head_ce.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attention_simd.h"
#include "bf16.h"
#include "matmul.h"
#include "workspace.h"

namespace ua {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int64_t kDefaultChunk = 256;
// Vocabulary ids per logits block: 512 tokens x 2048 ids is 4 MiB, which stays in the last-level
// cache, while each block's products are still large enough to run at full speed.
constexpr int64_t kVocabBlock = kCeVocabBlock;

void check_args(const char* who, const int32_t* labels, int64_t n, int64_t dim, int64_t vocab) {
  if (n < 0 || dim < 1 || vocab < 1) throw ShapeError(std::string(who) + ": need n >= 0, dim >= 1, vocab >= 1");
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] >= vocab)
      throw ShapeError(std::string(who) + ": label " + std::to_string(labels[i]) + " at token " + std::to_string(i) +
                       " is >= vocab " + std::to_string(vocab));
}

int64_t chunk_rows(int64_t chunk, int64_t n) { return std::max<int64_t>(1, std::min(chunk > 0 ? chunk : kDefaultChunk, n)); }

#if defined(__AVX512F__)

// sum over j of 2^(x[j] * t - sub); x is left as it is.
float exp2_affine_sum_only(const float* x, int64_t n, float t, float sub) {
  const __m512 vt = _mm512_set1_ps(t), vs = _mm512_set1_ps(sub);
  __m512 acc = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) acc = _mm512_add_ps(acc, simd::exp2_ps(_mm512_fmsub_ps(_mm512_loadu_ps(x + j), vt, vs)));
  if (j < n) {
    const __mmask16 mk = simd::tail_mask(n - j);
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mk, simd::exp2_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(mk, x + j), vt, vs))));
  }
  return _mm512_reduce_add_ps(acc);
}

// x[j] = 2^(x[j] * t - sub) * w: the exponential rounded to fp32, then the product rounded, as
// the two separate passes did.
void exp2_affine_scale(float* x, int64_t n, float t, float sub, float w) {
  const __m512 vt = _mm512_set1_ps(t), vs = _mm512_set1_ps(sub), vw = _mm512_set1_ps(w);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(x + j, _mm512_mul_ps(simd::exp2_ps(_mm512_fmsub_ps(_mm512_loadu_ps(x + j), vt, vs)), vw));
  if (j < n) {
    const __mmask16 mk = simd::tail_mask(n - j);
    _mm512_mask_storeu_ps(x + j, mk, _mm512_mul_ps(simd::exp2_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(mk, x + j), vt, vs)), vw));
  }
}

#else

float exp2_affine_sum_only(const float* x, int64_t n, float t, float sub) {
  float s = 0.f;
  for (int64_t j = 0; j < n; ++j) s += std::exp2(x[j] * t - sub);
  return s;
}

void exp2_affine_scale(float* x, int64_t n, float t, float sub, float w) {
  for (int64_t j = 0; j < n; ++j) x[j] = std::exp2(x[j] * t - sub) * w;
}

#endif

// Per-row state of the forward across the vocabulary blocks, for every token.
struct RowStats {
  std::vector<float> max, sum, target, best_value;
  std::vector<int32_t> best;
  explicit RowStats(int64_t n) : max(n, -INFINITY), sum(n, 0.f), target(n, 0.f), best_value(n), best(n) {}
};

// Folds logits block x [c, nb] of tokens t0 .. t0 + c (ids v0 .. v0 + nb, row stride ld) into
// the rows' running max, sum of exp(logit - max), target logit and (when want_argmax) argmax.
void fold_block(RowStats& st, const float* logits, int64_t ld, const int32_t* labels, int64_t t0, int64_t c,
                int64_t v0, int64_t nb, bool want_argmax, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < c; ++r) {
    const int64_t i = t0 + r;
    const float* x = logits + r * ld;
    const int32_t y = labels[i];
    if (y >= v0 && y < v0 + nb) st.target[i] = x[y - v0];
    if (want_argmax) {
      // Strictly greater: the lowest id among equal maxima wins, across blocks too.
      int64_t best = v0 == 0 ? 0 : -1;
      float bv = v0 == 0 ? x[0] : st.best_value[i];
      for (int64_t j = v0 == 0 ? 1 : 0; j < nb; ++j)
        if (x[j] > bv) bv = x[j], best = j;
      if (best >= 0) st.best[i] = static_cast<int32_t>(v0 + best), st.best_value[i] = bv;
    }
    const float bm = simd::row_max(x, nb);
    float& m = st.max[i];
    if (bm > m) {
      if (st.sum[i] != 0.f) st.sum[i] *= std::exp2((m - bm) * kLog2e);
      m = bm;
    }
    if (std::isfinite(m)) st.sum[i] += exp2_affine_sum_only(x, nb, kLog2e, m * kLog2e);
    else if (std::isnan(bm)) m = bm;  // NaN logits propagate into lse
  }
}

// The logits product of a block (and the backward's two products) for either precision: fp32
// operands through matmul_ld, bf16 operands through matmul_bf16_ld (fp32 accumulation either way).
inline void product(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N,
                    int64_t K, bool ta, bool tb, float beta) {
  matmul_ld(C, ldc, A, lda, B, ldb, M, N, K, ta, tb, 1.f, beta);
}
inline void product(float* C, int64_t ldc, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, int64_t M,
                    int64_t N, int64_t K, bool ta, bool tb, float beta) {
  matmul_bf16_ld(C, ldc, A, lda, B, ldb, M, N, K, ta, tb, 1.f, beta);
}

// The slice hooks around vocabulary block [v0, v0 + nb) (no-ops without slices).
void slice_begin(const VocabSlices* s, int64_t v0, int64_t vocab) {
  if (s && v0 % s->rows == 0) s->begin(v0, std::min(vocab, v0 + s->rows));
}
void slice_end(const VocabSlices* s, int64_t v0, int64_t nb, int64_t vocab) {
  const int64_t v1 = v0 + nb;
  if (s && (v1 % s->rows == 0 || v1 == vocab)) s->end(v1 - 1 - (v1 - 1) % s->rows, v1);
}

// Every slice begun and ended with nothing computed (no tokens): the hooks are collectives.
void walk_slices(const VocabSlices* s, int64_t vocab) {
  if (s)
    for (int64_t v0 = 0; v0 < vocab; v0 += kVocabBlock) slice_begin(s, v0, vocab), slice_end(s, v0, std::min(kVocabBlock, vocab - v0), vocab);
}

void check_slices(const char* who, const VocabSlices* s) {
  if (s && (s->rows < kVocabBlock || s->rows % kVocabBlock != 0 || !s->begin || !s->end))
    throw ShapeError(std::string(who) + ": vocabulary slices must be a positive multiple of " + std::to_string(kVocabBlock) + " rows with both hooks");
}

// Row log-sum-exp from the folded state; inf / NaN maxima propagate.
float row_lse(const RowStats& st, int64_t i) {
  const float m = st.max[i];
  return std::isfinite(m) ? m + std::log(st.sum[i]) : m;
}

// The forward's row statistics of all n tokens. Vocabulary blocks are the outer loop, so each
// block of W stays in cache while every token chunk is multiplied by it. block: [cr, ld] scratch.
template <typename T>
RowStats all_rows_forward(float* block, int64_t ld, const T* h, const T* W, const int32_t* labels, int64_t n,
                          int64_t cr, int64_t dim, int64_t vocab, bool want_argmax, int nt, const VocabSlices* slices = nullptr) {
  RowStats st(n);
  for (int64_t v0 = 0; v0 < vocab; v0 += kVocabBlock) {
    const int64_t nb = std::min(kVocabBlock, vocab - v0);
    slice_begin(slices, v0, vocab);
    for (int64_t t0 = 0; t0 < n; t0 += cr) {
      const int64_t c = std::min(cr, n - t0);
      product(block, ld, h + t0 * dim, dim, W + v0 * dim, dim, c, nb, dim, false, true, 0.f);
      fold_block(st, block, ld, labels, t0, c, v0, nb, want_argmax, nt);
    }
    slice_end(slices, v0, nb, vocab);
  }
  return st;
}

template <typename T>
CeResult forward_impl(const char* who, float* token_loss, float* lse, const T* h, const T* W, const int32_t* labels,
                      int64_t n, int64_t dim, int64_t vocab, float normalizer, int64_t chunk, int32_t* argmax,
                      const VocabSlices* slices) {
  check_args(who, labels, n, dim, vocab);
  check_slices(who, slices);
  if (!(normalizer > 0.f) || !std::isfinite(normalizer))
    throw ShapeError(std::string(who) + ": normalizer must be finite and > 0");
  CeResult res;
  if (n == 0) {
    walk_slices(slices, vocab);
    return res;
  }
  const int64_t cr = chunk_rows(chunk, n), ld = std::min(kVocabBlock, vocab);
  const int nt = std::max(1, num_threads());
  Workspace block(cr * ld * 4);
  const RowStats st = all_rows_forward<T>(block.floats(), ld, h, W, labels, n, cr, dim, vocab, argmax != nullptr, nt, slices);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float L = row_lse(st, i);
    const bool valid = labels[i] >= 0;
    const float loss = valid ? L - st.target[i] : 0.f;
    if (token_loss) token_loss[i] = loss;
    if (lse) lse[i] = L;
    if (argmax) argmax[i] = st.best[i];
    if (valid) {
      total += loss;
      ++res.valid;
    }
  }
  res.loss = total / normalizer;
  return res;
}

// G16 receives the bf16 rounding of each row of G when T is bf16 (the backward's products then
// take bf16 operands); unused for fp32.
inline const float* grad_operand(float* G, uint16_t*, const float*) { return G; }
inline const uint16_t* grad_operand(float*, uint16_t* G16, const uint16_t*) { return G16; }
inline void round_row(uint16_t* G16, const float* x, int64_t n, const float*) { (void)G16, (void)x, (void)n; }
inline void round_row(uint16_t* G16, const float* x, int64_t n, const uint16_t*) {
  for (int64_t j = 0; j < n; ++j) G16[j] = f32_to_bf16_bits(x[j]);
}

template <typename T>
void backward_impl(const char* who, float* dh, float* dW, const T* h, const T* W, const int32_t* labels,
                   const float* lse, const float* token_weight, int64_t n, int64_t dim, int64_t vocab,
                   float normalizer, int64_t chunk, const VocabSlices* slices) {
  check_args(who, labels, n, dim, vocab);
  check_slices(who, slices);
  if (slices && !lse) throw ShapeError(std::string(who) + ": vocabulary slices need the forward's lse");
  if (!token_weight && (!(normalizer > 0.f) || !std::isfinite(normalizer)))
    throw ShapeError(std::string(who) + ": normalizer must be finite and > 0");
  if (n == 0 || (!dh && !dW)) {
    walk_slices(slices, vocab);
    return;
  }
  const int64_t cr = chunk_rows(chunk, n), ld = std::min(kVocabBlock, vocab);
  const int nt = std::max(1, num_threads());
  constexpr bool kBf16 = sizeof(T) == 2;
  Workspace Gw(cr * ld * 4), G16w(kBf16 ? cr * ld * 2 : 0);
  float* G = Gw.floats();
  uint16_t* G16 = G16w.halves();
  const T* Gop = grad_operand(G, G16, h);
  std::vector<float> recomputed_lse;
  if (!lse) {  // the forward's statistics, recomputed
    const RowStats st = all_rows_forward<T>(G, ld, h, W, labels, n, cr, dim, vocab, false, nt);
    recomputed_lse.resize(n);
    for (int64_t i = 0; i < n; ++i) recomputed_lse[i] = row_lse(st, i);
    lse = recomputed_lse.data();
  }
  std::vector<float> weight(n);
  for (int64_t i = 0; i < n; ++i)
    weight[i] = labels[i] < 0 ? 0.f : (token_weight ? token_weight[i] : 1.f / normalizer);
  // Vocabulary blocks outer: a block of dW takes every token chunk's contribution while it is in cache.
  for (int64_t v0 = 0; v0 < vocab; v0 += kVocabBlock) {
    const int64_t nb = std::min(kVocabBlock, vocab - v0);
    slice_begin(slices, v0, vocab);
    for (int64_t t0 = 0; t0 < n; t0 += cr) {
      const int64_t c = std::min(cr, n - t0);
      const T* hc = h + t0 * dim;
      product(G, ld, hc, dim, W + v0 * dim, dim, c, nb, dim, false, true, 0.f);
      // G = w (softmax - onehot) = w exp(logit - lse) - w [id == label]
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t r = 0; r < c; ++r) {
        float* x = G + r * ld;
        const float w = weight[t0 + r];
        if (w == 0.f) {
          std::fill(x, x + nb, 0.f);
        } else {
          exp2_affine_scale(x, nb, kLog2e, lse[t0 + r] * kLog2e, w);
          const int32_t y = labels[t0 + r];
          if (y >= v0 && y < v0 + nb) x[y - v0] -= w;
        }
        round_row(G16 + r * ld, x, nb, h);
      }
      if (dh) product(dh + t0 * dim, dim, Gop, ld, W + v0 * dim, dim, c, dim, nb, false, false, 1.f);
      if (dW) product(dW + v0 * dim, dim, Gop, ld, hc, dim, nb, dim, c, true, false, 1.f);
    }
    slice_end(slices, v0, nb, vocab);
  }
}

}  // namespace

CeResult lm_head_ce_forward(float* token_loss, float* lse, const float* h, const float* W, const int32_t* labels,
                            int64_t n, int64_t dim, int64_t vocab, float normalizer, int64_t chunk, int32_t* argmax,
                            const VocabSlices* slices) {
  return forward_impl("lm_head_ce_forward", token_loss, lse, h, W, labels, n, dim, vocab, normalizer, chunk, argmax, slices);
}

CeResult lm_head_ce_forward_bf16(float* token_loss, float* lse, const uint16_t* h, const uint16_t* W,
                                 const int32_t* labels, int64_t n, int64_t dim, int64_t vocab, float normalizer,
                                 int64_t chunk, int32_t* argmax, const VocabSlices* slices) {
  return forward_impl("lm_head_ce_forward_bf16", token_loss, lse, h, W, labels, n, dim, vocab, normalizer, chunk, argmax, slices);
}

void lm_head_ce_backward(float* dh, float* dW, const float* h, const float* W, const int32_t* labels,
                         const float* lse, const float* token_weight, int64_t n, int64_t dim, int64_t vocab,
                         float normalizer, int64_t chunk, const VocabSlices* slices) {
  backward_impl("lm_head_ce_backward", dh, dW, h, W, labels, lse, token_weight, n, dim, vocab, normalizer, chunk, slices);
}

void lm_head_ce_backward_bf16(float* dh, float* dW, const uint16_t* h, const uint16_t* W, const int32_t* labels,
                              const float* lse, const float* token_weight, int64_t n, int64_t dim, int64_t vocab,
                              float normalizer, int64_t chunk, const VocabSlices* slices) {
  backward_impl("lm_head_ce_backward_bf16", dh, dW, h, W, labels, lse, token_weight, n, dim, vocab, normalizer, chunk, slices);
}

}  // namespace ua
