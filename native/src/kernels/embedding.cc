// Token embedding lookup and its deterministic scatter-add backward.
// ids: [n], table: [vocab, dim], y / dy: [n, dim]
// Must never read or write outside the table (ids are checked before any work) and never use
// atomics: the backward gives each thread a column slice and walks the tokens in order.
#include "embedding.h"

#include <algorithm>
#include <cstring>

#include "parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ua {

static void check_ids(const char* what, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim) {
  if (n < 0 || vocab < 0 || dim < 0) throw ShapeError(std::string(what) + ": negative dimension");
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw ShapeError(std::string(what) + ": ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                       " is outside [0, " + std::to_string(vocab) + ")");
}

void embedding_forward(float* y, const int32_t* ids, const float* table, int64_t n, int64_t vocab, int64_t dim) {
  embedding_forward_rows(y, ids, table, n, vocab, dim, 0, vocab);
}

void embedding_forward_rows(float* y, const int32_t* ids, const float* table, int64_t n, int64_t vocab, int64_t dim, int64_t v0, int64_t v1) {
  check_ids("embedding_forward", ids, n, vocab, dim);
#pragma omp parallel for num_threads(threads_for(n * dim)) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] >= v0 && ids[i] < v1)
      std::memcpy(y + i * dim, table + static_cast<int64_t>(ids[i]) * dim, sizeof(float) * static_cast<size_t>(dim));
}

void embedding_backward(float* dtable, const float* dy, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim) {
  embedding_backward_rows(dtable, dy, ids, n, vocab, dim, 0, vocab);
}

void embedding_backward_rows(float* dtable, const float* dy, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim, int64_t v0, int64_t v1) {
  check_ids("embedding_backward", ids, n, vocab, dim);
  if (n == 0 || dim == 0) return;
  // Column slices of 16 floats (one cache line): each element is summed in token order by one
  // thread, whatever the number of threads.
  const int64_t slices = (dim + 15) / 16;
  const int nt = static_cast<int>(std::min<int64_t>(threads_for(n * dim), slices));
#pragma omp parallel num_threads(nt)
  {
    int t = 0, T = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    T = omp_get_num_threads();
#endif
    const int64_t s0 = slices * t / T, s1 = slices * (t + 1) / T;
    const int64_t c0 = s0 * 16, c1 = std::min(dim, s1 * 16);
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i] < v0 || ids[i] >= v1) continue;
      float* dst = dtable + static_cast<int64_t>(ids[i]) * dim;
      const float* src = dy + i * dim;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

}  // namespace ua
