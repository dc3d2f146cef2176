// Ulysses attention (see ulysses_backend.h): all-to-alls around the local flash kernels.
// Must never let ranks diverge in the collectives they issue, and never swallow a CodedError.
#include "model/ulysses_backend.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "comm/ulysses.h"

namespace ua {

namespace {

// a[i] += b[i]
void AddInto(float* a, const float* b, int64_t count) {
#pragma omp parallel for schedule(static) if (count > (int64_t(1) << 16))
  for (int64_t i = 0; i < count; ++i) a[i] += b[i];
}

void Zero(comm::CommBuffer& v) { std::memset(v.data(), 0, v.bytes()); }

// bf16 tensors as 4-byte words for the all-to-alls (pairs of bf16 along d), and back.
const float* Words(const uint16_t* p) { return reinterpret_cast<const float*>(p); }
float* Words(uint16_t* p) { return reinterpret_cast<float*>(p); }
uint16_t* Halves(const comm::CommBuffer& b) { return reinterpret_cast<uint16_t*>(b.data()); }

}  // namespace

UlyssesAttention::UlyssesAttention(std::shared_ptr<comm::Communicator> comm, int64_t H, int64_t Hkv)
    : comm_(std::move(comm)) {
  if (!comm_) throw CodedError("ERR_COMM_ARG", "ulysses attention: no communicator");
  P_ = comm_->size();
  H_ = H;
  Hkv_ = Hkv;
  comm::check_heads(H, P_);
  hg_ = comm::kv_heads_per_rank(Hkv, P_);
  hl_ = H / P_;
  if (Hkv <= 0 || H % Hkv != 0)
    throw CodedError("ERR_COMM_ARG", "ulysses attention: H=" + std::to_string(H) +
                                              " must be a multiple of Hkv=" + std::to_string(Hkv));
}

int64_t UlyssesAttention::buffer_bytes() const {
  return static_cast<int64_t>(qh_.bytes() + kh_.bytes() + vh_.bytes() + outh_.bytes() + douth_.bytes() +
                              dqh_.bytes() + dkh_.bytes() + dvh_.bytes());
}

void UlyssesAttention::check_call(const AttnCall& c) const {
  if (c.H != H_ || c.Hkv != Hkv_)
    throw ShapeError("ulysses attention: built for H=" + std::to_string(H_) + ", Hkv=" + std::to_string(Hkv_) +
                     ", called with H=" + std::to_string(c.H) + ", Hkv=" + std::to_string(c.Hkv));
  if (c.n <= 0 || c.d <= 0) throw ShapeError("ulysses attention: expected n > 0 and d > 0");
}

void UlyssesAttention::ensure(int64_t n, int64_t d) {
  if (n == buf_n_ && d == buf_d_) return;
  const size_t N = static_cast<size_t>(P_ * n);
  const size_t qsz = N * size_t(hl_ * d), kvsz = N * size_t(hg_ * d);
  // Exact sizes (shrinking too): the buffers follow the sequence length.
  auto fit = [this](comm::CommBuffer& v, size_t count) {
    v.reset();
    v = comm_->buffer(count * sizeof(float));
  };
  fit(qh_, qsz);
  outh_.reset();  // bf16 only, made by its first call (fp32 keeps the output in dqh_)
  fit(douth_, qsz);
  fit(dqh_, qsz);
  fit(kh_, kvsz);
  fit(vh_, kvsz);
  fit(dkh_, kvsz);
  fit(dvh_, kvsz);
  buf_n_ = n;
  buf_d_ = d;
  cache_valid_ = false;
}

template <typename F> void UlyssesAttention::timed(int64_t bytes, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  stats_.comm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats_.alltoalls += 1;
  stats_.bytes += bytes;
}

int64_t UlyssesAttention::sequence_max(int64_t local) {
  std::vector<int64_t> all(static_cast<size_t>(P_));
  comm_->all_gather(&local, all.data(), sizeof(int64_t));
  int64_t m = local;
  for (int64_t v : all) m = std::max(m, v);
  return m;
}

void UlyssesAttention::forward(float* out, float* lse, const float* q, const float* k, const float* v,
                               const AttnCall& c) {
  check_call(c);
  cache_valid_ = false;  // invalid until this forward completes
  ensure(c.n, c.d);
  comm::Communicator& cm = *comm_;
  const int64_t n = c.n, d = c.d, N = P_ * n;
  const int64_t qb = n * H_ * d * 4, kvb = N * hg_ * d * 4;
  timed(qb, [&] { comm::seq_to_head(cm, qh_.data(), q, n, H_, d); });
  timed(kvb, [&] { comm::seq_to_head_kv(cm, kh_.data(), k, n, Hkv_, d); });
  timed(kvb, [&] { comm::seq_to_head_kv(cm, vh_.data(), v, n, Hkv_, d); });

  // The head-sharded output is kept in dqh_, which the backward needs only after it has taken
  // the output's delta.
  const AttnShape sh = local_shape(c);
  flash_attention_forward(dqh_.data(), lse, qh_.data(), kh_.data(), vh_.data(), c.doc_lens, c.ndocs, sh);

  timed(qb, [&] { comm::head_to_seq(cm, out, dqh_.data(), n, H_, d); });
  cached_ = Key{q, k, v, out, lse, n, d, false};
  cache_valid_ = true;
}

void UlyssesAttention::backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* out, const float* lse, const AttnCall& c) {
  check_call(c);
  const Key key{q, k, v, out, lse, c.n, c.d, false};
  const bool hit = cache_valid_ && cached_ == key;
  cache_valid_ = false;  // the buffers are reused as scratch below
  ensure(c.n, c.d);
  comm::Communicator& cm = *comm_;
  const int64_t n = c.n, d = c.d, N = P_ * n;
  const int64_t qb = n * H_ * d * 4, kvb = N * hg_ * d * 4;
  if (hit) {
    stats_.cache_hits += 1;
  } else {
    // Same layouts as the forward's: bit-identical to what it held.
    timed(qb, [&] { comm::seq_to_head(cm, qh_.data(), q, n, H_, d); });
    timed(kvb, [&] { comm::seq_to_head_kv(cm, kh_.data(), k, n, Hkv_, d); });
    timed(kvb, [&] { comm::seq_to_head_kv(cm, vh_.data(), v, n, Hkv_, d); });
    timed(qb, [&] { comm::seq_to_head(cm, dqh_.data(), out, n, H_, d); });
  }
  timed(qb, [&] { comm::seq_to_head(cm, douth_.data(), dout, n, H_, d); });
  // The kernel needs out only for delta = rowsum(out * dout) (its own expression, so the same
  // bits): taken first, then dqh_ is free for dq.
  delta_.resize(static_cast<size_t>(N * hl_));
  attention_delta(delta_.data(), dqh_.data(), douth_.data(), N, hl_, d);

  Zero(dqh_);
  Zero(dkh_);
  Zero(dvh_);
  flash_attention_backward_delta(dqh_.data(), dkh_.data(), dvh_.data(), douth_.data(), qh_.data(), kh_.data(),
                                 vh_.data(), delta_.data(), lse, c.doc_lens, c.ndocs, local_shape(c));
  return_gradients(dq, dk, dv, c);
}

AttnShape UlyssesAttention::local_shape(const AttnCall& c) const {
  AttnShape sh;
  sh.s = P_ * c.n;
  sh.H = hl_;
  sh.Hkv = hg_;
  sh.d = c.d;
  sh.causal = true;
  sh.window = c.window;
  return sh;
}

void UlyssesAttention::return_gradients(float* dq, float* dk, float* dv, const AttnCall& c) {
  comm::Communicator& cm = *comm_;
  const int64_t n = c.n, d = c.d, N = P_ * n;
  const int64_t qb = n * H_ * d * 4, kvb = N * hg_ * d * 4;
  // The contract accumulates: the results land in scratch (douth_ [n, H, d]; qh_/kh_ for
  // [n, Hkv, d], which fit since P*hg >= Hkv) and are added.
  timed(qb, [&] { comm::head_to_seq(cm, douth_.data(), dqh_.data(), n, H_, d); });
  AddInto(dq, douth_.data(), n * H_ * d);
  timed(kvb, [&] { comm::head_to_seq_kv_sum(cm, kh_.data(), dkh_.data(), n, Hkv_, d); });
  AddInto(dk, kh_.data(), n * Hkv_ * d);
  timed(kvb, [&] { comm::head_to_seq_kv_sum(cm, vh_.data(), dvh_.data(), n, Hkv_, d); });
  AddInto(dv, vh_.data(), n * Hkv_ * d);
}

void UlyssesAttention::forward_bf16(uint16_t* out, float* lse, const uint16_t* q, const uint16_t* k,
                                    const uint16_t* v, const AttnCall& c) {
  check_call(c);
  cache_valid_ = false;
  ensure(c.n, c.d);
  comm::Communicator& cm = *comm_;
  const int64_t n = c.n, w = c.d / 2, N = P_ * n;  // w: 4-byte words per head row
  const int64_t qb = n * H_ * w * 4, kvb = N * hg_ * w * 4;
  if (outh_.bytes() == 0) outh_ = comm_->buffer(douth_.bytes());  // the bf16 backward reads it
  timed(qb, [&] { comm::seq_to_head(cm, qh_.data(), Words(q), n, H_, w); });
  timed(kvb, [&] { comm::seq_to_head_kv(cm, kh_.data(), Words(k), n, Hkv_, w); });
  timed(kvb, [&] { comm::seq_to_head_kv(cm, vh_.data(), Words(v), n, Hkv_, w); });
  flash_attention_forward_bf16(Halves(outh_), lse, Halves(qh_), Halves(kh_), Halves(vh_), c.doc_lens, c.ndocs,
                               local_shape(c));
  timed(qb, [&] { comm::head_to_seq(cm, Words(out), outh_.data(), n, H_, w); });
  cached_ = Key{q, k, v, out, lse, n, c.d, true};
  cache_valid_ = true;
}

void UlyssesAttention::backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q,
                                     const uint16_t* k, const uint16_t* v, const uint16_t* out, const float* lse,
                                     const AttnCall& c) {
  check_call(c);
  const Key key{q, k, v, out, lse, c.n, c.d, true};
  const bool hit = cache_valid_ && cached_ == key;
  cache_valid_ = false;
  ensure(c.n, c.d);
  comm::Communicator& cm = *comm_;
  const int64_t n = c.n, w = c.d / 2, N = P_ * n;
  const int64_t qb = n * H_ * w * 4, kvb = N * hg_ * w * 4;
  if (outh_.bytes() == 0) outh_ = comm_->buffer(douth_.bytes());
  if (hit) {
    stats_.cache_hits += 1;
  } else {
    timed(qb, [&] { comm::seq_to_head(cm, qh_.data(), Words(q), n, H_, w); });
    timed(kvb, [&] { comm::seq_to_head_kv(cm, kh_.data(), Words(k), n, Hkv_, w); });
    timed(kvb, [&] { comm::seq_to_head_kv(cm, vh_.data(), Words(v), n, Hkv_, w); });
    timed(qb, [&] { comm::seq_to_head(cm, outh_.data(), Words(out), n, H_, w); });
  }
  timed(qb, [&] { comm::seq_to_head(cm, douth_.data(), Words(dout), n, H_, w); });
  Zero(dqh_);
  Zero(dkh_);
  Zero(dvh_);
  flash_attention_backward_bf16(dqh_.data(), dkh_.data(), dvh_.data(), Halves(douth_), Halves(qh_), Halves(kh_),
                                Halves(vh_), Halves(outh_), lse, c.doc_lens, c.ndocs, local_shape(c));
  return_gradients(dq, dk, dv, c);
}

}  // namespace ua
