// The attention seam of the model: every layer's attention goes through an AttentionBackend, so
// sequence parallelism can replace it without touching the model.
//
// Contract (layouts as in kernels/attention.h, token-major):
//   q: [n, H, d], k, v: [n, Hkv, d], out: [n, H, d], lse: [H, n]  (n = tokens held by THIS rank)
//   doc_lens: document lengths of the sequence the backend attends over (ndocs == 0: one document);
//             under sequence parallelism these are the GLOBAL lengths (see attended_tokens).
//   window:   sliding window of this layer (0: full causal attention), in tokens of the attended
//             sequence; the window needs no communication of its own (each rank attends over the
//             whole sequence for its heads).
//   backward ACCUMULATES into dq, dk, dv (the model zeroes them first).
//
// The default LocalFlashAttention calls the local flash attention kernel on the whole sequence.
// Ulysses (next issue) plugs in here: forward = all-to-all seq->head on q, k, v (the rank then
// holds all tokens for H/P heads), local flash attention, all-to-all head->seq on out (and keeps
// the head-sharded tensors it needs); backward = the opposite all-to-alls around the local
// flash backward. The model itself then holds only n = s/P tokens and never changes.
// A backend must never keep pointers to the model's buffers beyond one call.
#pragma once
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/attention_bf16.h"

namespace ua {

struct AttnCall {
  int64_t n = 0;       // tokens held by this rank
  int64_t H = 0;       // query heads
  int64_t Hkv = 0;     // key/value heads
  int64_t d = 0;       // head dim
  const int32_t* doc_lens = nullptr;
  int64_t ndocs = 0;
  int64_t window = 0;  // sliding window (0: none)
};

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  // Tokens of the sequence the backend attends over when this rank holds n: doc_lens passed to
  // the model must sum (in |len|) to this. Local: n; Ulysses over P ranks: P * n (global lengths).
  virtual int64_t attended_tokens(int64_t n) const { return n; }
  // Index of this rank's first token in the attended sequence (Ulysses: rank * n). Keys per-token
  // randomness (LoRA dropout) by global token so P ranks draw what one process would.
  virtual int64_t token_offset(int64_t n) const { return 0; }
  // The largest of `local` over the ranks that share the attended sequence (local: `local`
  // itself; Ulysses: a max over the SP group, one small collective). The model uses it for the
  // dynamic rope's sequence length, which must be the same on every shard of a sequence.
  virtual int64_t sequence_max(int64_t local) { return local; }
  // Size of the lse buffer the model must provide (floats); local: H * n.
  virtual int64_t lse_size(const AttnCall& c) const { return c.H * c.n; }
  virtual void forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnCall& c) = 0;
  virtual void backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const AttnCall& c) = 0;
  // bf16 inputs (the bf16 model, attention_bf16.h): q, k, v, out, dout are bf16 bit patterns in the
  // same layouts; lse and the gradients stay fp32.
  virtual void forward_bf16(uint16_t* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                            const AttnCall& c) = 0;
  virtual void backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q,
                             const uint16_t* k, const uint16_t* v, const uint16_t* out, const float* lse,
                             const AttnCall& c) = 0;
  // Seconds spent communicating so far (0 for a local backend); the model's profile takes differences.
  virtual double comm_seconds() const { return 0; }
};

// One process, whole sequence: the local flash attention kernel, causal.
class LocalFlashAttention : public AttentionBackend {
 public:
  void forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnCall& c) override;
  void backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                const float* out, const float* lse, const AttnCall& c) override;
  void forward_bf16(uint16_t* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                    const AttnCall& c) override;
  void backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q, const uint16_t* k,
                     const uint16_t* v, const uint16_t* out, const float* lse, const AttnCall& c) override;
};

}  // namespace ua
