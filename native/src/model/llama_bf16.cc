// The bf16 part of LlamaModel (declared in llama.h; REFERENCE §6): the bf16 weight copy, the
// activation arena of bf16 mode, and the layer and LM-head passes with bf16 products.
// What is bf16: the weight copy, the inputs of every product (normed activations, q/k/v, the
// attention output, the SwiGLU activation, and the gradients that enter products), and the saved
// activations that only feed products. What stays fp32: the master weights and every gradient
// buffer, the residual stream (x, h, y), RMSNorm statistics, rope, the q/k norm, softmax and
// loss, biases, the products' accumulators and outputs, and the LoRA adapters (which see fp32
// copies of their bf16 inputs). Rounding is round-to-nearest-even everywhere (bf16.h).
// Same call structure as llama.cc's fp32 passes (same products, same order), so the two modes
// differ only by the roundings above. Must never allocate per call or issue a product inside an
// OpenMP region.
#include <algorithm>
#include <cstring>

#include "kernels/bf16.h"
#include "kernels/linear_bf16.h"
#include "kernels/lm_head_ce.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "model/flat_buffer.h"
#include "model/llama.h"

namespace ua {

namespace {

using flat::ParallelAdd;
using flat::ParallelCopy;
using flat::ParallelZero;
using flat::HalfFloats;
using flat::RoundUp;

}  // namespace

void LlamaModel::set_bf16(bool on) {
  if (on == bf16_) return;
  bf16_ = on;
  buf_n_ = -1;
  lora_buf_n_ = -1;
  has_forward_ = false;
  w16_stale_ = true;
  if (!on) w16_.reset();
}

void LlamaModel::refresh_w16() {
  if (!w16_) w16_ = std::make_unique<FloatStorage>((flat_size_ + 1) / 2);
  uint16_t* dst = w16_->halves();
  for (size_t i = 0; i < views_.size(); ++i) {
    const ParamView& v = views_[i];
    // Matrices take part in products; the embedding only when it is also the LM head (a lookup
    // reads the fp32 masters). Norm weights and biases are used in fp32.
    if (v.shape.size() != 2 || (i == 0 && !cfg_.tie_embeddings)) continue;
    f32_to_bf16(dst + v.offset, params_->data + v.offset, v.numel);
  }
}

LlamaModel::LayerW16 LlamaModel::layer_w16(const LayerParams& p) const {
  return {w16_of(p.wq), w16_of(p.wk), w16_of(p.wv), w16_of(p.wo), w16_of(p.wg), w16_of(p.wu), w16_of(p.wd)};
}

void LlamaModel::ensure_buffers_bf16(int64_t n) {
  const int64_t D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  AttnCall call{n, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, nullptr, 0};
  const int64_t lse = attn_->lse_size(call);
  const int64_t qk = cfg_.qk_norm ? RoundUp(n * QD) + RoundUp(n * KD) + RoundUp(n * cfg_.heads) + RoundUp(n * cfg_.kv_heads) : 0;
  // One full LayerActs16 set: x, h, rstd1, rstd2, lse in fp32; xn1, xn2, q, att, k, v, gate, up in bf16.
  const int64_t full = RoundUp(n * D) * 2 + RoundUp(n) * 2 + RoundUp(lse) + HalfFloats(n * D) * 2 +
                       HalfFloats(n * QD) * 2 + HalfFloats(n * KD) * 2 + HalfFloats(n * I) * 2 + qk;
  const int64_t per_layer = checkpointing_ ? RoundUp(n * D) : full;
  int64_t total = per_layer * cfg_.layers + (checkpointing_ ? full : 0);
  total += RoundUp(n * D) * 2 + RoundUp(n) * 2 + HalfFloats(n * D);  // xfinal, dres, rstdf, lse_ce, hn16
  total += RoundUp(n * I) * 3 + RoundUp(n * D) + RoundUp(n * QD) * 2 + RoundUp(n * KD) * (cfg_.qk_norm ? 3 : 2);  // fp32 scratch
  total += HalfFloats(n * I) * 2 + HalfFloats(n * D) + HalfFloats(n * QD) + HalfFloats(n * KD) * 2;  // bf16 scratch
  arena_.reset();
  arena_ = std::make_unique<FloatStorage>(total);
  flat::Cursor c(arena_->data);
  layer_base_.assign(static_cast<size_t>(cfg_.layers), nullptr);
  for (int64_t l = 0; l < cfg_.layers; ++l) layer_base_[l] = c.take(per_layer);
  recompute_base_ = checkpointing_ ? c.take(full) : nullptr;
  xfinal_ = c.take(n * D);
  dres_ = c.take(n * D);
  rstdf_ = c.take(n);
  lse_ce_ = c.take(n);
  hn_ = nullptr;
  hn16_ = c.take16(n * D);
  take_scratch(c, n, n);
  s16_i1_ = c.take16(n * I);
  s16_i2_ = c.take16(n * I);
  s16_d_ = c.take16(n * D);
  s16_q_ = c.take16(n * QD);
  s16_k_ = c.take16(n * KD);
  s16_v_ = c.take16(n * KD);
  buf_n_ = n;
  buf_ckpt_ = checkpointing_;
  buf_bf16_ = true;
}

LlamaModel::LayerActs16 LlamaModel::acts16_for(int64_t l) {
  const int64_t n = buf_n_, D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  AttnCall call{n, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, nullptr, 0};
  flat::Cursor c(buf_ckpt_ ? recompute_base_ : layer_base_[l]);
  LayerActs16 a{};
  a.x = c.take(n * D);
  a.h = c.take(n * D);
  a.rstd1 = c.take(n);
  a.rstd2 = c.take(n);
  a.lse = c.take(attn_->lse_size(call));
  a.xn1 = c.take16(n * D);
  a.xn2 = c.take16(n * D);
  a.q = c.take16(n * QD);
  a.att = c.take16(n * QD);
  a.k = c.take16(n * KD);
  a.v = c.take16(n * KD);
  a.gate = c.take16(n * I);
  a.up = c.take16(n * I);
  if (cfg_.qk_norm) {
    a.qpre = c.take(n * QD);
    a.kpre = c.take(n * KD);
    a.rstdq = c.take(n * cfg_.heads);
    a.rstdk = c.take(n * cfg_.kv_heads);
  }
  if (buf_ckpt_) a.x = layer_base_[l];  // only the layer input is stored
  return a;
}

const float* LlamaModel::adapter_input(const uint16_t* x16, int64_t in) {
  timed(kProfConvert, [&] { bf16_to_f32(lora_x32_, x16, buf_n_ * in); });
  return lora_x32_;
}

// y == nullptr: recomputation for the backward, which needs everything but the layer output.
void LlamaModel::layer_forward_bf16(int64_t l, LayerActs16& a, float* y) {
  const int64_t n = buf_n_, D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  const LayerParams p = layer_params(params_, l);
  const LayerW16 w = layer_w16(p);
  const AttnCall call{n, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, doc_lens_.data(),
                      static_cast<int64_t>(doc_lens_.size()), window_of(l)};
  // fp32 outputs of the projections (before the q/k norm when there is one); q, k end in scratch_dq_/dk_.
  float* qp = cfg_.qk_norm ? a.qpre : scratch_dq_;
  float* kp = cfg_.qk_norm ? a.kpre : scratch_dk_;
  float* vp = scratch_dv_;

  timed(kProfNorm, [&] { rmsnorm_forward_bf16(a.xn1, a.rstd1, a.x, p.ln1, n, D, cfg_.rms_eps); });
  timed(kProfGemm, [&] {
    linear_forward_bf16(qp, a.xn1, w.wq, p.bq, n, D, QD);
    linear_forward_bf16(kp, a.xn1, w.wk, p.bk, n, D, KD);
    linear_forward_bf16(vp, a.xn1, w.wv, p.bv, n, D, KD);
  });
  if (adapter_on(l, kLoraQ) || adapter_on(l, kLoraK) || adapter_on(l, kLoraV)) {
    const float* x32 = adapter_input(a.xn1, D);
    if (adapter_on(l, kLoraQ)) adapter_forward(l, kLoraQ, qp, x32, D, QD);
    if (adapter_on(l, kLoraK)) adapter_forward(l, kLoraK, kp, x32, D, KD);
    if (adapter_on(l, kLoraV)) adapter_forward(l, kLoraV, vp, x32, D, KD);
  }
  if (cfg_.qk_norm)
    timed(kProfNorm, [&] {
      rmsnorm_forward(scratch_dq_, a.rstdq, a.qpre, p.qn, n * cfg_.heads, cfg_.head_dim, cfg_.rms_eps);
      rmsnorm_forward(scratch_dk_, a.rstdk, a.kpre, p.kn, n * cfg_.kv_heads, cfg_.head_dim, cfg_.rms_eps);
    });
  timed(kProfRope, [&] {
    rope_forward_table(scratch_dq_, positions_.data(), n, cfg_.heads, cfg_.head_dim, inv_freq_.data(), rope_scale_);
    rope_forward_table(scratch_dk_, positions_.data(), n, cfg_.kv_heads, cfg_.head_dim, inv_freq_.data(), rope_scale_);
  });
  timed(kProfConvert, [&] {
    f32_to_bf16(a.q, scratch_dq_, n * QD);
    f32_to_bf16(a.k, scratch_dk_, n * KD);
    f32_to_bf16(a.v, vp, n * KD);
  });
  const double comm0 = attn_->comm_seconds();
  timed(kProfAttnFwd, [&] { attn_->forward_bf16(a.att, a.lse, a.q, a.k, a.v, call); });
  if (profiling_) profile_[kProfComm] += attn_->comm_seconds() - comm0;
  // h = x + att Wo^T (+ bo): the residual is folded into the product (beta = 1).
  timed(kProfCopy, [&] { ParallelCopy(a.h, a.x, n * D); });
  timed(kProfGemm, [&] { linear_forward_bf16(a.h, a.att, w.wo, p.bo, n, QD, D, 1.f); });
  if (adapter_on(l, kLoraO)) adapter_forward(l, kLoraO, a.h, adapter_input(a.att, QD), QD, D);

  timed(kProfNorm, [&] { rmsnorm_forward_bf16(a.xn2, a.rstd2, a.h, p.ln2, n, D, cfg_.rms_eps); });
  // stage 3: one MLP matrix gathered at a time (no-ops otherwise)
  fwd_switch(l, kPieceAttn, kPieceGate, kPieceUp);
  timed(kProfGemm, [&] { linear_forward_bf16(scratch_dg_, a.xn2, w.wg, nullptr, n, D, I); });
  fwd_switch(l, kPieceGate, kPieceUp, kPieceDown);
  timed(kProfGemm, [&] { linear_forward_bf16(scratch_du_, a.xn2, w.wu, nullptr, n, D, I); });
  if (adapter_on(l, kLoraGate) || adapter_on(l, kLoraUp)) {
    const float* x32 = adapter_input(a.xn2, D);
    if (adapter_on(l, kLoraGate)) adapter_forward(l, kLoraGate, scratch_dg_, x32, D, I);
    if (adapter_on(l, kLoraUp)) adapter_forward(l, kLoraUp, scratch_du_, x32, D, I);
  }
  // gate and up are saved rounded; act (s16_i1_) is computed from the rounded values.
  timed(kProfSwiglu, [&] { swiglu_forward_bf16(s16_i1_, a.gate, a.up, scratch_dg_, scratch_du_, n * I); });
  if (!y) {
    // a recompute: the backward starts with down, prefetched
    fwd_done(l, kPieceUp);
    return;
  }
  timed(kProfCopy, [&] { ParallelCopy(y, a.h, n * D); });
  fwd_switch(l, kPieceUp, kPieceDown, -1);
  timed(kProfGemm, [&] { linear_forward_bf16(y, s16_i1_, w.wd, nullptr, n, I, D, 1.f); });
  fwd_done(l, kPieceDown);
  if (adapter_on(l, kLoraDown)) adapter_forward(l, kLoraDown, y, adapter_input(s16_i1_, I), I, D);
}

// On entry dres = dL/dy (layer output); on exit dres = dL/dx (layer input).
void LlamaModel::layer_backward_bf16(int64_t l, LayerActs16& a, float* dres) {
  const int64_t n = buf_n_, D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  const LayerParams p = layer_params(params_, l);
  const LayerW16 w = layer_w16(p);
  const bool train_base = !lora_;
  const LayerParams g = train_base ? layer_params(grads_, l) : LayerParams{};
  const AttnCall call{n, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, doc_lens_.data(),
                      static_cast<int64_t>(doc_lens_.size()), window_of(l)};

  // MLP: y = h + act Wd^T (+ s Bd Ad drop(act))
  uint16_t* act = s16_i1_;
  uint16_t* dy16 = s16_d_;
  timed(kProfSwiglu, [&] { swiglu_act_bf16(act, a.gate, a.up, n * I); });
  timed(kProfConvert, [&] { f32_to_bf16(dy16, dres, n * D); });
  const bool down_on = adapter_on(l, kLoraDown);
  if (down_on) {
    timed(kProfCopy, [&] { ParallelZero(scratch_dg_, n * I); });
    adapter_backward(l, kLoraDown, scratch_dg_, dres, adapter_input(act, I), I, D);
  }
  float* dact = scratch_act_;
  bwd_begin(l, kPieceDown);  // stage 3: one MLP matrix gathered at a time (no-ops otherwise)
  timed(kProfGemm, [&] {
    if (train_base) matmul_bf16(g.wd, dy16, act, D, I, n, true, false, 1.f, 1.f);  // dWd += dy^T act
    matmul_bf16(dact, dy16, w.wd, n, I, D, false, false, 1.f, 0.f);                 // dact = dy Wd
  });
  bwd_switch(l, kPieceDown, kPieceGate);
  if (down_on) timed(kProfCopy, [&] { ParallelAdd(dact, scratch_dg_, n * I); });
  // d_gate, d_up in bf16 for the products (act is dead: its buffer takes d_gate), and in fp32
  // for adapters that need them.
  uint16_t* dg16 = s16_i1_;
  uint16_t* du16 = s16_i2_;
  const bool gate_on = adapter_on(l, kLoraGate), up_on = adapter_on(l, kLoraUp);
  timed(kProfSwiglu, [&] {
    swiglu_backward_bf16(dg16, du16, gate_on ? scratch_dg_ : nullptr, up_on ? scratch_du_ : nullptr, dact, a.gate, a.up,
                         n * I);
  });
  float* dxn2 = scratch_dD_;
  timed(kProfGemm, [&] {
    matmul_bf16(dxn2, dg16, w.wg, n, D, I, false, false, 1.f, 0.f);
    if (train_base) matmul_bf16(g.wg, dg16, a.xn2, I, D, n, true, false, 1.f, 1.f);
  });
  bwd_switch(l, kPieceGate, kPieceUp);
  timed(kProfGemm, [&] {
    matmul_bf16(dxn2, du16, w.wu, n, D, I, false, false, 1.f, 1.f);
    if (train_base) matmul_bf16(g.wu, du16, a.xn2, I, D, n, true, false, 1.f, 1.f);
  });
  bwd_switch(l, kPieceUp, kPieceAttn);
  if (gate_on || up_on) {
    const float* x32 = adapter_input(a.xn2, D);
    if (gate_on) adapter_backward(l, kLoraGate, dxn2, scratch_dg_, x32, D, I);
    if (up_on) adapter_backward(l, kLoraUp, dxn2, scratch_du_, x32, D, I);
  }
  timed(kProfNorm, [&] { rmsnorm_backward(dres, g.ln2, dxn2, a.h, p.ln2, a.rstd2, n, D); });  // dres = dL/dh

  // Attention: h = x + att Wo^T (+ bo)
  float* datt = scratch_dq2_;
  timed(kProfConvert, [&] { f32_to_bf16(dy16, dres, n * D); });
  timed(kProfGemm, [&] {
    matmul_bf16(datt, dy16, w.wo, n, QD, D, false, false, 1.f, 0.f);
    if (train_base) linear_backward_bf16(nullptr, false, g.wo, g.bo, dy16, dres, a.att, w.wo, n, QD, D);
  });
  if (adapter_on(l, kLoraO)) adapter_backward(l, kLoraO, datt, dres, adapter_input(a.att, QD), QD, D);
  uint16_t* datt16 = s16_q_;
  timed(kProfConvert, [&] { f32_to_bf16(datt16, datt, n * QD); });
  timed(kProfCopy, [&] {
    ParallelZero(scratch_dq_, n * QD);
    ParallelZero(scratch_dk_, n * KD);
    ParallelZero(scratch_dv_, n * KD);
  });
  const double comm0 = attn_->comm_seconds();
  timed(kProfAttnBwd, [&] {
    attn_->backward_bf16(scratch_dq_, scratch_dk_, scratch_dv_, datt16, a.q, a.k, a.v, a.att, a.lse, call);
  });
  if (profiling_) profile_[kProfComm] += attn_->comm_seconds() - comm0;
  timed(kProfRope, [&] {
    rope_backward_table(scratch_dq_, positions_.data(), n, cfg_.heads, cfg_.head_dim, inv_freq_.data(), rope_scale_);
    rope_backward_table(scratch_dk_, positions_.data(), n, cfg_.kv_heads, cfg_.head_dim, inv_freq_.data(), rope_scale_);
  });
  float* dq = scratch_dq_;
  float* dk = scratch_dk_;
  if (cfg_.qk_norm) {
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
  uint16_t *dq16 = s16_q_, *dk16 = s16_k_, *dv16 = s16_v_;
  timed(kProfConvert, [&] {
    f32_to_bf16(dq16, dq, n * QD);
    f32_to_bf16(dk16, dk, n * KD);
    f32_to_bf16(dv16, scratch_dv_, n * KD);
  });
  // A frozen model needs no gradient below layer 0's projections.
  float* dxn1 = train_base || l > 0 ? scratch_dD_ : nullptr;
  timed(kProfGemm, [&] {
    if (dxn1) {
      matmul_bf16(dxn1, dq16, w.wq, n, D, QD, false, false, 1.f, 0.f);
      matmul_bf16(dxn1, dk16, w.wk, n, D, KD, false, false, 1.f, 1.f);
      matmul_bf16(dxn1, dv16, w.wv, n, D, KD, false, false, 1.f, 1.f);
    }
    if (train_base) {
      linear_backward_bf16(nullptr, false, g.wq, g.bq, dq16, dq, a.xn1, w.wq, n, D, QD);
      linear_backward_bf16(nullptr, false, g.wk, g.bk, dk16, dk, a.xn1, w.wk, n, D, KD);
      linear_backward_bf16(nullptr, false, g.wv, g.bv, dv16, scratch_dv_, a.xn1, w.wv, n, D, KD);
    }
  });
  if (adapter_on(l, kLoraQ) || adapter_on(l, kLoraK) || adapter_on(l, kLoraV)) {
    const float* x32 = adapter_input(a.xn1, D);
    if (adapter_on(l, kLoraQ)) adapter_backward(l, kLoraQ, dxn1, dq, x32, D, QD);
    if (adapter_on(l, kLoraK)) adapter_backward(l, kLoraK, dxn1, dk, x32, D, KD);
    if (adapter_on(l, kLoraV)) adapter_backward(l, kLoraV, dxn1, scratch_dv_, x32, D, KD);
  }
  if (dxn1) timed(kProfNorm, [&] { rmsnorm_backward(dres, g.ln1, dxn1, a.x, p.ln1, a.rstd1, n, D); });  // dres = dL/dx
}

void LlamaModel::head_forward_bf16(const float* norm_w, const float* lm, float* token_loss, int32_t* token_argmax,
                                   ForwardResult& res, const VocabSlices* slices) {
  const int64_t n = buf_n_, D = cfg_.hidden, V = cfg_.vocab;
  timed(kProfNorm, [&] { rmsnorm_forward_bf16(hn16_, rstdf_, xfinal_, norm_w, n, D, cfg_.rms_eps); });
  CeResult ce;
  timed(kProfHeadFwd, [&] {
    ce = lm_head_ce_forward_bf16(token_loss, lse_ce_, hn16_, w16_of(lm), labels_.data(), n, D, V, normalizer_, kCeChunk,
                                 token_argmax, slices);
  });
  res.loss = ce.loss;
  res.valid = ce.valid;
}

void LlamaModel::head_backward_bf16(float* dhn, float* g_lm, const float* lm, const float* token_weight, const VocabSlices* slices) {
  const int64_t n = buf_n_, D = cfg_.hidden, V = cfg_.vocab;
  timed(kProfHeadBwd, [&] {
    lm_head_ce_backward_bf16(dhn, g_lm, hn16_, w16_of(lm), labels_.data(), lse_ce_, token_weight, n, D, V, normalizer_,
                             kCeChunk, slices);
  });
}

}  // namespace ua
