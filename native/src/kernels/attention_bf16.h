// Flash attention with bf16 inputs (REFERENCE §6): Q, K, V (and, in the backward, O and dO) are
// bf16 bit patterns (uint16_t, bf16.h) in the layouts of attention.h; the softmax statistics
// (m, l, lse), the accumulators and the gradients dQ, dK, dV are fp32.
// q: [s, H, d], k, v: [s, Hkv, d], out: [s, H, d] bf16, lse: [H, s] fp32; d must be even.
// Semantics (documents, padding, causal mask, sliding window, GQA, fully masked rows) are those of
// flash_attention_forward / _backward; so are determinism (bitwise for any thread count) and
// O(s) memory.
// Two implementations, chosen by use_avx512bf16() (bf16.h), so DNNL_MAX_CPU_ISA selects either:
//  - AVX512-BF16 micro-kernels (vdpbf16ps): every block product takes bf16 operands, P and dS are
//    rounded to bf16 before the products they feed (as FlashAttention-2 does in bf16), and the
//    products accumulate in fp32;
//  - otherwise the inputs are widened to fp32 (exactly) and the fp32 kernels run; the forward's
//    output is rounded to bf16 once.
// The two agree to bf16 rounding, not bitwise. Must never be called with an odd head dim.
#pragma once
#include "attention.h"

namespace ua {

void flash_attention_forward_bf16(uint16_t* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                                  const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh);

// dq += ..., dk += ..., dv += ... (fp32). out and lse are the forward's results.
void flash_attention_backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q,
                                   const uint16_t* k, const uint16_t* v, const uint16_t* out, const float* lse,
                                   const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh);

// "avx512bf16" or "fp32-fallback": what the two calls above run on this CPU.
const char* attention_bf16_impl();

}  // namespace ua
