// General matrix products, row-major: fp32 and bf16 x bf16 -> fp32 through oneDNN's matmul
// primitive (cached per shape), and OpenBLAS sgemm as a second reference.
#pragma once
#include <string>

#include "common.h"

namespace ua {

// C[M,N] = alpha * op(A) * op(B) + beta * C   (beta == 0: C is only written, never read)
// op(A) is [M,K] (A stored [M,K], or [K,M] when transA); op(B) is [K,N] (B stored [K,N], or [N,K] when transB).
// Safe to call from several threads at once; runs on num_threads() threads (one when called
// inside an OpenMP parallel region).
void matmul(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
            bool transA, bool transB, float alpha, float beta);

// The same with leading dimensions: elements between the starts of consecutive stored rows
// (lda >= K, or >= M when transA; ldb >= N, or >= K when transB; ldc >= N).
void matmul_ld(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
               int64_t N, int64_t K, bool transA, bool transB, float alpha, float beta);

// bf16 inputs (uint16_t bit patterns, bf16.h), fp32 accumulation and output: the product of two
// bf16 values is exact in fp32, so this is fp32 arithmetic on bf16-rounded inputs. Uses the
// AVX512-BF16 kernels where the CPU has them, oneDNN's emulation on other AVX-512 CPUs, and
// otherwise converts the operands to fp32 and runs the fp32 product.
void matmul_bf16(float* C, const uint16_t* A, const uint16_t* B, int64_t M, int64_t N, int64_t K,
                 bool transA, bool transB, float alpha, float beta);
void matmul_bf16_ld(float* C, int64_t ldc, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
                    int64_t M, int64_t N, int64_t K, bool transA, bool transB, float alpha, float beta);

// OpenBLAS cblas_sgemm with matmul's contract (the benchmark's second reference).
void matmul_openblas(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
                     bool transA, bool transB, float alpha, float beta);

// Which implementation a product of this shape runs: oneDNN's implementation name (e.g.
// "brg:avx512_core"), or "fp32-fallback" / "openblas-fallback" when oneDNN has none.
std::string matmul_impl(bool bf16, int64_t M, int64_t N, int64_t K, bool transA, bool transB);

// oneDNN's version and the instruction set it dispatches to (after DNNL_MAX_CPU_ISA).
std::string onednn_info();

}  // namespace ua
