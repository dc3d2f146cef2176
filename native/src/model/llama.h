// The Llama-family decoder (Llama 2/3.x, Qwen2/2.5, Qwen3, Mistral) on CPU: parameters and gradients in two flat,
// 64-byte-aligned float buffers with HF-named views, seeded initialization, and forward +
// backward over ONE packed token sequence (documents given as lengths, global position ids).
// Pure C++: no N-API here. Never materializes [n, vocab] (fused LM head + CE) or [n, n]
// (flash attention through the AttentionBackend seam, see attention_backend.h).
//
// Per layer (REFERENCE §1):
//   xn1 = rms(x) ; q,k,v = proj(xn1) (+bias for qwen2) ; [qwen3: q, k = rms_head(q), rms_head(k)]
//   rope(q), rope(k) (scaled rope: kernels/rope.h) ; att = attn(q,k,v) (per-layer sliding window)
//   h = x + o_proj(att) ; xn2 = rms(h) ; act = silu(gate(xn2)) * up(xn2) ; y = h + down(act)
// Shapes: x, h, y: [n, D]; q, att: [n, H*d]; k, v: [n, Hkv*d]; gate, up, act: [n, I].
//
// Mixed precision (set_bf16, REFERENCE §6): the parameters, gradients and optimizer state stay
// fp32 (the masters); each forward computes with a bf16 copy of the matrix weights, refreshed from
// the masters whenever they changed (weights_changed(), init, a load), so once per optimizer step.
// Matrix products take bf16 inputs and accumulate in fp32 (matmul_bf16), attention takes bf16
// q/k/v (attention_bf16.h); RMSNorm statistics, rope, softmax, loss, residual stream and every
// gradient stay fp32. Saved activations that only feed products (normed inputs, q/k/v, the
// attention output, gate/up) are kept in bf16; the layer inputs, h and the statistics in fp32.
//
// ZeRO stage 3 (set_param_shards, llama_zero3.cc): this rank keeps only its part of the parameters
// and gradients (param_shards.h); each piece of the model (a layer's attention run, then its MLP
// matrices one by one or, tiled, its MLP in slices of the intermediate dimension; the final norm)
// is gathered over the world into params() (an MLP slice: into compact buffers) just before its
// forward, again before its backward (and before a checkpointing recompute), and released after;
// its gradient is reduce-scattered into this rank's part right after its backward and released.
// Under bf16 each gathered piece gets its own bf16 copy, released with it. With a gather worker
// (param_shards.h) the forward gathers the next piece while the current one computes, and the
// backward gathers the next piece while the current one's gradient is reduce-scattered (after its
// weights are released), so at most about one attention run's weights and gradient are resident,
// never a whole layer. The embedding and
// the LM head are not gathered whole: the lookup, the fused loss and their backwards walk the
// vocabulary in slices of kVocabSliceRows rows (lm_head_ce.h VocabSlices), each slice broadcast by
// its owner just before its use and released after, its gradient reduced onto its owner right
// after its last block (the bits of the whole tensor's pass). params() and grads() then hold only
// the pages of the piece or slice in use (the rest reads as zero).
//
// Optional LoRA (lora.h): adapters on chosen linear modules of every layer, in their own flat
// param / grad buffers with PEFT-named views. Once attached the base model is frozen: backward
// accumulates adapter gradients only (no base weight, norm, embedding or head gradients) and
// propagates input gradients through base weights and adapters alike.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/lm_head_ce.h"
#include "kernels/rope.h"
#include "model/attention_backend.h"
#include "model/lora.h"

namespace ua {

namespace flat {
class Cursor;  // model/flat_buffer.h
}
class ParamShards;  // model/param_shards.h

struct LlamaConfig {
  int64_t vocab = 0;
  int64_t hidden = 0;        // D
  int64_t intermediate = 0;  // I
  int64_t layers = 0;
  int64_t heads = 0;         // H
  int64_t kv_heads = 0;      // Hkv
  int64_t head_dim = 0;      // d
  float rope_theta = 10000.f;
  float rms_eps = 1e-6f;
  bool tie_embeddings = false;
  bool qkv_bias = false;     // qwen2 (or llama attention_bias; then o_proj has a bias too)
  bool o_bias = false;       // llama attention_bias = true
  float init_range = 0.02f;
  // Rope scaling type and its resolved parameters; rope.theta is ignored (rope_theta is it).
  RopeScaling rope;
  // qwen3: RMSNorm (weight [head_dim], eps rms_eps) over each q and k head after the projection
  // (and its adapter) and before RoPE: self_attn.q_norm.weight, self_attn.k_norm.weight.
  bool qk_norm = false;
  // Per layer: sliding window in tokens (0: full causal attention). Empty: no layer slides.
  std::vector<int64_t> layer_window;
};

// Throws std::invalid_argument naming the field and the problem (the binding maps it to ERR_CONFIG).
void validate_config(const LlamaConfig& c);

struct ParamView {
  std::string name;
  int64_t offset = 0;            // element offset in the flat buffer (multiple of 16 floats)
  std::vector<int64_t> shape;
  int64_t numel = 0;
  bool init_normal = false;      // linear / embedding weight: N(0, init_range)
  float init_value = 0.f;        // otherwise constant (1 for norms, 0 for biases)
};

// 64-byte-aligned float storage, zero-filled. Shared so JS ArrayBuffers can outlive the model.
struct FloatStorage {
  float* data = nullptr;
  int64_t size = 0;
  explicit FloatStorage(int64_t n);
  ~FloatStorage();
  FloatStorage(const FloatStorage&) = delete;
  FloatStorage& operator=(const FloatStorage&) = delete;
  // The storage as bf16 bit patterns (2 per float), for buffers that hold bf16 only.
  uint16_t* halves() const { return reinterpret_cast<uint16_t*>(data); }

 private:
  void* raw_ = nullptr;
};

// Wall-clock profile categories (seconds accumulated while profiling is on). Time spent
// recomputing layers under checkpointing is counted in its categories AND in kProfRecompute.
// kProfConvert: fp32 <-> bf16 conversions of the bf16 model (the weight copy included).
// kProfComm: the sequence-parallel all-to-alls, also counted inside attention_forward/backward.
enum ProfileCategory {
  kProfGemm, kProfAttnFwd, kProfAttnBwd, kProfHeadFwd, kProfHeadBwd, kProfNorm, kProfRope, kProfSwiglu,
  kProfCopy, kProfEmbed, kProfRecompute, kProfConvert, kProfComm, kProfCount
};
const char* profile_name(int cat);

struct ForwardResult {
  double loss = 0;     // sum of token losses / normalizer
  int64_t valid = 0;   // tokens with label >= 0 in this sequence
};

class LlamaModel {
 public:
  // LM head tokens per chunk: chunk * min(vocab, 2048) floats of logits at a time.
  static constexpr int64_t kCeChunk = 512;

  explicit LlamaModel(const LlamaConfig& cfg);

  const LlamaConfig& config() const { return cfg_; }
  const std::vector<ParamView>& views() const { return views_; }
  int64_t num_params() const;     // trainable elements (excluding alignment padding)
  int64_t flat_size() const { return flat_size_; }
  std::shared_ptr<FloatStorage> params() const { return params_; }
  std::shared_ptr<FloatStorage> grads() const { return grads_; }

  // Deterministic init: normal(0, init_range) via philox keyed by (seed, 0, view index); ones; zeros.
  void init(uint64_t seed);
  void zero_grad();

  // Mixed precision (see the header comment). Switching frees the activation buffers.
  void set_bf16(bool on);
  bool bf16() const { return bf16_; }
  // The fp32 parameters were changed from outside (an optimizer step, a load): the next forward
  // refreshes the bf16 weight copy first. Cheap; a no-op without bf16.
  void weights_changed() { w16_stale_ = true; }

  void set_checkpointing(bool on) { checkpointing_ = on; }
  bool checkpointing() const { return checkpointing_; }
  // Tiled MLP (kernels/mlp_tiled.h): 0 off, -1 tile rows chosen from the length, > 0 rows per
  // tile. Applies to the fp32 model when no MLP module carries an adapter (otherwise the MLP runs
  // untiled); the layer then saves no gate / up and recomputes them per tile in the backward.
  void set_mlp_tiling(int64_t rows) { mlp_tile_request_ = rows; }
  int64_t mlp_tiling() const { return mlp_tile_request_; }
  // Rows per tile of the current activation buffers (0: untiled).
  int64_t mlp_tile() const { return mlp_tile_; }
  // Replace the attention backend (nullptr restores the local flash attention).
  void set_attention_backend(std::shared_ptr<AttentionBackend> b);
  // What doc_lens must sum to when this rank holds n tokens (the backend decides; local: n).
  int64_t attended_tokens(int64_t n) const { return attn_->attended_tokens(n); }

  // tokens, labels, positions: [n]; doc_lens: [ndocs] with |len| summing to attended_tokens(n)
  // (ndocs == 0: one document; a negative length marks padding, as in kernels/attention.h).
  // token_loss [n] nullable. Throws std::invalid_argument on bad inputs (ids out of range ...).
  // dropout_key: the caller's step key for LoRA dropout masks (keyed by seed, key, layer, module);
  // negative: no dropout (evaluation, reference passes).
  // Rope type dynamic: the sequence length of its base is the largest position id + 1 over the
  // WHOLE sequence (padding tokens included), taken as a max over the ranks of the attention
  // backend (AttentionBackend::sequence_max: a one-int64 all-gather over the SP group under
  // Ulysses), so every shard of a sequence rotates with the same frequencies; every other type
  // has one table for the model's lifetime.
  ForwardResult forward(const int32_t* tokens, const int32_t* labels, const int32_t* positions, int64_t n,
                        const int32_t* doc_lens, int64_t ndocs, float normalizer, float* token_loss,
                        int64_t dropout_key = -1, int32_t* token_argmax = nullptr);

  // Accumulates dL/dparams into grads for L = sum_t w_t * token_loss_t, w_t = token_weight[t]
  // (nullable: 1/normalizer of the last forward). Requires a forward since the last backward.
  // d_hidden (nullable, [n, D]) is added to dL/d(final norm output) beside the LM head's part:
  // heads on the hidden states (the value head of reward modelling) backpropagate through it (fp32 and bf16).
  void backward(const float* token_weight, const float* d_hidden = nullptr);
  bool has_forward() const { return has_forward_; }
  // Copies the final norm output of row `row` of the last forward ([D] floats) into out (under
  // bf16 the bf16 values the head read, widened). Requires a forward since the last backward.
  void final_hidden(int64_t row, float* out) const;

  // Optional per-category timing (for benchmarks); off by default, costs one branch per kernel call.
  void set_profiling(bool on) { profiling_ = on; }
  void reset_profile() { for (double& x : profile_) x = 0; }
  const double* profile() const { return profile_; }

  // ZeRO stage 3 (see the header comment): from now on this rank keeps only its part (taken from
  // the current parameters, which are then released). With adapters attached only the frozen base
  // is sharded (the adapters stay whole; attach them first). Throws std::logic_error with a
  // forward awaiting its backward; nullptr is refused.
  void set_param_shards(std::shared_ptr<ParamShards> s);
  const std::shared_ptr<ParamShards>& param_shards() const { return shards_; }
  // Stage 3: every parameter gathered into params() (a collective; for checkpoints and hashes).
  void gather_all_params();
  // Stage 3: params() released again (after gather_all_params).
  void release_all_params();
  // Stage 3: this rank's part <- params() (after a load into them), then params() released.
  void take_param_part();

  // Bytes held by the activation arena (0 before the first forward).
  int64_t activation_bytes() const;

  // LoRA. attach_lora allocates zeroed adapters (call init_lora next); throws std::invalid_argument
  // on a bad config or when adapters are already attached. Zeroes the base gradients once.
  void attach_lora(const LoraConfig& c);
  // A ~ U(-1/sqrt(in), 1/sqrt(in)) keyed by (seed, A's view index); B = 0 (the model is unchanged).
  void init_lora(uint64_t seed);
  bool has_lora() const { return lora_ != nullptr; }
  const LoraConfig& lora_config() const;
  const std::vector<ParamView>& lora_views() const;
  std::shared_ptr<FloatStorage> lora_params() const;
  std::shared_ptr<FloatStorage> lora_grads() const;
  int64_t lora_flat_size() const;
  int64_t lora_num_params() const;
  // Off: forward is the base model (DPO's reference pass); a backward after such a forward
  // accumulates no adapter gradients.
  void set_adapters_enabled(bool on);
  bool adapters_enabled() const { return lora_ && lora_->enabled; }

 private:
  struct LayerParams {
    float *ln1, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo, *qn, *kn, *ln2, *wg, *wu, *wd;
  };
  // Saved (or recomputed) activations of one layer. qpre, kpre (projections before the q/k norm)
  // and their rstd exist with qk_norm only; q and k are what attention sees (normed, rotated).
  struct LayerActs {
    float *x, *xn1, *rstd1, *q, *k, *v, *att, *lse, *h, *xn2, *rstd2, *gate, *up, *qpre, *kpre, *rstdq, *rstdk;
  };

  template <typename F> void timed(int cat, F&& f) {
    if (!profiling_) {
      f();
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    profile_[cat] += dt;
    if (recomputing_) profile_[kProfRecompute] += dt;
  }

  // bf16 mode (llama_bf16.cc): weights, saved activations and the layer passes.
  struct LayerW16 {
    const uint16_t *wq, *wk, *wv, *wo, *wg, *wu, *wd;
  };
  // Saved (or recomputed) activations of one layer in bf16 mode; the bf16 ones feed products only.
  struct LayerActs16 {
    float *x, *rstd1, *lse, *h, *rstd2, *qpre, *kpre, *rstdq, *rstdk;
    uint16_t *xn1, *q, *k, *v, *att, *xn2, *gate, *up;
  };
  LayerW16 layer_w16(const LayerParams& p) const;
  const uint16_t* w16_of(const float* master) const { return w16_->halves() + (master - params_->data); }
  void refresh_w16();
  void ensure_buffers_bf16(int64_t n);
  LayerActs16 acts16_for(int64_t l);
  void layer_forward_bf16(int64_t l, LayerActs16& a, float* y);
  void layer_backward_bf16(int64_t l, LayerActs16& a, float* dres);
  // fp32 copy of a bf16 activation for the LoRA adapters (which compute in fp32): lora_x32_.
  const float* adapter_input(const uint16_t* x16, int64_t in);
  void head_forward_bf16(const float* norm_w, const float* lm, float* token_loss, int32_t* token_argmax,
                         ForwardResult& res, const VocabSlices* slices);
  void head_backward_bf16(float* dhn, float* g_lm, const float* lm, const float* token_weight, const VocabSlices* slices);

  // Stage 3's vocabulary slices (llama_zero3.cc): rows per slice, the hooks of the fused loss over
  // tensor t (the LM head or tied embedding; `g`: its gradient in the backward, else null), and the
  // sliced lookup and its backward of the embedding (view 0).
  static constexpr int64_t kVocabSliceRows = 2 * kCeVocabBlock;
  VocabSlices head_slices(size_t t, float* g);
  void embedding_forward_sliced(float* y);
  void embedding_backward_sliced(float* g_embed, const float* dres);
  void slice_gather(size_t t, int64_t e0, int64_t e1, bool bf16_copy);
  void slice_release(size_t t, int64_t e0, int64_t e1, bool bf16_copy);
  // With a gather worker: starts gathering the slice the next slice_gather will ask for.
  void slice_prefetch(size_t t, int64_t e0, int64_t e1, bool bf16_copy);
  struct PendingSlice {
    size_t t = 0;
    int64_t e0 = 0, e1 = 0;
    bool bf16 = false;
    uint64_t ticket = 0;
    bool on = false;
  };
  PendingSlice slice_pending_;

  // Stage 3 (no-ops without shards): views [first, end) gathered / released / their gradients reduced.
  void unit_gather(size_t first, size_t end);
  void unit_release(size_t first, size_t end);
  void unit_reduce(size_t first, size_t end);
  // Stage 3 with a gather worker: starts gathering views [first, end) (the next run) now; the
  // unit_gather of the same run waits for it. A no-op without one.
  void unit_prefetch(size_t first, size_t end);
  // The bf16 copy of views [first, end) (runs on the gather worker: no profiling there).
  void convert_w16(size_t first, size_t end);
  // The prefetched piece: a run of views [first, end), or (slice >= 0) MLP slice `slice` of layer
  // `layer`.
  struct PendingGather {
    size_t first = 0, end = 0;
    int64_t layer = -1, slice = -1;
    uint64_t ticket = 0;
    bool on = false;
  };
  PendingGather pending_;
  // Drops a prefetched piece nobody asked for (a pass that ended early).
  void drop_pending();
  // The views of layer l: [layer_first(l), layer_first(l + 1)).
  size_t layer_first(int64_t l) const;
  size_t norm_index() const { return views_.size() - (cfg_.tie_embeddings ? 1 : 2); }
  void zero_param_shard_grads();
  // Stage 3: the run's gradient is resident from its backward's start to its reduction
  // (accounting only; unit_reduce takes it back).
  void grads_begin(size_t first, size_t end);

  // Stage 3's pieces of a layer (llama_zero3.cc): its attention run (input norm to
  // post-attention norm: [layer_first(l), run_end(l))) and its MLP, gathered one piece at a time
  // with the next one prefetched, so at most about one attention run's weights and gradients
  // are resident, never a whole layer.
  // - Untiled MLP (mlp_split): each MLP matrix is a piece of its own (a run of one view), gate,
  //   up, down in the forward and down, gate, up in the backward; the products are the unsharded
  //   ones (bitwise).
  // - Tiled MLP (mlp_sliced): the MLP is gathered in mlp_plan_.count slices of the intermediate
  //   dimension: slice s is every rank's local rows [s b, (s + 1) b) of gate and up and the same
  //   intermediate columns of down, in compact buffers (two weight sets, so the next slice's
  //   gather overlaps this one's compute, and one gradient set). The products over I are then
  //   summed slice by slice: not bitwise the unsharded model (one slice: bitwise).
  enum LayerPiece { kPieceAttn = 0, kPieceGate = 1, kPieceUp = 2, kPieceDown = 3 };
  bool mlp_sliced() const { return shards_ && mlp_tile_ > 0; }
  bool mlp_split() const { return shards_ && mlp_tile_ == 0; }
  // The end of layer l's attention run (stage 3).
  size_t run_end(int64_t l) const { return layer_first(l + 1) - 3; }
  size_t piece_first(int64_t l, int p) const { return p == kPieceAttn ? layer_first(l) : run_end(l) + static_cast<size_t>(p - 1); }
  size_t piece_end(int64_t l, int p) const { return p == kPieceAttn ? run_end(l) : run_end(l) + static_cast<size_t>(p); }
  // Untiled forward: piece `from` released, `to` gathered, then `next` prefetched (-1: what
  // follows the layer). fwd_done releases the last one. No-ops unless mlp_split().
  void fwd_switch(int64_t l, int from, int to, int next);
  void fwd_done(int64_t l, int p);
  // Untiled backward: `p` gathered, its gradient resident from now (bwd_begin); `from`'s weights
  // released, `to` prefetched, `from`'s gradient reduced, `to` gathered (bwd_switch).
  void bwd_begin(int64_t l, int p);
  void bwd_switch(int64_t l, int from, int to);
  // Prefetches the first MLP piece of layer l's forward (after its attention run is gathered).
  void prefetch_mlp(int64_t l);
  struct MlpSlice {
    float *wg, *wu, *wd;  // [w, D], [w, D], [D, w]
  };
  // The slicing, fixed by the config and the shards' layout (set_param_shards).
  struct MlpSlicePlan {
    int64_t rows = 0;   // b: local rows of gate / up per slice
    int64_t count = 0;  // S
    int64_t width = 0;  // world * b
    std::vector<std::vector<int64_t>> columns;  // per slice: down's columns (-1: a padding column)
  };
  MlpSlicePlan mlp_plan_;
  void plan_mlp_slices();
  MlpSlice mlp_buffers(FloatStorage& st) const;
  FloatStorage& mlp_weights(int64_t l, int64_t s);
  void mlp_gather_job(int64_t l, int64_t s);
  MlpSlice mlp_gather(int64_t l, int64_t s);
  void mlp_prefetch(int64_t l, int64_t s);
  void mlp_release(int64_t l, int64_t s);
  // The first piece of layer l's forward (l == layers: the final norm) / backward, prefetched.
  void prefetch_forward(int64_t l);
  void prefetch_backward(int64_t l);
  void mlp_forward_sliced(int64_t l, const float* xn2, float* y);
  // dxn2 = dL/dxn2; gathers the attention run (for the post-attention norm) before it returns.
  void mlp_backward_sliced(int64_t l, const float* xn2, const float* dy, float* dxn2);
  std::unique_ptr<FloatStorage> mlp_w_[2], mlp_g_;

  void build_views();
  LayerParams layer_params(const std::shared_ptr<FloatStorage>& s, int64_t l) const;
  void ensure_buffers(int64_t n);
  void take_scratch(flat::Cursor& c, int64_t n, int64_t rows_i, float* attn = nullptr);
  // The tile rows the next fp32 buffers of n tokens use (0: untiled).
  int64_t mlp_tile_for(int64_t n) const;
  LayerActs acts_for(int64_t l);
  void layer_forward(int64_t l, LayerActs& a, float* y);
  void layer_backward(int64_t l, LayerActs& a, float* dres);

  struct Lora {
    LoraConfig cfg;
    std::vector<ParamView> views;      // per (layer, targeted module): lora_A then lora_B
    std::vector<int64_t> a_view;       // [layer * kLoraModules + m]: index of the A view, -1: none
    int64_t flat_size = 0;
    std::shared_ptr<FloatStorage> params, grads;
    bool enabled = true;
  };
  // Whether module m of layer l has an adapter active in the current pass.
  bool adapter_on(int64_t l, int m) const {
    return fwd_adapters_ && lora_->a_view[static_cast<size_t>(l * kLoraModules + m)] >= 0;
  }
  void ensure_lora_buffers(int64_t n);
  // y[n, out] += s B A drop(x[n, in])
  void adapter_forward(int64_t l, int m, float* y, const float* x, int64_t in, int64_t out);
  // dA, dB += ...; dx[n, in] += drop^T(du A) (dx nullable)
  void adapter_backward(int64_t l, int m, float* dx, const float* dy, const float* x, int64_t in, int64_t out);

  LlamaConfig cfg_;
  std::vector<ParamView> views_;
  int64_t flat_size_ = 0;
  std::shared_ptr<FloatStorage> params_, grads_;
  std::shared_ptr<AttentionBackend> attn_;
  std::shared_ptr<ParamShards> shards_;
  bool checkpointing_ = false;

  // Activation arena (allocated once per (n, checkpointing, precision)).
  int64_t buf_n_ = -1;
  bool buf_ckpt_ = false;
  bool buf_bf16_ = false;
  int64_t mlp_tile_request_ = 0;
  int64_t mlp_tile_ = 0;            // tile rows of the current buffers (0: untiled)
  int64_t mlp_tile_cols_ = 0;       // the intermediate columns its scratch holds
  float* scratch_mlp_ = nullptr;    // tiled: mlp_tile_scratch(mlp_tile_, I) floats
  std::unique_ptr<FloatStorage> arena_;
  std::vector<float*> layer_base_;  // per layer: saved activations (all, or only x when checkpointing)
  float* recompute_base_ = nullptr; // checkpointing: one full LayerActs set
  // fp32: xfinal_ and hn_ share one region with the attention-gradient scratch (scratch_dq_ ..),
  // which is only written after the final norm's backward has read them (ensure_buffers).
  float* xfinal_ = nullptr;         // [n, D] output of the last layer
  float* hn_ = nullptr;             // [n, D] final norm output
  float* rstdf_ = nullptr;          // [n]
  float* lse_ce_ = nullptr;         // [n]
  float* scratch_act_ = nullptr;    // [n, I] act (forward) / d_act (backward); tiled MLP: none
  float* scratch_dg_ = nullptr;     // [n, I] d_gate; tiled MLP: none
  float* scratch_du_ = nullptr;     // [n, I] d_up; tiled MLP: none
  float* scratch_dD_ = nullptr;     // [n, D] d of a normed input
  float* scratch_dq_ = nullptr;     // [n, H*d] d_att, then d_q
  float* scratch_dq2_ = nullptr;    // [n, H*d]
  float* scratch_dk_ = nullptr;     // [n, Hkv*d]
  float* scratch_dv_ = nullptr;     // [n, Hkv*d]
  float* scratch_dk2_ = nullptr;    // [n, Hkv*d] d of the pre-norm k (qk_norm only)
  float* dres_ = nullptr;           // [n, D] gradient of the residual stream
  // bf16 mode only: the bf16 weight copy (same offsets as params_), the final norm's bf16 output
  // and bf16 scratch for the operands of the products.
  bool bf16_ = false;
  std::atomic<bool> w16_stale_{true};  // set from the JS thread (weights_changed) while a call may run
  std::unique_ptr<FloatStorage> w16_;
  uint16_t* hn16_ = nullptr;        // [n, D]
  uint16_t* s16_i1_ = nullptr;      // [n, I] act, then d_gate
  uint16_t* s16_i2_ = nullptr;      // [n, I] d_up
  uint16_t* s16_d_ = nullptr;       // [n, D] d of the residual stream
  uint16_t* s16_q_ = nullptr;       // [n, H*d] d_att, then d_q
  uint16_t* s16_k_ = nullptr;       // [n, Hkv*d]
  uint16_t* s16_v_ = nullptr;       // [n, Hkv*d]

  std::unique_ptr<Lora> lora_;
  bool fwd_adapters_ = false;        // the last forward ran with adapters (its backward follows it)
  uint32_t dropout_key_ = 0;
  bool dropout_on_ = false;          // the last forward applied LoRA dropout
  int64_t lora_buf_n_ = -1;
  std::unique_ptr<FloatStorage> lora_arena_;
  float* lora_u_ = nullptr;          // [n, r]
  float* lora_du_ = nullptr;         // [n, r]
  float* lora_xd_ = nullptr;         // [n, max in] dropped input / its gradient (dropout > 0 only)
  float* lora_x32_ = nullptr;        // [n, max in] bf16 mode: the adapters' fp32 input

  // Rope frequencies [head_dim / 2] of the current sequence (fixed unless the type is dynamic,
  // whose table follows the sequence length rope_len_ of the last forward) and the cos/sin scale.
  std::vector<double> inv_freq_;
  int64_t rope_len_ = -1;
  double rope_scale_ = 1;
  int64_t window_of(int64_t l) const { return cfg_.layer_window.empty() ? 0 : cfg_.layer_window[static_cast<size_t>(l)]; }

  // Inputs of the last forward (copied: the backward must not depend on caller memory).
  std::vector<int32_t> tokens_, labels_, positions_, doc_lens_;
  float normalizer_ = 1.f;
  bool has_forward_ = false;
  bool profiling_ = false;
  bool recomputing_ = false;
  double profile_[kProfCount] = {};
};

}  // namespace ua
