// ZeRO stage 3 of the Llama model (llama.h, param_shards.h): installing the shards, the per-run
// gather / release / reduce-scatter the forward and backward call around each run of tensors, and
// the vocabulary slices of the embedding and the LM head. With LoRA adapters (attached before the
// shards) only the frozen base is sharded: it is gathered as without them and nothing of it is
// reduced. Must never gather or reduce outside the fixed order of forward and backward (every
// rank of the world issues the same collectives), nor leave a run's pages resident after its use.
#include <algorithm>
#include <functional>
#include <stdexcept>

#include "kernels/bf16.h"
#include "kernels/embedding.h"
#include "model/flat_buffer.h"
#include "model/llama.h"
#include "model/param_shards.h"

namespace ua {

void LlamaModel::set_param_shards(std::shared_ptr<ParamShards> s) {
  if (!s) throw std::logic_error("shardParameters: no shards given");
  if (has_forward_) throw std::logic_error("shardParameters: a forward awaits its backward; run backward first");
  if (shards_) throw std::logic_error("shardParameters: the parameters are already sharded");
  shards_ = std::move(s);
  w16_.reset();  // the full bf16 copy: from now on one per gathered run
  take_param_part();
}

void LlamaModel::take_param_part() {
  if (!shards_) throw std::logic_error("takeParameterPart: the parameters are not sharded");
  shards_->take_part(params_->data);
  shards_->release(params_->data, 0, views_.size());
  shards_->release(grads_->data, 0, views_.size());
}

void LlamaModel::gather_all_params() {
  if (!shards_) throw std::logic_error("gatherParameters: the parameters are not sharded");
  // through the worker when there is one: the gathers' communicator is its alone
  shards_->wait_gather(shards_->start_gather(params_->data, 0, views_.size(), nullptr));
}

void LlamaModel::release_all_params() {
  if (!shards_) throw std::logic_error("releaseParameters: the parameters are not sharded");
  shards_->release(params_->data, 0, views_.size());
}

void LlamaModel::zero_param_shard_grads() {
  flat::ParallelZero(shards_->grads()->data, shards_->part_length());
}

void LlamaModel::convert_w16(size_t first, size_t end) {
  uint16_t* dst = w16_->halves();
  for (size_t i = first; i < end; ++i) {
    const ParamView& v = views_[i];
    // as refresh_w16: matrices, the embedding only when it is also the LM head
    if (v.shape.size() != 2 || (i == 0 && !cfg_.tie_embeddings)) continue;
    f32_to_bf16(dst + v.offset, params_->data + v.offset, v.numel);
  }
}

namespace {
int64_t run_bytes(const ParamShards& s, size_t first, size_t end, bool bf16) {
  return (s.flat_hi(end) - s.flat_lo(first)) * int64_t(bf16 ? 6 : 4);
}
}  // namespace

void LlamaModel::unit_prefetch(size_t first, size_t end) {
  if (!shards_ || !shards_->overlaps() || first >= end) return;
  if (bf16_ && !w16_) w16_ = std::make_unique<FloatStorage>((flat_size_ + 1) / 2);
  shards_->note_resident(run_bytes(*shards_, first, end, bf16_));
  std::function<void()> post;
  if (bf16_) post = [this, first, end] { convert_w16(first, end); };
  pending_ = {first, end, shards_->start_gather(params_->data, first, end, std::move(post)), true};
}

void LlamaModel::unit_gather(size_t first, size_t end) {
  if (!shards_) return;
  if (pending_.on) {
    const PendingGather p = pending_;
    pending_.on = false;
    timed(kProfComm, [&] { shards_->wait_gather(p.ticket); });
    if (p.first == first && p.end == end) return;
    // a pass that ended early left another run prefetched: dropped
    unit_release(p.first, p.end);
  }
  if (bf16_ && !w16_) w16_ = std::make_unique<FloatStorage>((flat_size_ + 1) / 2);
  shards_->note_resident(run_bytes(*shards_, first, end, bf16_));
  timed(kProfComm, [&] { shards_->wait_gather(shards_->start_gather(params_->data, first, end, nullptr)); });
  if (bf16_) timed(kProfConvert, [&] { convert_w16(first, end); });
}

void LlamaModel::unit_release(size_t first, size_t end) {
  if (!shards_) return;
  shards_->release(params_->data, first, end);
  if (bf16_ && w16_) shards_->release(w16_->halves(), first, end, 2);
  shards_->note_resident(-run_bytes(*shards_, first, end, bf16_));
}

void LlamaModel::slice_gather(size_t t, int64_t e0, int64_t e1, bool bf16_copy) {
  const int64_t len = std::min(e1, views_[t].numel) - e0;
  if (slice_pending_.on) {
    const PendingSlice p = slice_pending_;
    slice_pending_.on = false;
    shards_->wait_gather(p.ticket);
    if (p.t == t && p.e0 == e0 && p.e1 == e1 && p.bf16 == bf16_copy) return;
    // a pass that ended early left another slice prefetched: dropped
    slice_release(p.t, p.e0, p.e1, p.bf16);
  }
  shards_->note_resident(len * int64_t(bf16_copy ? 6 : 4));
  // (no profile category of its own: the slices run inside the embedding's and the head's)
  shards_->gather_slice(params_->data, t, e0, e1);
  if (bf16_copy) f32_to_bf16(w16_->halves() + views_[t].offset + e0, params_->data + views_[t].offset + e0, len);
}

void LlamaModel::slice_prefetch(size_t t, int64_t e0, int64_t e1, bool bf16_copy) {
  if (!shards_->overlaps() || e0 >= std::min(e1, views_[t].numel)) return;
  const int64_t len = std::min(e1, views_[t].numel) - e0;
  shards_->note_resident(len * int64_t(bf16_copy ? 6 : 4));
  std::function<void()> post;
  if (bf16_copy) post = [this, t, e0, len] { f32_to_bf16(w16_->halves() + views_[t].offset + e0, params_->data + views_[t].offset + e0, len); };
  slice_pending_ = {t, e0, e1, bf16_copy, shards_->start_gather_slice(params_->data, t, e0, e1, std::move(post)), true};
}

void LlamaModel::slice_release(size_t t, int64_t e0, int64_t e1, bool bf16_copy) {
  const int64_t len = std::min(e1, views_[t].numel) - e0;
  shards_->release_slice(params_->data, t, e0, e1);
  if (bf16_copy) shards_->release_slice(w16_->halves(), t, e0, e1, 2);
  shards_->note_resident(-len * int64_t(bf16_copy ? 6 : 4));
}

VocabSlices LlamaModel::head_slices(size_t t, float* g) {
  if (bf16_ && !w16_) w16_ = std::make_unique<FloatStorage>((flat_size_ + 1) / 2);
  const int64_t D = cfg_.hidden;
  VocabSlices s;
  s.rows = kVocabSliceRows;
  s.begin = [this, t, D, g](int64_t v0, int64_t v1) {
    slice_gather(t, v0 * D, v1 * D, bf16_);
    // the next slice's broadcast overlaps this one's blocks
    if (v1 < cfg_.vocab) slice_prefetch(t, v1 * D, std::min(cfg_.vocab, v1 + kVocabSliceRows) * D, bf16_);
    // the slice's gradient is resident from its first block to its reduction
    if (g) shards_->note_resident((std::min(v1 * D, views_[t].numel) - v0 * D) * int64_t(sizeof(float)));
  };
  s.end = [this, t, D, g](int64_t v0, int64_t v1) {
    slice_release(t, v0 * D, v1 * D, bf16_);
    if (!g) return;
    shards_->reduce_slice(grads_->data, t, v0 * D, v1 * D);
    shards_->note_resident(-(std::min(v1 * D, views_[t].numel) - v0 * D) * int64_t(sizeof(float)));
  };
  return s;
}

void LlamaModel::embedding_forward_sliced(float* y) {
  const int64_t n = buf_n_, D = cfg_.hidden, V = cfg_.vocab;
  const float* table = params_->data + views_.front().offset;
  for (int64_t v0 = 0; v0 < V; v0 += kVocabSliceRows) {
    const int64_t v1 = std::min(V, v0 + kVocabSliceRows);
    slice_gather(0, v0 * D, v1 * D, false);
    if (v1 < V) slice_prefetch(0, v1 * D, std::min(V, v1 + kVocabSliceRows) * D, false);
    embedding_forward_rows(y, tokens_.data(), table, n, V, D, v0, v1);
    slice_release(0, v0 * D, v1 * D, false);
  }
}

void LlamaModel::embedding_backward_sliced(float* g_embed, const float* dres) {
  const int64_t n = buf_n_, D = cfg_.hidden, V = cfg_.vocab;
  for (int64_t v0 = 0; v0 < V; v0 += kVocabSliceRows) {
    const int64_t v1 = std::min(V, v0 + kVocabSliceRows);
    const int64_t bytes = (v1 - v0) * D * int64_t(sizeof(float));
    shards_->note_resident(bytes);
    embedding_backward_rows(g_embed, dres, tokens_.data(), n, V, D, v0, v1);
    shards_->reduce_slice(grads_->data, 0, v0 * D, v1 * D);
    shards_->note_resident(-bytes);
  }
}

void LlamaModel::unit_reduce(size_t first, size_t end) {
  // with adapters the base is frozen: no base gradient is written, none reduced (the adapters'
  // gradients stay whole, reduced by the optimizer as under stage 2)
  if (!shards_ || lora_) return;
  const int64_t bytes = (shards_->flat_hi(end) - shards_->flat_lo(first)) * int64_t(sizeof(float));
  // the run's gradient was resident since its backward began
  shards_->note_resident(bytes);
  timed(kProfComm, [&] { shards_->reduce_scatter(grads_->data, first, end); });
  shards_->note_resident(-bytes);
}

}  // namespace ua
