// Matrix products on the GPU through cuBLAS, loaded at run time (dynlib.h): the few entry
// points used are declared here from cuBLAS's public API (no cuBLAS header is needed to build).
// Row-major products with the CPU matmul's contract (kernels/matmul.h):
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, leading dimensions explicit,
// computed as the column-major product C^T = op(B)^T op(A)^T. fp32 operands use fp32 compute
// (never TF32); bf16 operands (RNE-rounded copies) accumulate in fp32 (CUBLAS_COMPUTE_32F) with
// fp32 C. Must never be used from two threads at once (one Blas per stream owner).
#pragma once
#include <cstdint>
#include <string>

#include "cuda/runtime.cuh"

namespace ua::cuda {

enum class Precision { kF32, kBF16 };

class Blas {
 public:
  // The cuBLAS handle is made at the first product, on the device current then: kernels that
  // never multiply run where cuBLAS is absent.
  explicit Blas(cudaStream_t stream) : stream_(stream) {}
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // A and B point at floats (kF32) or __nv_bfloat16 (kBF16); C is always fp32.
  void gemm(float* C, int64_t ldc, const void* A, int64_t lda, const void* B, int64_t ldb, int64_t M, int64_t N,
            int64_t K, bool transA, bool transB, float alpha, float beta, Precision p);

 private:
  cudaStream_t stream_;
  void* handle_ = nullptr;
};

// "cuBLAS <version> at <path>", or throws ERR_DEVICE naming what was searched.
std::string blas_version();

}  // namespace ua::cuda
