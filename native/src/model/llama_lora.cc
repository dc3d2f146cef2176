// The LoRA part of LlamaModel (declared in llama.h): adapter layout with PEFT names, attach and
// initialization, and the per-(layer, module) adapter forward / backward that layer_forward and
// layer_backward call (math in lora.h). Products run on the calling worker thread through sgemm.
// Must never write the base model's gradient buffer except to clear it once at attach.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "kernels/matmul.h"
#include "model/flat_buffer.h"
#include "model/llama.h"
#include "model/param_shards.h"

namespace ua {

namespace {

using flat::ParallelZero;
using flat::RoundUp;

bool AnyNonzero(const float* x, int64_t count) {
  const int64_t block = 1 << 16;
  const int64_t nb = (count + block - 1) / block;
  int found = 0;
#pragma omp parallel for schedule(static) num_threads(nb > 1 ? num_threads() : 1) reduction(| : found)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t lo = b * block, hi = std::min(count, lo + block);
    for (int64_t i = lo; i < hi; ++i) found |= x[i] != 0.f;
  }
  return found != 0;
}

}  // namespace

void LlamaModel::attach_lora(const LoraConfig& c) {
  if (lora_) throw std::invalid_argument("attach_lora: adapters are already attached");
  if (shards_) throw std::invalid_argument("attach_lora: the base parameters are sharded (ZeRO stage 3); LoRA needs them whole");
  validate_lora_config(c);
  const int64_t D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim,
                KD = cfg_.kv_heads * cfg_.head_dim;
  const int64_t dims[kLoraModules][2] = {{D, QD}, {D, KD}, {D, KD}, {QD, D}, {D, I}, {D, I}, {I, D}};  // {in, out}
  auto lo = std::make_unique<Lora>();
  lo->cfg = c;
  lo->a_view.assign(static_cast<size_t>(cfg_.layers * kLoraModules), -1);
  int64_t off = 0;
  auto add = [&](const std::string& name, int64_t rows, int64_t cols) {
    ParamView v;
    v.name = name;
    v.offset = off;
    v.shape = {rows, cols};
    v.numel = rows * cols;
    off += RoundUp(v.numel);
    lo->views.push_back(std::move(v));
  };
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    for (int m = 0; m < kLoraModules; ++m) {
      if (!(c.targets & (1u << m))) continue;
      const std::string p = "base_model.model.model.layers." + std::to_string(l) + "." + lora_module_parent(m) + "." +
                            lora_module_name(m) + ".";
      lo->a_view[static_cast<size_t>(l * kLoraModules + m)] = static_cast<int64_t>(lo->views.size());
      add(p + "lora_A.weight", c.rank, dims[m][0]);
      add(p + "lora_B.weight", dims[m][1], c.rank);
    }
  }
  lo->flat_size = off;
  lo->params = std::make_shared<FloatStorage>(off);
  lo->grads = std::make_shared<FloatStorage>(off);
  // Reading never-written calloc pages maps the shared zero page; writing would commit memory the
  // size of the model for gradients that are never used again. So zero only when needed.
  if (AnyNonzero(grads_->data, flat_size_)) ParallelZero(grads_->data, flat_size_);
  lora_ = std::move(lo);
  lora_buf_n_ = -1;
}

void LlamaModel::init_lora(uint64_t seed) {
  if (!lora_) throw std::logic_error("init_lora: no adapters attached");
  const auto& vs = lora_->views;
  for (size_t i = 0; i + 1 < vs.size(); i += 2) {
    lora_init_a(lora_->params->data + vs[i].offset, vs[i].shape[0], vs[i].shape[1], seed, i);
    ParallelZero(lora_->params->data + vs[i + 1].offset, vs[i + 1].numel);
  }
}

namespace {
const LoraConfig kNoLora{};
const std::vector<ParamView> kNoViews;
}  // namespace

const LoraConfig& LlamaModel::lora_config() const { return lora_ ? lora_->cfg : kNoLora; }
const std::vector<ParamView>& LlamaModel::lora_views() const { return lora_ ? lora_->views : kNoViews; }
std::shared_ptr<FloatStorage> LlamaModel::lora_params() const { return lora_ ? lora_->params : nullptr; }
std::shared_ptr<FloatStorage> LlamaModel::lora_grads() const { return lora_ ? lora_->grads : nullptr; }
int64_t LlamaModel::lora_flat_size() const { return lora_ ? lora_->flat_size : 0; }

int64_t LlamaModel::lora_num_params() const {
  int64_t n = 0;
  for (const auto& v : lora_views()) n += v.numel;
  return n;
}

void LlamaModel::set_adapters_enabled(bool on) {
  if (!lora_) throw std::logic_error("set_adapters_enabled: no adapters attached");
  lora_->enabled = on;
}

void LlamaModel::ensure_lora_buffers(int64_t n) {
  if (lora_buf_n_ == n && lora_arena_) return;
  const int64_t D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim;
  const int64_t r = lora_->cfg.rank, max_in = std::max({D, I, QD});
  const bool drop = lora_->cfg.dropout > 0;
  lora_arena_.reset();
  lora_arena_ = std::make_unique<FloatStorage>(RoundUp(n * r) * 2 + (drop ? RoundUp(n * max_in) : 0) +
                                               (bf16_ ? RoundUp(n * max_in) : 0));
  lora_u_ = lora_arena_->data;
  lora_du_ = lora_u_ + RoundUp(n * r);
  lora_xd_ = drop ? lora_du_ + RoundUp(n * r) : nullptr;
  // bf16 mode: the adapters compute in fp32 from an fp32 copy of their bf16 input.
  lora_x32_ = bf16_ ? lora_du_ + RoundUp(n * r) + (drop ? RoundUp(n * max_in) : 0) : nullptr;
  lora_buf_n_ = n;
}

void LlamaModel::adapter_forward(int64_t l, int m, float* y, const float* x, int64_t in, int64_t out) {
  const int64_t n = buf_n_;
  const LoraConfig& c = lora_->cfg;
  const size_t ai = static_cast<size_t>(lora_->a_view[static_cast<size_t>(l * kLoraModules + m)]);
  const float* A = lora_->params->data + lora_->views[ai].offset;
  const float* B = lora_->params->data + lora_->views[ai + 1].offset;
  const float* xd = x;
  if (dropout_on_) {
    timed(kProfCopy, [&] {
      lora_dropout_forward(lora_xd_, x, attn_->token_offset(n) * in, n * in, c.dropout, c.seed, dropout_key_,
                           static_cast<uint32_t>(l * 8 + m));
    });
    xd = lora_xd_;
  }
  timed(kProfGemm, [&] { lora_forward(y, lora_u_, xd, A, B, n, in, out, c.rank, c.scale()); });
}

void LlamaModel::adapter_backward(int64_t l, int m, float* dx, const float* dy, const float* x, int64_t in, int64_t out) {
  const int64_t n = buf_n_;
  const LoraConfig& c = lora_->cfg;
  const size_t ai = static_cast<size_t>(lora_->a_view[static_cast<size_t>(l * kLoraModules + m)]);
  const float* A = lora_->params->data + lora_->views[ai].offset;
  const float* B = lora_->params->data + lora_->views[ai + 1].offset;
  float* dA = lora_->grads->data + lora_->views[ai].offset;
  float* dB = lora_->grads->data + lora_->views[ai + 1].offset;
  const uint32_t stream = static_cast<uint32_t>(l * 8 + m);
  const bool drop = dropout_on_;
  const float* xd = x;
  if (drop) {
    timed(kProfCopy, [&] {
      lora_dropout_forward(lora_xd_, x, attn_->token_offset(n) * in, n * in, c.dropout, c.seed, dropout_key_, stream);
    });
    xd = lora_xd_;
  }
  // u is recomputed (one [n, in] x [in, r] product) rather than stored per layer and module.
  timed(kProfGemm, [&] {
    matmul(lora_u_, xd, A, n, c.rank, in, false, true, 1.f, 0.f);
    // With dropout the dropped-input buffer is dead once dA is accumulated: it takes du A.
    lora_backward(!dx ? nullptr : drop ? lora_xd_ : dx, !drop, dA, dB, lora_du_, dy, lora_u_, xd, A, B, n, in, out, c.rank, c.scale());
  });
  if (drop && dx)
    timed(kProfCopy, [&] {
      lora_dropout_backward(dx, lora_xd_, attn_->token_offset(n) * in, n * in, c.dropout, c.seed, dropout_key_, stream);
    });
}

}  // namespace ua
