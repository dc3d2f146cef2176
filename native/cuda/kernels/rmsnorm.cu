// RMSNorm on the GPU (the CPU's kernels/rmsnorm.cc): one warp per row for the row statistics,
// accumulated in double as on the CPU; dw through the CPU's fixed-order blocked reduction
// (reduce.cuh), so dw has the CPU's bits. Also the home of CombinePartials.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/kernels/reduce.cuh"

namespace ua::cuda {

__global__ void CombinePartials(float* out, const double* part, int64_t nblocks, int64_t cols) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  double s = 0;
  for (int64_t b = 0; b < nblocks; ++b) s += part[b * cols + j];
  out[j] += static_cast<float>(s);
}

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each

__global__ void RmsForwardKernel(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t dim,
                                 float eps) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= n) return;
  const float* xr = x + r * dim;
  double ss = 0;
  for (int64_t j = lane; j < dim; j += 32) ss += static_cast<double>(xr[j]) * xr[j];
  ss = warp_sum(ss);
  const float rs = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(dim) + static_cast<double>(eps)));
  if (lane == 0) rstd[r] = rs;
  float* yr = y + r * dim;
  for (int64_t j = lane; j < dim; j += 32) yr[j] = (xr[j] * rs) * w[j];
}

// dx_j += r w_j dy_j - x_j r^3 / dim * sum_k dy_k w_k x_k
__global__ void RmsBackwardDxKernel(float* dx, const float* dy, const float* x, const float* w, const float* rstd,
                                    int64_t n, int64_t dim) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= n) return;
  const float *xr = x + r * dim, *dyr = dy + r * dim;
  const float rs = rstd[r];
  double dot = 0;
  for (int64_t j = lane; j < dim; j += 32) dot += static_cast<double>(dyr[j]) * w[j] * xr[j];
  dot = warp_sum(dot);
  const float c = static_cast<float>(static_cast<double>(rs) * rs * rs * dot / static_cast<double>(dim));
  float* dxr = dx + r * dim;
  for (int64_t j = lane; j < dim; j += 32) dxr[j] += rs * w[j] * dyr[j] - c * xr[j];
}

struct DwAddend {
  const float *dy, *x, *rstd;
  int64_t dim;
  __device__ double operator()(int64_t r, int64_t j) const {
    return static_cast<double>(dy[r * dim + j] * x[r * dim + j] * rstd[r]);
  }
};

}  // namespace

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t dim, float eps,
                     cudaStream_t s) {
  if (n <= 0) return;
  if (dim <= 0) throw ShapeError("rmsnorm_forward: need dim > 0");
  RmsForwardKernel<<<static_cast<unsigned>(ceil_div(n, kRowsPerBlock)), 32 * kRowsPerBlock, 0, s>>>(y, rstd, x, w, n,
                                                                                                   dim, eps);
  UA_LAUNCHED("rmsnorm_forward");
}

int64_t rmsnorm_scratch(int64_t n, int64_t dim) { return reduce_blocks(n) * dim; }

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                      int64_t n, int64_t dim, double* scratch, cudaStream_t s) {
  if (n <= 0) return;
  if (dim <= 0) throw ShapeError("rmsnorm_backward: need dim > 0");
  if (dx) {
    RmsBackwardDxKernel<<<static_cast<unsigned>(ceil_div(n, kRowsPerBlock)), 32 * kRowsPerBlock, 0, s>>>(dx, dy, x, w,
                                                                                                        rstd, n, dim);
    UA_LAUNCHED("rmsnorm_backward dx");
  }
  if (dw) blocked_column_sum(dw, scratch, n, dim, DwAddend{dy, x, rstd, dim}, s);
}

}  // namespace ua::cuda
