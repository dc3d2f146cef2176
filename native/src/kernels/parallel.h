// Internal helpers for the OpenMP element-wise kernels: when to go parallel, and a row reduction
// whose summation order is fixed by the shape alone (never by the thread count).
// Must never hold state or depend on the thread count for anything but speed.
#pragma once
#include <algorithm>
#include <vector>

#include "common.h"

namespace ua {

// Below this many elements of work an OpenMP team costs more than it saves.
constexpr int64_t kParallelMinWork = int64_t(1) << 15;

// Threads for a call doing `work` element operations. Used in `num_threads(...)` clauses because
// omp_set_num_threads() on the JS thread does not reach the libuv worker threads.
inline int threads_for(int64_t work) { return work >= kParallelMinWork ? num_threads() : 1; }

// result[cols] = sum over rows r of (what add_row(acc, r) adds into acc[cols]), in double.
// Rows are cut into fixed blocks (at most 256, at least 64 rows each) whose partials are combined
// in block order, so the bits depend only on (rows, cols) and the data.
// add_row is called exactly once per row and may also write per-row outputs.
template <typename AddRow>
void blocked_row_reduce(double* result, int64_t rows, int64_t cols, AddRow add_row) {
  std::fill(result, result + cols, 0.0);
  if (rows <= 0 || cols <= 0) return;
  const int64_t per_block = std::max<int64_t>(64, (rows + 255) / 256);
  const int64_t nblocks = (rows + per_block - 1) / per_block;
  std::vector<double> part(static_cast<size_t>(nblocks * cols), 0.0);
  const int nt = threads_for(rows * cols);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t b = 0; b < nblocks; ++b) {
    double* acc = part.data() + b * cols;
    const int64_t r1 = std::min(rows, (b + 1) * per_block);
    for (int64_t r = b * per_block; r < r1; ++r) add_row(acc, r);
  }
  // Combine in block order; columns are independent, so split them across threads.
  const int64_t cchunk = 256;
  const int64_t nchunks = (cols + cchunk - 1) / cchunk;
#pragma omp parallel for num_threads(threads_for(nblocks * cols)) schedule(static)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t j0 = c * cchunk, j1 = std::min(cols, j0 + cchunk);
    for (int64_t b = 0; b < nblocks; ++b) {
      const double* p = part.data() + b * cols;
      for (int64_t j = j0; j < j1; ++j) result[j] += p[j];
    }
  }
}

}  // namespace ua
