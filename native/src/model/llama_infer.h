// Generation with a KV cache over a LlamaModel's own weights (no copy): the session holds the
// tokens seen so far and, per layer, their keys (normed and rotated, as attention sees them) and
// values; append() runs new tokens at the next positions through the same kernels as the
// model's forward (RMSNorm, projections with their biases, Qwen3's q/k norm, scaled RoPE, GQA,
// per-layer sliding windows, SwiGLU, LoRA adapters when attached and enabled) and writes their
// logits. Prompts are processed in chunks of kChunk tokens: the first chunk of an empty cache
// through the flash attention kernel, later ones through kernels/attention_cached.h.
//
// The cache always equals what a full forward over tokens() would compute:
//  - rope type dynamic: the frequencies follow the whole sequence's length; when the table for
//    the new length differs from the one the cached keys were rotated with (past
//    max_position_embeddings), every cached token is recomputed with the new table;
//  - adapters attached, detached, enabled or disabled since the last append: recomputed too.
// Weights changed in place (an optimizer step) are NOT detected: truncate(0) after training.
// Pure C++ (no N-API). Not thread-safe: one call at a time (the binding enforces it).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/llama.h"

namespace ua {

class LlamaInfer {
 public:
  static constexpr int64_t kChunk = 256;  // tokens per prefill chunk (bounds the scratch memory)

  explicit LlamaInfer(std::shared_ptr<const LlamaModel> model);

  // Tokens whose keys and values are cached (their positions are 0 .. length() - 1).
  int64_t length() const { return static_cast<int64_t>(tokens_.size()); }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // Keeps the first len tokens (len <= length()); the next append continues at position len.
  void truncate(int64_t len);
  // Runs tokens [n] (n >= 1, ids in [0, vocab)) at positions length() .. length() + n - 1 and
  // caches them. logits: [vocab] of the last token, or [n, vocab] (every new token) when
  // all_logits. Throws ShapeError (ERR_SHAPE) on bad ids or n < 1.
  void append(const int32_t* tokens, int64_t n, float* logits, bool all_logits);
  // Bytes held by the cache and the scratch buffers.
  int64_t cache_bytes() const;

 private:
  struct Layer {
    const float *ln1, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *qn, *kn, *ln2, *wg, *wu, *wd;
  };
  // lora_A, lora_B of one (layer, module); A == nullptr: no adapter there.
  struct Adapter {
    const float* A = nullptr;
    const float* B = nullptr;
  };
  struct AdapterState {
    bool on = false;
    const float* params = nullptr;
    bool operator==(const AdapterState& o) const { return on == o.on && params == o.params; }
  };

  AdapterState adapter_state() const;
  void bind_adapters();
  // Computes positions [from, from + m) (their tokens are tokens_[from ..]) into the cache; with
  // out != nullptr writes the logits of rows first_row .. m - 1 of the chunk to out.
  void run_chunk(int64_t from, int64_t m, float* out, int64_t first_row);
  void ensure_capacity(int64_t total);
  void ensure_scratch(int64_t m);

  std::shared_ptr<const LlamaModel> model_;
  LlamaConfig cfg_;
  std::vector<Layer> layers_;
  const float* embed_ = nullptr;
  const float* norm_ = nullptr;
  const float* head_ = nullptr;
  std::vector<Adapter> adapters_;  // [layer * kLoraModules + module] while adapters are on
  int64_t lora_rank_ = 0;
  float lora_scale_ = 0;
  AdapterState cached_adapters_;

  std::vector<int32_t> tokens_;
  int64_t cached_ = 0;                       // leading tokens whose keys and values are valid
  int64_t capacity_ = 0;                     // cache rows allocated per layer
  std::vector<std::vector<float>> k_, v_;    // per layer: [capacity, Hkv, d]
  std::vector<double> inv_freq_;             // the table the cached keys were rotated with
  double rope_scale_ = 1;

  int64_t scratch_m_ = -1, scratch_r_ = 0;  // rows and LoRA rank the scratch buffers hold
  std::vector<float> scratch_;
  float *x_ = nullptr, *xn_ = nullptr, *q_ = nullptr, *att_ = nullptr, *gate_ = nullptr, *up_ = nullptr,
        *lse_ = nullptr, *rstd_ = nullptr, *u_ = nullptr;
  std::vector<int32_t> pos_;
};

}  // namespace ua
