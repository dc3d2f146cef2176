// Ulysses sequence-parallel attention (REFERENCE §2) behind the model's AttentionBackend seam:
// each rank holds n tokens of a sequence of P*n; attention sees all of them through all-to-alls
// over the SP-group communicator, and the local flash kernels run on the rank's head group.
//
//   forward:  q [n, H, d] --seq_to_head--> qh [P*n, H/P, d]
//             k, v [n, Hkv, d] --seq_to_head_kv--> kh, vh [P*n, hg, d]  (hg = Hkv/P, or 1 replicated)
//             flash forward (global doc_lens) -> outh [P*n, H/P, d], lse [H/P, P*n] (in the model's
//             lse buffer: H/P * P*n == H*n floats, the local size)
//             outh --head_to_seq--> out [n, H, d]
//   backward: dout --seq_to_head--> douth; flash backward -> dqh, dkh, dvh;
//             dq += head_to_seq(dqh); dk += head_to_seq_kv_sum(dkh); dv += head_to_seq_kv_sum(dvh)
//
// Memory trade-off: the backend keeps the head-sharded q/k/v/out of its LAST forward only (one
// layer, O(n * (2H + 2*P*hg) * d) floats, independent of the layer count). fp32 keeps out in the
// dq gradient buffer: the backward takes delta = rowsum(out * dout) from it before dq is written. The backward of the
// layer whose forward just ran (every layer under activation checkpointing, where the layer is
// recomputed right before its backward; the last layer otherwise) reuses them; any other
// backward re-derives them from the model's saved [n, ...] tensors with 4 more all-to-alls
// (exact: an all-to-all only moves bits). Holding them for every layer instead would double the
// attention activations for a 2x cut in backward communication without checkpointing.
// Consequence: every rank of the SP group must make the same sequence of calls (same model
// configuration, checkpointing included), as it must for the collectives anyway.
//
// bf16 (forward_bf16 / backward_bf16): q/k/v/out/dout are bf16 and move as such: an [n, H, d]
// bf16 tensor is an [n, H, d/2] tensor of 4-byte words (d is even), and an all-to-all only moves
// bits, so the fp32 layouts of comm/ulysses.h carry it unchanged at half the bytes. The gradients
// dq/dk/dv are fp32 (the replicas' dK/dV are summed in fp32).
//
// Plain C++ (no N-API). Communicator failures surface as CodedError (coded ERR_COMM_*);
// the binding maps them to coded rejections. Must never keep pointers to the model's buffers
// beyond one call (the cache is keyed by them, never dereferenced later), never issue a
// collective that another rank of the group would not issue at the same point.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "model/attention_backend.h"

namespace ua {

struct UlyssesStats {
  double comm_seconds = 0;  // wall time inside the all-to-alls
  int64_t alltoalls = 0;    // all-to-alls issued
  int64_t bytes = 0;        // bytes this rank sent (its own chunk included)
  int64_t cache_hits = 0;   // backwards that reused the forward's head-sharded tensors
};

class UlyssesAttention : public AttentionBackend {
 public:
  // comm: the SP group (P = comm->size()); H, Hkv: the model's head counts, validated here
  // (CodedError ERR_COMM_ARG naming the numbers when they are not a Ulysses layout).
  UlyssesAttention(std::shared_ptr<comm::Communicator> comm, int64_t H, int64_t Hkv);

  int64_t attended_tokens(int64_t n) const override { return n * P_; }
  int64_t token_offset(int64_t n) const override { return n * comm_->rank(); }
  // [H/P, P*n] head-sharded: the same float count as the local [H, n].
  int64_t lse_size(const AttnCall& c) const override { return c.H * c.n; }
  // Max over the SP group (an all-gather of one int64 per rank).
  int64_t sequence_max(int64_t local) override;
  void forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnCall& c) override;
  void backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                const float* out, const float* lse, const AttnCall& c) override;
  // bf16 q/k/v/out/dout travel as bf16 (half the bytes); the gradients as fp32.
  void forward_bf16(uint16_t* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                    const AttnCall& c) override;
  void backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q, const uint16_t* k,
                     const uint16_t* v, const uint16_t* out, const float* lse, const AttnCall& c) override;
  double comm_seconds() const override { return stats_.comm_seconds; }

  int64_t degree() const { return P_; }
  const UlyssesStats& stats() const { return stats_; }
  void reset_stats() { stats_ = UlyssesStats{}; }
  // Bytes of the backend's own buffers (head-sharded tensors and gradients).
  int64_t buffer_bytes() const;

 private:
  void check_call(const AttnCall& c) const;
  AttnShape local_shape(const AttnCall& c) const;
  // The gradient half of both backwards: dq += head_to_seq(dqh_), dk/dv += head_to_seq_kv_sum(..).
  void return_gradients(float* dq, float* dk, float* dv, const AttnCall& c);
  void ensure(int64_t n, int64_t d);
  // Runs one all-to-all, timing it into stats_.
  template <typename F> void timed(int64_t bytes, F&& f);

  std::shared_ptr<comm::Communicator> comm_;
  int64_t P_ = 1, H_ = 0, Hkv_ = 0, hl_ = 0, hg_ = 0;
  int64_t buf_n_ = -1, buf_d_ = -1;
  // Head-sharded forward tensors (the cache) and backward scratch: communicator buffers, so on
  // one host peers write their chunks straight into them or read straight out of them.
  // outh_ exists in bf16 mode only: fp32 keeps the head-sharded output in dqh_ (see forward).
  comm::CommBuffer qh_, kh_, vh_, outh_, douth_, dqh_, dkh_, dvh_;
  std::vector<float> delta_;  // fp32 backward: rowsum(out * dout), [H/P, P*n]

  // Identity of the forward whose head-sharded tensors sit in qh_.. (pointers compared only).
  struct Key {
    const void *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr, *lse = nullptr;
    int64_t n = -1, d = -1;
    bool bf16 = false;
    bool operator==(const Key& o) const {
      return q == o.q && k == o.k && v == o.v && out == o.out && lse == o.lse && n == o.n && d == o.d && bf16 == o.bf16;
    }
  };
  Key cached_;
  bool cache_valid_ = false;
  UlyssesStats stats_;
};

}  // namespace ua
