// The CUDA model's attention backends (attention_backend.cuh).
#include <algorithm>
#include <chrono>

#include "comm/ulysses.h"
#include "cuda/model/attention_backend.cuh"

namespace ua::cuda {

namespace {

AttnDims Whole(const AttnArgs& a) {
  AttnDims d;
  d.s = a.n, d.H = a.H, d.Hkv = a.Hkv, d.d = a.d, d.scale = a.scale;
  return d;
}

}  // namespace

void LocalAttention::forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnArgs& a,
                             cudaStream_t s) {
  flash_forward(out, lse, q, k, v, Whole(a), a.mask, s);
}

void LocalAttention::backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                              const float* v, const float* out, const float* lse, const AttnArgs& a, cudaStream_t s) {
  delta_.reserve(a.H * a.n);
  flash_backward(dq, dk, dv, dout, q, k, v, out, lse, Whole(a), a.mask, delta_.get(), s);
}

UlyssesCudaAttention::UlyssesCudaAttention(std::shared_ptr<DeviceGroup> g, int64_t H, int64_t Hkv) : group_(std::move(g)) {
  if (!group_) throw CodedError("ERR_COMM_ARG", "ulysses attention: no device group");
  P_ = group_->size();
  H_ = H;
  Hkv_ = Hkv;
  comm::check_heads(H, P_);
  hg_ = comm::kv_heads_per_rank(Hkv, P_);
  hl_ = H / P_;
  if (Hkv <= 0 || H % Hkv != 0)
    throw CodedError("ERR_COMM_ARG", "ulysses attention: H=" + std::to_string(H) + " must be a multiple of Hkv=" +
                                         std::to_string(Hkv));
}

int64_t UlyssesCudaAttention::buffer_bytes() const {
  return qh_.bytes() + kh_.bytes() + vh_.bytes() + outh_.bytes() + douth_.bytes() + dqh_.bytes() + dkh_.bytes() +
         dvh_.bytes() + scratch_.bytes() + back_.bytes() + delta_.bytes();
}

SequenceParallelStats UlyssesCudaAttention::stats() const {
  SequenceParallelStats s = stats_;
  s.degree = P_;
  s.buffer_bytes = buffer_bytes();
  return s;
}

void UlyssesCudaAttention::ensure(int64_t n, int64_t d) {
  if (n == buf_n_ && d == buf_d_) return;
  const int64_t N = P_ * n, qsz = N * hl_ * d, kvsz = N * hg_ * d;
  for (auto* b : {&qh_, &outh_, &douth_, &dqh_}) b->reserve(qsz);
  for (auto* b : {&kh_, &vh_, &dkh_, &dvh_}) b->reserve(kvsz);
  scratch_.reserve(ulysses_scratch_floats(P_, n, H_, Hkv_, d));
  back_.reserve(n * std::max(H_, Hkv_) * d);
  delta_.reserve(hl_ * N);
  buf_n_ = n;
  buf_d_ = d;
  cache_valid_ = false;
}

template <typename F> void UlyssesCudaAttention::timed(int64_t bytes, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();  // each collective returns complete (its stream synchronized)
  stats_.comm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats_.alltoalls += 1;
  stats_.bytes += bytes;
}

AttnDims UlyssesCudaAttention::sharded(const AttnArgs& a) const {
  AttnDims d;
  d.s = P_ * a.n, d.H = hl_, d.Hkv = hg_, d.d = a.d, d.scale = a.scale;
  return d;
}

void UlyssesCudaAttention::forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                   const AttnArgs& a, cudaStream_t s) {
  if (a.H != H_ || a.Hkv != Hkv_)
    throw ShapeError("ulysses attention: built for H=" + std::to_string(H_) + ", Hkv=" + std::to_string(Hkv_));
  cache_valid_ = false;
  ensure(a.n, a.d);
  DeviceGroup& g = *group_;
  const int64_t n = a.n, d = a.d, qb = n * H_ * d * 4, kvb = P_ * n * hg_ * d * 4;
  float* sc = scratch_.get();
  timed(qb, [&] { ulysses_seq_to_head(g, qh_.get(), q, n, H_, d, sc, s); });
  timed(kvb, [&] { ulysses_seq_to_head_kv(g, kh_.get(), k, n, Hkv_, d, sc, s); });
  timed(kvb, [&] { ulysses_seq_to_head_kv(g, vh_.get(), v, n, Hkv_, d, sc, s); });
  flash_forward(outh_.get(), lse, qh_.get(), kh_.get(), vh_.get(), sharded(a), a.mask, s);
  timed(qb, [&] { ulysses_head_to_seq(g, out, outh_.get(), n, H_, d, sc, s); });
  cached_ = Key{q, k, v, out, lse, n, d};
  cache_valid_ = true;
}

void UlyssesCudaAttention::backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                    const float* v, const float* out, const float* lse, const AttnArgs& a,
                                    cudaStream_t s) {
  const Key key{q, k, v, out, lse, a.n, a.d};
  const bool hit = cache_valid_ && cached_ == key;
  cache_valid_ = false;
  ensure(a.n, a.d);
  DeviceGroup& g = *group_;
  const int64_t n = a.n, d = a.d, qb = n * H_ * d * 4, kvb = P_ * n * hg_ * d * 4;
  float* sc = scratch_.get();
  if (hit) {
    stats_.cache_hits += 1;
  } else {
    timed(qb, [&] { ulysses_seq_to_head(g, qh_.get(), q, n, H_, d, sc, s); });
    timed(kvb, [&] { ulysses_seq_to_head_kv(g, kh_.get(), k, n, Hkv_, d, sc, s); });
    timed(kvb, [&] { ulysses_seq_to_head_kv(g, vh_.get(), v, n, Hkv_, d, sc, s); });
    timed(qb, [&] { ulysses_seq_to_head(g, outh_.get(), out, n, H_, d, sc, s); });
  }
  timed(qb, [&] { ulysses_seq_to_head(g, douth_.get(), dout, n, H_, d, sc, s); });
  const AttnDims sh = sharded(a);
  const int64_t qsz = sh.s * hl_ * d, kvsz = sh.s * hg_ * d;
  UA_CUDA(cudaMemsetAsync(dqh_.get(), 0, qsz * sizeof(float), s));
  UA_CUDA(cudaMemsetAsync(dkh_.get(), 0, kvsz * sizeof(float), s));
  UA_CUDA(cudaMemsetAsync(dvh_.get(), 0, kvsz * sizeof(float), s));
  flash_backward(dqh_.get(), dkh_.get(), dvh_.get(), douth_.get(), qh_.get(), kh_.get(), vh_.get(), outh_.get(), lse, sh,
                 a.mask, delta_.get(), s);
  // the contract accumulates: results land in back_ and are added
  timed(qb, [&] { ulysses_head_to_seq(g, back_.get(), dqh_.get(), n, H_, d, sc, s); });
  add_into(dq, back_.get(), n * H_ * d, s);
  timed(kvb, [&] { ulysses_head_to_seq_kv_sum(g, back_.get(), dkh_.get(), n, Hkv_, d, sc, s); });
  add_into(dk, back_.get(), n * Hkv_ * d, s);
  timed(kvb, [&] { ulysses_head_to_seq_kv_sum(g, back_.get(), dvh_.get(), n, Hkv_, d, sc, s); });
  add_into(dv, back_.get(), n * Hkv_ * d, s);
}

}  // namespace ua::cuda
