// Matrix product through OpenBLAS (row-major cblas_sgemm).
#include "matmul.h"

#include <cblas.h>

namespace ua {

void matmul(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
            float alpha, float beta) {
  if (M < 0 || N < 0 || K < 0) throw ShapeError("matmul: negative dimension");
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M * N; ++i) C[i] = beta == 0.f ? 0.f : C[i] * beta;
    return;
  }
  const int64_t lda = transA ? M : K;
  const int64_t ldb = transB ? K : N;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(N));
}

}  // namespace ua
