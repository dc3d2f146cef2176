// Token embedding lookup.
// ids: [n] (each in [0, vocab)), table: [vocab, dim], y: [n, dim]
#pragma once
#include "common.h"

namespace ua {

// Throws ShapeError naming the first id outside [0, vocab).
void embedding_forward(float* y, const int32_t* ids, const float* table, int64_t n, int64_t vocab, int64_t dim);

// dtable[ids[i]] += dy[i], deterministic (fixed summation order regardless of threads).
void embedding_backward(float* dtable, const float* dy, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim);

}  // namespace ua
