// Default attention backend: the local flash attention kernel over the whole (local) sequence.
// Must never communicate; sequence-parallel backends live elsewhere.
#include "model/attention_backend.h"

namespace ua {

namespace {
AttnShape ShapeOf(const AttnCall& c) {
  AttnShape sh;
  sh.s = c.n;
  sh.H = c.H;
  sh.Hkv = c.Hkv;
  sh.d = c.d;
  sh.causal = true;
  sh.window = c.window;
  return sh;
}
}  // namespace

void LocalFlashAttention::forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                  const AttnCall& c) {
  flash_attention_forward(out, lse, q, k, v, c.doc_lens, c.ndocs, ShapeOf(c));
}

void LocalFlashAttention::backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                   const float* v, const float* out, const float* lse, const AttnCall& c) {
  flash_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, c.doc_lens, c.ndocs, ShapeOf(c));
}

void LocalFlashAttention::forward_bf16(uint16_t* out, float* lse, const uint16_t* q, const uint16_t* k,
                                       const uint16_t* v, const AttnCall& c) {
  flash_attention_forward_bf16(out, lse, q, k, v, c.doc_lens, c.ndocs, ShapeOf(c));
}

void LocalFlashAttention::backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q,
                                        const uint16_t* k, const uint16_t* v, const uint16_t* out, const float* lse,
                                        const AttnCall& c) {
  flash_attention_backward_bf16(dq, dk, dv, dout, q, k, v, out, lse, c.doc_lens, c.ndocs, ShapeOf(c));
}

}  // namespace ua
