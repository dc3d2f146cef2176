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
#include "kernels/mlp_tiled.h"
#include "model/flat_buffer.h"
#include "model/llama.h"
#include "model/param_shards.h"

namespace ua {

using flat::RoundUp;

void LlamaModel::set_param_shards(std::shared_ptr<ParamShards> s) {
  if (!s) throw std::logic_error("shardParameters: no shards given");
  if (has_forward_) throw std::logic_error("shardParameters: a forward awaits its backward; run backward first");
  if (shards_) throw std::logic_error("shardParameters: the parameters are already sharded");
  shards_ = std::move(s);
  w16_.reset();  // the full bf16 copy: from now on one per gathered run
  plan_mlp_slices();
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
  pending_ = {first, end, -1, -1, shards_->start_gather(params_->data, first, end, std::move(post)), true};
}

void LlamaModel::drop_pending() {
  const PendingGather p = pending_;
  pending_.on = false;
  shards_->wait_gather(p.ticket);
  if (p.slice >= 0) mlp_release(p.layer, p.slice);
  else unit_release(p.first, p.end);
}

void LlamaModel::unit_gather(size_t first, size_t end) {
  if (!shards_) return;
  if (pending_.on) {
    if (pending_.slice < 0 && pending_.first == first && pending_.end == end) {
      pending_.on = false;
      timed(kProfComm, [&] { shards_->wait_gather(pending_.ticket); });
      return;
    }
    // a pass that ended early left another piece prefetched
    drop_pending();
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

void LlamaModel::grads_begin(size_t first, size_t end) {
  if (!shards_ || lora_) return;
  shards_->note_resident((shards_->flat_hi(end) - shards_->flat_lo(first)) * int64_t(sizeof(float)));
}

void LlamaModel::unit_reduce(size_t first, size_t end) {
  // with adapters the base is frozen: no base gradient is written, none reduced (the adapters'
  // gradients stay whole, reduced by the optimizer as under stage 2)
  if (!shards_ || lora_) return;
  timed(kProfComm, [&] { shards_->reduce_scatter(grads_->data, first, end); });
  // resident since grads_begin
  shards_->note_resident(-(shards_->flat_hi(end) - shards_->flat_lo(first)) * int64_t(sizeof(float)));
}

// ---- the tiled MLP in slices of the intermediate dimension ----

void LlamaModel::plan_mlp_slices() {
  // as many slices as make one no larger than the attention run (whose weights and gradient are
  // resident together anyway), each at least a row
  const size_t wg = run_end(0);
  int64_t attn = 0, mlp = 0;
  for (size_t i = layer_first(0); i < layer_first(1); ++i) (i < wg ? attn : mlp) += views_[i].numel;
  const int64_t cI = shards_->chunk_rows(wg, cfg_.hidden), world = shards_->layout().world, I = cfg_.intermediate;
  attn = std::max<int64_t>(attn, 1);
  const int64_t want = std::max<int64_t>(1, std::min(cI, (mlp + attn - 1) / attn));
  MlpSlicePlan& p = mlp_plan_;
  p.rows = std::max<int64_t>(1, (cI + want - 1) / want);
  p.count = (cI + p.rows - 1) / p.rows;
  p.width = world * p.rows;
  p.columns.assign(static_cast<size_t>(p.count), std::vector<int64_t>(static_cast<size_t>(p.width), -1));
  for (int64_t s = 0; s < p.count; ++s)
    for (int64_t r = 0; r < world; ++r)
      for (int64_t k = 0; k < p.rows; ++k) {
        const int64_t local = s * p.rows + k, idx = r * cI + local;
        if (local < cI && idx < I) p.columns[static_cast<size_t>(s)][static_cast<size_t>(r * p.rows + k)] = idx;
      }
}

LlamaModel::MlpSlice LlamaModel::mlp_buffers(FloatStorage& st) const {
  const int64_t block = RoundUp(mlp_plan_.width * cfg_.hidden);
  return {st.data, st.data + block, st.data + 2 * block};
}

FloatStorage& LlamaModel::mlp_weights(int64_t l, int64_t s) {
  // consecutive slices (the only ones resident together) alternate between the two sets
  std::unique_ptr<FloatStorage>& st = mlp_w_[(l * mlp_plan_.count + s) % 2];
  if (!st) {
    st = std::make_unique<FloatStorage>(3 * RoundUp(mlp_plan_.width * cfg_.hidden));
    release_range(st->data, static_cast<size_t>(st->size) * sizeof(float));
  }
  return *st;
}

namespace {
int64_t slice_bytes(int64_t w, int64_t D) { return 3 * w * D * int64_t(sizeof(float)); }
}  // namespace

void LlamaModel::mlp_gather_job(int64_t l, int64_t s) {
  const MlpSlice m = mlp_buffers(mlp_weights(l, s));
  const size_t wg = run_end(l);
  const int64_t b = mlp_plan_.rows, D = cfg_.hidden;
  shards_->note_resident(slice_bytes(mlp_plan_.width, D));
  const uint64_t ticket = shards_->start_job([this, m, wg, b, s, D] {
    shards_->gather_rows(m.wg, wg, D, s * b, (s + 1) * b);
    shards_->gather_rows(m.wu, wg + 1, D, s * b, (s + 1) * b);
    shards_->gather_cols(m.wd, wg + 2, cfg_.intermediate, mlp_plan_.columns[static_cast<size_t>(s)]);
  });
  pending_ = {0, 0, l, s, ticket, true};
}

void LlamaModel::mlp_prefetch(int64_t l, int64_t s) {
  if (!shards_->overlaps()) return;
  mlp_gather_job(l, s);
}

LlamaModel::MlpSlice LlamaModel::mlp_gather(int64_t l, int64_t s) {
  if (pending_.on && !(pending_.slice == s && pending_.layer == l)) drop_pending();
  if (!pending_.on) mlp_gather_job(l, s);
  pending_.on = false;
  timed(kProfComm, [&] { shards_->wait_gather(pending_.ticket); });
  return mlp_buffers(mlp_weights(l, s));
}

void LlamaModel::mlp_release(int64_t l, int64_t s) {
  FloatStorage& st = mlp_weights(l, s);
  release_range(st.data, static_cast<size_t>(st.size) * sizeof(float));
  shards_->note_resident(-slice_bytes(mlp_plan_.width, cfg_.hidden));
}

void LlamaModel::prefetch_forward(int64_t l) {
  if (l < cfg_.layers) unit_prefetch(layer_first(l), run_end(l));
  else unit_prefetch(norm_index(), norm_index() + 1);
}

void LlamaModel::prefetch_mlp(int64_t l) {
  if (mlp_sliced()) mlp_prefetch(l, 0);
  else if (mlp_split()) unit_prefetch(piece_first(l, kPieceGate), piece_end(l, kPieceGate));
}

void LlamaModel::prefetch_backward(int64_t l) {
  if (l < 0 || !shards_) return;
  // with checkpointing the backward starts with the recompute's attention run, else with the MLP
  if (buf_ckpt_) unit_prefetch(layer_first(l), run_end(l));
  else if (mlp_sliced()) mlp_prefetch(l, 0);
  else unit_prefetch(piece_first(l, kPieceDown), piece_end(l, kPieceDown));
}

void LlamaModel::fwd_switch(int64_t l, int from, int to, int next) {
  if (!mlp_split()) return;
  unit_release(piece_first(l, from), piece_end(l, from));
  unit_gather(piece_first(l, to), piece_end(l, to));
  if (next >= 0) unit_prefetch(piece_first(l, next), piece_end(l, next));
  else prefetch_forward(l + 1);
}

void LlamaModel::fwd_done(int64_t l, int p) {
  if (mlp_split()) unit_release(piece_first(l, p), piece_end(l, p));
}

void LlamaModel::bwd_begin(int64_t l, int p) {
  if (!mlp_split()) return;
  unit_gather(piece_first(l, p), piece_end(l, p));
  grads_begin(piece_first(l, p), piece_end(l, p));
}

void LlamaModel::bwd_switch(int64_t l, int from, int to) {
  if (!mlp_split()) return;
  // weights released first, then the next piece's gather overlaps this one's reduce-scatter
  unit_release(piece_first(l, from), piece_end(l, from));
  unit_prefetch(piece_first(l, to), piece_end(l, to));
  unit_reduce(piece_first(l, from), piece_end(l, from));
  bwd_begin(l, to);
}

void LlamaModel::mlp_forward_sliced(int64_t l, const float* xn2, float* y) {
  const int64_t n = buf_n_, D = cfg_.hidden, S = mlp_plan_.count, w = mlp_plan_.width;
  for (int64_t s = 0; s < S; ++s) {
    const MlpSlice m = mlp_gather(l, s);
    if (s + 1 < S) mlp_prefetch(l, s + 1);
    else prefetch_forward(l + 1);
    timed(kProfGemm, [&] { mlp_forward_tiled(y, xn2, m.wg, m.wu, m.wd, n, D, w, mlp_tile_, scratch_mlp_); });
    mlp_release(l, s);
  }
}

void LlamaModel::mlp_backward_sliced(int64_t l, const float* xn2, const float* dy, float* dxn2) {
  const int64_t n = buf_n_, D = cfg_.hidden, S = mlp_plan_.count, w = mlp_plan_.width, b = mlp_plan_.rows;
  const bool train_base = !lora_;
  const size_t wg = run_end(l);
  MlpSlice g{};
  if (train_base) {
    if (!mlp_g_) {
      mlp_g_ = std::make_unique<FloatStorage>(3 * RoundUp(w * D));
      release_range(mlp_g_->data, static_cast<size_t>(mlp_g_->size) * sizeof(float));
    }
    g = mlp_buffers(*mlp_g_);
  }
  for (int64_t s = 0; s < S; ++s) {
    const MlpSlice m = mlp_gather(l, s);
    if (train_base) shards_->note_resident(slice_bytes(w, D));
    timed(kProfGemm, [&] {
      mlp_backward_tiled(dxn2, g.wg, g.wu, g.wd, dy, xn2, m.wg, m.wu, m.wd, n, D, w, mlp_tile_, scratch_mlp_, s > 0);
    });
    // weights released first, then the next piece's gather overlaps this slice's reductions
    mlp_release(l, s);
    if (s + 1 < S) mlp_prefetch(l, s + 1);
    else unit_prefetch(layer_first(l), run_end(l));
    if (!train_base) continue;
    timed(kProfComm, [&] {
      shards_->reduce_rows(g.wg, wg, D, s * b, (s + 1) * b);
      shards_->reduce_rows(g.wu, wg + 1, D, s * b, (s + 1) * b);
      shards_->reduce_cols(g.wd, wg + 2, cfg_.intermediate, mlp_plan_.columns[static_cast<size_t>(s)]);
    });
    shards_->note_resident(-slice_bytes(w, D));
  }
  unit_gather(layer_first(l), run_end(l));
  grads_begin(layer_first(l), run_end(l));
}

}  // namespace ua
