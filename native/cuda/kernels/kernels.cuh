// The CUDA kernels of the engine, as launch functions over device pointers on a stream: the GPU
// counterparts of native/src/kernels/* (same layouts, same accumulation contracts: every
// *_backward ADDS into its gradient outputs). Host-side planning that needs no device (the
// embedding's token lists, the attention's visibility ranges) is plain C++ here too.
// Layouts (token-major, as on the CPU):
//   embedding: ids [n], table [vocab, dim], y [n, dim]
//   rmsnorm:   x, y [n, dim], w [dim], rstd [n]
//   rope:      x [n, heads, d] in place, pos [n], inv_freq [d/2] (double)
//   attention: q [s, H, d], k, v [s, Hkv, d], out [s, H, d], lse [H, s]
//   lm head:   logits [c, vocab] (row stride ld), labels [c], lse / loss / weight [c]
// Deterministic: no atomics anywhere; every reduction has a fixed order, so a kernel gives the
// same bits run to run.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/gradstats.h"
#include "kernels/optimizer_step.h"

namespace ua::cuda {

// ---- element-wise (elementwise.cu) ----------------------------------------------------------

void f32_to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t s);
void add_into(float* dst, const float* src, int64_t n, cudaStream_t s);            // dst += src
void add(float* y, const float* a, const float* b, int64_t n, cudaStream_t s);      // y = a + b
void fill_rows(float* y, const float* row, int64_t n, int64_t width, cudaStream_t s);  // y[r] = row
void add_rows(float* y, const float* row, int64_t n, int64_t width, cudaStream_t s);   // y[r] += row
// db[j] += sum over rows of dy[r, j] in the CPU's fixed blocks (reduce.cuh: the CPU's bits);
// scratch: column_sum_scratch(n, width) doubles.
int64_t column_sum_scratch(int64_t n, int64_t width);
void column_sum_into(float* db, const float* dy, int64_t n, int64_t width, double* scratch, cudaStream_t s);

void embedding_forward(float* y, const int32_t* ids, const float* table, int64_t n, int64_t dim, cudaStream_t s);
// The tokens grouped by id (built on the host from the ids): unique ids, and for each the
// tokens holding it in token order (CSR). The backward then adds each id's rows in token order,
// exactly the CPU's order, with no atomics.
struct EmbeddingPlan {
  std::vector<int32_t> ids, offsets, tokens;  // offsets: [ids.size() + 1]
};
EmbeddingPlan embedding_plan(const int32_t* ids, int64_t n, int64_t vocab);
void embedding_backward(float* dtable, const float* dy, const int32_t* uniq, const int32_t* offsets,
                        const int32_t* tokens, int64_t nuniq, int64_t dim, cudaStream_t s);

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t s);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                     cudaStream_t s);

// ---- RMSNorm (rmsnorm.cu) -------------------------------------------------------------------

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t dim, float eps,
                     cudaStream_t s);
// dw (nullable) needs `scratch` of rmsnorm_scratch(n, dim) doubles.
int64_t rmsnorm_scratch(int64_t n, int64_t dim);
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                      int64_t n, int64_t dim, double* scratch, cudaStream_t s);

// ---- RoPE (rope.cu) -------------------------------------------------------------------------

// inverse: the transpose (the backward). Angles and cos/sin in double, rounded to float once.
void rope_apply(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, const double* inv_freq, double scale,
                bool inverse, cudaStream_t s);

// ---- flash attention (attention.cu, attention_mask.cu) ----------------------------------------

// Which keys each query sees, from the documents (negative lengths: padding), causality and the
// sliding window: query i sees keys [lo[i], hi[i]); key j is seen by queries [qlo[j], qhi[j]).
// Throws ShapeError when |doc_lens| do not sum to s.
struct AttnMaskHost {
  std::vector<int32_t> lo, hi, qlo, qhi;
};
AttnMaskHost attention_mask(const int32_t* doc_lens, int64_t ndocs, int64_t s, bool causal, int64_t window);

struct AttnMask {
  const int32_t *lo = nullptr, *hi = nullptr, *qlo = nullptr, *qhi = nullptr;  // device [s]
};
struct AttnDims {
  int64_t s = 0, H = 0, Hkv = 0, d = 0;
  float scale = 0.f;  // already resolved (1/sqrt(d) by default)
};
constexpr int64_t kMaxHeadDim = 256;
void flash_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnDims& a,
                   const AttnMask& m, cudaStream_t s);
// delta: scratch [H * s] (rowsum(dout * out)).
void flash_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                    const float* out, const float* lse, const AttnDims& a, const AttnMask& m, float* delta,
                    cudaStream_t s);

// ---- LM head + cross-entropy rows (lm_head.cu; the products go through Blas) -----------------

// Per row of logits [c, vocab]: lse, loss (lse - logit[label], 0 when label < 0) and argmax
// (lowest id among equal maxima; nullable).
void ce_rows_forward(float* lse, float* loss, int32_t* argmax, const float* logits, int64_t ld, const int32_t* labels,
                     int64_t c, int64_t vocab, cudaStream_t s);
// logits <- weight[r] * (softmax(row) - onehot(label)) in place (0 rows where weight is 0 or the
// label is ignored).
void ce_rows_backward(float* logits, int64_t ld, const int32_t* labels, const float* lse, const float* weight, int64_t c,
                      int64_t vocab, cudaStream_t s);

// ---- optimizer and gradient policy (optim.cu) -------------------------------------------------

void adamw_step(float* param, float* m, float* v, const float* grad, int64_t n, const AdamWParams& p, cudaStream_t s);
// The CPU's Philox stream (kernels/gradstats.h): g[i] = fma(std, N(0,1)_i, g[i]).
void add_noise(float* g, int64_t n, float std, uint64_t seed, uint64_t step, uint64_t tensor, cudaStream_t s);
void scale(float* g, int64_t n, float factor, cudaStream_t s);
void centralize(float* g, int64_t rows, int64_t cols, cudaStream_t s);
void zero(float* g, int64_t n, cudaStream_t s);

// grad_stats over device memory: the CPU's blocks of 16384 elements per tensor, each summed on
// the device, combined on the host in the CPU's order. Synchronizes `s`.
GradStats grad_stats(double* per_tensor_mean_abs, const float* grad, const TensorSpan* tensors, int64_t ntensors,
                     cudaStream_t s);
// The CPU's optimizer_step (kernels/optimizer_step.h) on device buffers, in the CPU's order of
// operations (plan.mean_abs stays a host array). Synchronizes `s`.
PlanEffects optimizer_step(float* grad, int64_t n, float* param, float* m, float* v, const OptimSpan* spans,
                           int64_t nspans, const GradPlan& plan, const AdamWParams& adam, cudaStream_t s);

// ---- Ulysses layouts (ulysses_pack.cu) ---------------------------------------------------------

// send [P][s][hg][d]: chunk j = heads [first(j), first(j) + hg) of x [s, H, d], where
// first(j) = j * hg (heads split) or floor(j * H / P) (replicated kv, hg == 1).
void pack_heads(float* send, const float* x, int64_t s, int64_t H, int64_t d, int64_t hg, int64_t P, bool replicated,
                cudaStream_t st);
// out [s, H, d]: heads [j*hg, (j+1)*hg) <- chunk j of recv [P][s][hg][d].
void unpack_heads(float* out, const float* recv, int64_t s, int64_t H, int64_t d, int64_t hg, int64_t P, cudaStream_t st);
// out [s, Hkv, d]: kv head h = the sum, in ascending j, of the chunks j of recv [P][s][1][d]
// whose rank held a replica of h (floor(j * Hkv / P) == h).
void unpack_kv_sum(float* out, const float* recv, int64_t s, int64_t Hkv, int64_t d, int64_t P, cudaStream_t st);

}  // namespace ua::cuda
