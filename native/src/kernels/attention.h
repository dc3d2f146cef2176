// Flash attention (FlashAttention-2 style) for one packed sequence, CPU.
// q: [s, H, d], k, v: [s, Hkv, d] (token-major), out: [s, H, d], lse: [H, s] (log-sum-exp per row).
// Query head h uses key/value head h / (H / Hkv) (GQA). Sliding window W > 0 (causal only): query i
// sees keys j with i - W < j <= i (HF's Mistral/Qwen2 mask); key blocks wholly left of a query
// block's window are never visited. Documents: doc_lens [ndocs] summing to s
// (nullptr / ndocs == 0 means one document); attention never crosses a document boundary.
// A NEGATIVE length -n marks n padding tokens: they attend to nothing and nothing attends to them
// (fully masked rows: output 0, lse -inf, zero gradients). Lengths of 0 are allowed and ignored.
// The sum of |doc_lens| must equal s (ShapeError otherwise).
// Memory is O(s) (no [s, s] buffer). Deterministic for any thread count (work split by (kv head, block),
// no atomics). Rows with no visible key (fully masked) give output 0, lse = -inf, gradient 0, never NaN.
#pragma once
#include "common.h"

namespace ua {

struct AttnShape {
  int64_t s = 0;      // tokens
  int64_t H = 0;      // query heads
  int64_t Hkv = 0;    // key/value heads, H % Hkv == 0
  int64_t d = 0;      // head dim
  bool causal = true;
  float scale = 0.f;  // 0 means 1/sqrt(d)
  int64_t window = 0; // sliding window (keys per query, itself included); 0: unlimited
};

void flash_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                             const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh);

// dq += ..., dk += ..., dv += ... (shapes as q, k, v). Recomputes P from lse (no saved probabilities).
void flash_attention_backward(float* dq, float* dk, float* dv, const float* dout,
                              const float* q, const float* k, const float* v, const float* out, const float* lse,
                              const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh);

// The same backward given delta ([H, s]: delta[h * s + i] = rowsum(out * dout) of query i, head h,
// as attention_delta computes it) instead of out: bitwise the same results. Lets a caller reuse
// out's memory once it has the delta (the Ulysses backend keeps out in its dq buffer).
void flash_attention_backward_delta(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                    const float* v, const float* delta, const float* lse, const int32_t* doc_lens,
                                    int64_t ndocs, const AttnShape& sh);
// delta[h * s + i] = rowsum(out * dout) of row i, head h ([s, H, d] inputs), in double, rounded to float.
void attention_delta(float* delta, const float* out, const float* dout, int64_t s, int64_t H, int64_t d);

// Naive O(s^2) fp64 reference used by tests and benchmarks (same layouts, float outputs).
void attention_reference_forward(float* out, const float* q, const float* k, const float* v,
                                 const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh);

// High-water mark (bytes) of the scratch memory the two flash kernels allocated since the last
// reset (packed K^T/V^T copies, per-thread blocks). Inputs and outputs are not counted.
int64_t attention_scratch_peak_bytes();
void attention_reset_scratch_peak();

}  // namespace ua
