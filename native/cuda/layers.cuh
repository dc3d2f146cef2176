// Building blocks the CUDA model and the host ops share: the attention's visibility ranges on
// the device, and the fused, chunked LM head + cross-entropy (REFERENCE §4) over cuBLAS
// products and the row kernels of kernels/lm_head.cu. Owners of device scratch; one per stream.
#pragma once
#include <cstdint>

#include "cuda/blas.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/runtime.cuh"

namespace ua::cuda {

// attention_mask's ranges, uploaded.
class DeviceMask {
 public:
  void upload(const AttnMaskHost& m, cudaStream_t s);
  AttnMask view() const { return AttnMask{lo_.get(), hi_.get(), qlo_.get(), qhi_.get()}; }
  int64_t bytes() const { return lo_.bytes() * 4; }

 private:
  DeviceArray<int32_t> lo_, hi_, qlo_, qhi_;
};

// Logits [c, vocab] are made c tokens at a time (c chosen so a chunk stays within kLogitsBudget
// floats) and recomputed in the backward; [n, vocab] never exists.
class LmHead {
 public:
  static constexpr int64_t kLogitsBudget = int64_t(64) << 20;  // floats of one logits chunk (256 MiB)

  // loss [n] (0 for ignored tokens), lse [n] and argmax [n] (nullable) on the device.
  // h [n, dim] and W [vocab, dim] are fp32 or bf16 as `p` says.
  void forward(Blas& blas, float* loss, float* lse, int32_t* argmax, const void* h, const void* W, Precision p,
               const int32_t* labels, int64_t n, int64_t dim, int64_t vocab, cudaStream_t s);
  // dh [n, dim] += and dW [vocab, dim] += (either nullable) for L = sum_t weight[t] loss_t
  // (weight [n] on the device: 0 for ignored tokens).
  void backward(Blas& blas, float* dh, float* dW, const void* h, const void* W, Precision p, const int32_t* labels,
                const float* lse, const float* weight, int64_t n, int64_t dim, int64_t vocab, cudaStream_t s);
  int64_t bytes() const { return logits_.bytes() + logits16_.bytes(); }

 private:
  int64_t rows(int64_t n, int64_t vocab) const;
  DeviceArray<float> logits_;
  DeviceArray<__nv_bfloat16> logits16_;
};

// Element size of a GEMM operand of precision p.
inline int64_t element_bytes(Precision p) { return p == Precision::kBF16 ? 2 : 4; }
inline const void* offset_rows(const void* base, int64_t elems, Precision p) {
  return static_cast<const uint8_t*>(base) + elems * element_bytes(p);
}

}  // namespace ua::cuda
