// Flash attention forward/backward on the CPU (REFERENCE §3), plus the naive fp64 reference.
// q: [s, H, d], k, v: [s, Hkv, d], out / dout / dq: [s, H, d], dk, dv: [s, Hkv, d], lse: [H, s].
// Must never allocate anything [s, s]-sized: scratch is per-thread blocks (Bq x Bk) plus packed
// per-head copies of the inputs (O(s * H * d)). Must never use atomics or thread-dependent
// reduction orders: every output element (or, for dQ with few kv heads, every one of a fixed
// number of dQ partials, summed in a fixed order) is produced by exactly one task in a fixed order,
// so results are bitwise identical for any thread count.
// Forward tasks: (query head, document, query block). Backward tasks: (kv head, document, key-block
// part), so dK / dV of a GQA group and dQ of its query heads stay task-local: no atomics.
//
// Blocks are laid out from each document's first token (documents are processed independently),
// so masking is only needed on the causal diagonal block (Bq == Bk, diagonal block has j0 == i0)
// and, with a sliding window W, on the blocks that straddle the window's left edge; the key blocks
// wholly left of every window of a query block are skipped (forward: they are never started;
// backward: a key block's query loop stops where no window reaches it).
// Scores are kept in the log2 domain: t = scale * log2(e), P = 2^(S t - m); lse = (m + log2 l) ln 2.
#include "attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "attention_common.h"
#include "attention_simd.h"

namespace ua {

namespace {

using namespace attn;
using FloatScratch = attn::Scratch<float>;

// kt: per kv head, every key block [j0, j0 + nk) of every document stored transposed ([d, nk])
// at offset j0 * d, so a block is one contiguous B operand with row stride nk.
void pack_blocks_transposed(float* kt, const float* k, const std::vector<Doc>& docs, int64_t s, int64_t Hkv,
                            int64_t d, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t hk = 0; hk < Hkv; ++hk)
    for (const Doc& doc : docs)
      for (int64_t j0 = doc.a; j0 < doc.b; j0 += kBk) {
        const int64_t nk = std::min(kBk, doc.b - j0);
        float* dst = kt + hk * s * d + j0 * d;
        for (int64_t jj = 0; jj < nk; ++jj) {
          const float* src = k + ((j0 + jj) * Hkv + hk) * d;
          for (int64_t c = 0; c < d; ++c) dst[c * nk + jj] = src[c];
        }
      }
}

// rowsum(o * g) of one query row and head, accumulated in double.
float delta_row(const float* o, const float* g, int64_t d) {
  double acc = 0;
  for (int64_t c = 0; c < d; ++c) acc += static_cast<double>(o[c]) * g[c];
  return static_cast<float>(acc);
}

}  // namespace

ScratchTracker& attn::scratch_tracker() {
  static ScratchTracker t;
  return t;
}

int64_t attention_scratch_peak_bytes() { return attn::scratch_tracker().peak(); }
void attention_reset_scratch_peak() { attn::scratch_tracker().reset_peak(); }

void flash_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                             const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh) {
  check_shape(sh, "flash_attention_forward");
  const std::vector<Doc> docs = documents(doc_lens, ndocs, sh.s, "flash_attention_forward");
  const int64_t s = sh.s, H = sh.H, Hkv = sh.Hkv, d = sh.d, G = H / Hkv;
  const float t = default_scale(sh) * kLog2e;
  const int nt = std::max(1, num_threads());
  // Padding rows keep these values.
  std::fill(out, out + s * H * d, 0.f);
  std::fill(lse, lse + H * s, -INFINITY);
  if (docs.empty()) return;

  // v is read in place ([s, Hkv, d], row stride Hkv * d): a head-major copy would cost an
  // [s, Hkv, d] scratch for the same operands, hence the same bits.
  FloatScratch kt(Hkv * s * d);
  pack_blocks_transposed(kt.data(), k, docs, s, Hkv, d, nt);

  struct Task {
    int64_t h, a, b, i0, j_first, cost;
  };
  std::vector<Task> tasks;
  for (int64_t h = 0; h < H; ++h)
    for (const Doc& doc : docs)
      for (int64_t i0 = doc.a; i0 < doc.b; i0 += kBq) {
        const int64_t jf = first_key_block(sh, doc.a, i0);
        tasks.push_back({h, doc.a, doc.b, i0, jf, (sh.causal ? std::min(i0 + kBq, doc.b) : doc.b) - jf});
      }
  // Longest first for load balance; results do not depend on which thread runs a task.
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& x, const Task& y) { return x.cost > y.cost; });

  const int64_t per_thread = kBq * kBk + 2 * kBq * d + 2 * kBq;
  FloatScratch work(per_thread * nt);
  const int64_t ntasks = static_cast<int64_t>(tasks.size());
  const float* ktp = kt.data();

#pragma omp parallel num_threads(nt)
  {
    float* S = work.data() + per_thread * omp_get_thread_num();
    float* Qb = S + kBq * kBk;
    float* O = Qb + kBq * d;
    float* m = O + kBq * d;
    float* l = m + kBq;
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < ntasks; ++ti) {
      const Task& task = tasks[ti];
      const int64_t h = task.h, hk = h / G, i0 = task.i0, b = task.b;
      const int64_t nq = std::min(kBq, b - i0);
      for (int64_t r = 0; r < nq; ++r) std::memcpy(Qb + r * d, q + ((i0 + r) * H + h) * d, d * 4);
      std::fill(O, O + nq * d, 0.f);
      std::fill(m, m + nq, -INFINITY);
      std::fill(l, l + nq, 0.f);
      const int64_t kend = sh.causal ? i0 + nq : b;
      for (int64_t j0 = task.j_first; j0 < kend; j0 += kBk) {
        const int64_t nk = std::min(kBk, b - j0);
        simd::block_gemm(S, nk, Qb, d, 1, ktp + hk * s * d + j0 * d, nk, nq, nk, d, false);
        const bool masked = needs_mask(sh, i0, nq, j0, nk);
        for (int64_t r = 0; r < nq; ++r) {
          float* srow = S + r * nk;
          if (masked) mask_row(srow, sh, i0 + r, j0, nk);
          const float mnew = std::max(m[r], simd::row_max(srow, nk) * t);
          if (mnew == -INFINITY) {  // nothing visible yet in this row
            std::fill(srow, srow + nk, 0.f);
            continue;
          }
          const float alpha = std::exp2(m[r] - mnew);  // 0 when m was -inf
          const float sum = simd::exp2_affine_sum(srow, nk, t, mnew);
          l[r] = l[r] * alpha + sum;
          if (alpha != 1.f)
            for (int64_t c = 0; c < d; ++c) O[r * d + c] *= alpha;
          m[r] = mnew;
        }
        simd::block_gemm(O, d, S, nk, 1, v + (j0 * Hkv + hk) * d, Hkv * d, nq, d, nk, true);
      }
      for (int64_t r = 0; r < nq; ++r) {
        float* dst = out + ((i0 + r) * H + h) * d;
        if (l[r] > 0.f) {
          const float inv = 1.f / l[r];
          for (int64_t c = 0; c < d; ++c) dst[c] = O[r * d + c] * inv;
          lse[h * s + i0 + r] = (m[r] + std::log2(l[r])) * kLn2;
        }
      }
    }
  }
}

namespace {

// The backward for either a given delta ([H, s]: rowsum(out * dout) per head and query) or out
// (delta computed here, the same expression: the same bits).
void backward_impl(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                   const float* out, const float* delta, const float* lse, const int32_t* doc_lens, int64_t ndocs,
                   const AttnShape& sh) {
  check_shape(sh, "flash_attention_backward");
  const std::vector<Doc> docs = documents(doc_lens, ndocs, sh.s, "flash_attention_backward");
  if (docs.empty()) return;
  const int64_t s = sh.s, H = sh.H, Hkv = sh.Hkv, d = sh.d, G = H / Hkv;
  const float scale = default_scale(sh);
  const float t = scale * kLog2e;
  const int nt = std::max(1, num_threads());

  // With few kv heads, each (kv head, document) is further split into R interleaved sets of key
  // blocks, each with its own dQ partial (summed in part order at the end). R depends on the shape
  // only, never on the thread count, so results stay bitwise reproducible.
  const int64_t R = std::min<int64_t>(4, (4 + Hkv - 1) / Hkv);
  // q, dout and k are read in place ([s, heads, d], row stride heads * d): head-major copies
  // would cost 2 [s, H, d] + 1 [s, Hkv, d] scratch for the same operands, hence the same bits.
  // Part 0 of dQ accumulates straight into dq ([s, H, d]); parts 1..R-1 in dqp, added after in
  // part order. The callers pass a zeroed dq, and 0 + x is x, so the bits are those of R partials
  // summed into it (a nonzero dq gets the same sum up to rounding order).
  FloatScratch dqp((R - 1) * H * s * d), kt(Hkv * s * d), vt(Hkv * s * d);
  FloatScratch Dv(delta ? 1 : H * s), L2(H * s);
  pack_blocks_transposed(kt.data(), k, docs, s, Hkv, d, nt);
  pack_blocks_transposed(vt.data(), v, docs, s, Hkv, d, nt);
  {
    float* D = delta ? nullptr : Dv.data();
    float* L = L2.data();
    float* dqa = dqp.data();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < s; ++i)
      for (int64_t h = 0; h < H; ++h) {
        if (D) D[h * s + i] = delta_row(out + (i * H + h) * d, dout + (i * H + h) * d, d);
        L[h * s + i] = lse[h * s + i] * kLog2e;
        for (int64_t r = 0; r + 1 < R; ++r)
          std::fill(dqa + ((r * H + h) * s + i) * d, dqa + ((r * H + h) * s + i + 1) * d, 0.f);
      }
  }

  struct Task {
    int64_t hk, a, b, part, cost;
  };
  std::vector<Task> tasks;
  for (int64_t hk = 0; hk < Hkv; ++hk)
    for (const Doc& doc : docs)
      for (int64_t r = 0; r < R; ++r) {
        if (doc.a + r * kBk >= doc.b) break;  // a short document has fewer key blocks than parts
        const int64_t len = doc.b - doc.a;
        tasks.push_back({hk, doc.a, doc.b, r, len * (sh.window > 0 ? std::min(len, sh.window + kBk) : len)});
      }
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& x, const Task& y) { return x.cost > y.cost; });

  const int64_t per_thread = 2 * kBq * kBk + 2 * kBk * d;
  FloatScratch work(per_thread * nt);
  const int64_t ntasks = static_cast<int64_t>(tasks.size());
  const float *Kt = kt.data(), *Vt = vt.data();
  const int64_t qs = H * d, ks = Hkv * d;  // row strides of q / dout and of k
  const float *D = delta ? delta : Dv.data(), *L = L2.data();
  float* dQp = dqp.data();

#pragma omp parallel num_threads(nt)
  {
    float* P = work.data() + per_thread * omp_get_thread_num();
    float* dS = P + kBq * kBk;
    float* dKa = dS + kBq * kBk;
    float* dVa = dKa + kBk * d;
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < ntasks; ++ti) {
      const int64_t hk = tasks[ti].hk, a = tasks[ti].a, b = tasks[ti].b, part = tasks[ti].part;
      // part 0: dq itself (row stride H * d); part p > 0: dQp's [H, s, d] block p - 1
      float* dQpart = part == 0 ? dq : dQp + (part - 1) * H * s * d;
      const int64_t dqrow = part == 0 ? H * d : d, dqhead = part == 0 ? d : s * d;
      for (int64_t j0 = a + part * kBk; j0 < b; j0 += R * kBk) {
        const int64_t nk = std::min(kBk, b - j0);
        const float* ktb = Kt + hk * s * d + j0 * d;
        const float* vtb = Vt + hk * s * d + j0 * d;
        const float* kj = k + (j0 * Hkv + hk) * d;
        std::fill(dKa, dKa + nk * d, 0.f);
        std::fill(dVa, dVa + nk * d, 0.f);
        // The last query whose window reaches this block's last key is j0 + nk - 2 + W.
        const int64_t iend = sh.window > 0 ? std::min(b, j0 + nk - 1 + sh.window) : b;
        for (int64_t g = 0; g < G; ++g) {
          const int64_t h = hk * G + g;
          for (int64_t i0 = sh.causal ? j0 : a; i0 < iend; i0 += kBq) {
            const int64_t nq = std::min(kBq, b - i0);
            const float* qi = q + (i0 * H + h) * d;
            const float* doi = dout + (i0 * H + h) * d;
            simd::block_gemm(P, nk, qi, qs, 1, ktb, nk, nq, nk, d, false);
            const bool masked = needs_mask(sh, i0, nq, j0, nk);
            for (int64_t r = 0; r < nq; ++r) {
              float* prow = P + r * nk;
              const float Lr = L[h * s + i0 + r];
              if (Lr == -INFINITY) {  // row saw nothing in the forward: P = 0
                std::fill(prow, prow + nk, 0.f);
                continue;
              }
              if (masked) mask_row(prow, sh, i0 + r, j0, nk);
              simd::exp2_affine_sum(prow, nk, t, Lr);
            }
            simd::block_gemm(dS, nk, doi, qs, 1, vtb, nk, nq, nk, d, false);  // dP = dO V^T
            for (int64_t r = 0; r < nq; ++r)
              simd::mul_sub_scale(dS + r * nk, P + r * nk, nk, D[h * s + i0 + r], scale);
            simd::block_gemm(dVa, d, P, 1, nk, doi, qs, nk, d, nq, true);                // dV += P^T dO
            simd::block_gemm(dKa, d, dS, 1, nk, qi, qs, nk, d, nq, true);                // dK += dS^T Q
            simd::block_gemm(dQpart + h * dqhead + i0 * dqrow, dqrow, dS, nk, 1, kj, ks, nq, d, nk, true);  // dQ += dS K
          }
        }
        add_kv_block(dk, dv, dKa, dVa, j0, nk, Hkv, hk, d);
      }
    }
  }

  add_dq_parts(dq, dQp, s, H, R - 1, d, nt);
}

}  // namespace

void flash_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                              const float* v, const float* out, const float* lse, const int32_t* doc_lens,
                              int64_t ndocs, const AttnShape& sh) {
  backward_impl(dq, dk, dv, dout, q, k, v, out, nullptr, lse, doc_lens, ndocs, sh);
}

void flash_attention_backward_delta(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                    const float* v, const float* delta, const float* lse, const int32_t* doc_lens,
                                    int64_t ndocs, const AttnShape& sh) {
  backward_impl(dq, dk, dv, dout, q, k, v, nullptr, delta, lse, doc_lens, ndocs, sh);
}

void attention_delta(float* delta, const float* out, const float* dout, int64_t s, int64_t H, int64_t d) {
  const int nt = std::max(1, num_threads());
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < s; ++i)
    for (int64_t h = 0; h < H; ++h) delta[h * s + i] = delta_row(out + (i * H + h) * d, dout + (i * H + h) * d, d);
}

void attention_reference_forward(float* out, const float* q, const float* k, const float* v,
                                 const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh) {
  check_shape(sh, "attention_reference_forward");
  const std::vector<Doc> docs = documents(doc_lens, ndocs, sh.s, "attention_reference_forward");
  const int64_t s = sh.s, H = sh.H, Hkv = sh.Hkv, d = sh.d, G = H / Hkv;
  const double scale = sh.scale > 0.f ? sh.scale : 1.0 / std::sqrt(static_cast<double>(d));
  std::fill(out, out + s * H * d, 0.f);
  std::vector<double> p, acc(d);
  for (const Doc& doc : docs)
    for (int64_t i = doc.a; i < doc.b; ++i)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t hk = h / G, jend = sh.causal ? i + 1 : doc.b;
        const int64_t jstart = sh.window > 0 ? std::max(doc.a, i - sh.window + 1) : doc.a;
        p.assign(jend - jstart, 0.0);
        double mx = -INFINITY;
        for (int64_t j = jstart; j < jend; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += static_cast<double>(q[(i * H + h) * d + c]) * k[(j * Hkv + hk) * d + c];
          p[j - jstart] = dot * scale;
          mx = std::max(mx, dot * scale);
        }
        double sum = 0;
        for (double& x : p) sum += (x = std::exp(x - mx));
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = jstart; j < jend; ++j)
          for (int64_t c = 0; c < d; ++c) acc[c] += p[j - jstart] * v[(j * Hkv + hk) * d + c];
        for (int64_t c = 0; c < d; ++c) out[(i * H + h) * d + c] = static_cast<float>(acc[c] / sum);
      }
}

}  // namespace ua
