// The attention seam of the CUDA model (the GPU twin of model/attention_backend.h): local flash
// attention over the whole sequence, or Ulysses sequence parallelism over a device group
// (REFERENCE §2) with the CPU backend's layouts, cache and counters (model/ulysses_backend.h):
//   forward:  q [n, H, d] -> seq_to_head -> qh [P*n, H/P, d]; k, v -> seq_to_head_kv ->
//             [P*n, hg, d]; flash forward over the global sequence -> outh, lse [H/P, P*n] (in
//             the model's lse buffer: H * n floats either way); outh -> head_to_seq -> out.
//   backward: the opposite all-to-alls around the flash backward; the head-sharded tensors of
//             the LAST forward are reused when the backward is that layer's (checkpointing, or
//             the last layer), else re-derived with four more all-to-alls (exact).
// Layouts token-major on device memory; backward ACCUMULATES into dq, dk, dv. The mask covers
// the attended sequence (attended_tokens(n) tokens). Must never keep the model's pointers past a
// call except as the cache key (compared, never dereferenced).
#pragma once
#include <cstdint>
#include <memory>

#include "cuda/api.h"
#include "cuda/comm/device_group.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/runtime.cuh"

namespace ua::cuda {

struct AttnArgs {
  int64_t n = 0, H = 0, Hkv = 0, d = 0;  // n: tokens on this rank
  float scale = 0.f;
  AttnMask mask;                          // over attended_tokens(n) tokens
};

class CudaAttention {
 public:
  virtual ~CudaAttention() = default;
  virtual int64_t attended_tokens(int64_t n) const { return n; }
  virtual int64_t sequence_max(int64_t local) { return local; }
  virtual void forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnArgs& a,
                       cudaStream_t s) = 0;
  virtual void backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const AttnArgs& a, cudaStream_t s) = 0;
  virtual int64_t buffer_bytes() const = 0;
};

class LocalAttention final : public CudaAttention {
 public:
  void forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnArgs& a,
               cudaStream_t s) override;
  void backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                const float* out, const float* lse, const AttnArgs& a, cudaStream_t s) override;
  int64_t buffer_bytes() const override { return delta_.bytes(); }

 private:
  DeviceArray<float> delta_;
};

class UlyssesCudaAttention final : public CudaAttention {
 public:
  // ERR_COMM_ARG naming the numbers when (H, Hkv) do not split over the group's size.
  UlyssesCudaAttention(std::shared_ptr<DeviceGroup> g, int64_t H, int64_t Hkv);
  int64_t attended_tokens(int64_t n) const override { return n * P_; }
  int64_t sequence_max(int64_t local) override { return group_->max_over_group(local); }
  void forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnArgs& a,
               cudaStream_t s) override;
  void backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                const float* out, const float* lse, const AttnArgs& a, cudaStream_t s) override;
  int64_t buffer_bytes() const override;
  SequenceParallelStats stats() const;
  void reset_stats() { stats_ = SequenceParallelStats{}; }

 private:
  void ensure(int64_t n, int64_t d);
  template <typename F> void timed(int64_t bytes, F&& f);
  AttnDims sharded(const AttnArgs& a) const;

  std::shared_ptr<DeviceGroup> group_;
  int64_t P_ = 1, H_ = 0, Hkv_ = 0, hl_ = 0, hg_ = 0, buf_n_ = -1, buf_d_ = -1;
  DeviceArray<float> qh_, kh_, vh_, outh_, douth_, dqh_, dkh_, dvh_, scratch_, back_, delta_;
  struct Key {
    const void *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr, *lse = nullptr;
    int64_t n = -1, d = -1;
    bool operator==(const Key& o) const {
      return q == o.q && k == o.k && v == o.v && out == o.out && lse == o.lse && n == o.n && d == o.d;
    }
  };
  Key cached_;
  bool cache_valid_ = false;
  SequenceParallelStats stats_;
};

}  // namespace ua::cuda
