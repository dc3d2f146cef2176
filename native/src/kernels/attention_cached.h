// Attention of n new query tokens over a key/value cache: the decoding step of generation with a
// KV cache (and the prefill of a chunk after the first), causal, GQA, sliding window.
// q: [n, H, d], the new tokens at absolute positions past .. past + n - 1.
// k, v: [past + n, Hkv, d], the cache's first rows: every earlier token, then the n new ones.
// out: [n, H, d]. Query i (position p = past + i) sees keys j <= p, and with window W > 0 only
// j > p - W (HF's Mistral/Qwen2 mask, as kernels/attention.h). Query head h uses key/value head
// h / (H / Hkv). scale 0 means 1/sqrt(d).
// Scores, softmax and the weighted sum accumulate in double, one (token, head) per task: the bits
// depend only on the inputs, never on the thread count. Must never allocate per key.
#pragma once
#include "common.h"

namespace ua {

void attention_cached_forward(float* out, const float* q, const float* k, const float* v, int64_t n, int64_t past,
                              int64_t H, int64_t Hkv, int64_t d, int64_t window, float scale);

}  // namespace ua
