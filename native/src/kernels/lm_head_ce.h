// Fused, chunked LM head + cross-entropy. Never materializes [n, vocab]: logits are computed
// `chunk` tokens by at most 2048 vocabulary ids at a time (forward) and recomputed in the backward.
// h: [n, dim] final hidden states, W: [vocab, dim] (lm_head or tied embedding), labels: [n]
// with ignore index -100 (any negative label is ignored). chunk: tokens per logits block
// (scratch [chunk, min(vocab, 2048)]); chunk <= 0 means 256. Labels >= vocab throw ShapeError.
#pragma once
#include <functional>

#include "common.h"

namespace ua {

constexpr int32_t kIgnoreIndex = -100;
// Vocabulary ids per logits block (the kernels' outer loop).
constexpr int64_t kCeVocabBlock = 2048;

// ZeRO stage 3's vocabulary slices (nullable everywhere): the vocabulary is walked in slices of
// `rows` ids (a multiple of kCeVocabBlock), in order; before the first block of a slice
// begin(v0, v1) makes rows [v0, v1) of W readable (and of dW writable), after its last block
// end(v0, v1) is called, so W (and dW) need only ever hold one slice. The results are the bits of
// the unsliced call. The backward takes slices only with the forward's lse.
struct VocabSlices {
  int64_t rows = 0;
  std::function<void(int64_t, int64_t)> begin, end;
};

struct CeResult {
  double loss = 0;        // sum over valid tokens of token_loss, divided by normalizer
  int64_t valid = 0;      // number of tokens with label >= 0
};

// token_loss [n] (nullable): -log p(label) per token, 0 for ignored tokens.
// lse [n] (nullable): log-sum-exp of each row's logits, saved for the backward.
// normalizer: the GLOBAL count of valid tokens (across ranks / micro-batches); must be > 0.
// argmax [n] (nullable): each row's highest-logit id (the lowest id among equal maxima), for
// accuracy metrics; costs one extra pass over the row when given.
CeResult lm_head_ce_forward(float* token_loss, float* lse, const float* h, const float* W,
                            const int32_t* labels, int64_t n, int64_t dim, int64_t vocab,
                            float normalizer, int64_t chunk, int32_t* argmax = nullptr, const VocabSlices* slices = nullptr);

// Gradient of L = sum_t weight_t * token_loss_t, where weight_t = token_weight[t] when token_weight
// is given (e.g. DPO), otherwise 1/normalizer for valid tokens. dh [n, dim] +=, dW [vocab, dim] +=
// (either nullable). lse from the forward (recomputed when nullptr).
void lm_head_ce_backward(float* dh, float* dW, const float* h, const float* W, const int32_t* labels,
                         const float* lse, const float* token_weight, int64_t n, int64_t dim, int64_t vocab,
                         float normalizer, int64_t chunk, const VocabSlices* slices = nullptr);

// bf16 operands (bit patterns, bf16.h): h16 [n, dim] and W16 [vocab, dim]; the logits products are
// bf16 x bf16 -> fp32, the softmax, loss and lse fp32; in the backward the logits gradient block is
// rounded to bf16 for the two products, whose results (dh, dW) accumulate in fp32.
CeResult lm_head_ce_forward_bf16(float* token_loss, float* lse, const uint16_t* h16, const uint16_t* W16,
                                 const int32_t* labels, int64_t n, int64_t dim, int64_t vocab, float normalizer,
                                 int64_t chunk, int32_t* argmax = nullptr, const VocabSlices* slices = nullptr);
void lm_head_ce_backward_bf16(float* dh, float* dW, const uint16_t* h16, const uint16_t* W16, const int32_t* labels,
                              const float* lse, const float* token_weight, int64_t n, int64_t dim, int64_t vocab,
                              float normalizer, int64_t chunk, const VocabSlices* slices = nullptr);

}  // namespace ua
