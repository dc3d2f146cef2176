// Llama-family decoder: parameter layout, initialization, forward and backward over one packed
// sequence (fp32; the bf16 layer passes live in llama_bf16.cc, LoRA in llama_lora.cc).
// All big products go through matmul (oneDNN; matmul / linear kernels), called from the
// calling (worker) thread, never from inside an OpenMP region. Must never allocate [n, vocab]
// or [n, n] buffers.
#include "model/llama.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "kernels/embedding.h"
#include "kernels/gradstats.h"
#include "kernels/linear.h"
#include "kernels/lm_head_ce.h"
#include "kernels/matmul.h"
#include "kernels/mlp_tiled.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "model/flat_buffer.h"

namespace ua {

namespace {

// OpenMP clauses here name the thread count explicitly, as in flat_buffer.h.
using flat::ParallelAdd;
using flat::ParallelCopy;
using flat::ParallelZero;
using flat::RoundUp;

// y[n, out] += bias[out]
void AddBias(float* y, const float* b, int64_t n, int64_t out) {
#pragma omp parallel for schedule(static) num_threads(n * out > (1 << 15) ? num_threads() : 1)
  for (int64_t i = 0; i < n; ++i) {
    float* r = y + i * out;
    for (int64_t j = 0; j < out; ++j) r[j] += b[j];
  }
}

void Require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

}  // namespace

void validate_config(const LlamaConfig& c) {
  Require(c.vocab > 0, "vocab_size: must be a positive integer, got " + std::to_string(c.vocab));
  Require(c.hidden > 0, "hidden_size: must be a positive integer, got " + std::to_string(c.hidden));
  Require(c.intermediate > 0, "intermediate_size: must be a positive integer, got " + std::to_string(c.intermediate));
  Require(c.layers > 0, "num_hidden_layers: must be a positive integer, got " + std::to_string(c.layers));
  Require(c.heads > 0, "num_attention_heads: must be a positive integer, got " + std::to_string(c.heads));
  Require(c.kv_heads > 0, "num_key_value_heads: must be a positive integer, got " + std::to_string(c.kv_heads));
  Require(c.heads % c.kv_heads == 0, "num_key_value_heads: num_attention_heads (" + std::to_string(c.heads) +
                                         ") must be divisible by num_key_value_heads (" +
                                         std::to_string(c.kv_heads) + ")");
  Require(c.head_dim > 0 && c.head_dim % 2 == 0,
          "head_dim: must be a positive even integer, got " + std::to_string(c.head_dim));
  Require(std::isfinite(c.rope_theta) && c.rope_theta > 0, "rope_theta: must be a positive number");
  Require(std::isfinite(c.rms_eps) && c.rms_eps > 0, "rms_norm_eps: must be a positive number");
  Require(std::isfinite(c.init_range) && c.init_range >= 0, "initializer_range: must be a non-negative number");
  RopeScaling r = c.rope;
  r.theta = c.rope_theta;
  validate_rope(r, c.head_dim);  // ShapeError is an invalid_argument naming the key
  Require(c.layer_window.empty() || static_cast<int64_t>(c.layer_window.size()) == c.layers,
          "layer_types: one sliding window per layer expected, got " + std::to_string(c.layer_window.size()) +
              " for " + std::to_string(c.layers) + " layers");
  for (int64_t w : c.layer_window) Require(w >= 0, "sliding_window: must be a positive integer (or null)");
}

FloatStorage::FloatStorage(int64_t n) : size(n) {
  // calloc gives lazily zeroed pages for large sizes (no memset pass over hundreds of MB);
  // over-allocate by 64 bytes and align by hand.
  const size_t bytes = static_cast<size_t>(RoundUp(std::max<int64_t>(n, 1))) * sizeof(float) + 64;
  raw_ = std::calloc(bytes, 1);
  if (!raw_) throw std::bad_alloc();
  const uintptr_t a = (reinterpret_cast<uintptr_t>(raw_) + 63) & ~static_cast<uintptr_t>(63);
  data = reinterpret_cast<float*>(a);
}

FloatStorage::~FloatStorage() { std::free(raw_); }

LlamaModel::LlamaModel(const LlamaConfig& cfg) : cfg_(cfg), attn_(std::make_shared<LocalFlashAttention>()) {
  validate_config(cfg_);
  cfg_.rope.theta = cfg_.rope_theta;
  inv_freq_.assign(static_cast<size_t>(cfg_.head_dim / 2), 0.0);
  // Every type but dynamic has one table; dynamic's follows each forward's sequence length.
  rope_inv_freq(inv_freq_.data(), cfg_.rope, cfg_.head_dim, 0);
  rope_scale_ = cfg_.rope.attention_factor;
  build_views();
  params_ = std::make_shared<FloatStorage>(flat_size_);
  grads_ = std::make_shared<FloatStorage>(flat_size_);
}

void LlamaModel::build_views() {
  const int64_t D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  int64_t off = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool normal, float value) {
    ParamView v;
    v.name = name;
    v.offset = off;
    v.shape = std::move(shape);
    v.numel = 1;
    for (int64_t d : v.shape) v.numel *= d;
    v.init_normal = normal;
    v.init_value = value;
    off += RoundUp(v.numel);
    views_.push_back(std::move(v));
  };
  add("model.embed_tokens.weight", {cfg_.vocab, D}, true, 0);
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {D}, false, 1);
    add(p + "self_attn.q_proj.weight", {QD, D}, true, 0);
    if (cfg_.qkv_bias) add(p + "self_attn.q_proj.bias", {QD}, false, 0);
    add(p + "self_attn.k_proj.weight", {KD, D}, true, 0);
    if (cfg_.qkv_bias) add(p + "self_attn.k_proj.bias", {KD}, false, 0);
    add(p + "self_attn.v_proj.weight", {KD, D}, true, 0);
    if (cfg_.qkv_bias) add(p + "self_attn.v_proj.bias", {KD}, false, 0);
    add(p + "self_attn.o_proj.weight", {D, QD}, true, 0);
    if (cfg_.o_bias) add(p + "self_attn.o_proj.bias", {D}, false, 0);
    if (cfg_.qk_norm) {
      add(p + "self_attn.q_norm.weight", {cfg_.head_dim}, false, 1);
      add(p + "self_attn.k_norm.weight", {cfg_.head_dim}, false, 1);
    }
    add(p + "post_attention_layernorm.weight", {D}, false, 1);
    add(p + "mlp.gate_proj.weight", {I, D}, true, 0);
    add(p + "mlp.up_proj.weight", {I, D}, true, 0);
    add(p + "mlp.down_proj.weight", {D, I}, true, 0);
  }
  add("model.norm.weight", {D}, false, 1);
  if (!cfg_.tie_embeddings) add("lm_head.weight", {cfg_.vocab, D}, true, 0);
  flat_size_ = off;
}

int64_t LlamaModel::num_params() const {
  int64_t n = 0;
  for (const auto& v : views_) n += v.numel;
  return n;
}

size_t LlamaModel::layer_first(int64_t l) const {
  // Views of layer l start after the embedding; the per-layer count depends on the bias and norm flags.
  const int64_t per_layer = 9 + (cfg_.qkv_bias ? 3 : 0) + (cfg_.o_bias ? 1 : 0) + (cfg_.qk_norm ? 2 : 0);
  return 1 + static_cast<size_t>(l * per_layer);
}

LlamaModel::LayerParams LlamaModel::layer_params(const std::shared_ptr<FloatStorage>& s, int64_t l) const {
  size_t i = layer_first(l);
  float* base = s->data;
  auto next = [&]() { return base + views_[i++].offset; };
  LayerParams p{};
  p.ln1 = next();
  p.wq = next();
  p.bq = cfg_.qkv_bias ? next() : nullptr;
  p.wk = next();
  p.bk = cfg_.qkv_bias ? next() : nullptr;
  p.wv = next();
  p.bv = cfg_.qkv_bias ? next() : nullptr;
  p.wo = next();
  p.bo = cfg_.o_bias ? next() : nullptr;
  p.qn = cfg_.qk_norm ? next() : nullptr;
  p.kn = cfg_.qk_norm ? next() : nullptr;
  p.ln2 = next();
  p.wg = next();
  p.wu = next();
  p.wd = next();
  return p;
}

void LlamaModel::init(uint64_t seed) {
  w16_stale_ = true;
  for (size_t i = 0; i < views_.size(); ++i) {
    const ParamView& v = views_[i];
    float* p = params_->data + v.offset;
    if (v.init_normal) {
      zero(p, v.numel);
      add_noise(p, v.numel, cfg_.init_range, seed, 0, static_cast<uint64_t>(i));
    } else {
      for (int64_t j = 0; j < v.numel; ++j) p[j] = v.init_value;
    }
  }
  if (shards_) take_param_part();
}

// With adapters the base gradients are never written (zeroed once at attach): only the
// adapter buffer needs clearing.
void LlamaModel::zero_grad() {
  if (lora_)
    ParallelZero(lora_->grads->data, lora_->flat_size);
  else if (shards_)
    zero_param_shard_grads();
  else
    ParallelZero(grads_->data, flat_size_);
}

void LlamaModel::set_attention_backend(std::shared_ptr<AttentionBackend> b) {
  attn_ = b ? std::move(b) : std::make_shared<LocalFlashAttention>();
  buf_n_ = -1;  // the lse size may differ
}

// The fp32 backward scratch both precisions use, from the arena being laid out.
// rows_i: rows of the [rows, I] scratch (0 under the tiled MLP, which has its own).
// attn: where the attention-gradient scratch (dq, dq2, dk, dv, dk2) goes; nullptr: from c.
void LlamaModel::take_scratch(flat::Cursor& c, int64_t n, int64_t rows_i, float* attn) {
  const int64_t D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  scratch_act_ = rows_i ? c.take(rows_i * I) : nullptr;
  scratch_dg_ = rows_i ? c.take(rows_i * I) : nullptr;
  scratch_du_ = rows_i ? c.take(rows_i * I) : nullptr;
  scratch_dD_ = c.take(n * D);
  flat::Cursor own(attn);
  flat::Cursor& a = attn ? own : c;
  scratch_dq_ = a.take(n * QD);
  scratch_dq2_ = a.take(n * QD);
  scratch_dk_ = a.take(n * KD);
  scratch_dv_ = a.take(n * KD);
  scratch_dk2_ = cfg_.qk_norm ? a.take(n * KD) : nullptr;
}

int64_t LlamaModel::mlp_tile_for(int64_t n) const {
  if (mlp_tile_request_ == 0 || bf16_) return 0;
  if (lora_)
    for (int m : {kLoraGate, kLoraUp, kLoraDown})
      if (lora_->a_view[static_cast<size_t>(m)] >= 0) return 0;  // adapters see whole [n, I] blocks
  return mlp_tile_request_ > 0 ? std::min(mlp_tile_request_, n) : mlp_tile_rows(n, cfg_.hidden);
}

void LlamaModel::ensure_buffers(int64_t n) {
  const int64_t tile = mlp_tile_for(n);
  // stage 3 runs the tiled MLP in slices, the widest of which may pass I by the padding
  const int64_t tile_cols = tile && shards_ ? std::max(cfg_.intermediate, mlp_plan_.width) : cfg_.intermediate;
  if (buf_n_ == n && buf_ckpt_ == checkpointing_ && buf_bf16_ == bf16_ && mlp_tile_ == tile && mlp_tile_cols_ == tile_cols && arena_) return;
  mlp_tile_ = 0;
  mlp_tile_cols_ = tile_cols;
  scratch_mlp_ = nullptr;
  if (bf16_) return ensure_buffers_bf16(n);
  const int64_t D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  AttnCall call{n, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, nullptr, 0};
  const int64_t lse = attn_->lse_size(call);
  // Floats of one full LayerActs set (the tiled MLP saves no gate / up). Under checkpointing the
  // recomputed set has no x: the stored layer input is read in place.
  const int64_t qk = cfg_.qk_norm ? RoundUp(n * QD) + RoundUp(n * KD) + RoundUp(n * cfg_.heads) + RoundUp(n * cfg_.kv_heads) : 0;
  const int64_t full = RoundUp(n * D) * (checkpointing_ ? 3 : 4) + RoundUp(n) * 2 + RoundUp(n * QD) * 2 +
                       RoundUp(n * KD) * 2 + RoundUp(lse) + (tile ? 0 : RoundUp(n * I) * 2) + qk;
  const int64_t per_layer = checkpointing_ ? RoundUp(n * D) : full;
  // xfinal and hn live from the last layer's forward to the final norm's backward; the attention
  // gradients (dq, dq2, dk, dv, dk2) only inside a layer's backward, after it: one region holds both.
  const int64_t attn_grads = RoundUp(n * QD) * 2 + RoundUp(n * KD) * (cfg_.qk_norm ? 3 : 2);
  const int64_t shared = std::max(RoundUp(n * D) * 2, attn_grads);
  int64_t total = per_layer * cfg_.layers + (checkpointing_ ? full : 0);
  total += shared + RoundUp(n * D) + RoundUp(n) * 2;  // xfinal + hn | attention gradients, dres, rstdf, lse_ce
  total += (tile ? RoundUp(mlp_tile_scratch(tile, tile_cols)) : RoundUp(n * I) * 3) + RoundUp(n * D);  // scratch
  arena_.reset();
  arena_ = std::make_unique<FloatStorage>(total);
  flat::Cursor c(arena_->data);
  layer_base_.assign(static_cast<size_t>(cfg_.layers), nullptr);
  for (int64_t l = 0; l < cfg_.layers; ++l) layer_base_[l] = c.take(per_layer);
  recompute_base_ = checkpointing_ ? c.take(full) : nullptr;
  float* shared_base = c.take(shared);
  xfinal_ = shared_base;
  hn_ = shared_base + RoundUp(n * D);
  dres_ = c.take(n * D);
  rstdf_ = c.take(n);
  lse_ce_ = c.take(n);
  take_scratch(c, n, tile ? 0 : n, shared_base);
  if (tile) scratch_mlp_ = c.take(mlp_tile_scratch(tile, tile_cols));
  buf_n_ = n;
  buf_ckpt_ = checkpointing_;
  buf_bf16_ = false;
  mlp_tile_ = tile;
}

LlamaModel::LayerActs LlamaModel::acts_for(int64_t l) {
  const int64_t n = buf_n_, D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  AttnCall call{n, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, nullptr, 0};
  flat::Cursor c(buf_ckpt_ ? recompute_base_ : layer_base_[l]);
  LayerActs a{};
  a.x = buf_ckpt_ ? layer_base_[l] : c.take(n * D);  // checkpointing: only the layer input is stored
  a.xn1 = c.take(n * D);
  a.h = c.take(n * D);
  a.xn2 = c.take(n * D);
  a.rstd1 = c.take(n);
  a.rstd2 = c.take(n);
  a.q = c.take(n * QD);
  a.att = c.take(n * QD);
  a.k = c.take(n * KD);
  a.v = c.take(n * KD);
  a.lse = c.take(attn_->lse_size(call));
  if (!mlp_tile_) {
    a.gate = c.take(n * I);
    a.up = c.take(n * I);
  }
  if (cfg_.qk_norm) {
    a.qpre = c.take(n * QD);
    a.kpre = c.take(n * KD);
    a.rstdq = c.take(n * cfg_.heads);
    a.rstdk = c.take(n * cfg_.kv_heads);
  }
  return a;
}

// y == nullptr: recomputation for the backward, which needs everything but the layer output.
void LlamaModel::layer_forward(int64_t l, LayerActs& a, float* y) {
  const int64_t n = buf_n_, D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  const LayerParams p = layer_params(params_, l);
  const AttnCall call{n, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, doc_lens_.data(),
                      static_cast<int64_t>(doc_lens_.size()), window_of(l)};
  // With the q/k norm the projections land in qpre / kpre and the norm writes q / k.
  float* qp = cfg_.qk_norm ? a.qpre : a.q;
  float* kp = cfg_.qk_norm ? a.kpre : a.k;

  timed(kProfNorm, [&] { rmsnorm_forward(a.xn1, a.rstd1, a.x, p.ln1, n, D, cfg_.rms_eps); });
  timed(kProfGemm, [&] {
    linear_forward(qp, a.xn1, p.wq, p.bq, n, D, QD);
    linear_forward(kp, a.xn1, p.wk, p.bk, n, D, KD);
    linear_forward(a.v, a.xn1, p.wv, p.bv, n, D, KD);
  });
  // Adapters act on the projections before the q/k norm and RoPE, as PEFT's wrapped Linear modules do.
  if (adapter_on(l, kLoraQ)) adapter_forward(l, kLoraQ, qp, a.xn1, D, QD);
  if (adapter_on(l, kLoraK)) adapter_forward(l, kLoraK, kp, a.xn1, D, KD);
  if (adapter_on(l, kLoraV)) adapter_forward(l, kLoraV, a.v, a.xn1, D, KD);
  if (cfg_.qk_norm)
    timed(kProfNorm, [&] {
      rmsnorm_forward(a.q, a.rstdq, a.qpre, p.qn, n * cfg_.heads, cfg_.head_dim, cfg_.rms_eps);
      rmsnorm_forward(a.k, a.rstdk, a.kpre, p.kn, n * cfg_.kv_heads, cfg_.head_dim, cfg_.rms_eps);
    });
  timed(kProfRope, [&] {
    rope_forward_table(a.q, positions_.data(), n, cfg_.heads, cfg_.head_dim, inv_freq_.data(), rope_scale_);
    rope_forward_table(a.k, positions_.data(), n, cfg_.kv_heads, cfg_.head_dim, inv_freq_.data(), rope_scale_);
  });
  const double comm0 = attn_->comm_seconds();
  timed(kProfAttnFwd, [&] { attn_->forward(a.att, a.lse, a.q, a.k, a.v, call); });
  if (profiling_) profile_[kProfComm] += attn_->comm_seconds() - comm0;
  // h = x + att Wo^T (+ bo): the residual is folded into the product (beta = 1).
  timed(kProfCopy, [&] { ParallelCopy(a.h, a.x, n * D); });
  timed(kProfGemm, [&] {
    matmul(a.h, a.att, p.wo, n, D, QD, false, true, 1.f, 1.f);
    if (p.bo) AddBias(a.h, p.bo, n, D);
  });
  if (adapter_on(l, kLoraO)) adapter_forward(l, kLoraO, a.h, a.att, QD, D);

  timed(kProfNorm, [&] { rmsnorm_forward(a.xn2, a.rstd2, a.h, p.ln2, n, D, cfg_.rms_eps); });
  if (mlp_tile_) {
    // The backward recomputes gate and up per tile from xn2: a recomputation stops here.
    if (!y) return;
    timed(kProfCopy, [&] { ParallelCopy(y, a.h, n * D); });
    if (shards_) {
      // stage 3: the attention run is done with; the MLP is gathered slice by slice
      unit_release(layer_first(l), run_end(l));
      mlp_forward_sliced(l, a.xn2, y);
      return;
    }
    timed(kProfGemm, [&] { mlp_forward_tiled(y, a.xn2, p.wg, p.wu, p.wd, n, D, I, mlp_tile_, scratch_mlp_); });
    return;
  }
  // stage 3: one MLP matrix gathered at a time (no-ops otherwise)
  fwd_switch(l, kPieceAttn, kPieceGate, kPieceUp);
  timed(kProfGemm, [&] { linear_forward(a.gate, a.xn2, p.wg, nullptr, n, D, I); });
  fwd_switch(l, kPieceGate, kPieceUp, kPieceDown);
  timed(kProfGemm, [&] { linear_forward(a.up, a.xn2, p.wu, nullptr, n, D, I); });
  if (adapter_on(l, kLoraGate)) adapter_forward(l, kLoraGate, a.gate, a.xn2, D, I);
  if (adapter_on(l, kLoraUp)) adapter_forward(l, kLoraUp, a.up, a.xn2, D, I);
  if (!y) {
    // a recompute: the backward starts with down, prefetched
    fwd_done(l, kPieceUp);
    return;
  }
  timed(kProfSwiglu, [&] { swiglu_forward(scratch_act_, a.gate, a.up, n * I); });
  timed(kProfCopy, [&] { ParallelCopy(y, a.h, n * D); });
  fwd_switch(l, kPieceUp, kPieceDown, -1);
  timed(kProfGemm, [&] { matmul(y, scratch_act_, p.wd, n, D, I, false, true, 1.f, 1.f); });
  fwd_done(l, kPieceDown);
  if (adapter_on(l, kLoraDown)) adapter_forward(l, kLoraDown, y, scratch_act_, I, D);
}

// On entry dres = dL/dy (layer output); on exit dres = dL/dx (layer input).
void LlamaModel::layer_backward(int64_t l, LayerActs& a, float* dres) {
  const int64_t n = buf_n_, D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  const LayerParams p = layer_params(params_, l);
  // A frozen base (adapters attached) gets no gradients: its weight products are skipped.
  const bool train_base = !lora_;
  const LayerParams g = train_base ? layer_params(grads_, l) : LayerParams{};
  const AttnCall call{n, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, doc_lens_.data(),
                      static_cast<int64_t>(doc_lens_.size()), window_of(l)};

  // MLP: y = h + act Wd^T (+ s Bd Ad drop(act)); the tiled MLP carries no adapter.
  if (mlp_tile_) {
    float* dxn2 = scratch_dD_;
    if (shards_) mlp_backward_sliced(l, a.xn2, dres, dxn2);  // ends with the attention run gathered
    else
      timed(kProfGemm, [&] {
        mlp_backward_tiled(dxn2, g.wg, g.wu, g.wd, dres, a.xn2, p.wg, p.wu, p.wd, n, D, I, mlp_tile_, scratch_mlp_);
      });
    timed(kProfNorm, [&] { rmsnorm_backward(dres, g.ln2, dxn2, a.h, p.ln2, a.rstd2, n, D); });  // dres = dL/dh
  } else {
    float* act = scratch_act_;
    timed(kProfSwiglu, [&] { swiglu_forward(act, a.gate, a.up, n * I); });
    // The adapter's input gradient goes to scratch_dg_ for now: dact overwrites act below.
    const bool down_on = adapter_on(l, kLoraDown);
    if (down_on) {
      timed(kProfCopy, [&] { ParallelZero(scratch_dg_, n * I); });
      adapter_backward(l, kLoraDown, scratch_dg_, dres, act, I, D);
    }
    float* dact = scratch_act_;  // act is dead once dWd is accumulated
    bwd_begin(l, kPieceDown);    // stage 3: one MLP matrix gathered at a time (no-ops otherwise)
    timed(kProfGemm, [&] {
      if (train_base) linear_backward(nullptr, g.wd, nullptr, dres, act, p.wd, n, I, D);  // dWd += dy^T act
      matmul(dact, dres, p.wd, n, I, D, false, false, 1.f, 0.f);                          // dact = dy Wd
    });
    bwd_switch(l, kPieceDown, kPieceGate);
    if (down_on) timed(kProfCopy, [&] { ParallelAdd(dact, scratch_dg_, n * I); });
    timed(kProfCopy, [&] {
      ParallelZero(scratch_dg_, n * I);
      ParallelZero(scratch_du_, n * I);
    });
    timed(kProfSwiglu, [&] { swiglu_backward(scratch_dg_, scratch_du_, dact, a.gate, a.up, n * I); });
    float* dxn2 = scratch_dD_;
    timed(kProfGemm, [&] {
      matmul(dxn2, scratch_dg_, p.wg, n, D, I, false, false, 1.f, 0.f);
      if (train_base) linear_backward(nullptr, g.wg, nullptr, scratch_dg_, a.xn2, p.wg, n, D, I);
    });
    bwd_switch(l, kPieceGate, kPieceUp);
    timed(kProfGemm, [&] {
      matmul(dxn2, scratch_du_, p.wu, n, D, I, false, false, 1.f, 1.f);
      if (train_base) linear_backward(nullptr, g.wu, nullptr, scratch_du_, a.xn2, p.wu, n, D, I);
    });
    bwd_switch(l, kPieceUp, kPieceAttn);
    if (adapter_on(l, kLoraGate)) adapter_backward(l, kLoraGate, dxn2, scratch_dg_, a.xn2, D, I);
    if (adapter_on(l, kLoraUp)) adapter_backward(l, kLoraUp, dxn2, scratch_du_, a.xn2, D, I);
    timed(kProfNorm, [&] { rmsnorm_backward(dres, g.ln2, dxn2, a.h, p.ln2, a.rstd2, n, D); });  // dres = dL/dh
  }

  // Attention: h = x + att Wo^T (+ bo)
  float* datt = scratch_dq2_;
  timed(kProfGemm, [&] {
    matmul(datt, dres, p.wo, n, QD, D, false, false, 1.f, 0.f);
    if (train_base) linear_backward(nullptr, g.wo, g.bo, dres, a.att, p.wo, n, QD, D);
  });
  if (adapter_on(l, kLoraO)) adapter_backward(l, kLoraO, datt, dres, a.att, QD, D);
  timed(kProfCopy, [&] {
    ParallelZero(scratch_dq_, n * QD);
    ParallelZero(scratch_dk_, n * KD);
    ParallelZero(scratch_dv_, n * KD);
  });
  const double comm0 = attn_->comm_seconds();
  timed(kProfAttnBwd, [&] {
    attn_->backward(scratch_dq_, scratch_dk_, scratch_dv_, datt, a.q, a.k, a.v, a.att, a.lse, call);
  });
  if (profiling_) profile_[kProfComm] += attn_->comm_seconds() - comm0;
  timed(kProfRope, [&] {
    rope_backward_table(scratch_dq_, positions_.data(), n, cfg_.heads, cfg_.head_dim, inv_freq_.data(), rope_scale_);
    rope_backward_table(scratch_dk_, positions_.data(), n, cfg_.kv_heads, cfg_.head_dim, inv_freq_.data(), rope_scale_);
  });
  // dq, dk: gradients of the projections' outputs (before the q/k norm when there is one).
  float* dq = scratch_dq_;
  float* dk = scratch_dk_;
  if (cfg_.qk_norm) {
    // datt (scratch_dq2_) is dead after the attention backward: it takes dL/dqpre.
    dq = scratch_dq2_;
    dk = scratch_dk2_;
    timed(kProfCopy, [&] {
      ParallelZero(dq, n * QD);
      ParallelZero(dk, n * KD);
    });
    timed(kProfNorm, [&] {
      rmsnorm_backward(dq, g.qn, scratch_dq_, a.qpre, p.qn, a.rstdq, n * cfg_.heads, cfg_.head_dim);
      rmsnorm_backward(dk, g.kn, scratch_dk_, a.kpre, p.kn, a.rstdk, n * cfg_.kv_heads, cfg_.head_dim);
    });
  }
  // A frozen model needs no gradient below layer 0's projections (the embedding gets none):
  // its input-gradient products and norm backward are skipped.
  float* dxn1 = train_base || l > 0 ? scratch_dD_ : nullptr;
  timed(kProfGemm, [&] {
    if (dxn1) {
      matmul(dxn1, dq, p.wq, n, D, QD, false, false, 1.f, 0.f);
      matmul(dxn1, dk, p.wk, n, D, KD, false, false, 1.f, 1.f);
      matmul(dxn1, scratch_dv_, p.wv, n, D, KD, false, false, 1.f, 1.f);
    }
    if (train_base) {
      linear_backward(nullptr, g.wq, g.bq, dq, a.xn1, p.wq, n, D, QD);
      linear_backward(nullptr, g.wk, g.bk, dk, a.xn1, p.wk, n, D, KD);
      linear_backward(nullptr, g.wv, g.bv, scratch_dv_, a.xn1, p.wv, n, D, KD);
    }
  });
  if (adapter_on(l, kLoraQ)) adapter_backward(l, kLoraQ, dxn1, dq, a.xn1, D, QD);
  if (adapter_on(l, kLoraK)) adapter_backward(l, kLoraK, dxn1, dk, a.xn1, D, KD);
  if (adapter_on(l, kLoraV)) adapter_backward(l, kLoraV, dxn1, scratch_dv_, a.xn1, D, KD);
  if (dxn1) timed(kProfNorm, [&] { rmsnorm_backward(dres, g.ln1, dxn1, a.x, p.ln1, a.rstd1, n, D); });  // dres = dL/dx
}

ForwardResult LlamaModel::forward(const int32_t* tokens, const int32_t* labels, const int32_t* positions, int64_t n,
                                  const int32_t* doc_lens, int64_t ndocs, float normalizer, float* token_loss,
                                  int64_t dropout_key, int32_t* token_argmax) {
  has_forward_ = false;
  if (n <= 0) throw ShapeError("forward: the sequence must hold at least one token");
  if (!(normalizer > 0) || !std::isfinite(normalizer)) throw ShapeError("forward: normalizer must be > 0");
  int64_t sum = 0;
  for (int64_t i = 0; i < ndocs; ++i) sum += doc_lens[i] < 0 ? -int64_t(doc_lens[i]) : doc_lens[i];
  const int64_t attended = attn_->attended_tokens(n);
  if (ndocs > 0 && sum != attended)
    throw ShapeError("forward: |doc_lens| sum to " + std::to_string(sum) + ", expected " + std::to_string(attended));
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= cfg_.vocab)
      throw ShapeError("forward: tokens[" + std::to_string(i) + "] = " + std::to_string(tokens[i]) +
                       " is outside [0, " + std::to_string(cfg_.vocab) + ")");
    if (labels[i] >= cfg_.vocab || (labels[i] < 0 && labels[i] != kIgnoreIndex))
      throw ShapeError("forward: labels[" + std::to_string(i) + "] = " + std::to_string(labels[i]) +
                       " is neither -100 nor in [0, " + std::to_string(cfg_.vocab) + ")");
    if (positions[i] < 0) throw ShapeError("forward: positions[" + std::to_string(i) + "] is negative");
  }
  tokens_.assign(tokens, tokens + n);
  labels_.assign(labels, labels + n);
  positions_.assign(positions, positions + n);
  doc_lens_.assign(doc_lens, doc_lens + ndocs);
  normalizer_ = normalizer;
  fwd_adapters_ = lora_ && lora_->enabled;
  dropout_on_ = fwd_adapters_ && dropout_key >= 0 && lora_->cfg.dropout > 0;
  dropout_key_ = dropout_on_ ? static_cast<uint32_t>(dropout_key) : 0;
  ensure_buffers(n);
  if (fwd_adapters_) ensure_lora_buffers(n);
  if (cfg_.rope.type == RopeType::kDynamic) {
    // The length of the WHOLE sequence (largest global position + 1): under sequence parallelism
    // a max over the shards, so every shard rotates with the same frequencies.
    int64_t local = 0;
    for (int64_t i = 0; i < n; ++i) local = std::max<int64_t>(local, int64_t(positions_[i]) + 1);
    const int64_t len = attn_->sequence_max(local);
    if (len != rope_len_) {
      rope_inv_freq(inv_freq_.data(), cfg_.rope, cfg_.head_dim, len);
      rope_len_ = len;
    }
  }

  const int64_t D = cfg_.hidden, V = cfg_.vocab;
  const float* embed = params_->data + views_.front().offset;
  if (bf16_ && !shards_ && w16_stale_.exchange(false)) timed(kProfConvert, [&] { refresh_w16(); });
  const size_t norm_idx = norm_index();
  // stage 3: the final norm is a run of its own, the embedding and LM head go by vocabulary slices
  const size_t head_t = cfg_.tie_embeddings ? 0 : views_.size() - 1;
  // each piece's gather overlaps the compute of the one before (with a gather worker)
  prefetch_forward(0);  // stage 3 only (a no-op otherwise)
  if (shards_) timed(kProfEmbed, [&] { embedding_forward_sliced(layer_base_[0]); });
  else timed(kProfEmbed, [&] { embedding_forward(layer_base_[0], tokens_.data(), embed, n, V, D); });
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    float* y = l + 1 < cfg_.layers ? layer_base_[l + 1] : xfinal_;
    // stage 3: the attention run; the MLP releases it and prefetches what follows the layer
    unit_gather(layer_first(l), run_end(l));
    prefetch_mlp(l);
    if (bf16_) {
      LayerActs16 a = acts16_for(l);
      layer_forward_bf16(l, a, y);
    } else {
      LayerActs a = acts_for(l);
      layer_forward(l, a, y);
    }
  }
  const float* norm_w = params_->data + views_[norm_idx].offset;
  const float* lm = cfg_.tie_embeddings ? embed : params_->data + views_.back().offset;
  unit_gather(norm_idx, norm_idx + 1);
  VocabSlices hs;
  if (shards_) hs = head_slices(head_t, nullptr);
  const VocabSlices* sl = shards_ ? &hs : nullptr;
  ForwardResult res;
  if (bf16_) {
    head_forward_bf16(norm_w, lm, token_loss, token_argmax, res, sl);
  } else {
    timed(kProfNorm, [&] { rmsnorm_forward(hn_, rstdf_, xfinal_, norm_w, n, D, cfg_.rms_eps); });
    CeResult ce;
    timed(kProfHeadFwd, [&] {
      ce = lm_head_ce_forward(token_loss, lse_ce_, hn_, lm, labels_.data(), n, D, V, normalizer, kCeChunk, token_argmax, sl);
    });
    res = {ce.loss, ce.valid};
  }
  unit_release(norm_idx, norm_idx + 1);
  has_forward_ = true;
  return res;
}

void LlamaModel::final_hidden(int64_t row, float* out) const {
  if (!has_forward_) throw std::logic_error("finalHidden: no forward since the last backward");
  if (row < 0 || row >= buf_n_) throw ShapeError("finalHidden: row " + std::to_string(row) + " is outside the last forward's " + std::to_string(buf_n_) + " tokens");
  const int64_t D = cfg_.hidden;
  if (bf16_) {
    // the bf16 head reads the bf16 norm output: widen exactly what it saw
    for (int64_t d = 0; d < D; ++d) {
      const uint32_t bits = uint32_t(hn16_[row * D + d]) << 16;
      std::memcpy(out + d, &bits, sizeof bits);
    }
    return;
  }
  std::copy(hn_ + row * D, hn_ + (row + 1) * D, out);
}

void LlamaModel::backward(const float* token_weight, const float* d_hidden) {
  if (!has_forward_) throw std::logic_error("backward: no forward since the last backward");
  has_forward_ = false;
  const int64_t n = buf_n_, D = cfg_.hidden, V = cfg_.vocab;
  const size_t norm_idx = norm_index();
  const float* embed = params_->data + views_.front().offset;
  const float* norm_w = params_->data + views_[norm_idx].offset;
  const float* lm = cfg_.tie_embeddings ? embed : params_->data + views_.back().offset;
  const bool train_base = !lora_;
  float* g_embed = train_base ? grads_->data + views_.front().offset : nullptr;
  float* g_norm = train_base ? grads_->data + views_[norm_idx].offset : nullptr;
  float* g_lm = !train_base ? nullptr : cfg_.tie_embeddings ? g_embed : grads_->data + views_.back().offset;

  const size_t head_t = cfg_.tie_embeddings ? 0 : views_.size() - 1;
  unit_gather(norm_idx, norm_idx + 1);
  grads_begin(norm_idx, norm_idx + 1);
  VocabSlices hs;
  if (shards_) hs = head_slices(head_t, g_lm);
  const VocabSlices* sl = shards_ ? &hs : nullptr;
  float* dhn = scratch_dD_;
  timed(kProfCopy, [&] { ParallelZero(dhn, n * D); });
  if (bf16_) {
    head_backward_bf16(dhn, g_lm, lm, token_weight, sl);
  } else {
    timed(kProfHeadBwd, [&] {
      lm_head_ce_backward(dhn, g_lm, hn_, lm, labels_.data(), lse_ce_, token_weight, n, D, V, normalizer_, kCeChunk, sl);
    });
  }
  if (d_hidden) {
    for (int64_t i = 0; i < n * D; ++i) dhn[i] += d_hidden[i];
  }
  timed(kProfCopy, [&] { ParallelZero(dres_, n * D); });
  timed(kProfNorm, [&] { rmsnorm_backward(dres_, g_norm, dhn, xfinal_, norm_w, rstdf_, n, D); });
  // weights released first, then the next run's gather overlaps this run's reduce-scatter
  unit_release(norm_idx, norm_idx + 1);
  prefetch_backward(cfg_.layers - 1);
  unit_reduce(norm_idx, norm_idx + 1);
  for (int64_t l = cfg_.layers - 1; l >= 0; --l) {
    // stage 3: the layer's backward starts with its MLP, which gathers the attention run again
    // last; a recompute runs first on the attention run (and, untiled, the MLP's gate and up)
    if (buf_ckpt_) {
      unit_gather(layer_first(l), run_end(l));
      prefetch_mlp(l);
    }
    if (bf16_) {
      LayerActs16 a = acts16_for(l);
      if (buf_ckpt_) {
        recomputing_ = true;
        layer_forward_bf16(l, a, nullptr);
        recomputing_ = false;
      }
      layer_backward_bf16(l, a, dres_);
    } else {
      LayerActs a = acts_for(l);
      if (buf_ckpt_) {
        recomputing_ = true;
        layer_forward(l, a, nullptr);
        recomputing_ = false;
        // the tiled recompute stops before the MLP: the attention run is released here
        if (mlp_sliced()) unit_release(layer_first(l), run_end(l));
      }
      layer_backward(l, a, dres_);
    }
    unit_release(layer_first(l), run_end(l));
    prefetch_backward(l - 1);
    unit_reduce(layer_first(l), run_end(l));
  }
  if (train_base) {
    if (shards_) timed(kProfEmbed, [&] { embedding_backward_sliced(g_embed, dres_); });
    else timed(kProfEmbed, [&] { embedding_backward(g_embed, dres_, tokens_.data(), n, V, D); });
  }
}

const char* profile_name(int cat) {
  static const char* names[kProfCount] = {"gemm",    "attention_forward", "attention_backward", "lm_head_forward",
                                          "lm_head_backward", "rmsnorm", "rope", "swiglu", "copy_zero",
                                          "embedding", "recompute", "convert", "communication"};
  return cat >= 0 && cat < kProfCount ? names[cat] : "?";
}

int64_t LlamaModel::activation_bytes() const {
  return arena_ ? arena_->size * static_cast<int64_t>(sizeof(float)) : 0;
}

}  // namespace ua
