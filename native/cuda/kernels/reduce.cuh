// The CPU's fixed-order row reduction (kernels/parallel.h blocked_row_reduce) on the GPU: rows
// cut into the same blocks (at least 64, at most 256 of them), each block's rows summed in
// order in double, the blocks combined in order; so a column sum has exactly the CPU's bits
// whenever the addends do.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cuda/runtime.cuh"

namespace ua::cuda {

inline int64_t reduce_rows_per_block(int64_t rows) { return std::max<int64_t>(64, (rows + 255) / 256); }
inline int64_t reduce_blocks(int64_t rows) { return rows <= 0 ? 0 : ceil_div(rows, reduce_rows_per_block(rows)); }

// part[b, j] = sum over rows r of block b, in order, of f(r, j).
template <typename Addend>
__global__ void BlockedPartials(double* part, int64_t rows, int64_t cols, int64_t per_block, Addend f) {
  const int64_t j = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  const int64_t b = blockIdx.x, r1 = min(rows, (b + 1) * per_block);
  double acc = 0;
  for (int64_t r = b * per_block; r < r1; ++r) acc += f(r, j);
  part[b * cols + j] = acc;
}

// out[j] += float(sum over blocks in order of part[b, j]).
__global__ void CombinePartials(float* out, const double* part, int64_t nblocks, int64_t cols);

// out[j] += the blocked sum of f(r, j) over rows; `part` holds reduce_blocks(rows) * cols doubles.
template <typename Addend>
void blocked_column_sum(float* out, double* part, int64_t rows, int64_t cols, Addend f, cudaStream_t s) {
  const int64_t nb = reduce_blocks(rows);
  if (nb == 0 || cols <= 0) return;
  constexpr int kThreads = 256;
  const dim3 grid(static_cast<unsigned>(nb), static_cast<unsigned>(ceil_div(cols, kThreads)));
  BlockedPartials<<<grid, kThreads, 0, s>>>(part, rows, cols, reduce_rows_per_block(rows), f);
  UA_LAUNCHED("blocked partials");
  CombinePartials<<<static_cast<unsigned>(ceil_div(cols, kThreads)), kThreads, 0, s>>>(out, part, nb, cols);
  UA_LAUNCHED("combine partials");
}

}  // namespace ua::cuda
