// AdamW, the gradient statistics and the gradient-policy operations on the GPU (the CPU's
// kernels/adamw.cc, gradstats.cc, optimizer_step.cc), over device memory. The Philox4x32-10
// stream and its Box-Muller transform are the CPU's, operation for operation, so the noise a
// (seed, step, tensor) key gives is the CPU's wherever fp32 arithmetic rounds alike; the
// statistics use the CPU's blocks and combine them on the host in the CPU's order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda/kernels/common.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/runtime.cuh"

namespace ua::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kStatsBlock = 16384;  // the CPU's block (gradstats.cc kBlock)

__global__ void AdamwKernel(float* param, float* m, float* v, const float* grad, int64_t n, float b1, float b2,
                            float omb1, float omb2, float eps, float step_size, float bc2_sqrt, float decay) {
  UA_GRID_STRIDE(i, n) {
    const float g = grad[i];
    const float mi = b1 * m[i] + omb1 * g;
    const float vi = b2 * v[i] + omb2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / bc2_sqrt + eps;
    param[i] = param[i] * decay - step_size * (mi / denom);
  }
}

// ln(u), u in (0, 1]: the CPU's log_unit (gradstats.cc).
__device__ __forceinline__ float LogUnit(float u) {
  const int32_t bits = __float_as_int(u);
  int32_t e = ((bits >> 23) & 0xff) - 127;
  float m = __int_as_float((bits & 0x007fffff) | 0x3f800000);
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return static_cast<float>(e) * 0.693147180559945309f + 2.0f * s * p;
}

// sin and cos of 2 pi t: the CPU's sincos_turn (gradstats.cc).
__device__ __forceinline__ void SincosTurn(float t, float& sn, float& cs) {
  const float qf = (t * 4.0f + 12582912.0f) - 12582912.0f;
  const int32_t q = static_cast<int32_t>(qf) & 3;
  const float x = (t - qf * 0.25f) * 6.28318530717958648f;
  const float x2 = x * x;
  float ps = -1.0f / 39916800.0f;
  ps = ps * x2 + 1.0f / 362880.0f;
  ps = ps * x2 - 1.0f / 5040.0f;
  ps = ps * x2 + 1.0f / 120.0f;
  ps = ps * x2 - 1.0f / 6.0f;
  ps = ps * x2 + 1.0f;
  const float s0 = x * ps;
  float pc = 1.0f / 3628800.0f;
  pc = pc * x2 - 1.0f / 40320.0f;
  pc = pc * x2 + 1.0f / 720.0f;
  pc = pc * x2 - 1.0f / 24.0f;
  pc = pc * x2 + 0.5f;
  const float c0 = 1.0f - x2 * pc;
  const float s1 = (q & 1) ? c0 : s0, c1 = (q & 1) ? -s0 : c0;
  sn = (q & 2) ? -s1 : s1;
  cs = (q & 2) ? -c1 : c1;
}

// One thread per Philox block b (4 normals: elements 4b .. 4b + 3).
__global__ void NoiseKernel(float* g, int64_t n, float std, uint32_t s0, uint32_t s1, uint32_t step, uint32_t tensor) {
  UA_GRID_STRIDE(b, (n + 3) / 4) {
    uint32_t c0 = static_cast<uint32_t>(b), c1 = static_cast<uint32_t>(static_cast<uint64_t>(b) >> 32), c2 = step,
             c3 = tensor, k0 = s0, k1 = s1;
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
      }
      const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
      const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
      c0 = n0;
      c1 = static_cast<uint32_t>(p1);
      c2 = n2;
      c3 = static_cast<uint32_t>(p0);
    }
    const uint32_t w[4] = {c0, c1, c2, c3};
    float z[4];
#pragma unroll
    for (int pair = 0; pair < 2; ++pair) {
      const float u1 = static_cast<float>(static_cast<int32_t>(w[2 * pair] >> 8) + 1) * 5.9604644775390625e-8f;
      const float u2 = static_cast<float>(static_cast<int32_t>(w[2 * pair + 1] >> 8)) * 5.9604644775390625e-8f;
      const float r = sqrtf(-2.0f * LogUnit(u1));
      float sn, cs;
      SincosTurn(u2, sn, cs);
      z[2 * pair] = r * cs;
      z[2 * pair + 1] = r * sn;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = 4 * b + j;
      if (i < n) g[i] = fmaf(std, z[j], g[i]);
    }
  }
}

__global__ void ScaleKernel(float* g, int64_t n, float f) {
  UA_GRID_STRIDE(i, n) g[i] *= f;
}

__global__ void ZeroKernel(float* g, int64_t n) {
  UA_GRID_STRIDE(i, n) g[i] = 0.f;
}

// One block per row: the mean over cols in double, rounded to float, subtracted.
__global__ void CentralizeKernel(float* g, int64_t cols) {
  __shared__ double scratch[32];
  float* gr = g + static_cast<int64_t>(blockIdx.x) * cols;
  double s = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += gr[j];
  s = block_sum(s, scratch);
  const float mean = static_cast<float>(s / static_cast<double>(cols));
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) gr[j] -= mean;
}

using StatsItem = GradBlockStats;

// One block per (tensor, 16384-element block) item; non-finite values count and otherwise
// contribute 0, as on the CPU.
__global__ void StatsKernel(StatsItem* items, const float* grad, const int64_t* starts, const int64_t* lens) {
  __shared__ double sd[32];
  __shared__ int64_t si[32];
  __shared__ int32_t smax[kThreads];
  const int64_t k = blockIdx.x;
  const float* g = grad + starts[k];
  const int64_t len = lens[k];
  double s1 = 0, s2 = 0;
  int32_t mx = 0;
  int64_t nf = 0;
  for (int64_t i = threadIdx.x; i < len; i += kThreads) {
    const int32_t a = __float_as_int(g[i]) & 0x7fffffff;
    const bool finite = a < 0x7f800000;
    const int32_t ab = finite ? a : 0;
    const double af = static_cast<double>(__int_as_float(ab));
    s1 += af;
    s2 += af * af;
    mx = max(mx, ab);
    nf += finite ? 0 : 1;
  }
  smax[threadIdx.x] = mx;
  s1 = block_sum(s1, sd);
  __syncthreads();
  s2 = block_sum(s2, sd);
  __syncthreads();
  nf = block_sum(nf, si);
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) smax[threadIdx.x] = max(smax[threadIdx.x], smax[threadIdx.x + w]);
    __syncthreads();
  }
  if (threadIdx.x == 0) items[k] = StatsItem{s1, s2, __int_as_float(smax[0]), nf};
}

}  // namespace

void adamw_step(float* param, float* m, float* v, const float* grad, int64_t n, const AdamWParams& p, cudaStream_t s) {
  if (n < 0) throw ShapeError("adamw_step: negative n");
  if (p.step < 1) throw ShapeError("adamw_step: step must be >= 1, got " + std::to_string(p.step));
  if (n == 0) return;
  // The scalars exactly as the CPU's adamw_step derives them.
  const double bc1 = 1.0 - std::pow(static_cast<double>(p.beta1), static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(p.beta2), static_cast<double>(p.step));
  const float step_size = static_cast<float>(p.lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = 1.0f - p.lr * p.weight_decay;
  AdamwKernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(param, m, v, grad, n, p.beta1, p.beta2, 1.0f - p.beta1,
                                                          1.0f - p.beta2, p.eps, step_size, bc2_sqrt, decay);
  UA_LAUNCHED("adamw_step");
}

void add_noise(float* g, int64_t n, float std, uint64_t seed, uint64_t step, uint64_t tensor, cudaStream_t s) {
  if (n < 0) throw ShapeError("add_noise: negative n");
  if (n == 0) return;
  NoiseKernel<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(g, n, std, static_cast<uint32_t>(seed),
                                                                    static_cast<uint32_t>(seed >> 32),
                                                                    static_cast<uint32_t>(step),
                                                                    static_cast<uint32_t>(tensor));
  UA_LAUNCHED("add_noise");
}

void scale(float* g, int64_t n, float factor, cudaStream_t s) {
  if (n < 0) throw ShapeError("scale: negative n");
  if (n == 0) return;
  ScaleKernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(g, n, factor);
  UA_LAUNCHED("scale");
}

void zero(float* g, int64_t n, cudaStream_t s) {
  if (n < 0) throw ShapeError("zero: negative n");
  if (n == 0) return;
  ZeroKernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(g, n);
  UA_LAUNCHED("zero");
}

void centralize(float* g, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows < 0 || cols < 0) throw ShapeError("centralize: negative dimension");
  if (rows == 0 || cols == 0) return;
  if (rows > 2147483647) throw ShapeError("centralize: too many rows");
  CentralizeKernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(g, cols);
  UA_LAUNCHED("centralize");
}

GradStats grad_stats(double* per_tensor_mean_abs, const float* grad, const TensorSpan* tensors, int64_t ntensors,
                     cudaStream_t s) {
  if (ntensors < 0) throw ShapeError("grad_stats: negative tensor count");
  std::vector<int64_t> starts, lens, first(static_cast<size_t>(ntensors) + 1, 0);
  for (int64_t t = 0; t < ntensors; ++t) {
    if (tensors[t].numel < 0 || tensors[t].offset < 0) throw ShapeError("grad_stats: negative span");
    for (int64_t b = 0; b < tensors[t].numel; b += kStatsBlock) {
      starts.push_back(tensors[t].offset + b);
      lens.push_back(std::min(kStatsBlock, tensors[t].numel - b));
    }
    first[t + 1] = static_cast<int64_t>(starts.size());
  }
  const int64_t nitems = static_cast<int64_t>(starts.size());
  std::vector<StatsItem> items(static_cast<size_t>(nitems));
  if (nitems > 0) {
    DeviceArray<int64_t> d_starts, d_lens;
    DeviceArray<StatsItem> d_items(nitems);
    d_starts.upload(starts.data(), nitems, s);
    d_lens.upload(lens.data(), nitems, s);
    StatsKernel<<<static_cast<unsigned>(nitems), kThreads, 0, s>>>(d_items.get(), grad, d_starts.get(), d_lens.get());
    UA_LAUNCHED("grad_stats");
    d_items.download(items.data(), nitems, s);
    UA_CUDA(cudaStreamSynchronize(s));
  }
  // the CPU's combination (gradstats.cc): tensors in order, blocks in order
  return combine_grad_blocks(per_tensor_mean_abs, items.data(), first.data(), tensors, ntensors);
}

PlanEffects optimizer_step(float* grad, int64_t n, float* param, float* m, float* v, const OptimSpan* spans,
                           int64_t nspans, const GradPlan& plan, const AdamWParams& adam, cudaStream_t s) {
  if (n < 0 || nspans < 0) throw ShapeError("optimizer_step: negative size");
  for (int64_t t = 0; t < nspans; ++t) {
    const OptimSpan& sp = spans[t];
    if (sp.offset < 0 || sp.numel < 0 || sp.offset > n - sp.numel)
      throw ShapeError("optimizer_step: span " + std::to_string(t) + " is outside the buffer of " + std::to_string(n));
    if (sp.centralize && (sp.rows < 0 || sp.cols < 0 || sp.rows * sp.cols != sp.numel))
      throw ShapeError("optimizer_step: span " + std::to_string(t) + ": rows x cols != numel");
  }
  // The CPU's order (optimizer_step.cc): noise, scaling, centralization, the clip on the norm
  // recomputed after any change, then AdamW span by span.
  PlanEffects fx;
  fx.norm_before_clip = plan.l2_norm;
  bool changed = false;
  if (plan.noise_std > 0) {
    for (int64_t t = 0; t < nspans; ++t) {
      add_noise(grad + spans[t].offset, spans[t].numel, static_cast<float>(plan.noise_std), plan.noise_seed,
                plan.noise_step, spans[t].noise_tensor, s);
      ++fx.noised;
    }
    changed = true;
  }
  if (plan.scale_factor != 1 && plan.scale_threshold > 0) {
    for (int64_t t = 0; t < nspans; ++t)
      if (plan.mean_abs[t] < plan.scale_threshold) {
        scale(grad + spans[t].offset, spans[t].numel, static_cast<float>(plan.scale_factor), s);
        ++fx.scaled;
      }
    changed = changed || fx.scaled > 0;
  }
  for (int64_t t = 0; t < nspans; ++t) {
    if (!spans[t].centralize) continue;
    centralize(grad + spans[t].offset, spans[t].rows, spans[t].cols, s);
    ++fx.centralized;
    changed = true;
  }
  if (plan.clip_norm > 0) {
    if (changed) {
      std::vector<TensorSpan> ts(static_cast<size_t>(nspans));
      for (int64_t t = 0; t < nspans; ++t) {
        ts[t].offset = spans[t].offset;
        ts[t].numel = ts[t].rows = spans[t].numel;
        ts[t].cols = 1;
      }
      fx.norm_before_clip = grad_stats(nullptr, grad, ts.data(), nspans, s).l2_norm;
    }
    if (fx.norm_before_clip > plan.clip_norm) {
      fx.clip_factor = static_cast<float>(plan.clip_norm / (fx.norm_before_clip + 1e-6));
      scale(grad, n, fx.clip_factor, s);
    }
  }
  if (param) {
    AdamWParams p = adam;
    for (int64_t t = 0; t < nspans; ++t) {
      p.weight_decay = spans[t].decay ? adam.weight_decay : 0.f;
      adamw_step(param + spans[t].offset, m + spans[t].offset, v + spans[t].offset, grad + spans[t].offset,
                 spans[t].numel, p, s);
    }
  }
  UA_CUDA(cudaStreamSynchronize(s));
  return fx;
}

}  // namespace ua::cuda
