// General matrix product through OpenBLAS cblas_sgemm, row-major.
#pragma once
#include "common.h"

namespace ua {

// C[M,N] = alpha * op(A) * op(B) + beta * C
// op(A) is [M,K] (A stored [M,K], or [K,M] when transA); op(B) is [K,N] (B stored [K,N], or [N,K] when transB).
void matmul(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
            bool transA, bool transB, float alpha, float beta);

}  // namespace ua
