// Element-wise CUDA kernels: bf16 rounding, sums, bias rows and their gradient, the embedding
// gather and its ordered scatter-add, SwiGLU. One thread per element (grid-stride), except the
// column sums and the embedding backward, which walk rows in order for fixed bits.
#include <algorithm>
#include <numeric>

#include "cuda/kernels/common.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/kernels/reduce.cuh"
#include "cuda/runtime.cuh"

namespace ua::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void F32ToBf16Kernel(__nv_bfloat16* out, const float* in, int64_t n) {
  UA_GRID_STRIDE(i, n) out[i] = f32_to_bf16(in[i]);
}

__global__ void AddIntoKernel(float* dst, const float* src, int64_t n) {
  UA_GRID_STRIDE(i, n) dst[i] += src[i];
}

__global__ void AddKernel(float* y, const float* a, const float* b, int64_t n) {
  UA_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

__global__ void FillRowsKernel(float* y, const float* row, int64_t n, int64_t width, bool accumulate) {
  UA_GRID_STRIDE(i, n * width) {
    const float r = row[i % width];
    y[i] = accumulate ? y[i] + r : r;
  }
}

struct ColumnAddend {
  const float* dy;
  int64_t width;
  __device__ double operator()(int64_t r, int64_t j) const { return dy[r * width + j]; }
};

__global__ void EmbeddingForwardKernel(float* y, const int32_t* ids, const float* table, int64_t n, int64_t dim) {
  UA_GRID_STRIDE(i, n * dim) {
    const int64_t t = i / dim, c = i - t * dim;
    y[i] = table[static_cast<int64_t>(ids[t]) * dim + c];
  }
}

// Block u handles unique id uniq[u]; its threads stride over the columns and add the id's
// tokens in token order: dst = ((dst + dy[t0]) + dy[t1]) + ..., the CPU's order.
__global__ void EmbeddingBackwardKernel(float* dtable, const float* dy, const int32_t* uniq, const int32_t* offsets,
                                        const int32_t* tokens, int64_t dim) {
  const int64_t u = blockIdx.x;
  float* dst = dtable + static_cast<int64_t>(uniq[u]) * dim;
  const int32_t t0 = offsets[u], t1 = offsets[u + 1];
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
    float acc = dst[c];
    for (int32_t k = t0; k < t1; ++k) acc += dy[static_cast<int64_t>(tokens[k]) * dim + c];
    dst[c] = acc;
  }
}

// The CPU's branch-free exp (kernels/swiglu.cc exp_vec), operation for operation.
__device__ __forceinline__ float ExpVec(float x) {
  x = x < -87.0f ? -87.0f : x;  // std::max / std::min's comparisons: NaN passes through
  x = 88.0f < x ? 88.0f : x;
  const float t = x * 1.44269504088896341f;
  const float k = (t + 12582912.0f) - 12582912.0f;
  const float r = (x - k * 0.693145751953125f) - k * 1.42860682030941723e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * __int_as_float((static_cast<int32_t>(k) + 127) << 23);
}

__device__ __forceinline__ float Sigmoid(float g) { return 1.0f / (1.0f + ExpVec(-g)); }

__global__ void SwigluForwardKernel(float* out, const float* gate, const float* up, int64_t n) {
  UA_GRID_STRIDE(i, n) {
    const float g = gate[i];
    out[i] = g * Sigmoid(g) * up[i];
  }
}

__global__ void SwigluBackwardKernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                                     int64_t n) {
  UA_GRID_STRIDE(i, n) {
    const float g = gate[i], s = Sigmoid(g), d = dout[i];
    if (dgate) dgate[i] += d * up[i] * (s * (1.0f + g * (1.0f - s)));
    if (dup) dup[i] += d * (g * s);
  }
}

}  // namespace

void f32_to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  F32ToBf16Kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(out, in, n);
  UA_LAUNCHED("f32_to_bf16");
}

void add_into(float* dst, const float* src, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  AddIntoKernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(dst, src, n);
  UA_LAUNCHED("add_into");
}

void add(float* y, const float* a, const float* b, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  AddKernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(y, a, b, n);
  UA_LAUNCHED("add");
}

void fill_rows(float* y, const float* row, int64_t n, int64_t width, cudaStream_t s) {
  if (n <= 0 || width <= 0) return;
  FillRowsKernel<<<grid_for(n * width, kThreads), kThreads, 0, s>>>(y, row, n, width, false);
  UA_LAUNCHED("fill_rows");
}

void add_rows(float* y, const float* row, int64_t n, int64_t width, cudaStream_t s) {
  if (n <= 0 || width <= 0) return;
  FillRowsKernel<<<grid_for(n * width, kThreads), kThreads, 0, s>>>(y, row, n, width, true);
  UA_LAUNCHED("add_rows");
}

int64_t column_sum_scratch(int64_t n, int64_t width) { return reduce_blocks(n) * width; }

void column_sum_into(float* db, const float* dy, int64_t n, int64_t width, double* scratch, cudaStream_t s) {
  blocked_column_sum(db, scratch, n, width, ColumnAddend{dy, width}, s);
}

void embedding_forward(float* y, const int32_t* ids, const float* table, int64_t n, int64_t dim, cudaStream_t s) {
  if (n <= 0 || dim <= 0) return;
  EmbeddingForwardKernel<<<grid_for(n * dim, kThreads), kThreads, 0, s>>>(y, ids, table, n, dim);
  UA_LAUNCHED("embedding_forward");
}

EmbeddingPlan embedding_plan(const int32_t* ids, int64_t n, int64_t vocab) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw ShapeError("embedding: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is outside [0, " +
                       std::to_string(vocab) + ")");
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  // stable: tokens of one id stay in token order
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return ids[a] < ids[b]; });
  EmbeddingPlan p;
  p.tokens = order;
  for (int64_t k = 0; k < n; ++k) {
    if (k == 0 || ids[order[k]] != ids[order[k - 1]]) {
      p.ids.push_back(ids[order[k]]);
      p.offsets.push_back(static_cast<int32_t>(k));
    }
  }
  p.offsets.push_back(static_cast<int32_t>(n));
  return p;
}

void embedding_backward(float* dtable, const float* dy, const int32_t* uniq, const int32_t* offsets,
                        const int32_t* tokens, int64_t nuniq, int64_t dim, cudaStream_t s) {
  if (nuniq <= 0 || dim <= 0) return;
  EmbeddingBackwardKernel<<<static_cast<unsigned>(nuniq), kThreads, 0, s>>>(dtable, dy, uniq, offsets, tokens, dim);
  UA_LAUNCHED("embedding_backward");
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  SwigluForwardKernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(out, gate, up, n);
  UA_LAUNCHED("swiglu_forward");
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                     cudaStream_t s) {
  if (n <= 0 || (!dgate && !dup)) return;
  SwigluBackwardKernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(dgate, dup, dout, gate, up, n);
  UA_LAUNCHED("swiglu_backward");
}

}  // namespace ua::cuda
