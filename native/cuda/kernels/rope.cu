// RoPE on the GPU (the CPU's kernels/rope.cc rope_forward_table / rope_backward_table): one
// thread per (token, frequency) computes the angle, cos and sin in double (rounded to float
// once, as the CPU does) and rotates that pair in every head. The table itself (every rope type)
// is the CPU's rope_inv_freq, uploaded: the frequencies are the CPU's bits.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/runtime.cuh"

namespace ua::cuda {

namespace {

__global__ void RopeKernel(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, const double* inv_freq,
                           double scale, double sign) {
  const int64_t half = d / 2;
  UA_GRID_STRIDE(idx, n * half) {
    const int64_t t = idx / half, i = idx - t * half;
    const double a = static_cast<double>(pos[t]) * inv_freq[i];
    double sa, ca;
    sincos(a, &sa, &ca);
    const float cs = static_cast<float>(ca * scale), sn = static_cast<float>(sign * sa * scale);
    float* xt = x + t * heads * d;
    for (int64_t h = 0; h < heads; ++h) {
      float* lo = xt + h * d + i;
      float* hi = lo + half;
      const float av = *lo, bv = *hi;
      *lo = av * cs - bv * sn;
      *hi = bv * cs + av * sn;
    }
  }
}

}  // namespace

void rope_apply(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, const double* inv_freq, double scale,
                bool inverse, cudaStream_t s) {
  if (d <= 0 || d % 2 != 0) throw ShapeError("rope: head dim d must be even and positive, got " + std::to_string(d));
  if (n <= 0 || heads <= 0) return;
  RopeKernel<<<grid_for(n * (d / 2), 256), 256, 0, s>>>(x, pos, n, heads, d, inv_freq, scale, inverse ? -1.0 : 1.0);
  UA_LAUNCHED("rope");
}

}  // namespace ua::cuda
