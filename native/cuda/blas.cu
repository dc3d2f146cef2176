// cuBLAS through dlopen (blas.cuh). The declarations below follow cuBLAS's public API
// (cublas_api.h): handles are opaque pointers, statuses and enums are C ints.
#include <mutex>

#include "cuda/blas.cuh"
#include "device/dynlib.h"

namespace ua::cuda {

namespace {

using cublasHandle = void*;
using cublasStatus = int;
constexpr cublasStatus kCublasSuccess = 0;
constexpr int kOpN = 0, kOpT = 1;            // cublasOperation_t
constexpr int kComputeF32 = 68;              // CUBLAS_COMPUTE_32F
constexpr int kGemmDefault = -1;             // CUBLAS_GEMM_DEFAULT

struct CublasApi {
  cublasStatus (*create)(cublasHandle*);
  cublasStatus (*destroy)(cublasHandle);
  cublasStatus (*set_stream)(cublasHandle, cudaStream_t);
  cublasStatus (*get_version)(cublasHandle, int*);
  const char* (*status_string)(cublasStatus);
  cublasStatus (*gemm_ex)(cublasHandle, int, int, int, int, int, const void*, const void*, cudaDataType_t, int,
                          const void*, cudaDataType_t, int, const void*, void*, cudaDataType_t, int, int, int);
};

const CublasApi& Api() {
  static std::mutex mu;
  static CublasApi api{};
  static bool ready = false;
  std::lock_guard<std::mutex> lock(mu);
  if (ready) return api;
  const auto& lib = dynlib::load(dynlib::cublas_spec());
  auto sym = [&](const char* name) { return dynlib::symbol(lib, "cuBLAS", name); };
  api.create = reinterpret_cast<decltype(api.create)>(sym("cublasCreate_v2"));
  api.destroy = reinterpret_cast<decltype(api.destroy)>(sym("cublasDestroy_v2"));
  api.set_stream = reinterpret_cast<decltype(api.set_stream)>(sym("cublasSetStream_v2"));
  api.get_version = reinterpret_cast<decltype(api.get_version)>(sym("cublasGetVersion_v2"));
  api.status_string = reinterpret_cast<decltype(api.status_string)>(sym("cublasGetStatusString"));
  api.gemm_ex = reinterpret_cast<decltype(api.gemm_ex)>(sym("cublasGemmEx"));
  ready = true;
  return api;
}

void Check(cublasStatus s, const char* what) {
  if (s == kCublasSuccess) return;
  const char* msg = Api().status_string ? Api().status_string(s) : "?";
  throw CodedError("ERR_DEVICE", std::string("cuBLAS ") + what + ": status " + std::to_string(s) + " (" + msg + ")");
}

int Int(int64_t v, const char* what) {
  if (v < 0 || v > INT32_MAX) throw ShapeError(std::string("gemm: ") + what + " = " + std::to_string(v) + " exceeds 2^31 - 1");
  return static_cast<int>(v);
}

}  // namespace

Blas::~Blas() {
  if (handle_) Api().destroy(handle_);
}

void Blas::gemm(float* C, int64_t ldc, const void* A, int64_t lda, const void* B, int64_t ldb, int64_t M, int64_t N,
                int64_t K, bool transA, bool transB, float alpha, float beta, Precision p) {
  if (M < 0 || N < 0 || K < 0) throw ShapeError("gemm: negative dimension");
  if (M == 0 || N == 0 || (K == 0 && beta == 1.f)) return;  // k == 0 otherwise: cuBLAS scales C by beta
  if (!handle_) {
    const CublasApi& a = Api();
    cublasHandle h = nullptr;
    Check(a.create(&h), "create");
    handle_ = h;
    Check(a.set_stream(handle_, stream_), "set stream");
  }
  const cudaDataType_t t = p == Precision::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B comes first.
  Check(Api().gemm_ex(handle_, transB ? kOpT : kOpN, transA ? kOpT : kOpN, Int(N, "N"), Int(M, "M"), Int(K, "K"), &alpha,
                      B, t, Int(ldb, "ldb"), A, t, Int(lda, "lda"), &beta, C, CUDA_R_32F, Int(ldc, "ldc"), kComputeF32,
                      kGemmDefault),
        "gemm");
}

std::string blas_version() {
  const auto& lib = dynlib::load(dynlib::cublas_spec());
  if (!lib.handle) throw CodedError("ERR_DEVICE", "cuBLAS: " + lib.error);
  cublasHandle h = nullptr;
  Check(Api().create(&h), "create");
  int v = 0;
  Api().get_version(h, &v);
  Api().destroy(h);
  return "cuBLAS " + std::to_string(v) + " at " + lib.path;
}

}  // namespace ua::cuda
